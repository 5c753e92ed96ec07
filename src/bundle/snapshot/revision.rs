//! The served revision of a snapshot: the manifest's name for it and a
//! hash of every file, so two different bundles never serve under one
//! revision.

use sha2::{Digest, Sha256};

use crate::bundle::aws::Manifest;
use crate::bundle::err::BundleError;
use crate::bundle::files::BundleFiles;

use super::parse_json;

/// Longest manifest revision accepted (it travels in headers and labels).
const MAX_REVISION_CHARS: usize = 128;

/// The served revision and the manifest's own.
pub(super) type Revision = Result<(String, Option<String>), BundleError>;

/// A file's path and the SHA-256 of its text.
pub(super) type FileDigest = (String, [u8; 32]);

/// The SHA-256 of a file's text.
pub(super) fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// Whether the compile reads (and digests) `rel` as an account file
/// rather than leaving it to [`other_digests`].
pub(super) fn is_account_file(rel: &str) -> bool {
    rel.starts_with("iam/") && rel.ends_with(".json")
}

/// The digests of every file but the account files, which are digested
/// as they are read so that their text can be freed right after.
pub(super) fn other_digests(files: &BundleFiles) -> Vec<FileDigest> {
    files
        .iter()
        .filter(|(k, _)| !is_account_file(k))
        .map(|(k, v)| (k.to_owned(), digest(v)))
        .collect()
}

/// The served revision and the manifest's own: the manifest names a
/// revision, the content hash (over every file's path and digest, in path
/// order) tells two bundles under one name apart.
pub(super) fn revision(files: &BundleFiles, mut digests: Vec<FileDigest>) -> Revision {
    let manifest = match files.get("manifest.json") {
        Some(text) => parse_json::<Manifest>("manifest.json", text)?.revision,
        None => None,
    };
    if let Some(r) = &manifest {
        let printable = r.bytes().all(|b| (b' '..=b'~').contains(&b));
        if r.trim().is_empty() || !printable || r.len() > MAX_REVISION_CHARS {
            return Err(BundleError::invalid(
                "manifest.json",
                "$.revision",
                format!("a revision is 1 to {MAX_REVISION_CHARS} printable ASCII characters"),
            ));
        }
    }
    digests.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut h = Sha256::new();
    for (k, d) in &digests {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(d);
    }
    let digest: String = h
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    let served = match &manifest {
        Some(r) => format!("{r}+sha256:{digest}"),
        None => format!("sha256:{digest}"),
    };
    Ok((served, manifest))
}
