//! A bounded cache of opened session tokens, so that a session signing
//! request after request is opened (decrypted, its claims parsed, its
//! secret derived) once rather than on every request.
//!
//! Entries are keyed by the SHA-256 of the token's bytes and hold the whole
//! token, compared in constant time on a hit, so a different token never
//! borrows an entry. Only a token that opened is kept: a failure is never
//! cached, and is tried again in full the next time. An entry is refused
//! (and dropped) once its session has expired, answers `Invalid` when
//! presented with another access key id (as [`SessionKeys::open`] does),
//! and the cache never holds more than its bound. It lives inside the
//! [`SessionKeys`] that opened its entries, so a token is never accepted
//! on the strength of keys that are no longer loaded.
//!
//! Pure: no I/O, no clock (the caller passes `now`), and no token or
//! secret is ever logged.
//!
//! [`SessionKeys`]: super::session::SessionKeys
//! [`SessionKeys::open`]: super::session::SessionKeys::open

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::session::{MAX_TOKEN_LEN, Secret, SessionClaims, TokenError};

/// Opened sessions kept by default.
pub const DEFAULT_CAPACITY: usize = 4096;

/// A token that opened: its claims and the session's secret.
pub struct OpenedSession {
    pub claims: SessionClaims,
    pub secret: Secret,
}

impl fmt::Debug for OpenedSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenedSession")
            .field("access_key_id", &self.claims.access_key_id)
            .field("expires", &self.claims.expires)
            .finish_non_exhaustive()
    }
}

struct Entry {
    /// The whole token, compared on a hit.
    token: Box<[u8]>,
    /// The key set's generation it was opened under: a hit from an older
    /// generation is opened again, so a token sealed under a key that was
    /// since removed stops opening at once.
    generation: u64,
    opened: Arc<OpenedSession>,
}

/// Opened sessions by the SHA-256 of their token (see the module docs).
pub struct SessionCache {
    entries: RwLock<HashMap<[u8; 32], Entry>>,
    capacity: usize,
}

impl fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCache")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl Default for SessionCache {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl SessionCache {
    /// A cache holding at most `capacity` sessions (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// Sessions held now.
    pub fn len(&self) -> usize {
        self.entries.read().map_or(0, |e| e.len())
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The session `token` (presented with `access_key_id`, at `now`
    /// seconds since the epoch) opens: from the cache, or from `open` (the
    /// full check, [`super::session::SessionKeys::open`]), whose success
    /// is then kept. A hit is checked as `open` checks: the access key id
    /// first, then the expiry. `generation` is the key set's
    /// ([`super::session::SessionKeys::generation`]), read before `open`
    /// loads the keys: an entry kept under another generation is a miss.
    pub fn open(
        &self,
        token: &str,
        access_key_id: &str,
        now: u64,
        generation: u64,
        open: impl FnOnce() -> Result<(SessionClaims, Secret), TokenError>,
    ) -> Result<Arc<OpenedSession>, TokenError> {
        // Not worth hashing: `open` refuses it at once.
        if token.len() > MAX_TOKEN_LEN {
            return open().map(|(claims, secret)| Arc::new(OpenedSession { claims, secret }));
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(hit) = self.lookup(&digest, token.as_bytes(), generation) {
            if hit.claims.access_key_id != access_key_id {
                return Err(TokenError::Invalid);
            }
            if now >= hit.claims.expires {
                self.remove(&digest);
                return Err(TokenError::Expired);
            }
            return Ok(hit);
        }
        let (claims, secret) = open()?;
        let opened = Arc::new(OpenedSession { claims, secret });
        self.insert(
            digest,
            token.as_bytes(),
            Arc::clone(&opened),
            now,
            generation,
        );
        Ok(opened)
    }

    fn lookup(
        &self,
        digest: &[u8; 32],
        token: &[u8],
        generation: u64,
    ) -> Option<Arc<OpenedSession>> {
        let entries = self.entries.read().ok()?;
        let entry = entries.get(digest)?;
        if entry.generation != generation {
            return None;
        }
        // `ct_eq` on slices of different lengths is false.
        bool::from(entry.token.ct_eq(token)).then(|| Arc::clone(&entry.opened))
    }

    /// Forgets every session (the key set was replaced).
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.write() {
            entries.clear();
        }
    }

    fn remove(&self, digest: &[u8; 32]) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(digest);
        }
    }

    fn insert(
        &self,
        digest: [u8; 32],
        token: &[u8],
        opened: Arc<OpenedSession>,
        now: u64,
        generation: u64,
    ) {
        // A poisoned lock only loses the cache.
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if entries.len() >= self.capacity && !entries.contains_key(&digest) {
            entries.retain(|_, e| now < e.opened.claims.expires);
            if entries.len() >= self.capacity {
                // Still full of live sessions: drop a quarter, so that the
                // next misses do not each sweep the whole map.
                let keep = self.capacity - self.capacity.div_ceil(4);
                let excess = entries.len().saturating_sub(keep);
                let victims: Vec<[u8; 32]> = entries.keys().take(excess).copied().collect();
                for v in &victims {
                    entries.remove(v);
                }
            }
        }
        entries.insert(
            digest,
            Entry {
                token: token.into(),
                generation,
                opened,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::session::SessionKeys;
    use std::cell::Cell;

    const KEYS: &str = "k1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    /// Claims from their serialized form, so that fields added to
    /// `SessionClaims` later (with serde defaults) need no change here.
    fn claims(expires: u64) -> SessionClaims {
        serde_json::from_value(serde_json::json!({
            "k": "",
            "p": "arn:aws:sts::111122223333:assumed-role/r/s",
            "r": "arn:aws:iam::111122223333:role/r",
            "n": "s",
            "iat": 1_000,
            "exp": expires,
        }))
        .unwrap()
    }

    /// Opens through `cache`, counting the full opens.
    fn open_counted(
        cache: &SessionCache,
        keys: &SessionKeys,
        token: &str,
        akid: &str,
        now: u64,
        opens: &Cell<u32>,
    ) -> Result<Arc<OpenedSession>, TokenError> {
        cache.open(token, akid, now, keys.generation(), || {
            opens.set(opens.get() + 1);
            keys.open(token, akid, now)
        })
    }

    /// Issue 13: a session is opened once, then served from the cache with
    /// the same claims and secret.
    #[test]
    fn a_hit_skips_the_full_open() {
        let keys = SessionKeys::parse(KEYS).unwrap();
        let issued = keys.issue(claims(5_000)).unwrap();
        let cache = SessionCache::default();
        let opens = Cell::new(0);
        let akid = &issued.access_key_id;
        let token = &issued.session_token;
        let first = open_counted(&cache, &keys, token, akid, 2_000, &opens).unwrap();
        let second = open_counted(&cache, &keys, token, akid, 2_001, &opens).unwrap();
        assert_eq!(opens.get(), 1);
        assert_eq!(cache.len(), 1);
        assert!(Arc::ptr_eq(&first, &second));
        let (claims, secret) = keys.open(token, akid, 2_000).unwrap();
        assert_eq!(second.claims, claims);
        assert_eq!(second.secret.expose(), secret.expose());
        assert_eq!(second.secret.expose(), issued.secret_access_key);
    }

    /// Issue 13: once the key that sealed a cached session is removed
    /// from the key file, the session stops opening at once: an entry of
    /// an older key generation is a miss, never a hit.
    #[test]
    fn a_removed_key_ends_its_cached_sessions() {
        let keys = SessionKeys::parse(KEYS).unwrap();
        let issued = keys.issue(claims(5_000)).unwrap();
        let (akid, token) = (&issued.access_key_id, &issued.session_token);
        // Through the owner's own cache, as the verifier opens sessions.
        keys.open_cached(token, akid, 2_000).unwrap();
        keys.open_cached(token, akid, 2_001).unwrap();
        let rotated = SessionKeys::parse(
            "k2 1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100",
        )
        .unwrap();
        keys.replace(rotated);
        assert_eq!(
            keys.open_cached(token, akid, 2_002).unwrap_err(),
            TokenError::Invalid
        );
        // And a cache that kept an entry of the old generation (a
        // concurrent open racing the replace) does not serve it.
        let cache = SessionCache::default();
        let old = SessionKeys::parse(KEYS).unwrap();
        let opens = Cell::new(0);
        open_counted(&cache, &old, token, akid, 2_000, &opens).unwrap();
        assert_eq!(
            cache
                .open(token, akid, 2_001, old.generation() + 1, || keys
                    .open(token, akid, 2_001))
                .unwrap_err(),
            TokenError::Invalid
        );
    }

    /// Issue 13: a cached session expires with its session, and is not
    /// served again afterwards.
    #[test]
    fn a_cached_session_expires() {
        let keys = SessionKeys::parse(KEYS).unwrap();
        let issued = keys.issue(claims(5_000)).unwrap();
        let cache = SessionCache::default();
        let opens = Cell::new(0);
        let (akid, token) = (&issued.access_key_id, &issued.session_token);
        open_counted(&cache, &keys, token, akid, 4_999, &opens).unwrap();
        assert_eq!(
            open_counted(&cache, &keys, token, akid, 5_000, &opens).unwrap_err(),
            TokenError::Expired
        );
        assert!(cache.is_empty());
        // The full open says the same.
        assert_eq!(
            open_counted(&cache, &keys, token, akid, 5_001, &opens).unwrap_err(),
            TokenError::Expired
        );
        assert_eq!(opens.get(), 2);
        assert!(cache.is_empty());
    }

    /// Issue 13: a token changed in any byte misses the cache and fails
    /// the full open; failures are never kept, and a cached token
    /// presented with another access key id is refused as `open` refuses it.
    #[test]
    fn tampered_tokens_and_other_key_ids_are_refused() {
        let keys = SessionKeys::parse(KEYS).unwrap();
        let issued = keys.issue(claims(5_000)).unwrap();
        let other = keys.issue(claims(5_000)).unwrap();
        let cache = SessionCache::default();
        let opens = Cell::new(0);
        let (akid, token) = (&issued.access_key_id, &issued.session_token);
        open_counted(&cache, &keys, token, akid, 2_000, &opens).unwrap();
        let mut tampered = token.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        for _ in 0..2 {
            assert_eq!(
                open_counted(&cache, &keys, &tampered, akid, 2_000, &opens).unwrap_err(),
                TokenError::Invalid
            );
        }
        // Both tampered attempts went to the full open; nothing was kept.
        assert_eq!(opens.get(), 3);
        assert_eq!(cache.len(), 1);
        // The cached token with another session's key id.
        assert_eq!(
            open_counted(&cache, &keys, token, &other.access_key_id, 2_000, &opens).unwrap_err(),
            TokenError::Invalid
        );
        assert_eq!(
            keys.open(token, &other.access_key_id, 2_000).unwrap_err(),
            TokenError::Invalid
        );
        // A token sealed under keys the cache's owner does not hold.
        let foreign = SessionKeys::parse(
            "k1 1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100",
        )
        .unwrap()
        .issue(claims(5_000))
        .unwrap();
        assert_eq!(
            open_counted(
                &cache,
                &keys,
                &foreign.session_token,
                &foreign.access_key_id,
                2_000,
                &opens
            )
            .unwrap_err(),
            TokenError::Invalid
        );
        assert_eq!(cache.len(), 1);
    }

    /// Issue 13: the cache never holds more than its bound; expired
    /// sessions go first, and every session still opens after eviction.
    #[test]
    fn the_cache_is_bounded() {
        let keys = SessionKeys::parse(KEYS).unwrap();
        let cache = SessionCache::with_capacity(8);
        let opens = Cell::new(0);
        let mut issued = Vec::new();
        for i in 0..40u64 {
            // Half of them expire at 3,000.
            let expires = if i % 2 == 0 { 3_000 } else { 9_000 };
            issued.push(keys.issue(claims(expires)).unwrap());
        }
        for (i, c) in issued.iter().enumerate() {
            let now = if i < 20 { 2_000 } else { 4_000 };
            let r = open_counted(
                &cache,
                &keys,
                &c.session_token,
                &c.access_key_id,
                now,
                &opens,
            );
            if now >= 3_000 && i % 2 == 0 {
                assert_eq!(r.unwrap_err(), TokenError::Expired);
            } else {
                r.unwrap();
            }
            assert!(cache.len() <= 8, "{} entries", cache.len());
        }
        // Every live session still opens (from the cache or in full).
        for c in issued.iter().skip(1).step_by(2) {
            let r = open_counted(
                &cache,
                &keys,
                &c.session_token,
                &c.access_key_id,
                4_000,
                &opens,
            );
            assert_eq!(r.unwrap().claims.access_key_id, c.access_key_id);
            assert!(cache.len() <= 8);
        }
        // Once full of expired sessions, they are swept first.
        for c in issued.iter().skip(1).step_by(2) {
            let _ = open_counted(
                &cache,
                &keys,
                &c.session_token,
                &c.access_key_id,
                10_000,
                &opens,
            );
        }
        assert!(cache.is_empty());
    }
}
