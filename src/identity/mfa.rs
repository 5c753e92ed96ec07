//! Virtual MFA devices and their one-time codes (TOTP, RFC 6238: HMAC-SHA1,
//! 30-second steps, 6 digits), for `GetSessionToken` and `AssumeRole`'s
//! `SerialNumber` / `TokenCode`.
//!
//! Devices come from a file of their own (`--mfa-devices FILE`), in the
//! shape of `aws iam list-virtual-mfa-devices` (`{"VirtualMFADevices":
//! [...]}` or a bare list) with each device's `Base32StringSeed` (what
//! `aws iam create-virtual-mfa-device --bootstrap-method Base32StringSeed`
//! writes) and the user it is enabled for (`User.Arn` / `User.UserName`,
//! or `UserName` as `aws iam enable-mfa-device --user-name` records it):
//!
//! ```json
//! [{"SerialNumber": "arn:aws:iam::111111111111:mfa/alice",
//!   "Base32StringSeed": "JBSWY3DPEHPK3PXP",
//!   "User": {"UserName": "alice"}}]
//! ```
//!
//! A code is accepted for the current step or one step either side (clock
//! drift), and never twice: a step at or before the last one accepted for
//! the device is refused (RFC 6238 section 5.2). Pure: no files, no
//! clock (the caller passes the time); seeds never appear in `Debug` or
//! errors.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use crate::policy::AccountId;
use crate::policy::arn::Arn;

/// Seconds per TOTP step.
const STEP: u64 = 30;
/// Digits of a code.
const DIGITS: u32 = 6;
/// Most devices in a file.
const MAX_DEVICES: usize = 10_000;

/// Why an MFA devices file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MfaDevicesError {
    #[error("MFA devices file is not valid JSON in the expected shape: {0}")]
    Json(String),
    #[error("MFA device {index}: {message}")]
    Device { index: usize, message: &'static str },
    #[error("MFA devices file lists serial number `{0}` twice")]
    Duplicate(String),
    #[error("MFA devices file holds more than {MAX_DEVICES} devices")]
    TooMany,
}

/// Why a one-time code was not accepted (STS answers `AccessDenied` for
/// each, in the same words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MfaError {
    /// `SerialNumber` without `TokenCode` or the other way round.
    #[error("Both SerialNumber and TokenCode are required for MFA")]
    Incomplete,
    /// No such device, not the caller's, wrong code, or a code already used.
    #[error("MultiFactorAuthentication failed with invalid MFA one time pass code.")]
    Invalid,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum FileShape {
    Listed {
        #[serde(rename = "VirtualMFADevices")]
        devices: Vec<RawDevice>,
    },
    Bare(Vec<RawDevice>),
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawDevice {
    serial_number: String,
    base32_string_seed: Option<String>,
    user: Option<RawUser>,
    user_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawUser {
    user_name: Option<String>,
    arn: Option<String>,
}

struct Device {
    /// The account of the serial number's ARN.
    account: String,
    user_name: String,
    seed: Vec<u8>,
}

/// The virtual MFA devices, by serial number.
pub struct MfaDevices {
    devices: HashMap<String, Device>,
    /// The last step accepted per serial number (no code is used twice).
    used: Mutex<HashMap<String, u64>>,
}

impl fmt::Debug for MfaDevices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MfaDevices")
            .field("devices", &self.devices.len())
            .finish_non_exhaustive()
    }
}

impl MfaDevices {
    /// Parses an MFA devices file (see the module docs).
    pub fn from_json(bytes: &[u8]) -> Result<Self, MfaDevicesError> {
        let shape: FileShape = serde_json::from_slice(bytes).map_err(|e| {
            // serde_json's message names the place, never the content.
            MfaDevicesError::Json(format!("line {} column {}", e.line(), e.column()))
        })?;
        let raw = match shape {
            FileShape::Listed { devices } | FileShape::Bare(devices) => devices,
        };
        if raw.len() > MAX_DEVICES {
            return Err(MfaDevicesError::TooMany);
        }
        let mut devices = HashMap::with_capacity(raw.len());
        for (index, d) in raw.into_iter().enumerate() {
            let bad = |message| MfaDevicesError::Device { index, message };
            let account = mfa_account(&d.serial_number)
                .ok_or(bad("SerialNumber must be arn:aws:iam::ACCOUNT:mfa/NAME"))?
                .to_owned();
            let seed = d
                .base32_string_seed
                .as_deref()
                .and_then(base32_decode)
                .filter(|s| s.len() >= 10)
                .ok_or(bad(
                    "Base32StringSeed must be a base32 seed of at least 80 bits",
                ))?;
            let user_name = d
                .user
                .as_ref()
                .and_then(|u| {
                    u.user_name.clone().or_else(|| {
                        u.arn
                            .as_deref()
                            .and_then(|a| a.rsplit('/').next())
                            .map(str::to_owned)
                    })
                })
                .or(d.user_name)
                .filter(|n| !n.is_empty())
                .ok_or(bad(
                    "the device must name the user it is enabled for (User or UserName)",
                ))?;
            if devices.contains_key(&d.serial_number) {
                return Err(MfaDevicesError::Duplicate(d.serial_number));
            }
            devices.insert(
                d.serial_number,
                Device {
                    account,
                    user_name,
                    seed,
                },
            );
        }
        Ok(Self {
            devices,
            used: Mutex::new(HashMap::new()),
        })
    }

    /// How many devices are configured.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// Whether no device is configured.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// Checks `code` from device `serial` for the IAM user `user_arn` at
    /// `now` (seconds since the epoch), and marks its step used.
    pub fn verify(
        &self,
        serial: &str,
        user_arn: &str,
        code: &str,
        now: u64,
    ) -> Result<(), MfaError> {
        let device = self.devices.get(serial).ok_or(MfaError::Invalid)?;
        let (account, name) = user_of(user_arn).ok_or(MfaError::Invalid)?;
        if device.account != account || device.user_name != name {
            return Err(MfaError::Invalid);
        }
        if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MfaError::Invalid);
        }
        let current = now / STEP;
        let mut matched = None;
        for step in [
            current.saturating_sub(1),
            current,
            current.saturating_add(1),
        ] {
            let expected = format!("{:06}", totp(&device.seed, step));
            if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
                matched = Some(step);
            }
        }
        let step = matched.ok_or(MfaError::Invalid)?;
        let mut used = self.used.lock().map_err(|_| MfaError::Invalid)?;
        if used.get(serial).is_some_and(|&last| step <= last) {
            return Err(MfaError::Invalid);
        }
        used.insert(serial.to_owned(), step);
        Ok(())
    }
}

/// The account of `arn:aws:iam::ACCOUNT:mfa/NAME`.
fn mfa_account(serial: &str) -> Option<&str> {
    let (account, rest) = iam_parts(serial)?;
    let ok =
        AccountId::is_valid(account) && rest.strip_prefix("mfa/").is_some_and(|n| !n.is_empty());
    ok.then_some(account)
}

/// (account, user name) of an IAM user's ARN.
fn user_of(arn: &str) -> Option<(&str, &str)> {
    let (account, rest) = iam_parts(arn)?;
    let path_and_name = rest.strip_prefix("user/")?;
    Some((account, path_and_name.rsplit('/').next()?))
}

/// (account, resource) of an IAM ARN (`arn:PARTITION:iam::ACCOUNT:...`).
fn iam_parts(arn: &str) -> Option<(&str, &str)> {
    let a = Arn::parse(arn)?;
    (a.service == "iam" && a.region.is_empty()).then_some((a.account, a.resource))
}

/// RFC 6238 TOTP value (RFC 4226 HOTP over the step counter, HMAC-SHA1,
/// dynamic truncation, 6 digits).
fn totp(seed: &[u8], step: u64) -> u32 {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, seed);
    let tag = ring::hmac::sign(&key, &step.to_be_bytes());
    let mac = tag.as_ref();
    let offset = usize::from(mac.last().copied().unwrap_or(0) & 0x0f);
    let word = mac
        .get(offset..offset + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_be_bytes);
    (word & 0x7fff_ffff) % 10u32.pow(DIGITS)
}

/// RFC 4648 base32 (upper or lower case, `=` padding and spaces ignored).
fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|&c| c != b'=' && c != b' ') {
        let v = match c.to_ascii_uppercase() {
            c @ b'A'..=b'Z' => c - b'A',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
        }
        buffer &= (1 << bits) - 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B's SHA-1 seed, "12345678901234567890".
    const RFC_SEED_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    fn devices() -> MfaDevices {
        MfaDevices::from_json(
            format!(
                r#"{{"VirtualMFADevices": [{{"SerialNumber": "arn:aws:iam::111111111111:mfa/alice",
                "Base32StringSeed": "{RFC_SEED_B32}", "User": {{"UserName": "alice",
                "Arn": "arn:aws:iam::111111111111:user/alice"}}}}]}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn rfc_6238_sha1_vectors() {
        let seed = base32_decode(RFC_SEED_B32).unwrap();
        assert_eq!(seed, b"12345678901234567890");
        // Appendix B (8 digits there; the last 6 are the 6-digit code).
        for (time, eight) in [
            (59u64, 94_287_082u32),
            (1_111_111_109, 7_081_804),
            (1_111_111_111, 14_050_471),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
            (20_000_000_000, 65_353_130),
        ] {
            assert_eq!(totp(&seed, time / STEP), eight % 1_000_000, "at {time}");
        }
    }

    #[test]
    fn codes_are_checked_within_a_step_and_never_reused() {
        let d = devices();
        let alice = "arn:aws:iam::111111111111:user/alice";
        let serial = "arn:aws:iam::111111111111:mfa/alice";
        let seed = base32_decode(RFC_SEED_B32).unwrap();
        let now = 1_234_567_890;
        let code = |step: u64| format!("{:06}", totp(&seed, step));
        // One step behind (clock drift) is accepted.
        assert_eq!(d.verify(serial, alice, &code(now / STEP - 1), now), Ok(()));
        // The same code again, or an older one: replay.
        assert_eq!(
            d.verify(serial, alice, &code(now / STEP - 1), now),
            Err(MfaError::Invalid)
        );
        assert_eq!(d.verify(serial, alice, &code(now / STEP), now), Ok(()));
        assert_eq!(
            d.verify(serial, alice, &code(now / STEP), now),
            Err(MfaError::Invalid)
        );
        // Two steps away: refused.
        assert_eq!(
            d.verify(serial, alice, &code(now / STEP + 2), now),
            Err(MfaError::Invalid)
        );
        // Someone else's device, or an unknown one.
        let bob = "arn:aws:iam::111111111111:user/bob";
        assert_eq!(
            d.verify(serial, bob, &code(now / STEP + 1), now),
            Err(MfaError::Invalid)
        );
        let other = "arn:aws:iam::111111111111:mfa/bob";
        assert_eq!(
            d.verify(other, alice, &code(now / STEP + 1), now),
            Err(MfaError::Invalid)
        );
        assert_eq!(
            d.verify(serial, alice, "12345", now),
            Err(MfaError::Invalid)
        );
        assert_eq!(d.verify(serial, alice, &code(now / STEP + 1), now), Ok(()));
    }

    #[test]
    fn device_files_are_checked_without_quoting_seeds() {
        for (text, want) in [
            (
                r#"[{"SerialNumber": "arn:aws:iam::111111111111:user/x", "Base32StringSeed": "GEZDGNBVGY3TQOJQ", "UserName": "x"}]"#,
                "SerialNumber",
            ),
            (
                r#"[{"SerialNumber": "arn:aws:iam::111111111111:mfa/x", "Base32StringSeed": "not base32!", "UserName": "x"}]"#,
                "Base32StringSeed",
            ),
            (
                r#"[{"SerialNumber": "arn:aws:iam::111111111111:mfa/x", "Base32StringSeed": "GEZDGNBVGY3TQOJQ"}]"#,
                "enabled for",
            ),
            ("{", "line 1"),
        ] {
            let e = MfaDevices::from_json(text.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e}");
            assert!(
                !e.contains("GEZDGNBVGY3TQOJQ") && !e.contains("not base32"),
                "{e}"
            );
        }
        let two = r#"[{"SerialNumber": "arn:aws:iam::111111111111:mfa/x", "Base32StringSeed": "GEZDGNBVGY3TQOJQ", "UserName": "x"},
                      {"SerialNumber": "arn:aws:iam::111111111111:mfa/x", "Base32StringSeed": "GEZDGNBVGY3TQOJQ", "UserName": "y"}]"#;
        assert!(matches!(
            MfaDevices::from_json(two.as_bytes()),
            Err(MfaDevicesError::Duplicate(_))
        ));
        assert_eq!(devices().len(), 1);
        assert!(!format!("{:?}", devices()).contains(RFC_SEED_B32));
    }
}
