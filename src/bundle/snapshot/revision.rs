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

/// The served revision and the manifest's own: the manifest names a
/// revision, the content hash tells two bundles under one name apart.
pub(super) fn revision(files: &BundleFiles) -> Revision {
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
    let mut h = Sha256::new();
    for (k, v) in files.iter() {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
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
