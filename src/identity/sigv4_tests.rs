//! SigV4 verification against the AWS Signature Version 4 test suite
//! (`tests/sigv4/v4`, copied from awslabs/aws-c-auth,
//! `tests/aws-signing-test-suite/v4`; see `tests/sigv4/SOURCE.md`) and
//! against signatures made by the `aws-sigv4` crate's signer.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::*;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// Headers as a test request carries them: each value trimmed, repeats
/// joined with `,` (as Envoy's header map joins them).
struct TestHeaders(Vec<(String, String)>);

impl HeaderSource for TestHeaders {
    fn header(&self, name: &str) -> Result<Option<Cow<'_, str>>, AmbiguousHeader> {
        let values: Vec<&str> = self
            .0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .collect();
        Ok((!values.is_empty()).then(|| Cow::Owned(values.join(","))))
    }
}

struct Parsed {
    method: String,
    target: String,
    host: String,
    headers: TestHeaders,
    body: Vec<u8>,
}

impl Parsed {
    fn request(&self) -> SignedRequest<'_, TestHeaders> {
        SignedRequest {
            method: &self.method,
            target: &self.target,
            host: &self.host,
            headers: &self.headers,
            body: &self.body,
        }
    }
}

/// Reads a vector's `*-signed-request.txt`: a request line, `Name:value`
/// lines, an empty line, the body.
fn parse_request(text: &str) -> Parsed {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let request_line = lines.next().unwrap();
    let (method, rest) = request_line.split_once(' ').unwrap();
    let target = rest.rsplit_once(' ').unwrap().0;
    let mut headers = Vec::new();
    for line in lines {
        let (k, v) = line.split_once(':').unwrap();
        headers.push((k.to_ascii_lowercase(), v.to_owned()));
    }
    let host = headers
        .iter()
        .find(|(k, _)| k == "host")
        .map(|(_, v)| v.trim().to_owned())
        .unwrap();
    Parsed {
        method: method.to_owned(),
        target: target.to_owned(),
        host,
        headers: TestHeaders(headers),
        body: body.as_bytes().to_vec(),
    }
}

fn suite() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sigv4/v4")
}

fn store(status: &str) -> CredentialStore {
    let json = serde_json::json!({"AccessKey": {"UserName": "alice", "AccessKeyId": "AKIDEXAMPLE",
        "Status": status, "SecretAccessKey": SECRET}});
    CredentialStore::from_json(json.to_string().as_bytes()).unwrap()
}

const SCOPE: Expected<'static> = Expected {
    region: "us-east-1",
    service: "service",
};

/// 2015-08-30T12:36:00Z, the suite's signing time.
fn signed_at() -> SystemTime {
    std::time::UNIX_EPOCH + Duration::from_secs(1_440_938_160)
}

/// Vectors iamgate does not verify, and why.
const SKIPPED: &[(&str, &str)] = &[
    (
        "get-header-value-multiline",
        "obsolete line folding: HTTP/1.1 proxies refuse it",
    ),
    (
        "get-vanilla-with-session-token",
        "temporary credentials are refused (checked below)",
    ),
    (
        "post-sts-header-after",
        "temporary credentials are refused (checked below)",
    ),
    (
        "post-sts-header-before",
        "temporary credentials are refused (checked below)",
    ),
];

fn vectors() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(suite()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if SKIPPED.iter().any(|(s, _)| *s == name) {
            continue;
        }
        let context: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path.join("context.json")).unwrap())
                .unwrap();
        // Non-S3 services normalize the path; the unnormalized variants
        // are S3's rule.
        if context["normalize"] == false {
            continue;
        }
        out.push((name, path));
    }
    out.sort();
    out
}

#[test]
fn the_aws_test_suite_verifies_in_both_forms() {
    let store = store("Active");
    let vectors = vectors();
    assert!(vectors.len() >= 25, "{} vectors", vectors.len());
    for (name, dir) in &vectors {
        for form in ["header", "query"] {
            let text =
                std::fs::read_to_string(dir.join(format!("{form}-signed-request.txt"))).unwrap();
            let parsed = parse_request(&text);
            let req = parsed.request();
            let expected =
                std::fs::read_to_string(dir.join(format!("{form}-canonical-request.txt"))).unwrap();
            assert_eq!(
                canonical_request_for_test(&req).as_deref(),
                Some(expected.as_str()),
                "{name} ({form}): canonical request"
            );
            let key = verify(&req, &store, SCOPE, signed_at())
                .unwrap_or_else(|e| panic!("{name} ({form}): {e:?}"));
            assert_eq!(key.access_key_id, "AKIDEXAMPLE");
        }
    }
}

#[test]
fn the_suite_string_to_sign_and_signature_match() {
    // The published intermediate values, for the simplest vector.
    let dir = suite().join("get-vanilla");
    let text = std::fs::read_to_string(dir.join("header-signed-request.txt")).unwrap();
    let parsed = parse_request(&text);
    let canonical = canonical_request_for_test(&parsed.request()).unwrap();
    let a = parsed.headers.header("authorization").unwrap().unwrap();
    let parts = header_parts(&a, Some("20150830T123600Z")).unwrap();
    let sts = string_to_sign(&parts, &canonical);
    assert_eq!(
        sts,
        std::fs::read_to_string(dir.join("header-string-to-sign.txt")).unwrap()
    );
    let key =
        aws_sigv4::sign::v4::generate_signing_key(SECRET, signed_at(), "us-east-1", "service");
    assert_eq!(
        aws_sigv4::sign::v4::calculate_signature(key, sts.as_bytes()),
        std::fs::read_to_string(dir.join("header-signature.txt"))
            .unwrap()
            .trim()
    );
}

fn vector(name: &str, form: &str) -> Parsed {
    let dir = suite().join(name);
    parse_request(&std::fs::read_to_string(dir.join(format!("{form}-signed-request.txt"))).unwrap())
}

fn verify_err(p: &Parsed, store: &CredentialStore, now: SystemTime) -> SigV4Error {
    verify(&p.request(), store, SCOPE, now).unwrap_err()
}

#[test]
fn refusals_answer_with_ec2_codes() {
    let active = store("Active");
    let now = signed_at();

    let wrong = {
        let json = serde_json::json!({"AccessKey": {"UserName": "alice", "AccessKeyId": "AKIDEXAMPLE",
            "Status": "Active", "SecretAccessKey": "not-the-secret"}});
        CredentialStore::from_json(json.to_string().as_bytes()).unwrap()
    };
    for form in ["header", "query"] {
        let p = vector("get-vanilla", form);
        assert_eq!(verify_err(&p, &wrong, now), SigV4Error::Mismatch);
        assert_eq!(
            verify_err(&p, &store("Inactive"), now),
            SigV4Error::UnknownKey
        );
        assert_eq!(
            verify_err(&p, &CredentialStore::empty(), now),
            SigV4Error::UnknownKey
        );
        let e = verify(
            &p.request(),
            &active,
            Expected {
                region: "eu-west-1",
                service: "service",
            },
            now,
        )
        .unwrap_err();
        assert_eq!(e.code(), "AuthFailure");
        let e = verify(
            &p.request(),
            &active,
            Expected {
                region: "us-east-1",
                service: "ec2",
            },
            now,
        )
        .unwrap_err();
        assert_eq!(e.code(), "AuthFailure");
        // Too far ahead of the clock.
        let early = now - Duration::from_secs(MAX_SKEW_SECS + 1);
        assert_eq!(verify_err(&p, &active, early), SigV4Error::Expired);
    }
    // The header form lives 5 minutes; the presigned form X-Amz-Expires.
    let p = vector("get-vanilla", "header");
    assert!(verify(&p.request(), &active, SCOPE, now + Duration::from_secs(300)).is_ok());
    let late = now + Duration::from_secs(MAX_SKEW_SECS + 1);
    assert_eq!(verify_err(&p, &active, late), SigV4Error::Expired);
    let q = vector("get-vanilla", "query");
    assert!(
        verify(
            &q.request(),
            &active,
            SCOPE,
            now + Duration::from_secs(3600)
        )
        .is_ok()
    );
    let after = now + Duration::from_secs(3601);
    assert_eq!(verify_err(&q, &active, after), SigV4Error::Expired);
    assert_eq!(SigV4Error::Expired.code(), "RequestExpired");

    // A tampered body, a tampered signed header, a tampered query.
    let mut body = vector("post-x-www-form-urlencoded", "header");
    body.body = b"Param1=value2".to_vec();
    assert_eq!(verify_err(&body, &active, now), SigV4Error::Mismatch);
    let mut hdr = vector("get-header-value-trim", "header");
    for (k, v) in &mut hdr.headers.0 {
        if k == "my-header1" {
            *v = "other".into();
        }
    }
    assert_eq!(verify_err(&hdr, &active, now), SigV4Error::Mismatch);
    let mut query = vector("get-vanilla-query-order-key-case", "header");
    query.target = query.target.replace("value2", "value3");
    assert_ne!(
        query.target,
        vector("get-vanilla-query-order-key-case", "header").target
    );
    assert_eq!(verify_err(&query, &active, now), SigV4Error::Mismatch);
    let mut method = vector("get-vanilla", "header");
    method.method = "POST".into();
    assert_eq!(verify_err(&method, &active, now), SigV4Error::Mismatch);
    let mut sig = vector("get-vanilla", "query");
    sig.target = sig.target.replace("X-Amz-Signature=e", "X-Amz-Signature=f");
    assert_eq!(verify_err(&sig, &active, now), SigV4Error::Mismatch);
    // A longer validity than was signed.
    let mut longer = vector("get-vanilla", "query");
    longer.target = longer
        .target
        .replace("X-Amz-Expires=3600", "X-Amz-Expires=7200");
    assert_eq!(verify_err(&longer, &active, now), SigV4Error::Mismatch);
    // A replayed header-form request under a fresh, unsigned date.
    let mut redated = vector("get-vanilla", "header");
    for (k, v) in &mut redated.headers.0 {
        if k == "x-amz-date" {
            *v = "20150830T123700Z".into();
        }
    }
    assert_ne!(
        verify(
            &redated.request(),
            &active,
            SCOPE,
            now + Duration::from_secs(60)
        )
        .map(|_| ()),
        Ok(())
    );

    // Temporary credentials are refused until iamgate issues them.
    for (name, form) in [
        ("get-vanilla-with-session-token", "header"),
        ("get-vanilla-with-session-token", "query"),
        ("post-sts-header-after", "header"),
    ] {
        let p = vector(name, form);
        let e = verify_err(&p, &active, now);
        assert_eq!(e, SigV4Error::SecurityToken, "{name} {form}");
        assert_eq!(e.code(), "InvalidClientTokenId");
    }

    // Unsigned, both forms at once, malformed header.
    let mut unsigned = vector("get-vanilla", "header");
    unsigned.headers.0.retain(|(k, _)| k != "authorization");
    assert_eq!(verify_err(&unsigned, &active, now), SigV4Error::Unsigned);
    let q = vector("get-vanilla", "query");
    let mut both = vector("get-vanilla", "header");
    both.target = q.target.clone();
    assert_eq!(
        verify_err(&both, &active, now).code(),
        "IncompleteSignature"
    );
    for bad in [
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service, SignedHeaders=host;x-amz-date, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=x-amz-date;host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=00, Signature=01",
        "AWS4-ECDSA-P256-SHA256 Credential=AKIDEXAMPLE/20150830/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
    ] {
        let mut p = vector("get-vanilla", "header");
        for (k, v) in &mut p.headers.0 {
            if k == "authorization" {
                *v = bad.into();
            }
        }
        assert_eq!(
            verify_err(&p, &active, now).code(),
            "IncompleteSignature",
            "{bad}"
        );
    }
}

/// The signature `aws-sigv4`'s signer (the AWS SDK for Rust's) makes for
/// an EC2 Query API call verifies, and one byte changed in the body does
/// not.
#[test]
fn signatures_made_by_the_sdk_signer_verify() {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let creds = aws_credential_types::Credentials::new("AKIDEXAMPLE", SECRET, None, None, "test");
    let identity = creds.into();
    let now = SystemTime::now();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("ec2")
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let body = b"Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-0123456789abcdef0";
    let headers = [
        (
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        ),
        ("host", "ec2.us-east-1.amazonaws.com"),
    ];
    let signable = SignableRequest::new(
        "POST",
        "https://ec2.us-east-1.amazonaws.com/",
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut all: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    for (k, v) in instructions.headers() {
        all.push((k.to_ascii_lowercase(), v.to_owned()));
    }
    let mut parsed = Parsed {
        method: "POST".into(),
        target: "/".into(),
        host: "ec2.us-east-1.amazonaws.com".into(),
        headers: TestHeaders(all),
        body: body.to_vec(),
    };
    let store = store("Active");
    let ec2 = Expected {
        region: "us-east-1",
        service: "ec2",
    };
    assert!(verify(&parsed.request(), &store, ec2, now).is_ok());
    // Warm cache: the same again.
    assert!(verify(&parsed.request(), &store, ec2, now).is_ok());
    parsed.body =
        b"Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-0123456789abcdef1".to_vec();
    assert_eq!(
        verify(&parsed.request(), &store, ec2, now).unwrap_err(),
        SigV4Error::Mismatch
    );
}

#[test]
fn errors_never_carry_the_secret() {
    let all = [
        SigV4Error::Unsigned,
        SigV4Error::Incomplete("x"),
        SigV4Error::Scope("y".into()),
        SigV4Error::Expired,
        SigV4Error::SecurityToken,
        SigV4Error::UnknownKey,
        SigV4Error::Mismatch,
    ];
    for e in all {
        let text = format!("{e} {e:?}");
        assert!(!text.contains(SECRET));
        assert!(matches!(e.status(), 400 | 401 | 403));
    }
}

/// Signs a DescribeInstances request with session credentials through the
/// SDK signer (token in the `X-Amz-Security-Token` header).
fn sdk_signed_with_session(
    creds: &crate::identity::IssuedCredentials,
    at: SystemTime,
    token: &str,
) -> Parsed {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let c = aws_credential_types::Credentials::new(
        &creds.access_key_id,
        &creds.secret_access_key,
        Some(token.to_owned()),
        None,
        "test",
    );
    let identity = c.into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("ec2")
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let body = b"Action=DescribeInstances&Version=2016-11-15";
    let headers = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("host", "ec2.us-east-1.amazonaws.com"),
    ];
    let signable = SignableRequest::new(
        "POST",
        "https://ec2.us-east-1.amazonaws.com/",
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut all: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    for (k, v) in instructions.headers() {
        all.push((k.to_ascii_lowercase(), v.to_owned()));
    }
    Parsed {
        method: "POST".into(),
        target: "/".into(),
        host: "ec2.us-east-1.amazonaws.com".into(),
        headers: TestHeaders(all),
        body: body.to_vec(),
    }
}

/// Issue 13: temporary credentials verify through the same SigV4 path
/// with their token, on any holder of the session key; an expired session
/// is `RequestExpired` (EC2) / `ExpiredToken` (STS), an altered or foreign
/// token `InvalidClientTokenId`, and a token is refused where sessions are
/// not served.
#[test]
fn session_credentials_verify_until_they_expire() {
    use crate::identity::session::SessionKeys;
    let keys =
        SessionKeys::parse("k1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
            .unwrap();
    let issued_at = SystemTime::now();
    let issued = crate::identity::session::tests_support::claims_at(issued_at, 900);
    let creds = keys.issue(issued).unwrap();
    let store = CredentialStore::empty();
    let ec2 = Expected {
        region: "us-east-1",
        service: "ec2",
    };
    let at = issued_at + Duration::from_secs(60);
    let p = sdk_signed_with_session(&creds, at, &creds.session_token);
    match verify_caller(&p.request(), &store, Some(&keys), ec2, at).unwrap() {
        Caller::Session(c) => {
            assert_eq!(c.access_key_id, creds.access_key_id);
            assert_eq!(c.session_name, "alice");
        }
        Caller::Key(_) => panic!("a session signed"),
    }
    // Without session keys (or through `verify`) a token is refused.
    assert_eq!(
        verify(&p.request(), &store, ec2, at).unwrap_err(),
        SigV4Error::SecurityToken
    );
    assert_eq!(
        verify_caller(&p.request(), &store, None, ec2, at).unwrap_err(),
        SigV4Error::SecurityToken
    );
    // Signed correctly, after the session's expiry.
    let late = issued_at + Duration::from_secs(901);
    let p = sdk_signed_with_session(&creds, late, &creds.session_token);
    let e = verify_caller(&p.request(), &store, Some(&keys), ec2, late).unwrap_err();
    assert_eq!(e, SigV4Error::TokenExpired);
    assert_eq!((e.code(), e.sts_code()), ("RequestExpired", "ExpiredToken"));
    // Another session's token with this key id, or an altered token.
    let other = keys
        .issue(crate::identity::session::tests_support::claims_at(
            issued_at, 900,
        ))
        .unwrap();
    let mut altered = creds.session_token.clone().into_bytes();
    let last = altered.len() - 2;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    for token in [other.session_token.as_str(), altered.as_str()] {
        let p = sdk_signed_with_session(&creds, at, token);
        let e = verify_caller(&p.request(), &store, Some(&keys), ec2, at).unwrap_err();
        assert_eq!(e, SigV4Error::SecurityToken);
        assert_eq!(e.code(), "InvalidClientTokenId");
    }
    // The right token with a wrong secret.
    let wrong = crate::identity::IssuedCredentials {
        access_key_id: creds.access_key_id.clone(),
        secret_access_key: other.secret_access_key.clone(),
        session_token: creds.session_token.clone(),
    };
    let p = sdk_signed_with_session(&wrong, at, &creds.session_token);
    assert_eq!(
        verify_caller(&p.request(), &store, Some(&keys), ec2, at).unwrap_err(),
        SigV4Error::Mismatch
    );
}

/// Issue 13: a presigned URL made with session credentials carries the
/// token as the `X-Amz-Security-Token` query parameter (signed with the
/// rest of the query): accepted while the session lasts, refused as
/// expired after it, and refused when the token is swapped.
#[test]
fn presigned_session_urls_verify() {
    use crate::identity::session::SessionKeys;
    use aws_sigv4::http_request::{
        SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
    };
    let keys =
        SessionKeys::parse("k1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
            .unwrap();
    let issued_at = SystemTime::now();
    let creds = keys
        .issue(crate::identity::session::tests_support::claims_at(
            issued_at, 900,
        ))
        .unwrap();
    let presign = |at: SystemTime| -> Parsed {
        let c = aws_credential_types::Credentials::new(
            &creds.access_key_id,
            &creds.secret_access_key,
            Some(creds.session_token.clone()),
            None,
            "test",
        );
        let identity = c.into();
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_secs(3600));
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("ec2")
            .time(at)
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let url =
            "https://ec2.us-east-1.amazonaws.com/?Action=DescribeInstances&Version=2016-11-15";
        let headers = [("host", "ec2.us-east-1.amazonaws.com")];
        let signable = SignableRequest::new(
            "GET",
            url,
            headers.iter().copied(),
            SignableBody::Bytes(b""),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let mut target = "/?Action=DescribeInstances&Version=2016-11-15".to_owned();
        for (k, v) in instructions.params() {
            target.push('&');
            target.push_str(k);
            target.push('=');
            target.push_str(
                &percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
                    .to_string(),
            );
        }
        assert!(target.contains("X-Amz-Security-Token="));
        Parsed {
            method: "GET".into(),
            target,
            host: "ec2.us-east-1.amazonaws.com".into(),
            headers: TestHeaders(vec![("host".into(), "ec2.us-east-1.amazonaws.com".into())]),
            body: Vec::new(),
        }
    };
    let store = CredentialStore::empty();
    let ec2 = Expected {
        region: "us-east-1",
        service: "ec2",
    };
    let at = issued_at + Duration::from_secs(10);
    let p = presign(at);
    assert!(matches!(
        verify_caller(&p.request(), &store, Some(&keys), ec2, at),
        Ok(Caller::Session(_))
    ));
    let late = issued_at + Duration::from_secs(1000);
    let p = presign(late);
    assert_eq!(
        verify_caller(&p.request(), &store, Some(&keys), ec2, late).unwrap_err(),
        SigV4Error::TokenExpired
    );
    let mut p = presign(at);
    let other = keys
        .issue(crate::identity::session::tests_support::claims_at(
            issued_at, 900,
        ))
        .unwrap();
    let start = p.target.find("X-Amz-Security-Token=").unwrap() + "X-Amz-Security-Token=".len();
    let end = p.target[start..]
        .find('&')
        .map_or(p.target.len(), |e| start + e);
    p.target.replace_range(start..end, &other.session_token);
    assert_eq!(
        verify_caller(&p.request(), &store, Some(&keys), ec2, at).unwrap_err(),
        SigV4Error::SecurityToken
    );
}
