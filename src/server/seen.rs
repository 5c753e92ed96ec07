//! What a watched secret file (the credentials file, the session key
//! file) held when it was last read: its content's digest, so that a poll
//! or a SIGHUP re-reads and swaps only on a change. Owns the digest only;
//! reading, parsing and swapping stay with each file's owner.

use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

/// The SHA-256 of the content last read (valid or not), shared by clones.
#[derive(Debug, Clone, Default)]
pub struct Seen(Arc<Mutex<Option<[u8; 32]>>>);

impl Seen {
    /// Remembers `bytes` as read (`None`: nothing read yet).
    pub fn of(bytes: Option<&[u8]>) -> Self {
        Self(Arc::new(Mutex::new(
            bytes.map(|b| Sha256::digest(b).into()),
        )))
    }

    /// Whether `bytes` differ from the content last read (always, with
    /// `force`); they are remembered as read either way. A poisoned lock
    /// reports no change, so the keys being served stay.
    pub fn changed(&self, bytes: &[u8], force: bool) -> bool {
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        let Ok(mut seen) = self.0.lock() else {
            return false;
        };
        let changed = force || *seen != Some(digest);
        *seen = Some(digest);
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_change_or_force_counts() {
        let seen = Seen::of(Some(b"a"));
        assert!(!seen.changed(b"a", false));
        assert!(seen.changed(b"a", true));
        assert!(seen.changed(b"b", false));
        assert!(!seen.clone().changed(b"b", false));
        assert!(Seen::of(None).changed(b"a", false));
    }
}
