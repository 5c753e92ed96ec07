//! Keeps the credentials file (`--credentials`) current: read at startup
//! (an unusable file stops the start), then re-read when its content
//! changes (polled, so that a Kubernetes Secret's swapped link is seen) and
//! on SIGHUP. A file that became unusable keeps the previous keys serving
//! and is reported; no secret is ever logged.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::identity::{CredentialStore, CredentialsError};
use crate::server::seen::Seen;

/// The credentials file and the keys last read from it.
#[derive(Debug, Clone)]
pub struct CredentialsFile {
    path: PathBuf,
    store: Arc<ArcSwap<CredentialStore>>,
    /// The content last read (valid or not), to tell a change.
    seen: Seen,
}

impl CredentialsFile {
    /// Reads the file into `store` now; fails if the file is unusable.
    pub fn open(
        path: &Path,
        store: Arc<ArcSwap<CredentialStore>>,
    ) -> Result<Self, CredentialsError> {
        let bytes = read(path)?;
        let keys = CredentialStore::from_json(&bytes)?;
        log_loaded(path, &keys);
        store.store(Arc::new(keys));
        Ok(Self {
            path: path.to_path_buf(),
            store,
            seen: Seen::of(Some(&bytes)),
        })
    }

    /// Re-reads the file if its content changed (`force`: in any case).
    /// Returns whether new keys were swapped in.
    pub fn reload(&self, force: bool) -> bool {
        let bytes = match read(&self.path) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "credentials file unreadable; the previous keys keep serving");
                return false;
            }
        };
        if !self.seen.changed(&bytes, force) {
            return false;
        }
        match CredentialStore::from_json(&bytes) {
            Ok(keys) => {
                log_loaded(&self.path, &keys);
                self.store.store(Arc::new(keys));
                true
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "credentials file refused; the previous keys keep serving");
                false
            }
        }
    }

    /// Re-reads the file every `interval` for as long as the runtime runs.
    pub fn poll(&self, interval: Duration) {
        let file = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let f = file.clone();
                let _ = tokio::task::spawn_blocking(move || f.reload(false)).await;
            }
        });
    }
}

fn read(path: &Path) -> Result<Vec<u8>, CredentialsError> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| CredentialsError::Read(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(crate::identity::credentials::MAX_CREDENTIALS_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CredentialsError::Read(e.to_string()))?;
    if bytes.len() as u64 > crate::identity::credentials::MAX_CREDENTIALS_BYTES {
        return Err(CredentialsError::TooLarge);
    }
    Ok(bytes)
}

fn log_loaded(path: &Path, keys: &CredentialStore) {
    let (total, active) = keys.counts();
    tracing::info!(path = %path.display(), keys = total, active, "credentials loaded");
}
