//! Instance metadata session tokens (IMDSv2's `PUT /latest/api/token`):
//! stateless, MAC'd under the session keys, bound to the address that
//! asked for them and to an expiry.
//!
//! Token: `1.<expiry, seconds since the epoch>.<base64url(HMAC)>`, the
//! HMAC (see [`SessionKeys::macs`]) over the expiry and the caller's IP
//! address. Any iamgate holding the same session key accepts it from the
//! same address until it expires; nothing is stored. A token carries no
//! secret: it only proves the holder asked from that address.
//!
//! Pure: no I/O.

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use super::session::SessionKeys;

const LABEL: &[u8] = b"iamgate imds token v1";
/// Longest token accepted (ours are about 60 characters).
const MAX_LEN: usize = 128;
/// Shortest and longest TTL IMDSv2 accepts.
pub const TTL_RANGE: std::ops::RangeInclusive<u64> = 1..=21_600;

fn message(expires: u64, addr: IpAddr) -> Vec<u8> {
    format!("{expires}\0{addr}").into_bytes()
}

/// A token for `addr` that expires at `expires` (seconds since the epoch);
/// `None` when there is no key.
pub fn issue(keys: &SessionKeys, addr: IpAddr, expires: u64) -> Option<String> {
    let mac = keys
        .macs(LABEL, &message(expires, addr))
        .into_iter()
        .next()?;
    Some(format!("1.{expires}.{}", URL_SAFE_NO_PAD.encode(mac)))
}

/// Whether `token` was issued by a holder of the keys for `addr` and has
/// not expired at `now`.
pub fn verify(keys: &SessionKeys, token: &str, addr: IpAddr, now: u64) -> bool {
    if token.len() > MAX_LEN {
        return false;
    }
    let mut parts = token.split('.');
    let (Some("1"), Some(exp), Some(mac), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(expires) = exp.parse::<u64>() else {
        return false;
    };
    let Ok(mac) = URL_SAFE_NO_PAD.decode(mac) else {
        return false;
    };
    let msg = message(expires, addr);
    let valid = keys
        .macs(LABEL, &msg)
        .iter()
        .fold(false, |ok, m| ok | bool::from(m.as_slice().ct_eq(&mac)));
    valid && now < expires
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &str = "k1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";

    #[test]
    fn tokens_are_bound_to_address_expiry_and_key() {
        // issue 13
        let keys = SessionKeys::parse(KEYS).unwrap();
        let a: IpAddr = "10.0.0.5".parse().unwrap();
        let b: IpAddr = "10.0.0.6".parse().unwrap();
        let t = issue(&keys, a, 1000).unwrap();
        assert!(verify(&keys, &t, a, 999));
        assert!(!verify(&keys, &t, a, 1000), "expired");
        assert!(!verify(&keys, &t, b, 999), "another address");
        let forged = t.replacen("1000", "9999", 1);
        assert!(!verify(&keys, &forged, a, 999), "expiry changed");
        let other = SessionKeys::parse(
            "k2 ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
        )
        .unwrap();
        assert!(!verify(&other, &t, a, 999), "another key");
        for bad in ["", "1..", "2.1000.x", "1.abc.x", "1.1000"] {
            assert!(!verify(&keys, bad, a, 0), "{bad}");
        }
        // A rotated key file (new key first) still opens the old token.
        let rotated = SessionKeys::parse(&format!(
            "k2 ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n{KEYS}"
        ))
        .unwrap();
        assert!(verify(&rotated, &t, a, 999));
    }
}
