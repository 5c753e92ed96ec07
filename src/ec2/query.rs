//! EC2 Query API parameters: decoding the request target's query string and
//! an `application/x-www-form-urlencoded` body into one set of named
//! parameters, and structured access to EC2's numbered lists
//! (`InstanceId.1`, `TagSpecification.1.Tag.2.Key`, ...).
//!
//! This module owns *decoding* only; which parameters mean what is
//! [`super::mapping`]'s job. Pure: no I/O.
//!
//! # Decoding rules (refusals are [`QueryError`]s, never guesses)
//! - Envoy hands over the raw, undecoded `path` (with `?query`); its `query`
//!   field is empty. The part after the first `?` is the query string; the
//!   path itself is not a parameter source.
//! - Pairs are separated by `&`; name and value by the first `=`. Empty
//!   segments (`a=1&&b=2`, a trailing `&`) are skipped; a name without `=`
//!   has the empty value.
//! - A name is written literally: one or more `.`-separated segments, each
//!   either a list index or a word. An index is `[1-9][0-9]*` (at most
//!   10,000); a word is an ASCII letter followed by letters, digits and
//!   `-` (`InstanceId`, `X-Amz-Date`). Nothing else is a name: no
//!   percent-encoding or `+` in names (`Instance%49d.1`), no empty segment
//!   (`InstanceId..1`, `InstanceId.1.`), no sign, space or leading zero in
//!   an index (`InstanceId.%2B1`, `InstanceId.1%20`, `InstanceId.01`), no
//!   non-ASCII digit. Servers read indexes with functions as lax as
//!   Python's `int()` (`int("+1") == int(" 1") == int("01") == 1`), so any
//!   second spelling of an entry could reach the backend unchecked; with
//!   one spelling per entry, the entries checked are the entries the
//!   backend reads. Refused as [`QueryError::BadName`].
//! - Values are decoded by [`crate::uri`] (the decoder every mapping
//!   shares), with its query rules:
//! - Each value is decoded exactly once: `%XX` becomes the byte `XX` and
//!   `+` a space (form encoding, which EC2 applies to the query string
//!   too). `%2B` is a literal `+`; `%25` a literal `%` (never decoded
//!   again).
//! - Raw bytes must be ones RFC 3986 allows in a query (unreserved,
//!   sub-delimiters, `:`, `@`, `/`, `?`) or `%`; anything else (space, `#`,
//!   `"`, `<`, non-ASCII, ...) is refused as [`QueryError::RawCharacter`].
//!   A raw `;` is refused too: some servers split pairs on it, so it must be
//!   sent as `%3B`.
//! - Decoded values must be UTF-8 and free of control characters (U+0000
//!   to U+001F, U+007F to U+009F).
//! - A name may appear once in the query and body together. A repeat is
//!   refused even with the same value, and names that differ only in ASCII
//!   case count as repeats: EC2 treats duplicates as an error, and a
//!   backend reading "the first" or "the last", or reading names with or
//!   without regard to case, must never see a different value than the one
//!   authorized. Lookups are ASCII case-insensitive, so every spelling a
//!   backend could read is the one entry iamgate reads.
//! - At most [`DEFAULT_MAX_PARAMETERS`] parameters (configurable with
//!   [`QueryParams::parse_with_limit`]); parsing stops at the first one
//!   beyond the limit ([`QueryError::TooManyParameters`]). Parsing and
//!   lookups cost `O(n log n)` in the number of parameters: names are kept
//!   in an ordered map, so a list's entries are one range of it.
//! - A non-empty body must be `application/x-www-form-urlencoded`
//!   (optionally `; charset=utf-8`); any other content type is refused. An
//!   empty body is ignored whatever its content type.
//!
//! Lists are strict: [`QueryParams::indices`] wants `.1` to `.N` without
//! gaps, so a backend can never read an entry the mapping did not see.
//!
//! ```
//! use iamgate::ec2::query::{Body, QueryParams};
//! # fn main() -> Result<(), iamgate::ec2::query::QueryError> {
//! let q = QueryParams::parse(
//!     "/?Action=TerminateInstances&InstanceId.1=i-1",
//!     Some(Body {
//!         content_type: Some("application/x-www-form-urlencoded; charset=utf-8"),
//!         bytes: b"InstanceId.2=i-2&DryRun=true",
//!     }),
//! )?;
//! assert_eq!(q.get("Action"), Some("TerminateInstances"));
//! assert_eq!(q.list("InstanceId")?, vec!["i-1", "i-2"]);
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fmt;

use crate::uri::{Component, DecodeError};

/// A request body handed to [`QueryParams::parse`].
#[derive(Debug, Clone, Copy)]
pub struct Body<'a> {
    /// The `content-type` header, if any.
    pub content_type: Option<&'a str>,
    /// The raw body bytes.
    pub bytes: &'a [u8],
}

/// Where a parameter came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The request target's query string.
    Query,
    /// The form-encoded body.
    Body,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Query => "query string",
            Source::Body => "body",
        })
    }
}

/// Why a request's parameters were refused. Every variant is a client error
/// (EC2 would answer 400); the message says what was wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// `%` not followed by two hex digits.
    #[error("invalid percent-encoding at byte {offset} of the {part}")]
    InvalidPercentEncoding { part: Source, offset: usize },
    /// A raw byte that may not appear unencoded in a query.
    #[error("character {byte:#04x} at byte {offset} of the {part} must be percent-encoded")]
    RawCharacter {
        part: Source,
        offset: usize,
        byte: u8,
    },
    /// Decoded bytes that are not UTF-8.
    #[error("parameter `{name}` in the {part} is not valid UTF-8 once decoded")]
    NotUtf8 { part: Source, name: String },
    /// A decoded control character in a name or value.
    #[error("parameter `{name}` in the {part} contains a control character")]
    ControlCharacter { part: Source, name: String },
    /// `=value` with nothing before the `=`.
    #[error("empty parameter name in the {part}")]
    EmptyName { part: Source },
    /// The same name (ASCII case-insensitively) given twice.
    #[error("parameter `{name}` is given more than once")]
    DuplicateParameter { name: String },
    /// A name that is not in canonical form (see the module docs).
    #[error("parameter name `{name}` in the {part} is not canonical: {reason}")]
    BadName {
        part: Source,
        name: String,
        reason: &'static str,
    },
    /// More parameters than the limit.
    #[error("the request has more than {limit} parameters")]
    TooManyParameters { limit: usize },
    /// A numbered list with a hole (`InstanceId.1`, `InstanceId.3`).
    #[error("list `{prefix}` skips index {missing}: entries are numbered from 1 without gaps")]
    ListGap { prefix: String, missing: u32 },
    /// A non-empty body of another content type.
    #[error(
        "unsupported body content type `{content_type}`: expected application/x-www-form-urlencoded"
    )]
    UnsupportedContentType { content_type: String },
}

/// The decoded parameters of one EC2 Query API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryParams {
    /// Names as given, in request order (query first, then body).
    pairs: Vec<(String, String)>,
    /// ASCII-lowercased name → its position in `pairs`. Ordered, so that
    /// the members of a list (`instanceid.*`) are one range.
    by_name: BTreeMap<String, usize>,
    /// Most parameters accepted.
    limit: usize,
}

impl Default for QueryParams {
    fn default() -> Self {
        Self::with_limit(DEFAULT_MAX_PARAMETERS)
    }
}

/// Most parameters one request may have unless configured otherwise
/// (`--ec2-max-parameters`): room for the calls EC2 clients make, low
/// enough that a hostile request costs little. A call naming more
/// resources (1,000 instance ids at once) needs a higher limit.
pub const DEFAULT_MAX_PARAMETERS: usize = 1_000;

/// Largest list index accepted in a name (far above any EC2 limit).
const MAX_INDEX: u32 = 10_000;

impl QueryParams {
    /// Decodes the raw request target (`/path?query`, undecoded) and an
    /// optional body, merged. See the module docs for the rules.
    pub fn parse(target: &str, body: Option<Body<'_>>) -> Result<Self, QueryError> {
        Self::parse_with_limit(target, body, DEFAULT_MAX_PARAMETERS)
    }

    /// [`QueryParams::parse`] with at most `max_parameters` parameters.
    pub fn parse_with_limit(
        target: &str,
        body: Option<Body<'_>>,
        max_parameters: usize,
    ) -> Result<Self, QueryError> {
        let mut out = Self::with_limit(max_parameters);
        if let Some((_, query)) = target.split_once('?') {
            out.add_encoded(query.as_bytes(), Source::Query)?;
        }
        if let Some(body) = body.filter(|b| !b.bytes.is_empty()) {
            let ct = body.content_type.unwrap_or("");
            if !is_form(ct) {
                return Err(QueryError::UnsupportedContentType {
                    content_type: ct.to_owned(),
                });
            }
            out.add_encoded(body.bytes, Source::Body)?;
        }
        Ok(out)
    }

    fn with_limit(limit: usize) -> Self {
        Self {
            pairs: Vec::new(),
            by_name: BTreeMap::new(),
            limit,
        }
    }

    /// Builds parameters from already decoded pairs (tests, other
    /// front-ends), with the same checks (canonical names, duplicates,
    /// control characters, the default limit).
    pub fn from_pairs<I, K, V>(pairs: I) -> Result<Self, QueryError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut out = Self::default();
        for (k, v) in pairs {
            let name: String = k.into();
            check_name(name.as_bytes(), Source::Query)?;
            out.push(name, v.into(), Source::Query)?;
        }
        Ok(out)
    }

    /// The value of a parameter (name compared ASCII case-insensitively).
    pub fn get(&self, name: &str) -> Option<&str> {
        let at = *self.by_name.get(&name.to_ascii_lowercase())?;
        self.pairs.get(at).map(|(_, v)| v.as_str())
    }

    /// Whether a parameter is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Every parameter as `(name, value)`, in request order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Whether any parameter is named `prefix` followed by `.` (so `prefix`
    /// has members, e.g. `LaunchPermission` for `LaunchPermission.Add.1.UserId`).
    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.members(prefix).next().is_some()
    }

    /// The names under `prefix.` (lowercased, minus `prefix.`): one range
    /// of the ordered map, since every name that starts with a given
    /// string sorts together.
    fn members(&self, prefix: &str) -> impl Iterator<Item = &str> {
        let mut start = prefix.to_ascii_lowercase();
        start.push('.');
        let len = start.len();
        self.by_name
            .range(start.clone()..)
            .map(|(k, _)| k.as_str())
            .take_while(move |k| k.starts_with(start.as_str()))
            .filter_map(move |k| k.get(len..))
    }

    /// The indexes `1..=N` of the list `prefix`: every parameter named
    /// `prefix.<n>` or `prefix.<n>.<more>`. Refuses a list with gaps.
    pub fn indices(&self, prefix: &str) -> Result<Vec<u32>, QueryError> {
        let mut seen: Vec<u32> = self
            .members(prefix)
            .filter_map(|rest| {
                let digits = rest.split('.').next().unwrap_or("");
                digits.parse::<u32>().ok()
            })
            .collect();
        seen.sort_unstable();
        seen.dedup();
        for (want, got) in (1u32..).zip(seen.iter()) {
            if *got != want || want > MAX_INDEX {
                return Err(QueryError::ListGap {
                    prefix: prefix.to_owned(),
                    missing: want,
                });
            }
        }
        Ok(seen)
    }

    /// The values of the flat list `prefix.1 .. prefix.N` (`InstanceId.N`).
    /// An entry that only has members (`prefix.1.X`) and no value of its
    /// own counts as a gap.
    pub fn list(&self, prefix: &str) -> Result<Vec<&str>, QueryError> {
        let mut out = Vec::new();
        for i in self.indices(prefix)? {
            match self.get(&format!("{prefix}.{i}")) {
                Some(v) => out.push(v),
                None => {
                    return Err(QueryError::ListGap {
                        prefix: prefix.to_owned(),
                        missing: i,
                    });
                }
            }
        }
        Ok(out)
    }

    /// The `Tag.N.Key` / `Tag.N.Value` list under `prefix` (`"Tag"` for
    /// `CreateTags`, `"TagSpecification.1.Tag"`). A missing `Value` is
    /// `None`; an entry without `Key` is refused as a gap.
    pub fn tags(&self, prefix: &str) -> Result<Vec<(String, Option<String>)>, QueryError> {
        let mut out = Vec::new();
        for i in self.indices(prefix)? {
            let key = self.get(&format!("{prefix}.{i}.Key"));
            let value = self.get(&format!("{prefix}.{i}.Value"));
            match key {
                Some(k) => out.push((k.to_owned(), value.map(str::to_owned))),
                None => {
                    return Err(QueryError::ListGap {
                        prefix: format!("{prefix}.{i}.Key"),
                        missing: i,
                    });
                }
            }
        }
        Ok(out)
    }

    /// `TagSpecification.N.ResourceType` with its `Tag.M.Key/Value` list.
    pub fn tag_specifications(&self) -> Result<Vec<TagSpecification>, QueryError> {
        let mut out = Vec::new();
        for i in self.indices("TagSpecification")? {
            let resource_type = self
                .get(&format!("TagSpecification.{i}.ResourceType"))
                .map(str::to_owned);
            let tags = self
                .tags(&format!("TagSpecification.{i}.Tag"))?
                .into_iter()
                .map(|(k, v)| (k, v.unwrap_or_default()))
                .collect();
            out.push(TagSpecification {
                resource_type,
                tags,
            });
        }
        Ok(out)
    }

    /// `BlockDeviceMapping.N.*` (`RunInstances`, `RegisterImage`, ...).
    pub fn block_device_mappings(&self) -> Result<Vec<BlockDeviceMapping>, QueryError> {
        let mut out = Vec::new();
        for i in self.indices("BlockDeviceMapping")? {
            let p = format!("BlockDeviceMapping.{i}");
            let get = |k: &str| self.get(&format!("{p}.{k}")).map(str::to_owned);
            let ebs = self.has_prefix(&format!("{p}.Ebs")).then(|| EbsSpec {
                volume_size: get("Ebs.VolumeSize"),
                volume_type: get("Ebs.VolumeType"),
                encrypted: get("Ebs.Encrypted"),
                snapshot_id: get("Ebs.SnapshotId"),
                iops: get("Ebs.Iops"),
                throughput: get("Ebs.Throughput"),
                kms_key_id: get("Ebs.KmsKeyId"),
            });
            out.push(BlockDeviceMapping {
                device_name: get("DeviceName"),
                virtual_name: get("VirtualName"),
                no_device: self.contains(&format!("{p}.NoDevice")),
                ebs,
            });
        }
        Ok(out)
    }

    fn add_encoded(&mut self, raw: &[u8], source: Source) -> Result<(), QueryError> {
        let mut offset = 0;
        for segment in raw.split(|b| *b == b'&') {
            let start = offset;
            offset += segment.len() + 1;
            if segment.is_empty() {
                continue;
            }
            let (name, value, value_at) = match segment.iter().position(|b| *b == b'=') {
                Some(eq) => (
                    segment.get(..eq).unwrap_or_default(),
                    segment.get(eq + 1..).unwrap_or_default(),
                    start + eq + 1,
                ),
                None => (segment, &[][..], start + segment.len()),
            };
            if self.pairs.len() >= self.limit {
                return Err(QueryError::TooManyParameters { limit: self.limit });
            }
            check_name(name, source)?;
            // A canonical name is ASCII and needs no decoding.
            let name = String::from_utf8_lossy(name).into_owned();
            let value = crate::uri::decode(value, Component::Query)
                .map_err(|e| match e {
                    DecodeError::InvalidPercentEncoding { offset } => {
                        QueryError::InvalidPercentEncoding {
                            part: source,
                            offset: value_at + offset,
                        }
                    }
                    DecodeError::RawCharacter { offset, byte } => QueryError::RawCharacter {
                        part: source,
                        offset: value_at + offset,
                        byte,
                    },
                    DecodeError::NotUtf8 => QueryError::NotUtf8 {
                        part: source,
                        name: name.clone(),
                    },
                    DecodeError::ControlCharacter => QueryError::ControlCharacter {
                        part: source,
                        name: name.clone(),
                    },
                })?
                .into_owned();
            self.push(name, value, source)?;
        }
        Ok(())
    }

    /// Adds a pair whose name passed [`check_name`].
    fn push(&mut self, name: String, value: String, source: Source) -> Result<(), QueryError> {
        if self.pairs.len() >= self.limit {
            return Err(QueryError::TooManyParameters { limit: self.limit });
        }
        if value.chars().any(is_control) {
            return Err(QueryError::ControlCharacter { part: source, name });
        }
        match self.by_name.entry(name.to_ascii_lowercase()) {
            std::collections::btree_map::Entry::Occupied(_) => {
                Err(QueryError::DuplicateParameter { name })
            }
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(self.pairs.len());
                self.pairs.push((name, value));
                Ok(())
            }
        }
    }
}

/// One `TagSpecification.N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagSpecification {
    /// `ResourceType` (`instance`, `volume`, ...), as given.
    pub resource_type: Option<String>,
    /// `Tag.M.Key` / `Tag.M.Value` (a missing value is empty, as in EC2).
    pub tags: Vec<(String, String)>,
}

/// One `BlockDeviceMapping.N`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlockDeviceMapping {
    /// `DeviceName`.
    pub device_name: Option<String>,
    /// `VirtualName` (instance store).
    pub virtual_name: Option<String>,
    /// Whether `NoDevice` was given.
    pub no_device: bool,
    /// `Ebs.*`, when any `Ebs.` member was given.
    pub ebs: Option<EbsSpec>,
}

/// `BlockDeviceMapping.N.Ebs.*`, as given (unparsed text).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EbsSpec {
    pub volume_size: Option<String>,
    pub volume_type: Option<String>,
    pub encrypted: Option<String>,
    pub snapshot_id: Option<String>,
    pub iops: Option<String>,
    pub throughput: Option<String>,
    pub kms_key_id: Option<String>,
}

/// Checks that a raw (undecoded) name is canonical: `.`-separated
/// segments, each an index `[1-9][0-9]*` (at most [`MAX_INDEX`]) or a word
/// `[A-Za-z][A-Za-z0-9-]*`.
fn check_name(raw: &[u8], part: Source) -> Result<(), QueryError> {
    if raw.is_empty() {
        return Err(QueryError::EmptyName { part });
    }
    let bad = |reason: &'static str| QueryError::BadName {
        part,
        name: String::from_utf8_lossy(raw)
            .chars()
            .filter(|c| !c.is_control())
            .collect(),
        reason,
    };
    for seg in raw.split(|b| *b == b'.') {
        match seg.first() {
            None => return Err(bad("empty segment")),
            Some(b'1'..=b'9') => {
                if !seg.iter().all(u8::is_ascii_digit) {
                    return Err(bad(
                        "a segment that starts with a digit must be a list index",
                    ));
                }
                let n = std::str::from_utf8(seg)
                    .ok()
                    .and_then(|d| d.parse::<u32>().ok());
                if n.is_none_or(|n| n > MAX_INDEX) {
                    return Err(bad("list index beyond 10000"));
                }
            }
            Some(b'0') => {
                return Err(bad("list indexes start at 1 and have no leading zeros"));
            }
            Some(b) if b.is_ascii_alphabetic() => {
                if !seg.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-') {
                    return Err(bad(
                        "names are letters, digits, `-` and `.`, written without encoding",
                    ));
                }
            }
            Some(_) => {
                return Err(bad(
                    "names are letters, digits, `-` and `.`, written without encoding",
                ));
            }
        }
    }
    Ok(())
}

fn is_control(c: char) -> bool {
    c.is_control()
}

/// Whether a content type is `application/x-www-form-urlencoded`, with at
/// most a `charset=utf-8` parameter.
fn is_form(ct: &str) -> bool {
    let mut parts = ct.split(';');
    let media = parts.next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return false;
    }
    parts.all(|p| {
        let p = p.trim();
        match p.split_once('=') {
            Some((k, v)) => {
                k.trim().eq_ignore_ascii_case("charset")
                    && v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
            }
            None => p.is_empty(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(target: &str) -> Result<QueryParams, QueryError> {
        QueryParams::parse(target, None)
    }

    fn form(bytes: &[u8]) -> Option<Body<'_>> {
        Some(Body {
            content_type: Some("application/x-www-form-urlencoded; charset=utf-8"),
            bytes,
        })
    }

    #[test]
    fn query_and_body_merge() -> Result<(), QueryError> {
        let q = QueryParams::parse(
            "/?Action=RunInstances&Version=2016-11-15",
            form(b"ImageId=ami-1&InstanceType=t3.micro"),
        )?;
        assert_eq!(q.len(), 4);
        assert_eq!(q.get("Action"), Some("RunInstances"));
        assert_eq!(q.get("ImageId"), Some("ami-1"));
        let names: Vec<&str> = q.iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["Action", "Version", "ImageId", "InstanceType"]);
        Ok(())
    }

    #[test]
    fn decodes_exactly_once() -> Result<(), QueryError> {
        let q = parse("/?a=x+y&b=x%2By&c=%2541&d=caf%C3%A9&e=%3D%26&f=a=b")?;
        assert_eq!(q.get("a"), Some("x y"));
        assert_eq!(q.get("b"), Some("x+y"));
        assert_eq!(q.get("c"), Some("%41"), "no second decoding");
        assert_eq!(q.get("d"), Some("café"));
        assert_eq!(q.get("e"), Some("=&"));
        assert_eq!(q.get("f"), Some("a=b"), "the first = separates");
        Ok(())
    }

    #[test]
    fn no_query_and_empty_segments() -> Result<(), QueryError> {
        assert!(parse("/")?.is_empty());
        assert!(parse("/?")?.is_empty());
        let q = parse("/?&a=1&&b=2&&DryRun")?;
        assert_eq!(q.len(), 3);
        assert_eq!(q.get("DryRun"), Some(""), "a bare name has the empty value");
        assert_eq!(q.get("a=1"), None);
        Ok(())
    }

    #[test]
    fn lookups_ignore_ascii_case() -> Result<(), QueryError> {
        let q = parse("/?instanceid.1=i-1")?;
        assert_eq!(q.get("InstanceId.1"), Some("i-1"));
        assert_eq!(q.list("InstanceId")?, ["i-1"]);
        assert!(q.has_prefix("INSTANCEID"));
        Ok(())
    }

    #[test]
    fn refuses_invalid_percent_encoding() {
        for (t, at) in [("/?a=%4", 2), ("/?a=%zz", 2), ("/?a=1&b=%", 6)] {
            assert_eq!(
                parse(t),
                Err(QueryError::InvalidPercentEncoding {
                    part: Source::Query,
                    offset: at
                }),
                "{t}"
            );
        }
        let e = QueryParams::parse("/", form(b"a=%%41"));
        assert!(matches!(
            e,
            Err(QueryError::InvalidPercentEncoding {
                part: Source::Body,
                offset: 2
            })
        ));
    }

    #[test]
    fn refuses_raw_characters() {
        for (t, byte) in [
            ("/?a=x y", b' '),
            ("/?a=x#y", b'#'),
            ("/?a=\"x\"", b'"'),
            ("/?a=<x>", b'<'),
            ("/?a=[1]", b'['),
            ("/?a=1;InstanceId.2=i-2", b';'),
            ("/?a=x\ty", b'\t'),
        ] {
            assert!(
                matches!(parse(t), Err(QueryError::RawCharacter { byte: b, .. }) if b == byte),
                "{t}"
            );
        }
        assert!(matches!(
            parse("/?a=café"),
            Err(QueryError::RawCharacter { byte: 0xc3, .. })
        ));
        // What RFC 3986 allows raw in a query is accepted.
        assert!(parse("/?a=x:y@z/w?v!$'()*,~-._").is_ok());
        assert!(parse("/?a=x%3By").is_ok(), "an encoded `;` is fine");
    }

    #[test]
    fn refuses_non_utf8() {
        assert!(matches!(
            parse("/?a=%FF"),
            Err(QueryError::NotUtf8 { name, .. }) if name == "a"
        ));
        assert!(matches!(parse("/?a=%C3"), Err(QueryError::NotUtf8 { .. })));
    }

    #[test]
    fn refuses_control_characters() {
        for t in ["/?a=%00", "/?a=x%0Ay", "/?a=%7F", "/?a=%C2%85"] {
            assert!(
                matches!(parse(t), Err(QueryError::ControlCharacter { .. })),
                "{t}"
            );
        }
    }

    #[test]
    fn refuses_empty_names() {
        assert_eq!(
            parse("/?=x"),
            Err(QueryError::EmptyName {
                part: Source::Query
            })
        );
        assert!(matches!(
            QueryParams::parse("/", form(b"a=1&=2")),
            Err(QueryError::EmptyName { part: Source::Body })
        ));
    }

    #[test]
    fn refuses_duplicates() {
        let dup = |t: &str, body: Option<Body<'_>>| {
            matches!(
                QueryParams::parse(t, body),
                Err(QueryError::DuplicateParameter { .. })
            )
        };
        assert!(dup("/?a=1&a=2", None), "different values");
        assert!(dup("/?a=1&a=1", None), "same value");
        assert!(
            dup("/?ImageId=ami-1&imageid=ami-2", None),
            "case-only difference"
        );
        assert!(dup("/?a=1", form(b"a=1")), "across query and body");
        assert!(
            dup("/?instanceid.1=i-1&InstanceID.1=i-2", None),
            "in a list"
        );
    }

    #[test]
    fn refuses_non_canonical_names() {
        let bad = |t: &str| matches!(parse(t), Err(QueryError::BadName { .. }));
        for t in [
            // Indexes: one spelling per entry.
            "/?InstanceId.01=i-1",
            "/?InstanceId.0=i-1",
            "/?Tag.1.Key.007=x",
            "/?InstanceId.%2B1=i-1",
            "/?InstanceId.+1=i-1",
            "/?InstanceId.1%20=i-1",
            "/?InstanceId.%201=i-1",
            "/?InstanceId.1a=i-1",
            "/?InstanceId.%D9%A1=i-1",
            "/?InstanceId.%EF%BC%91=i-1",
            "/?InstanceId.10001=i-1",
            "/?InstanceId.99999999999=i-1",
            // Empty segments.
            "/?InstanceId.1.=i-1",
            "/?InstanceId..1=i-1",
            "/?.InstanceId.1=i-1",
            "/?.=x",
            // Encoded or odd characters.
            "/?Instance%49d.1=i-1",
            "/?Tag%2E1%2EKey=team",
            "/?Instance_Id.1=i-1",
            "/?Instance+Id.1=i-1",
            "/?%g1=1",
            "/?%C3=1",
            "/?a%0D=1",
            "/?-a=1",
            "/?a/b=1",
        ] {
            assert!(bad(t), "{t}: {:?}", parse(t));
        }
        assert!(matches!(
            QueryParams::parse("/", form(b"InstanceId.1%20=i-1")),
            Err(QueryError::BadName {
                part: Source::Body,
                ..
            })
        ));
        // What EC2 clients send is canonical.
        for t in [
            "/?InstanceId.1=i-1&InstanceId.10=i-10",
            "/?Filter.1.Value.2=x",
            "/?X-Amz-Date=20240101T000000Z&X-Amz-SignedHeaders=host",
            "/?AWSAccessKeyId=AKIA&Ipv6Address.1=2001:db8::1",
            "/?InstanceId.10000=i",
        ] {
            assert!(parse(t).is_ok(), "{t}: {:?}", parse(t));
        }
    }

    #[test]
    fn parameter_count_is_limited() {
        let names: Vec<String> = (0..50).map(|i| format!("P{i}=x")).collect();
        let body = names.join("&");
        let ok = QueryParams::parse_with_limit("/?Action=X", form(body.as_bytes()), 51);
        assert_eq!(ok.map(|q| q.len()), Ok(51));
        assert_eq!(
            QueryParams::parse_with_limit("/?Action=X", form(body.as_bytes()), 50),
            Err(QueryError::TooManyParameters { limit: 50 })
        );
        // Parsing stops at the first parameter over the limit: what follows
        // it is never looked at.
        let mut long = b"A=1&B=2&C=3&".to_vec();
        long.extend_from_slice(b"%zz=%zz");
        assert_eq!(
            QueryParams::parse_with_limit("/", form(&long), 3),
            Err(QueryError::TooManyParameters { limit: 3 })
        );
        let many: Vec<(String, String)> = (0..=DEFAULT_MAX_PARAMETERS)
            .map(|i| (format!("P{i}"), String::new()))
            .collect();
        assert!(matches!(
            QueryParams::from_pairs(many),
            Err(QueryError::TooManyParameters { .. })
        ));
    }

    /// Parsing is `O(n log n)`: 200,000 distinct names (a 2.6 MB body, the
    /// limit lifted) parse well within a coarse bound that a quadratic
    /// parser (2 * 10^10 name comparisons) could not meet.
    #[test]
    fn parsing_many_distinct_names_is_not_quadratic() -> Result<(), QueryError> {
        let body: Vec<u8> = (0..200_000)
            .map(|i| format!("P{i:07}=x"))
            .collect::<Vec<_>>()
            .join("&")
            .into_bytes();
        let started = std::time::Instant::now();
        let q = QueryParams::parse_with_limit("/?Action=X", form(&body), usize::MAX)?;
        let took = started.elapsed();
        assert_eq!(q.len(), 200_001);
        assert_eq!(q.get("p0199999"), Some("x"));
        assert!(took < std::time::Duration::from_secs(10), "{took:?}");
        Ok(())
    }

    /// Lookups go through the ordered map: a list's members are one range,
    /// whatever else the request holds.
    #[test]
    fn lists_are_ranges_of_the_map() -> Result<(), QueryError> {
        let mut pairs: Vec<(String, String)> = (1..=300)
            .map(|i| (format!("TagSpecification.{i}.Tag.1.Key"), format!("k{i}")))
            .collect();
        pairs.extend((1..=300).map(|i| (format!("InstanceIdX{i}"), "x".to_owned())));
        pairs.push(("InstanceId.1".into(), "i-1".into()));
        pairs.push(("InstanceId.2".into(), "i-2".into()));
        let q = QueryParams::from_pairs(pairs)?;
        assert_eq!(q.members("InstanceId").count(), 2);
        assert_eq!(q.list("InstanceId")?, ["i-1", "i-2"]);
        assert_eq!(
            q.members("TagSpecification.7.Tag").collect::<Vec<_>>(),
            ["1.key"]
        );
        assert_eq!(q.tag_specifications()?.len(), 300);
        assert!(q.has_prefix("tagspecification.300"));
        assert!(!q.has_prefix("TagSpecification.301"));
        Ok(())
    }

    #[test]
    fn lists_are_numbered_from_one_without_gaps() -> Result<(), QueryError> {
        let q = parse("/?InstanceId.2=i-2&InstanceId.1=i-1&InstanceId.3=i-3")?;
        assert_eq!(q.list("InstanceId")?, ["i-1", "i-2", "i-3"]);
        assert_eq!(q.list("VolumeId")?, Vec::<&str>::new());
        let gap = parse("/?InstanceId.1=i-1&InstanceId.3=i-3")?;
        assert_eq!(
            gap.list("InstanceId"),
            Err(QueryError::ListGap {
                prefix: "InstanceId".into(),
                missing: 2
            })
        );
        let no_one = parse("/?InstanceId.2=i-2")?;
        assert!(no_one.list("InstanceId").is_err());
        let members_only = parse("/?InstanceId.1.Foo=x")?;
        assert!(members_only.list("InstanceId").is_err());
        // `InstanceIdX.1` is not a member of `InstanceId`.
        let other = parse("/?InstanceIdX.1=x")?;
        assert_eq!(other.indices("InstanceId")?, Vec::<u32>::new());
        Ok(())
    }

    #[test]
    fn tag_specifications() -> Result<(), QueryError> {
        let q = parse(
            "/?TagSpecification.1.ResourceType=instance\
             &TagSpecification.1.Tag.1.Key=team&TagSpecification.1.Tag.1.Value=blue\
             &TagSpecification.1.Tag.2.Key=empty\
             &TagSpecification.2.ResourceType=volume\
             &TagSpecification.2.Tag.1.Key=cost&TagSpecification.2.Tag.1.Value=42",
        )?;
        let specs = q.tag_specifications()?;
        assert_eq!(
            specs,
            [
                TagSpecification {
                    resource_type: Some("instance".into()),
                    tags: vec![
                        ("team".into(), "blue".into()),
                        ("empty".into(), String::new())
                    ],
                },
                TagSpecification {
                    resource_type: Some("volume".into()),
                    tags: vec![("cost".into(), "42".into())],
                },
            ]
        );
        let gap = parse(
            "/?TagSpecification.1.Tag.2.Key=a&TagSpecification.1.Tag.1.Key=b&TagSpecification.1.Tag.3.Value=c",
        )?;
        assert!(gap.tag_specifications().is_err(), "Tag.3 has no Key");
        let tags = parse("/?Tag.1.Key=a&Tag.2.Key=b&Tag.2.Value=")?.tags("Tag")?;
        assert_eq!(
            tags,
            [("a".into(), None), ("b".into(), Some(String::new()))]
        );
        Ok(())
    }

    #[test]
    fn block_device_mappings() -> Result<(), QueryError> {
        let q = parse(
            "/?BlockDeviceMapping.1.DeviceName=/dev/xvda&BlockDeviceMapping.1.Ebs.VolumeSize=100\
             &BlockDeviceMapping.1.Ebs.VolumeType=gp3&BlockDeviceMapping.1.Ebs.Encrypted=true\
             &BlockDeviceMapping.2.DeviceName=/dev/sdb&BlockDeviceMapping.2.VirtualName=ephemeral0\
             &BlockDeviceMapping.3.DeviceName=/dev/sdc&BlockDeviceMapping.3.NoDevice=",
        )?;
        let b = q.block_device_mappings()?;
        assert_eq!(b.len(), 3);
        let ebs = b.first().and_then(|m| m.ebs.clone()).unwrap_or_default();
        assert_eq!(ebs.volume_size.as_deref(), Some("100"));
        assert_eq!(ebs.volume_type.as_deref(), Some("gp3"));
        assert_eq!(ebs.encrypted.as_deref(), Some("true"));
        assert_eq!(b.get(1).map(|m| m.ebs.is_none()), Some(true));
        assert_eq!(
            b.get(1).and_then(|m| m.virtual_name.as_deref()),
            Some("ephemeral0")
        );
        assert_eq!(b.get(2).map(|m| m.no_device), Some(true));
        Ok(())
    }

    #[test]
    fn body_content_types() {
        let with = |ct: Option<&'static str>, bytes: &'static [u8]| {
            QueryParams::parse(
                "/?Action=DescribeInstances",
                Some(Body {
                    content_type: ct,
                    bytes,
                }),
            )
        };
        assert!(with(Some("application/x-www-form-urlencoded"), b"a=1").is_ok());
        assert!(
            with(
                Some("Application/X-WWW-Form-URLEncoded ; charset=\"UTF-8\""),
                b"a=1"
            )
            .is_ok()
        );
        for ct in [
            Some("application/json"),
            Some("text/plain"),
            Some("application/x-www-form-urlencoded; charset=latin1"),
            Some("application/x-www-form-urlencoded; boundary=x"),
            None,
        ] {
            assert!(
                matches!(
                    with(ct, b"a=1"),
                    Err(QueryError::UnsupportedContentType { .. })
                ),
                "{ct:?}"
            );
        }
        // An empty body is no body, whatever its type.
        assert!(with(Some("application/json"), b"").is_ok());
    }

    #[test]
    fn from_pairs_applies_the_same_checks() {
        assert!(QueryParams::from_pairs([("a", "1"), ("A", "2")]).is_err());
        assert!(QueryParams::from_pairs([("a", "x\n")]).is_err());
        assert!(QueryParams::from_pairs([("a.01", "x")]).is_err());
        assert!(QueryParams::from_pairs([("a b", "x")]).is_err());
        assert!(QueryParams::from_pairs([("a", "1"), ("b", "x y")]).is_ok());
    }

    #[test]
    fn errors_say_why() {
        let e = parse("/?a=1&a=2").map_err(|e| e.to_string());
        assert_eq!(e, Err("parameter `a` is given more than once".to_owned()));
        let e = parse("/?a=%zz").map_err(|e| e.to_string());
        assert_eq!(
            e,
            Err("invalid percent-encoding at byte 2 of the query string".to_owned())
        );
    }
}
