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
    ) -> Result<Option<(CacheRecord, Vec<u8>)>, String> {
        let record_path = self.dir.join(RECORD);
        let text = match std::fs::read_to_string(&record_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("`{}`: {e}", record_path.display())),
        };
        let record: CacheRecord =
            serde_json::from_str(&text).map_err(|e| format!("`{}`: {e}", record_path.display()))?;
        if record.source != source {
            return Err(format!(
                "the cache holds a bundle of `{}`, not of `{source}`",
                record.source
            ));
        }
        let archive_path = self.dir.join(ARCHIVE);
        let len = std::fs::metadata(&archive_path)
            .map_err(|e| format!("`{}`: {e}", archive_path.display()))?
            .len();
        if len > max_bytes {
            return Err(format!(
                "`{}` exceeds {max_bytes} bytes",
                archive_path.display()
            ));
        }
        let bytes = std::fs::read(&archive_path)
            .map_err(|e| format!("`{}`: {e}", archive_path.display()))?;
        if sha256_hex(&bytes) != record.sha256 {
            return Err(format!(
                "`{}` does not match the SHA-256 its record holds",
                archive_path.display()
            ));
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
        assert!(
            cache
                .load("http://y/b.tgz", 1 << 20)
                .unwrap_err()
                .contains("not of")
        );
        assert!(
            cache
                .load("http://x/b.tgz", 3)
                .unwrap_err()
                .contains("exceeds")
        );
        std::fs::write(dir.join(ARCHIVE), b"archivf").unwrap();
        assert!(
            cache
                .load("http://x/b.tgz", 1 << 20)
                .unwrap_err()
                .contains("SHA-256")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
