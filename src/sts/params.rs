//! STS Query API parameters: the form-encoded body (and query string) of a
//! request, and the checked inputs of each action, with AWS's limits (STS
//! API Reference, `AssumeRole`, `GetSessionToken`,
//! `DecodeAuthorizationMessage`).

use std::collections::BTreeMap;

use super::response::StsError;

/// Most parameters in one request.
const MAX_PARAMS: usize = 256;
/// Most session tags (STS: 50).
pub const MAX_TAGS: usize = 50;
/// Most managed session policies (STS: 10).
pub const MAX_POLICY_ARNS: usize = 10;
/// Shortest and longest session (AssumeRole `DurationSeconds`).
pub const MIN_DURATION: u64 = 900;
/// Role chaining limits a session to one hour.
pub const CHAINED_MAX_DURATION: u64 = 3600;
/// `GetSessionToken`: 900 s to 36 hours, 12 by default.
pub const SESSION_TOKEN_MAX_DURATION: u64 = 129_600;
pub const SESSION_TOKEN_DEFAULT_DURATION: u64 = 43_200;

/// A request's parameters by name (each given once).
#[derive(Debug, Clone, Default)]
pub struct Params {
    map: BTreeMap<String, String>,
}

impl Params {
    /// Decodes form-encoded pairs (`+` is a space) from the query string
    /// and the body together; a repeated name is refused.
    pub fn parse(query: &str, body: &str) -> Result<Self, StsError> {
        let mut map = BTreeMap::new();
        for part in query.split('&').chain(body.split('&')) {
            if part.is_empty() {
                continue;
            }
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let k = decode(k)?;
            let v = decode(v)?;
            if map.len() >= MAX_PARAMS {
                return Err(StsError::validation("too many parameters"));
            }
            if map.insert(k.clone(), v).is_some() {
                return Err(StsError::new(
                    400,
                    "InvalidParameterCombination",
                    format!("parameter `{}` is given more than once", printable(&k)),
                ));
            }
        }
        Ok(Self { map })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }

    /// Names (with the values) of parameters other than the ones an action
    /// reads, the signature's and `Action`/`Version`.
    pub fn unknown<'a>(&'a self, known: &'a [&str]) -> Option<&'a str> {
        self.map.keys().map(String::as_str).find(|k| {
            !known.iter().any(|n| k == n || member_of(k, n))
                && !matches!(*k, "Action" | "Version")
                && !k.starts_with("X-Amz-")
        })
    }

    /// Refuses a `PREFIX.member.N...` entry whose tail is none of
    /// `suffixes` (`Tags.member.1.Colour`).
    pub fn check_list(&self, prefix: &str, suffixes: &[&str]) -> Result<(), StsError> {
        let head = format!("{prefix}.member.");
        for rest in self.map.keys().filter_map(|k| k.strip_prefix(&head)) {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let tail = rest.get(digits..).unwrap_or_default();
            if digits == 0 || rest.starts_with('0') || !suffixes.contains(&tail) {
                return Err(StsError::new(
                    400,
                    "InvalidParameterValue",
                    format!("unknown parameter `{head}{}`", printable(rest)),
                ));
            }
        }
        Ok(())
    }

    /// `PREFIX.member.N` values in order of N (1, 2, ... without gaps).
    pub fn members(&self, prefix: &str, suffix: &str) -> Result<Vec<&str>, StsError> {
        let mut out = Vec::new();
        for n in 1.. {
            let name = format!("{prefix}.member.{n}{suffix}");
            match self.get(&name) {
                Some(v) => out.push(v),
                None => break,
            }
            if n > 100 {
                return Err(StsError::validation(format!("too many `{prefix}` members")));
            }
        }
        // Every `PREFIX.member.N[.suffix]` must be one of the ones read:
        // a gap or a stray entry is refused, never silently dropped.
        let head = format!("{prefix}.member.");
        let counted = self
            .map
            .keys()
            .filter_map(|k| k.strip_prefix(&head))
            .filter(|rest| {
                let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                rest.get(digits..) == Some(suffix)
            })
            .count();
        if counted != out.len() {
            return Err(StsError::validation(format!(
                "`{prefix}.member.N{suffix}` must be numbered 1, 2, ... without gaps"
            )));
        }
        Ok(out)
    }
}

/// Whether `k` is `PREFIX.member.N...` of the known list name `n`
/// (written `Tags.member` in `known`).
fn member_of(k: &str, n: &str) -> bool {
    n.ends_with(".member") && k.strip_prefix(n).is_some_and(|r| r.starts_with('.'))
}

fn decode(s: &str) -> Result<String, StsError> {
    let plus = s.replace('+', " ");
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(&plus).collect();
    String::from_utf8(bytes).map_err(|_| StsError::validation("a parameter is not UTF-8"))
}

/// At most 64 characters of `s` without control characters (echoed).
pub fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// `[\w+=,.@-]` (role session names, source identities).
fn name_chars(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
}

/// What `AssumeRole` was asked for, checked.
#[derive(Debug, Clone, Default)]
pub struct AssumeRoleInput {
    pub role_arn: String,
    pub session_name: String,
    pub duration: Option<u64>,
    pub external_id: Option<String>,
    pub policy: Option<String>,
    pub policy_arns: Vec<String>,
    pub tags: Vec<(String, String)>,
    pub transitive_tag_keys: Vec<String>,
    pub source_identity: Option<String>,
    /// `SerialNumber` or `TokenCode` was given (the server checks them
    /// against `--mfa-devices`).
    pub mfa_given: bool,
    /// Characters of the packed session policies and tags, for
    /// `PackedPolicySize` (a percentage of the limit).
    pub packed: usize,
}

impl AssumeRoleInput {
    /// Reads and checks `AssumeRole`'s parameters.
    pub fn parse(p: &Params) -> Result<Self, StsError> {
        if let Some(k) = p.unknown(&[
            "RoleArn",
            "RoleSessionName",
            "DurationSeconds",
            "ExternalId",
            "Policy",
            "PolicyArns.member",
            "Tags.member",
            "TransitiveTagKeys.member",
            "SourceIdentity",
            "SerialNumber",
            "TokenCode",
        ]) {
            return Err(StsError::new(
                400,
                "InvalidParameterValue",
                format!("unknown parameter `{}`", printable(k)),
            ));
        }
        p.check_list("PolicyArns", &[".arn"])?;
        p.check_list("Tags", &[".Key", ".Value"])?;
        p.check_list("TransitiveTagKeys", &[""])?;
        let role_arn = p
            .get("RoleArn")
            .ok_or_else(|| missing("roleArn"))?
            .to_owned();
        if !(20..=2048).contains(&role_arn.len()) {
            return Err(StsError::validation(
                "1 validation error detected: Value at 'roleArn' failed to satisfy constraint: Member must have length between 20 and 2048",
            ));
        }
        let session_name = p
            .get("RoleSessionName")
            .ok_or_else(|| missing("roleSessionName"))?
            .to_owned();
        if !(2..=64).contains(&session_name.len()) || !name_chars(&session_name) {
            return Err(StsError::validation(
                "1 validation error detected: Value at 'roleSessionName' failed to satisfy constraint: Member must have length between 2 and 64 and match [\\w+=,.@-]*",
            ));
        }
        let duration = match p.get("DurationSeconds") {
            None => None,
            Some(d) => Some(
                d.parse::<u64>()
                    .ok()
                    .filter(|d| (MIN_DURATION..=43_200).contains(d))
                    .ok_or_else(|| {
                        StsError::validation(
                            "1 validation error detected: Value at 'durationSeconds' failed to satisfy constraint: Member must have value between 900 and 43200",
                        )
                    })?,
            ),
        };
        let external_id = p.get("ExternalId").map(str::to_owned);
        if let Some(e) = &external_id {
            let ok = (2..=1224).contains(&e.len())
                && e.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c));
            if !ok {
                return Err(StsError::validation(
                    "1 validation error detected: Value at 'externalId' failed to satisfy constraint: Member must have length between 2 and 1224 and match [\\w+=,.@:\\/-]*",
                ));
            }
        }
        let policy = p.get("Policy").map(str::to_owned);
        let mut packed = 0;
        if let Some(text) = &policy {
            crate::policy::limits::check_session_policy_text(text).map_err(|e| match e {
                crate::policy::limits::PolicySizeError::TooLarge => StsError::new(
                    400,
                    "PackedPolicyTooLarge",
                    "Packed size of the session policies and tags exceeds the limit",
                ),
                crate::policy::limits::PolicySizeError::Character => StsError::new(
                    400,
                    "MalformedPolicyDocument",
                    "The policy has a character outside the allowed range",
                ),
            })?;
            let doc: serde_json::Value = serde_json::from_str(text).map_err(|_| {
                StsError::new(400, "MalformedPolicyDocument", "Syntax errors in policy.")
            })?;
            crate::engine::CompiledPolicy::from_json(
                "session",
                crate::policy::PolicyKind::Session,
                &doc,
            )
            .map_err(|e| StsError::new(400, "MalformedPolicyDocument", e.to_string()))?;
            packed += text.chars().filter(|c| !c.is_whitespace()).count();
        }
        let policy_arns: Vec<String> = p
            .members("PolicyArns", ".arn")?
            .into_iter()
            .map(str::to_owned)
            .collect();
        if policy_arns.len() > MAX_POLICY_ARNS {
            return Err(StsError::validation(
                "1 validation error detected: Value at 'policyArns' failed to satisfy constraint: Member must have length less than or equal to 10",
            ));
        }
        for a in &policy_arns {
            let ok = crate::policy::arn::Arn::parse(a)
                .is_some_and(|x| x.service == "iam" && x.resource.starts_with("policy/"));
            if !ok || !(20..=2048).contains(&a.len()) {
                return Err(StsError::new(
                    400,
                    "InvalidParameterValue",
                    format!("`{}` is not a managed policy ARN", printable(a)),
                ));
            }
            packed += a.len();
        }
        // The plaintext of the inline and managed session policies
        // together (STS: 2,048 characters).
        if packed > crate::policy::limits::SESSION_POLICY_MAX_CHARS {
            return Err(StsError::new(
                400,
                "PackedPolicyTooLarge",
                "Packed size of the session policies and tags exceeds the limit",
            ));
        }
        let keys = p.members("Tags", ".Key")?;
        let values = p.members("Tags", ".Value")?;
        if keys.len() != values.len() {
            return Err(StsError::validation(
                "every `Tags.member.N` needs a `Key` and a `Value`",
            ));
        }
        if keys.len() > MAX_TAGS {
            return Err(StsError::validation(
                "1 validation error detected: Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to 50",
            ));
        }
        let mut tags: Vec<(String, String)> = Vec::with_capacity(keys.len());
        for (k, v) in keys.into_iter().zip(values) {
            let key_ok = (1..=128).contains(&k.chars().count()) && tag_chars(k);
            let value_ok = v.chars().count() <= 256 && tag_chars(v);
            if !key_ok || !value_ok || k.to_ascii_lowercase().starts_with("aws:") {
                return Err(StsError::validation(format!(
                    "the session tag `{}` has a key of 1 to 128 or a value of up to 256 characters from [\\p{{L}}\\p{{Z}}\\p{{N}}_.:/=+\\-@] (not starting with `aws:`)",
                    printable(k)
                )));
            }
            if tags.iter().any(|(t, _)| t.eq_ignore_ascii_case(k)) {
                return Err(StsError::new(
                    400,
                    "InvalidParameterValue",
                    "Duplicate tag keys found. Please note that Tag keys are case insensitive.",
                ));
            }
            packed += k.len() + v.len();
            tags.push((k.to_owned(), v.to_owned()));
        }
        let transitive_tag_keys: Vec<String> = p
            .members("TransitiveTagKeys", "")?
            .into_iter()
            .map(str::to_owned)
            .collect();
        if transitive_tag_keys.len() > MAX_TAGS {
            return Err(StsError::validation("at most 50 transitive tag keys"));
        }
        for k in &transitive_tag_keys {
            if !tags.iter().any(|(t, _)| t.eq_ignore_ascii_case(k)) {
                return Err(StsError::new(
                    400,
                    "InvalidParameterValue",
                    format!(
                        "The transitive tag key `{}` is not one of the session tags",
                        printable(k)
                    ),
                ));
            }
        }
        let source_identity = p.get("SourceIdentity").map(str::to_owned);
        if let Some(s) = &source_identity {
            if !(2..=64).contains(&s.len()) || !name_chars(s) {
                return Err(StsError::validation(
                    "1 validation error detected: Value at 'sourceIdentity' failed to satisfy constraint: Member must have length between 2 and 64 and match [\\w+=,.@-]*",
                ));
            }
            if s.to_ascii_lowercase().starts_with("aws:") {
                return Err(StsError::validation(
                    "SourceIdentity cannot start with the prefix aws:",
                ));
            }
        }
        let mfa_given = p.get("SerialNumber").is_some() || p.get("TokenCode").is_some();
        Ok(Self {
            role_arn,
            session_name,
            duration,
            external_id,
            policy,
            policy_arns,
            tags,
            transitive_tag_keys,
            source_identity,
            mfa_given,
            packed,
        })
    }

    /// `PackedPolicySize`: the packed policies and tags as a percentage of
    /// what STS allows.
    pub fn packed_policy_size(&self) -> usize {
        (self.packed * 100).div_ceil(crate::policy::limits::SESSION_POLICY_MAX_CHARS)
    }
}

fn tag_chars(s: &str) -> bool {
    s.chars().all(|c| {
        c.is_alphanumeric() || c.is_whitespace() && !c.is_control() || "_.:/=+-@".contains(c)
    })
}

fn missing(name: &str) -> StsError {
    StsError::validation(format!(
        "1 validation error detected: Value null at '{name}' failed to satisfy constraint: Member must not be null"
    ))
}

/// `GetSessionToken`'s duration (default 12 hours).
pub fn session_token_duration(p: &Params) -> Result<u64, StsError> {
    if let Some(k) = p.unknown(&["DurationSeconds", "SerialNumber", "TokenCode"]) {
        return Err(StsError::new(
            400,
            "InvalidParameterValue",
            format!("unknown parameter `{}`", printable(k)),
        ));
    }
    match p.get("DurationSeconds") {
        None => Ok(SESSION_TOKEN_DEFAULT_DURATION),
        Some(d) => d
            .parse::<u64>()
            .ok()
            .filter(|d| (MIN_DURATION..=SESSION_TOKEN_MAX_DURATION).contains(d))
            .ok_or_else(|| {
                StsError::validation(
                    "1 validation error detected: Value at 'durationSeconds' failed to satisfy constraint: Member must have value between 900 and 129600",
                )
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(body: &str) -> Result<AssumeRoleInput, StsError> {
        AssumeRoleInput::parse(&Params::parse("", body)?)
    }

    const BASE: &str = "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2FDev&RoleSessionName=alice";

    #[test]
    fn assume_role_inputs_are_read_with_aws_limits() {
        let ok = input(&format!(
            "{BASE}&DurationSeconds=900&ExternalId=ext-1&Tags.member.1.Key=team&Tags.member.1.Value=blue+team&TransitiveTagKeys.member.1=team&PolicyArns.member.1.arn=arn%3Aaws%3Aiam%3A%3Aaws%3Apolicy%2FReadOnlyAccess&SourceIdentity=alice%40example.com"
        ))
        .unwrap();
        assert_eq!(ok.role_arn, "arn:aws:iam::111122223333:role/Dev");
        assert_eq!(ok.tags, vec![("team".to_owned(), "blue team".to_owned())]);
        assert_eq!(ok.transitive_tag_keys, vec!["team".to_owned()]);
        assert_eq!(ok.duration, Some(900));
        assert_eq!(ok.source_identity.as_deref(), Some("alice@example.com"));
        assert_eq!(ok.policy_arns.len(), 1);
        for (bad, code) in [
            ("&DurationSeconds=899", "ValidationError"),
            ("&DurationSeconds=43201", "ValidationError"),
            ("&ExternalId=x", "ValidationError"),
            ("&SourceIdentity=aws%3Ax1", "ValidationError"),
            (
                "&Tags.member.1.Key=aws%3Ax&Tags.member.1.Value=1",
                "ValidationError",
            ),
            (
                "&Tags.member.1.Key=A&Tags.member.1.Value=1&Tags.member.2.Key=a&Tags.member.2.Value=2",
                "InvalidParameterValue",
            ),
            ("&TransitiveTagKeys.member.1=team", "InvalidParameterValue"),
            ("&Policy=%7Bnot+json", "MalformedPolicyDocument"),
            ("&Bogus=1", "InvalidParameterValue"),
            ("&RoleSessionName=again", "InvalidParameterCombination"),
            (
                "&Tags.member.2.Key=a&Tags.member.2.Value=1",
                "ValidationError",
            ),
            (
                "&Tags.member.1.Key=a&Tags.member.1.Value=1&Tags.member.1.Colour=x",
                "InvalidParameterValue",
            ),
            (
                "&Tags.member.01.Key=a&Tags.member.01.Value=1",
                "InvalidParameterValue",
            ),
            (
                "&PolicyArns.member.2.arn=arn%3Aaws%3Aiam%3A%3Aaws%3Apolicy%2FX",
                "ValidationError",
            ),
        ] {
            let e = input(&format!("{BASE}{bad}")).unwrap_err();
            assert_eq!(e.code, code, "{bad}: {e:?}");
        }
        let big = format!(
            "{{\"Version\":\"2012-10-17\",\"Statement\":[{{\"Effect\":\"Allow\",\"Action\":\"ec2:*\",\"Resource\":\"{}\"}}]}}",
            "a".repeat(2100)
        );
        let e = input(&format!(
            "{BASE}&Policy={}",
            percent_encoding::utf8_percent_encode(&big, percent_encoding::NON_ALPHANUMERIC)
        ))
        .unwrap_err();
        assert_eq!(e.code, "PackedPolicyTooLarge");
        let e = input("RoleSessionName=alice").unwrap_err();
        assert!(e.message.contains("roleArn"), "{e:?}");
    }

    #[test]
    fn session_token_durations() {
        let p = |b: &str| Params::parse("", b).unwrap();
        assert_eq!(
            session_token_duration(&p("Action=GetSessionToken")).unwrap(),
            43_200
        );
        assert_eq!(
            session_token_duration(&p("DurationSeconds=129600&SerialNumber=x&TokenCode=1"))
                .unwrap(),
            129_600
        );
        assert!(session_token_duration(&p("DurationSeconds=129601")).is_err());
    }
}
