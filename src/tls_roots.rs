//! Reading PEM CA certificates into a rustls root store: the one reader
//! behind every certificate check iamgate makes (the remote bundle
//! fetcher, decision-log shipping over https, client certificates on the
//! listeners). It owns no policy: whether an empty file, or a system
//! bundle with odd entries, is acceptable is each caller's decision.

use std::path::Path;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Why a CA file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The file cannot be read, or a PEM section in it cannot be parsed.
    #[error("`{path}`: {source}")]
    Read {
        path: String,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// A certificate in it is not a usable trust anchor.
    #[error("`{path}`: {source}")]
    Certificate {
        path: String,
        #[source]
        source: rustls::Error,
    },
    /// It holds no certificate (refused by callers that need one).
    #[error("`{path}` holds no certificate")]
    Empty { path: String },
}

/// Every certificate in the PEM file at `path`; any that cannot be read or
/// used refuses the file. An empty file gives an empty store.
pub fn read_roots(path: &Path) -> Result<RootCertStore, CaError> {
    let shown = || path.display().to_string();
    let read = |source| CaError::Read {
        path: shown(),
        source,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(read)? {
        roots
            .add(cert.map_err(read)?)
            .map_err(|source| CaError::Certificate {
                path: shown(),
                source,
            })?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_refused_with_its_cause_and_text_without_pem_is_empty() {
        let dir = std::env::temp_dir().join(format!("iamgate-roots-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let missing = dir.join("missing.pem");
        let refused = read_roots(&missing).err();
        assert!(
            matches!(&refused, Some(CaError::Read { .. })),
            "{refused:?}"
        );
        assert!(
            refused
                .as_ref()
                .and_then(std::error::Error::source)
                .is_some()
        );

        let text = dir.join("text.pem");
        let _ = std::fs::write(&text, "no certificate here\n");
        assert_eq!(read_roots(&text).map(|r| r.len()).ok(), Some(0));

        // A PEM certificate section whose content is not a certificate.
        let bad = dir.join("bad.pem");
        let _ = std::fs::write(
            &bad,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let refused = read_roots(&bad).err();
        assert!(
            matches!(&refused, Some(CaError::Certificate { .. })),
            "{refused:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
