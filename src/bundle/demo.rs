//! The demo bundle built into the binary: `iamgate serve` with no
//! `--bundle` serves it. An EC2-shaped organization with a production and a
//! development account, users, groups, a role with a path, managed and
//! inline policies (one URL-encoded, as the raw API returns them), a
//! permissions boundary, SCPs, a resource policy, and its own tests.

use crate::bundle::files::BundleFiles;

/// The demo bundle's files.
pub fn files() -> BundleFiles {
    BundleFiles::from_pairs([
        ("manifest.json", include_str!("demo/manifest.json")),
        (
            "iam/111111111111.json",
            include_str!("demo/iam/111111111111.json"),
        ),
        (
            "iam/222222222222.json",
            include_str!("demo/iam/222222222222.json"),
        ),
        ("organization.json", include_str!("demo/organization.json")),
        (
            "resource-policies.json",
            include_str!("demo/resource-policies.json"),
        ),
        ("tests/bob.json", include_str!("demo/tests/bob.json")),
        ("tests/others.json", include_str!("demo/tests/others.json")),
        ("tests/dev.json", include_str!("demo/tests/dev.json")),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::load_files;

    #[test]
    fn demo_bundle_compiles_and_passes_its_tests() {
        let snap = load_files(&files(), "demo");
        assert!(snap.is_ok(), "{:?}", snap.err());
    }
}
