//! Signature Version 4 verification: the `Authorization: AWS4-HMAC-SHA256`
//! header form and the presigned query form (`X-Amz-Algorithm`, ...).
//!
//! A signature is checked by computing it again, as the signer did, from
//! what the request carries: the canonical request over the signed headers
//! only, the SHA-256 of the body that Envoy forwarded, the string to sign
//! for the request's date and credential scope, and the signing key derived
//! from the key's secret with `aws-sigv4` (kept per key, date, region and
//! service). The two signatures are compared in constant time.
//!
//! Checked before any signature: one form only, a complete credential
//! scope naming the route's region and service, the 5-minute clock skew
//! (header form) or the validity window (presigned form), a known, active
//! key, or, with `X-Amz-Security-Token` (header or presigned query), a
//! session token sealed under one of the session keys for that very
//! access key id and not expired ([`super::session`]). The date is always covered by the signature (`x-amz-date`
//! must be a signed header in the header form), so a captured request
//! cannot be replayed under a fresh date.

use std::borrow::Cow;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::credentials::{AccessKey, CredentialStore, KeyStatus};
use super::session::{SessionClaims, SessionKeys, TokenError};
use super::time::{epoch_secs, parse_amz_date, system_time};

/// The only algorithm accepted (SigV4a is not).
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Most a header-signed request's date may differ from the clock.
pub const MAX_SKEW_SECS: u64 = 300;
/// Longest validity of a presigned request (7 days).
pub const MAX_EXPIRES_SECS: u64 = 604_800;
/// A query parameter, percent-decoded: name and value.
type Param<'r> = (Cow<'r, [u8]>, Cow<'r, [u8]>);

const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// A header the request's headers cannot tell (repeated where one value is
/// needed, or not text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmbiguousHeader;

/// Where a request's headers are.
pub trait HeaderSource {
    /// The value of header `name` (lower case), repeated values joined
    /// with `,`.
    fn header(&self, name: &str) -> Result<Option<Cow<'_, str>>, AmbiguousHeader>;
}

/// What a signature is checked against: the request as received.
#[derive(Debug)]
pub struct SignedRequest<'a, H> {
    pub method: &'a str,
    /// The request target as received, undecoded: path and query.
    pub target: &'a str,
    /// The `Host` (HTTP/2 `:authority`).
    pub host: &'a str,
    pub headers: &'a H,
    /// The whole body (empty when there is none).
    pub body: &'a [u8],
}

/// The credential scope a route accepts.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub region: &'a str,
    pub service: &'a str,
}

/// Why a signature was not accepted; each is one of EC2's error codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    /// No signature at all.
    #[error("AWS was not able to validate the provided access credentials")]
    Unsigned,
    #[error("{0}")]
    Incomplete(&'static str),
    #[error("{0}")]
    Scope(String),
    #[error("Request has expired.")]
    Expired,
    #[error("The security token included in the request is invalid.")]
    SecurityToken,
    /// A session token whose session has expired.
    #[error("The security token included in the request is expired")]
    TokenExpired,
    /// An unknown or inactive key (the same words for both).
    #[error("The AWS Access Key Id you provided does not exist in our records.")]
    UnknownKey,
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
    )]
    Mismatch,
}

impl SigV4Error {
    /// EC2's error code.
    pub fn code(&self) -> &'static str {
        match self {
            SigV4Error::Unsigned | SigV4Error::Scope(_) => "AuthFailure",
            SigV4Error::Incomplete(_) => "IncompleteSignature",
            SigV4Error::Expired | SigV4Error::TokenExpired => "RequestExpired",
            SigV4Error::SecurityToken | SigV4Error::UnknownKey => "InvalidClientTokenId",
            SigV4Error::Mismatch => "SignatureDoesNotMatch",
        }
    }

    /// The HTTP status EC2 answers with.
    pub fn status(&self) -> u16 {
        match self {
            SigV4Error::Unsigned | SigV4Error::Scope(_) | SigV4Error::UnknownKey => 401,
            SigV4Error::SecurityToken | SigV4Error::Mismatch => 403,
            SigV4Error::Incomplete(_) | SigV4Error::Expired => 400,
            SigV4Error::TokenExpired => 400,
        }
    }

    /// STS's error code (STS says `ExpiredToken` where EC2 says
    /// `RequestExpired` for a session, and `IncompleteSignature` /
    /// `SignatureDoesNotMatch` / `InvalidClientTokenId` alike).
    pub fn sts_code(&self) -> &'static str {
        match self {
            SigV4Error::TokenExpired => "ExpiredToken",
            SigV4Error::Unsigned => "MissingAuthenticationToken",
            SigV4Error::Scope(_) => "SignatureDoesNotMatch",
            other => other.code(),
        }
    }

    /// The HTTP status STS answers with.
    pub fn sts_status(&self) -> u16 {
        match self {
            SigV4Error::Incomplete(_) | SigV4Error::TokenExpired | SigV4Error::Expired => 400,
            _ => 403,
        }
    }
}

/// Who signed a verified request.
#[derive(Debug)]
pub enum Caller<'s> {
    /// An IAM user's long-term access key.
    Key(&'s AccessKey),
    /// A temporary session (its token's claims).
    Session(Box<SessionClaims>),
}

/// The parts of a signature, from either form.
#[derive(Debug)]
struct Parts<'r> {
    presigned: bool,
    access_key_id: &'r str,
    /// `YYYYMMDD`.
    scope_date: &'r str,
    region: &'r str,
    service: &'r str,
    signed_headers: &'r str,
    signature: Cow<'r, str>,
    amz_date: Cow<'r, str>,
    /// Presigned form only.
    expires: Option<u64>,
}

/// Verifies a request's signature made with a long-term key; `Ok` is the
/// key that signed it. A session token is refused.
pub fn verify<'s, H: HeaderSource>(
    req: &SignedRequest<'_, H>,
    store: &'s CredentialStore,
    expected: Expected<'_>,
    now: std::time::SystemTime,
) -> Result<&'s AccessKey, SigV4Error> {
    match verify_caller(req, store, None, expected, now)? {
        Caller::Key(k) => Ok(k),
        Caller::Session(_) => Err(SigV4Error::SecurityToken),
    }
}

/// Verifies a request's signature made with a long-term key or, when
/// `sessions` is given, with temporary credentials; `Ok` is who signed.
pub fn verify_caller<'s, H: HeaderSource>(
    req: &SignedRequest<'_, H>,
    store: &'s CredentialStore,
    sessions: Option<&SessionKeys>,
    expected: Expected<'_>,
    now: std::time::SystemTime,
) -> Result<Caller<'s>, SigV4Error> {
    let (path, query) = split_target(req.target);
    let params = parse_query(query);
    let header = |name: &str| {
        req.headers
            .header(name)
            .map_err(|AmbiguousHeader| SigV4Error::Incomplete("a signed header is repeated"))
    };
    let authorization = header("authorization")?;
    let presigned = params.iter().any(|(k, _)| k.as_ref() == b"X-Amz-Algorithm");
    let amz_date_header = header("x-amz-date")?;
    let parts = match (authorization.as_deref(), presigned) {
        (Some(_), true) => {
            return Err(SigV4Error::Incomplete(
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization header should be specified",
            ));
        }
        (Some(a), false) => header_parts(a, amz_date_header.as_deref())?,
        (None, true) => query_parts(&params)?,
        (None, false) => return Err(SigV4Error::Unsigned),
    };
    let mut query_tokens = params
        .iter()
        .filter(|(k, _)| k.as_ref() == b"X-Amz-Security-Token");
    let query_token = query_tokens.next();
    let header_token = header("x-amz-security-token")?;
    let token: Option<Cow<'_, str>> = match (query_token, query_tokens.next(), header_token) {
        (None, _, None) => None,
        (Some((_, v)), None, None) => Some(Cow::Borrowed(text(v)?)),
        (None, _, Some(h)) => Some(h),
        _ => return Err(SigV4Error::Incomplete("the security token is given twice")),
    };
    check_scope(&parts, expected)?;
    let signed_at = parse_amz_date(&parts.amz_date).ok_or(SigV4Error::Incomplete(
        "X-Amz-Date must be in the ISO8601 basic format YYYYMMDD'T'HHMMSS'Z'",
    ))?;
    if parts.amz_date.get(..8) != Some(parts.scope_date) {
        return Err(SigV4Error::Scope(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP"
                .into(),
        ));
    }
    check_time(&parts, signed_at, epoch_secs(now))?;
    let signer = match (&token, sessions) {
        (None, _) => Signer::Key(
            store
                .get(parts.access_key_id)
                .filter(|k| k.status == KeyStatus::Active)
                .ok_or(SigV4Error::UnknownKey)?,
        ),
        (Some(_), None) => return Err(SigV4Error::SecurityToken),
        (Some(t), Some(keys)) => {
            // Opened once per token, then kept (bounded, until the
            // session expires): decrypting and parsing it every time
            // cost more than the rest of the check.
            let opened = keys
                .open_cached(t.trim(), parts.access_key_id, epoch_secs(now))
                .map_err(|e| match e {
                    TokenError::Invalid => SigV4Error::SecurityToken,
                    TokenError::Expired => SigV4Error::TokenExpired,
                })?;
            Signer::Session(keys, opened)
        }
    };

    let names = signed_header_names(parts.signed_headers, parts.presigned)?;
    let mut canonical = String::with_capacity(256 + req.target.len());
    canonical.push_str(req.method);
    canonical.push('\n');
    canonical_uri(path, &mut canonical);
    canonical.push('\n');
    canonical_query(&params, parts.presigned, &mut canonical);
    canonical.push('\n');
    for name in &names {
        canonical.push_str(name);
        canonical.push(':');
        let value = if *name == "host" {
            Some(Cow::Borrowed(req.host))
        } else {
            header(name)?
        };
        // A signed header the request lacks: not what was signed.
        let value = value.ok_or(SigV4Error::Mismatch)?;
        canonical_header_value(&value, &mut canonical);
        canonical.push('\n');
    }
    canonical.push('\n');
    canonical.push_str(parts.signed_headers);
    canonical.push('\n');
    let payload_at = canonical.len();
    if req.body.is_empty() {
        canonical.push_str(EMPTY_SHA256);
    } else {
        hex_into(&Sha256::digest(req.body), &mut canonical);
    }
    // A payload hash the client declared must be the body's.
    if let Some(declared) = header("x-amz-content-sha256")?
        && canonical.get(payload_at..) != Some(declared.trim())
    {
        return Err(SigV4Error::Mismatch);
    }

    let string_to_sign = string_to_sign(&parts, &canonical);
    let date = date8(parts.scope_date)?;
    let derive = |secret: &str| {
        let derived = aws_sigv4::sign::v4::generate_signing_key(
            secret,
            system_time(signed_at),
            parts.region,
            parts.service,
        );
        let mut out = [0u8; 32];
        for (o, b) in out.iter_mut().zip(derived.as_ref()) {
            *o = *b;
        }
        out
    };
    let signing_key = match &signer {
        Signer::Key(key) => key.signing_key(&date, parts.region, parts.service, |secret| {
            derive(secret.expose())
        }),
        Signer::Session(keys, opened) => keys.signing_key(
            parts.access_key_id,
            &date,
            parts.region,
            parts.service,
            || derive(opened.secret.expose()),
        ),
    };
    let computed = aws_sigv4::sign::v4::calculate_signature(signing_key, string_to_sign.as_bytes());
    if !bool::from(computed.as_bytes().ct_eq(parts.signature.as_bytes())) {
        return Err(SigV4Error::Mismatch);
    }
    Ok(match signer {
        Signer::Key(k) => Caller::Key(k),
        Signer::Session(_, opened) => Caller::Session(Box::new(opened.claims.clone())),
    })
}

/// Whose secret signs: a long-term key, or a session's derived secret.
enum Signer<'s, 'k> {
    Key(&'s AccessKey),
    Session(
        &'k SessionKeys,
        std::sync::Arc<super::session_cache::OpenedSession>,
    ),
}

/// The canonical request of a request (for tests against the published
/// vectors); `None` when the request carries no usable signature.
#[cfg(test)]
pub(crate) fn canonical_request_for_test<H: HeaderSource>(
    req: &SignedRequest<'_, H>,
) -> Option<String> {
    let (path, query) = split_target(req.target);
    let params = parse_query(query);
    let presigned = params.iter().any(|(k, _)| k.as_ref() == b"X-Amz-Algorithm");
    let signed = if presigned {
        params
            .iter()
            .find(|(k, _)| k.as_ref() == b"X-Amz-SignedHeaders")
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())?
    } else {
        let a = req.headers.header("authorization").ok()??;
        let d = req.headers.header("x-amz-date").ok()?;
        header_parts(&a, d.as_deref())
            .ok()?
            .signed_headers
            .to_owned()
    };
    let mut c = String::new();
    c.push_str(req.method);
    c.push('\n');
    canonical_uri(path, &mut c);
    c.push('\n');
    canonical_query(&params, presigned, &mut c);
    c.push('\n');
    for name in signed.split(';') {
        c.push_str(name);
        c.push(':');
        let v = if name == "host" {
            Cow::Borrowed(req.host)
        } else {
            req.headers.header(name).ok()??
        };
        canonical_header_value(&v, &mut c);
        c.push('\n');
    }
    c.push('\n');
    c.push_str(&signed);
    c.push('\n');
    hex_into(&Sha256::digest(req.body), &mut c);
    Some(c)
}

fn split_target(target: &str) -> (&str, &str) {
    target.split_once('?').unwrap_or((target, ""))
}

/// The query's parameters, percent-decoded (`+` is a plus sign, as SigV4
/// signers encode a space as `%20`).
fn parse_query(query: &str) -> Vec<Param<'_>> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                Cow::from(percent_encoding::percent_decode_str(k)),
                Cow::from(percent_encoding::percent_decode_str(v)),
            )
        })
        .collect()
}

fn text(v: &[u8]) -> Result<&str, SigV4Error> {
    std::str::from_utf8(v).map_err(|_| SigV4Error::Incomplete("a signature parameter is not text"))
}

fn header_parts<'r>(
    authorization: &'r str,
    amz_date: Option<&'r str>,
) -> Result<Parts<'r>, SigV4Error> {
    let rest = authorization
        .strip_prefix(ALGORITHM)
        .filter(|r| r.starts_with(' '))
        .ok_or(SigV4Error::Incomplete(
            "Authorization header must use the AWS4-HMAC-SHA256 algorithm",
        ))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for component in rest.split(',') {
        let (name, value) = component
            .trim()
            .split_once('=')
            .ok_or(SigV4Error::Incomplete(
                "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters",
            ))?;
        let slot = match name {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => {
                return Err(SigV4Error::Incomplete(
                    "Authorization header has an unknown parameter",
                ));
            }
        };
        if slot.replace(value).is_some() {
            return Err(SigV4Error::Incomplete(
                "Authorization header repeats a parameter",
            ));
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(SigV4Error::Incomplete(
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters",
        ));
    };
    let amz_date = amz_date.ok_or(SigV4Error::Incomplete(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header",
    ))?;
    let (access_key_id, scope_date, region, service) = credential_scope(credential)?;
    Ok(Parts {
        presigned: false,
        access_key_id,
        scope_date,
        region,
        service,
        signed_headers: signed,
        signature: Cow::Borrowed(signature),
        amz_date: Cow::Borrowed(amz_date.trim()),
        expires: None,
    })
}

fn query_parts<'r>(params: &'r [Param<'r>]) -> Result<Parts<'r>, SigV4Error> {
    let one = |name: &'static str| -> Result<&'r str, SigV4Error> {
        let mut found = params.iter().filter(|(k, _)| k.as_ref() == name.as_bytes());
        let first = found.next().ok_or(SigV4Error::Incomplete(
            "a presigned request requires X-Amz-Algorithm, X-Amz-Credential, X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders and X-Amz-Signature",
        ))?;
        if found.next().is_some() {
            return Err(SigV4Error::Incomplete(
                "a presigned request repeats a signature parameter",
            ));
        }
        text(&first.1)
    };
    if one("X-Amz-Algorithm")? != ALGORITHM {
        return Err(SigV4Error::Incomplete(
            "X-Amz-Algorithm must be AWS4-HMAC-SHA256",
        ));
    }
    let (access_key_id, scope_date, region, service) = credential_scope(one("X-Amz-Credential")?)?;
    let expires = one("X-Amz-Expires")?;
    let expires = expires
        .parse::<u64>()
        .ok()
        .filter(|e| (1..=MAX_EXPIRES_SECS).contains(e) && !expires.starts_with('+'))
        .ok_or(SigV4Error::Incomplete(
            "X-Amz-Expires must be a number of seconds from 1 to 604800",
        ))?;
    Ok(Parts {
        presigned: true,
        access_key_id,
        scope_date,
        region,
        service,
        signed_headers: one("X-Amz-SignedHeaders")?,
        signature: Cow::Borrowed(one("X-Amz-Signature")?),
        amz_date: Cow::Borrowed(one("X-Amz-Date")?),
        expires: Some(expires),
    })
}

/// `AKID/YYYYMMDD/REGION/SERVICE/aws4_request`.
fn credential_scope(credential: &str) -> Result<(&str, &str, &str, &str), SigV4Error> {
    let malformed = || {
        SigV4Error::Incomplete(
            "Credential must have the form ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request",
        )
    };
    let mut it = credential.split('/');
    let (Some(id), Some(date), Some(region), Some(service), Some(terminator), None) = (
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
    ) else {
        return Err(malformed());
    };
    if id.is_empty()
        || date.len() != 8
        || !date.bytes().all(|b| b.is_ascii_digit())
        || region.is_empty()
        || service.is_empty()
    {
        return Err(malformed());
    }
    if terminator != "aws4_request" {
        return Err(SigV4Error::Incomplete(
            "Credential should be scoped with a valid terminator: 'aws4_request'",
        ));
    }
    Ok((id, date, region, service))
}

fn check_scope(parts: &Parts<'_>, expected: Expected<'_>) -> Result<(), SigV4Error> {
    if parts.service != expected.service {
        return Err(SigV4Error::Scope(format!(
            "Credential should be scoped to correct service: '{}'.",
            expected.service
        )));
    }
    if parts.region != expected.region {
        return Err(SigV4Error::Scope(format!(
            "Credential should be scoped to a valid region, not '{}'.",
            printable(parts.region)
        )));
    }
    Ok(())
}

/// `s` without control characters, at most 64 of them (it is echoed).
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

fn check_time(parts: &Parts<'_>, signed_at: u64, now: u64) -> Result<(), SigV4Error> {
    // Not yet valid, in either form, beyond the allowed skew.
    if signed_at > now.saturating_add(MAX_SKEW_SECS) {
        return Err(SigV4Error::Expired);
    }
    let valid_until = match parts.expires {
        Some(e) => signed_at.saturating_add(e),
        None => signed_at.saturating_add(MAX_SKEW_SECS),
    };
    if now > valid_until {
        return Err(SigV4Error::Expired);
    }
    Ok(())
}

/// The signed header names: lower case, sorted, without repeats, naming
/// `host` (and `x-amz-date` in the header form, so that the date is
/// signed).
fn signed_header_names(signed: &str, presigned: bool) -> Result<Vec<&str>, SigV4Error> {
    let names: Vec<&str> = signed.split(';').collect();
    let well_formed = names.iter().all(|n| {
        !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
    }) && names.windows(2).all(|w| matches!(w, [a, b] if a < b));
    if !well_formed {
        return Err(SigV4Error::Incomplete(
            "SignedHeaders must be lower-case header names, sorted, separated by ';'",
        ));
    }
    if !names.contains(&"host") {
        return Err(SigV4Error::Incomplete("'Host' must be a signed header"));
    }
    if !presigned && !names.contains(&"x-amz-date") {
        return Err(SigV4Error::Incomplete(
            "'X-Amz-Date' must be a signed header",
        ));
    }
    Ok(names)
}

fn date8(scope_date: &str) -> Result<[u8; 8], SigV4Error> {
    scope_date
        .as_bytes()
        .try_into()
        .map_err(|_| SigV4Error::Incomplete("Credential date must be YYYYMMDD"))
}

fn string_to_sign(parts: &Parts<'_>, canonical: &str) -> String {
    let mut s = String::with_capacity(160);
    let _ = write!(
        s,
        "{ALGORITHM}\n{}\n{}/{}/{}/aws4_request\n",
        parts.amz_date, parts.scope_date, parts.region, parts.service
    );
    hex_into(&Sha256::digest(canonical.as_bytes()), &mut s);
    s
}

/// Whether SigV4 leaves `b` as it is in a URI.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

fn encode_into(bytes: &[u8], keep_slash: bool, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if unreserved(b) || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(nibble(HEX, b >> 4));
            out.push(nibble(HEX, b & 0xf));
        }
    }
}

/// The canonical URI of a non-S3 service: the path as sent (already
/// percent-encoded once), without `.`/`..` segments or empty segments,
/// encoded again.
fn canonical_uri(path: &str, out: &mut String) {
    let mut segments: Vec<&str> = Vec::new();
    for s in path.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    out.push('/');
    for (i, s) in segments.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        encode_into(s.as_bytes(), false, out);
    }
    let trailing = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    if trailing && !segments.is_empty() {
        out.push('/');
    }
}

/// The canonical query: every parameter (but the signature of a presigned
/// request) encoded, sorted by name and then value.
fn canonical_query(params: &[Param<'_>], presigned: bool, out: &mut String) {
    let mut encoded: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| !(presigned && k.as_ref() == b"X-Amz-Signature"))
        .map(|(k, v)| {
            let (mut ek, mut ev) = (String::new(), String::new());
            encode_into(k, false, &mut ek);
            encode_into(v, false, &mut ev);
            (ek, ev)
        })
        .collect();
    encoded.sort_unstable();
    for (i, (k, v)) in encoded.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
}

/// A header value trimmed, with runs of spaces made one.
fn canonical_header_value(value: &str, out: &mut String) {
    let mut space = false;
    for c in value.trim().chars() {
        if c == ' ' {
            if !space {
                out.push(' ');
            }
            space = true;
        } else {
            out.push(c);
            space = false;
        }
    }
}

/// Appends `bytes` in lower-case hex.
fn hex_into(bytes: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(nibble(HEX, b >> 4));
        out.push(nibble(HEX, b & 0xf));
    }
}

/// The digit of `n` (below 16) in `digits`.
fn nibble(digits: &[u8; 16], n: u8) -> char {
    char::from(digits.get(usize::from(n)).copied().unwrap_or(b'0'))
}

#[cfg(test)]
#[path = "sigv4_tests.rs"]
mod tests;
