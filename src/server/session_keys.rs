//! Keeps the session key file (`--session-key`) current, as
//! [`super::credentials`] does for access keys: read at startup (by
//! [`super::sts::with_session_keys`]; an unusable file stops the start),
//! then re-read when its content changes (polled, so a Kubernetes Secret's
//! swapped link is seen) and on SIGHUP. A file that became unusable keeps
//! the previous keys serving; the refusal is logged, counted
//! (`iamgate_session_key_reloads_total{result="refused"}`) and shown in
//! `/v1/status`. Rotation: list a new key first (it seals from then on)
//! while the old one still opens its sessions; drop the old one to refuse
//! them. Never logs a key.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::identity::{SessionKeyError, SessionKeys};
use crate::server::seen::Seen;
use crate::telemetry::Metrics;

/// Largest session key file read (16 keys take under 2 KiB).
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// The session key file and the key set it feeds.
#[derive(Debug, Clone)]
pub struct SessionKeyFile {
    path: PathBuf,
    keys: Arc<SessionKeys>,
    metrics: Metrics,
    /// The content last read (valid or not), to tell a change.
    seen: Seen,
}

impl SessionKeyFile {
    /// Watches `path`, whose keys `keys` already holds (read at startup).
    pub fn new(path: &Path, keys: Arc<SessionKeys>, metrics: Metrics) -> Self {
        Self {
            path: path.to_path_buf(),
            keys,
            metrics,
            seen: Seen::of(read(path).ok().as_deref()),
        }
    }

    /// Re-reads the file if its content changed (`force`: in any case).
    /// Returns whether a new key set was swapped in.
    pub fn reload(&self, force: bool) -> bool {
        let bytes = match read(&self.path) {
            Ok(b) => b,
            Err(e) => {
                self.refuse(&e);
                return false;
            }
        };
        if !self.seen.changed(&bytes, force) {
            return false;
        }
        let parsed = std::str::from_utf8(&bytes)
            .map_err(|_| SessionKeyError::NotText {
                path: self.path.display().to_string(),
            })
            .and_then(SessionKeys::parse);
        match parsed {
            Ok(keys) => {
                self.keys.replace(keys);
                self.metrics.session_key_reload("loaded");
                tracing::info!(
                    path = %self.path.display(),
                    key_ids = ?self.keys.key_ids(),
                    sealing_key_id = %self.keys.sealing_key_id(),
                    "session keys reloaded"
                );
                true
            }
            Err(e) => {
                self.refuse(&e);
                false
            }
        }
    }

    fn refuse(&self, e: &SessionKeyError) {
        tracing::error!(path = %self.path.display(), error = %e, "session key file refused; the previous keys keep serving");
        self.metrics.session_key_reload("refused");
        self.keys.set_refused(Some(e.to_string()));
    }

    /// Re-reads the file every `interval`, and on SIGHUP, for as long as
    /// the runtime runs.
    pub fn watch(&self, interval: Duration) {
        let file = self.clone();
        tokio::spawn(async move {
            let mut hup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let force = match hup.as_mut() {
                    Some(h) => tokio::select! {
                        _ = tick.tick() => false,
                        _ = h.recv() => true,
                    },
                    None => {
                        tick.tick().await;
                        false
                    }
                };
                let f = file.clone();
                let _ = tokio::task::spawn_blocking(move || f.reload(force)).await;
            }
        });
    }
}

fn read(path: &Path) -> Result<Vec<u8>, SessionKeyError> {
    use std::io::Read as _;
    let failed = |source| SessionKeyError::Read {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(failed)?;
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(failed)?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(SessionKeyError::TooLarge {
            path: path.display().to_string(),
            limit: MAX_KEY_FILE_BYTES,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const K2: &str = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";

    fn claims() -> crate::identity::SessionClaims {
        crate::identity::session::tests::claims(u64::MAX)
    }

    #[test]
    fn rotation_keeps_old_sessions_while_listed_and_bad_files_keep_the_keys()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!(
            "iamgate-session-keys-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("session.keys");
        std::fs::write(&path, format!("k1 {K1}\n"))?;
        let keys = Arc::new(SessionKeys::from_file(&path)?);
        let metrics = Metrics::new()?;
        let file = SessionKeyFile::new(&path, keys.clone(), metrics.clone());
        let old = keys.issue(claims())?;
        assert!(!file.reload(false), "unchanged content is not re-read");

        // Rotation: k2 seals, k1 still opens.
        std::fs::write(&path, format!("k2 {K2}\nk1 {K1}\n"))?;
        assert!(file.reload(false));
        assert_eq!(keys.sealing_key_id(), "k2");
        assert_eq!(keys.generation(), 1);
        assert!(keys.open(&old.session_token, &old.access_key_id, 0).is_ok());
        let new = keys.issue(claims())?;

        // A broken file changes nothing and says why (no key material).
        std::fs::write(&path, "k3 not-a-key\n")?;
        assert!(!file.reload(false));
        let why = keys.refused().ok_or("no refusal recorded")?;
        assert!(why.contains("line 1"), "{why}");
        assert!(!why.contains("not-a-key"));
        assert_eq!(keys.key_ids(), ["k2", "k1"]);
        assert!(keys.open(&old.session_token, &old.access_key_id, 0).is_ok());

        // Dropping k1 refuses the sessions it sealed; k2's still open.
        std::fs::write(&path, format!("k2 {K2}\n"))?;
        assert!(file.reload(false));
        assert_eq!(keys.refused(), None);
        assert!(
            keys.open(&old.session_token, &old.access_key_id, 0)
                .is_err()
        );
        assert!(keys.open(&new.session_token, &new.access_key_id, 0).is_ok());

        std::fs::remove_file(&path)?;
        assert!(!file.reload(true));
        assert_eq!(keys.key_ids(), ["k2"]);
        let _ = std::fs::remove_dir_all(&dir);
        let text = String::from_utf8(metrics.render()?)?;
        assert!(text.contains("iamgate_session_key_reloads_total{result=\"loaded\"} 2"));
        assert!(text.contains("iamgate_session_key_reloads_total{result=\"refused\"} 2"));
        Ok(())
    }

    /// A file that cannot be read keeps its io error; one too large says so.
    #[test]
    fn unreadable_files_keep_their_cause() {
        let missing =
            std::env::temp_dir().join(format!("iamgate-no-keys-{}", uuid::Uuid::new_v4()));
        let e = read(&missing).unwrap_err();
        let SessionKeyError::Read { source, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        let big = std::env::temp_dir().join(format!("iamgate-big-keys-{}", uuid::Uuid::new_v4()));
        std::fs::write(
            &big,
            vec![b'x'; usize::try_from(MAX_KEY_FILE_BYTES).unwrap() + 1],
        )
        .unwrap();
        let e = read(&big).unwrap_err();
        std::fs::remove_file(&big).ok();
        assert!(
            matches!(e, SessionKeyError::TooLarge { limit, .. } if limit == MAX_KEY_FILE_BYTES),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .ends_with(&format!("larger than {MAX_KEY_FILE_BYTES} bytes")),
            "{e}"
        );
    }
}
