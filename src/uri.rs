//! Strict percent-decoding of request-target components: the one decoder
//! of the generic ext_authz mapping (path segments and query parameters,
//! `server::ext_authz::mapping`) and of the EC2 Query API parameters
//! (query string and form body, `ec2::query`). Pure, no dependencies.
//!
//! Rules (a refusal is a [`DecodeError`], never a guess):
//! - Raw bytes must be ones RFC 3986 allows unencoded in the component:
//!   in a path segment `pchar` (unreserved, sub-delimiters, `:`, `@`); in a
//!   query, `pchar`, `/` and `?`, minus `;` (some servers split pairs on
//!   it, so it must be sent as `%3B`). Anything else (space, `"`, `#`,
//!   `\`, non-ASCII, control bytes, ...) is refused.
//! - `%` starts exactly two hex digits, decoded once (`%25` is a literal
//!   `%`, never decoded again). In a query (form encoding, which EC2
//!   applies to the query string too) `+` is a space and `%2B` a `+`; in a
//!   path `+` is itself.
//! - The result is UTF-8 without control characters (U+0000 to U+001F,
//!   U+007F to U+009F).
//!
//! What a decoded value may then hold (an encoded `/` in a path segment,
//! dot segments, repeated names, ...) is each caller's rule.

use std::borrow::Cow;

/// Which part of a request target is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// One `/`-separated segment of the path.
    PathSegment,
    /// A name or value of the query string or of a form body (split on `&`
    /// and `=` by the caller).
    Query,
}

/// Why a component does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid percent-encoding at byte {offset}")]
    InvalidPercentEncoding { offset: usize },
    #[error("character {byte:#04x} at byte {offset} must be percent-encoded")]
    RawCharacter { offset: usize, byte: u8 },
    #[error("decodes to invalid UTF-8")]
    NotUtf8,
    #[error("decodes to a control character")]
    ControlCharacter,
}

/// Whether `b` may appear unencoded in `component` (besides `%`).
pub fn raw_allowed(b: u8, component: Component) -> bool {
    let common = b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b'='
                | b':'
                | b'@'
        );
    common
        || match component {
            Component::PathSegment => matches!(b, b'&' | b';'),
            Component::Query => matches!(b, b'/' | b'?'),
        }
}

/// Decodes one component; borrows when there is nothing to decode.
pub fn decode(raw: &[u8], component: Component) -> Result<Cow<'_, str>, DecodeError> {
    let plus_is_space = component == Component::Query;
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        match b {
            b'%' => {
                let hex = |j: usize| raw.get(j).and_then(|h| char::from(*h).to_digit(16));
                let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
                    return Err(DecodeError::InvalidPercentEncoding { offset: i });
                };
                let buf = out.get_or_insert_with(|| prefix(raw, i));
                buf.push(u8::try_from(hi * 16 + lo).unwrap_or(0));
                i += 3;
            }
            b'+' if plus_is_space => {
                out.get_or_insert_with(|| prefix(raw, i)).push(b' ');
                i += 1;
            }
            b if raw_allowed(b, component) => {
                if let Some(buf) = out.as_mut() {
                    buf.push(b);
                }
                i += 1;
            }
            byte => return Err(DecodeError::RawCharacter { offset: i, byte }),
        }
    }
    let text = match out {
        // Only allowed raw bytes, all ASCII.
        None => Cow::Borrowed(std::str::from_utf8(raw).map_err(|_| DecodeError::NotUtf8)?),
        Some(bytes) => Cow::Owned(String::from_utf8(bytes).map_err(|_| DecodeError::NotUtf8)?),
    };
    if text.chars().any(char::is_control) {
        return Err(DecodeError::ControlCharacter);
    }
    Ok(text)
}

/// The bytes before `i`, copied (all raw, allowed, not yet decoded).
fn prefix(raw: &[u8], i: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(raw.len());
    v.extend_from_slice(raw.get(..i).unwrap_or_default());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> Result<Cow<'_, str>, DecodeError> {
        decode(s.as_bytes(), Component::PathSegment)
    }

    fn query(s: &str) -> Result<Cow<'_, str>, DecodeError> {
        decode(s.as_bytes(), Component::Query)
    }

    /// Issue 12: one decoder, the same rules for every mapping.
    #[test]
    fn decodes_once_and_borrows_when_plain() {
        assert!(matches!(
            path("abc-1.2_~").unwrap(),
            Cow::Borrowed("abc-1.2_~")
        ));
        assert_eq!(path("caf%C3%A9").unwrap(), "café");
        assert_eq!(path("%2525").unwrap(), "%25");
        assert_eq!(path("a+b").unwrap(), "a+b");
        assert_eq!(query("a+b%2Bc").unwrap(), "a b+c");
        assert_eq!(query("x%3Dy/z?").unwrap(), "x=y/z?");
        assert_eq!(path("a;b&c").unwrap(), "a;b&c");
    }

    #[test]
    fn refuses_what_is_ambiguous() {
        for bad in ["%", "%4", "%zz", "a%G1"] {
            assert!(
                matches!(
                    path(bad).unwrap_err(),
                    DecodeError::InvalidPercentEncoding { .. }
                ),
                "{bad}"
            );
        }
        assert_eq!(
            path("a b").unwrap_err(),
            DecodeError::RawCharacter {
                offset: 1,
                byte: b' '
            }
        );
        for raw in ["a\\b", "a\"b", "a#b", "caf\u{e9}", "a\tb", "a/b"] {
            assert!(
                matches!(path(raw).unwrap_err(), DecodeError::RawCharacter { .. }),
                "{raw:?}"
            );
        }
        for raw in ["a;b", "a b", "a#b"] {
            assert!(
                matches!(query(raw).unwrap_err(), DecodeError::RawCharacter { .. }),
                "{raw:?}"
            );
        }
        assert_eq!(path("%FF").unwrap_err(), DecodeError::NotUtf8);
        assert_eq!(path("%00").unwrap_err(), DecodeError::ControlCharacter);
        assert_eq!(query("%C2%85").unwrap_err(), DecodeError::ControlCharacter);
        assert_eq!(
            query("ab%4").unwrap_err(),
            DecodeError::InvalidPercentEncoding { offset: 2 }
        );
    }
}
