//! The persisted last-known-good (`--bundle-cache DIR`): the archive of the
//! last activated remote bundle and a small record of where it came from.
//! Both are written to a temporary file, synced and renamed, archive first,
//! so a crash leaves the old pair or the new one. The record carries the
//! archive's SHA-256; a cached archive that does not match it, or whose
//! source differs from the configured one, is ignored. The cached bundle
//! then goes through the same signature check and gate as a fetched one.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const ARCHIVE: &str = "bundle.tar.gz";
const RECORD: &str = "bundle.json";

/// What the cache says about its archive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The source URL it was fetched from.
    pub source: String,
    pub etag: Option<String>,
    pub revision: String,
    /// When it was activated (Unix seconds).
    pub cached_at: f64,
    pub sha256: String,
}

/// Why a cache that exists was ignored.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("`{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{}`: {source}", path.display())]
    Record {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("the cache holds a bundle of `{held}`, not of `{wanted}`")]
    OtherSource { held: String, wanted: String },
    #[error("`{}` exceeds {limit} bytes", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("`{}` does not match the SHA-256 its record holds", path.display())]
    Changed { path: PathBuf },
}

/// A cache directory.
#[derive(Debug, Clone)]
pub struct BundleCache {
    dir: PathBuf,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

impl BundleCache {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Persists an activated bundle archive.
    pub fn store(
        &self,
        source: &str,
        etag: Option<&str>,
        revision: &str,
        cached_at: f64,
        archive: &[u8],
    ) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let record = CacheRecord {
            source: source.to_owned(),
            etag: etag.map(str::to_owned),
            revision: revision.to_owned(),
            cached_at,
            sha256: sha256_hex(archive),
        };
        write_atomic(&self.dir.join(ARCHIVE), archive)?;
        let json = serde_json::to_vec_pretty(&record).map_err(std::io::Error::other)?;
        write_atomic(&self.dir.join(RECORD), &json)?;
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// The cached archive for `source`, if there is one that matches its
    /// record. `Err` says why a cache that exists was ignored.
    pub fn load(
        &self,
        source: &str,
        max_bytes: u64,
    ) -> Result<Option<(CacheRecord, Vec<u8>)>, CacheError> {
        let record_path = self.dir.join(RECORD);
        let text = match std::fs::read_to_string(&record_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CacheError::Read {
                    path: record_path,
                    source,
                });
            }
        };
        let record: CacheRecord = match serde_json::from_str(&text) {
            Ok(r) => r,
            Err(source) => {
                return Err(CacheError::Record {
                    path: record_path,
                    source,
                });
            }
        };
        if record.source != source {
            return Err(CacheError::OtherSource {
                held: record.source,
                wanted: source.to_owned(),
            });
        }
        let path = self.dir.join(ARCHIVE);
        let len = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(source) => return Err(CacheError::Read { path, source }),
        };
        if len > max_bytes {
            return Err(CacheError::TooLarge {
                path,
                limit: max_bytes,
            });
        }
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(source) => return Err(CacheError::Read { path, source }),
        };
        if sha256_hex(&bytes) != record.sha256 {
            return Err(CacheError::Changed { path });
        }
        Ok(Some((record, bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_15_the_cache_round_trips_and_refuses_a_changed_archive() {
        let dir = std::env::temp_dir().join(format!("iamgate-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cache = BundleCache::new(dir.clone());
        assert_eq!(cache.load("http://x/b.tgz", 1 << 20).unwrap(), None);
        cache
            .store("http://x/b.tgz", Some("\"e1\""), "r1", 5.0, b"archive")
            .unwrap();
        let (record, bytes) = cache.load("http://x/b.tgz", 1 << 20).unwrap().unwrap();
        assert_eq!(
            (record.revision.as_str(), &bytes[..]),
            ("r1", &b"archive"[..])
        );
        let other = cache.load("http://y/b.tgz", 1 << 20).unwrap_err();
        assert!(
            matches!(&other, CacheError::OtherSource { held, .. } if held == "http://x/b.tgz"),
            "{other}"
        );
        assert!(other.to_string().contains("not of"), "{other}");
        let large = cache.load("http://x/b.tgz", 3).unwrap_err();
        assert!(
            matches!(large, CacheError::TooLarge { limit: 3, .. }),
            "{large}"
        );
        std::fs::write(dir.join(ARCHIVE), b"archivf").unwrap();
        let changed = cache.load("http://x/b.tgz", 1 << 20).unwrap_err();
        assert!(changed.to_string().contains("SHA-256"), "{changed}");
        // A record that is not JSON keeps serde's error; an unreadable
        // archive keeps the io error.
        std::fs::write(dir.join(RECORD), b"{").unwrap();
        let record = cache.load("http://x/b.tgz", 1 << 20).unwrap_err();
        assert!(
            matches!(&record, CacheError::Record { source, .. } if source.is_eof()),
            "{record}"
        );
        cache
            .store("http://x/b.tgz", None, "r2", 6.0, b"archive")
            .unwrap();
        std::fs::remove_file(dir.join(ARCHIVE)).unwrap();
        let missing = cache.load("http://x/b.tgz", 1 << 20).unwrap_err();
        assert!(
            matches!(&missing, CacheError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
            "{missing}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
