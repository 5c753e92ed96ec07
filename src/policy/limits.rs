//! IAM's size limits on policy documents that callers send: a session
//! policy is compiled for every request that carries one, so its size is
//! bounded the way AWS STS bounds it before any parsing or compiling.
//!
//! AWS STS (`AssumeRole`, `Policy` parameter): "The plaintext that you use
//! for both inline and managed session policies can't exceed 2,048
//! characters. The JSON policy characters can be any ASCII character from
//! the space character to the end of the valid character list (\u0020
//! through \u00FF). It can also include the tab (\u0009), linefeed
//! (\u000A), and carriage return (\u000D) characters." As for every IAM
//! policy quota, whitespace is not counted (IAM User Guide, "IAM and AWS
//! STS quotas"). AWS answers an oversized one with `PackedPolicyTooLarge`.
//! iamgate's APIs take one inline session policy and no managed policy
//! ARNs, so the packed-size rule for those does not arise.

use serde_json::Value;
use thiserror::Error;

/// Most characters of a session policy, whitespace excluded.
pub const SESSION_POLICY_MAX_CHARS: usize = 2048;

/// Why a session policy is refused before it is parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicySizeError {
    #[error(
        "PackedPolicyTooLarge: more than {SESSION_POLICY_MAX_CHARS} characters (whitespace excluded), the limit AWS STS sets for session policies"
    )]
    TooLarge,
    #[error(
        "MalformedPolicyDocument: a character outside U+0020..U+00FF (besides tab, line feed and carriage return)"
    )]
    Character,
}

/// Checks a session policy sent as text (a JSON document, or the
/// URL-encoded form): what the caller sent is what is counted.
pub fn check_session_policy_text(text: &str) -> Result<(), PolicySizeError> {
    let mut counter = Counter::default();
    counter.feed(text.as_bytes())?;
    Ok(())
}

/// Checks a session policy sent as a JSON value: a string holds the
/// document's text; an object is counted as its compact JSON text. The
/// count stops at the limit, so an oversized document costs no more than
/// a legal one.
pub fn check_session_policy(value: &Value) -> Result<(), PolicySizeError> {
    if let Value::String(text) = value {
        return check_session_policy_text(text);
    }
    let mut counter = Counter::default();
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => Ok(()),
        Err(_) => Err(counter.error.unwrap_or(PolicySizeError::TooLarge)),
    }
}

/// Counts characters that are not whitespace in UTF-8 text, refusing
/// characters AWS does not accept and stopping past the limit.
#[derive(Debug, Default)]
struct Counter {
    chars: usize,
    error: Option<PolicySizeError>,
}

impl Counter {
    fn feed(&mut self, bytes: &[u8]) -> Result<(), PolicySizeError> {
        for &b in bytes {
            match b {
                b' ' | b'\t' | b'\n' | b'\r' => {}
                // Other ASCII controls, and lead bytes of code points above
                // U+00FF (0xC2 and 0xC3 lead U+0080..U+00FF).
                0x00..=0x1f | 0xc4..=0xff => return Err(self.fail(PolicySizeError::Character)),
                // UTF-8 continuation bytes are part of the character before.
                0x80..=0xbf => {}
                _ => {
                    self.chars += 1;
                    if self.chars > SESSION_POLICY_MAX_CHARS {
                        return Err(self.fail(PolicySizeError::TooLarge));
                    }
                }
            }
        }
        Ok(())
    }

    fn fail(&mut self, e: PolicySizeError) -> PolicySizeError {
        self.error = Some(e.clone());
        e
    }
}

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.feed(buf)
            .map(|()| buf.len())
            .map_err(std::io::Error::other)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn policy_of_chars(n: usize) -> String {
        // `{"Version":"2012-10-17","Statement":[],"Sid":""}` is 48
        // characters.
        let pad = "x".repeat(n - 48);
        let text = format!(r#"{{"Version":"2012-10-17","Statement":[],"Sid":"{pad}"}}"#);
        assert_eq!(text.chars().count(), n);
        text
    }

    #[test]
    fn limit_counts_characters_without_whitespace() {
        let at_limit = policy_of_chars(SESSION_POLICY_MAX_CHARS);
        assert_eq!(check_session_policy_text(&at_limit), Ok(()));
        let over = policy_of_chars(SESSION_POLICY_MAX_CHARS + 1);
        assert_eq!(
            check_session_policy_text(&over),
            Err(PolicySizeError::TooLarge)
        );
        // Whitespace is free, however much of it.
        let spaced = at_limit.replace(',', " ,\n\t\r  ");
        assert_eq!(check_session_policy_text(&spaced), Ok(()));
        // The same through a JSON value: compact text, or the string itself.
        let value: Value = serde_json::from_str(&at_limit).unwrap_or_default();
        assert_eq!(check_session_policy(&value), Ok(()));
        let value: Value = serde_json::from_str(&over).unwrap_or_default();
        assert_eq!(check_session_policy(&value), Err(PolicySizeError::TooLarge));
        assert_eq!(
            check_session_policy(&Value::String(over)),
            Err(PolicySizeError::TooLarge)
        );
    }

    #[test]
    fn characters_count_once_and_stay_in_latin_1() {
        // `é` is two bytes and one character.
        let latin = json!({"Sid": "é".repeat(SESSION_POLICY_MAX_CHARS - 20)});
        assert_eq!(check_session_policy(&latin), Ok(()));
        assert_eq!(
            check_session_policy(&json!({"Sid": "€"})),
            Err(PolicySizeError::Character)
        );
        assert_eq!(
            check_session_policy_text("{\"Sid\": \"a\u{1}\"}"),
            Err(PolicySizeError::Character)
        );
    }

    #[test]
    fn a_huge_document_is_refused_without_serializing_it_all() {
        let statements: Vec<Value> = (0..50_000)
            .map(|i| json!({"Effect": "Allow", "Action": format!("ec2:A{i}"), "Resource": "*"}))
            .collect();
        let doc = json!({"Version": "2012-10-17", "Statement": statements});
        let started = std::time::Instant::now();
        assert_eq!(check_session_policy(&doc), Err(PolicySizeError::TooLarge));
        assert!(started.elapsed() < std::time::Duration::from_millis(100));
    }
}
