//! iamgate's own work per ext_authz `Check`, without the transport: what the
//! load benchmark (`benches/load/run.sh`) attributes to iamgate beyond a
//! null server, split into its steps so that each can be worked on.
//!
//! ```text
//! cargo bench --bench ext_authz
//! IAMGATE_BENCH_BUNDLE=DIR cargo bench --bench ext_authz   # e.g. the load bundle
//! ```
//!
//! Steps, on one CheckRequest shaped like the one Envoy sends (route
//! templates, 14 headers, source address): `decode_message` (prost into
//! envoy-types' `CheckRequest`, as the generated server and the load
//! benchmark's null server do: the baseline), `read` (the request read in
//! place by `wire::CheckView`, as iamgate does), `map` (templates, path,
//! principal, context keys),
//! `authorize` (the snapshot's decision), `answer` (the allow: ok_response
//! with headers and dynamic metadata, written to the wire as the server
//! does), `answer_message` (the same allow built as a prost `CheckResponse`
//! and encoded: how every other answer is made, and how the allow was) and
//! `all` (read + map + authorize + answer), and `sigv4_verify` (a SigV4
//! signature checked with a warm signing-key cache, what a SigV4 EC2 route
//! adds; `sigv4_verify_session` the same with an STS session's
//! temporary credentials, token opened). Without `IAMGATE_BENCH_BUNDLE` the built-in demo bundle is used,
//! with the demo's `bob` stopping a blue instance; with it, the request of
//! `benches/load/gen_bundle.py` (user-0042 of account 111111111111, team
//! red).

use std::collections::HashMap;
use std::hint::black_box;
use std::time::SystemTime;

use criterion::{Criterion, criterion_group, criterion_main};
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use iamgate::bundle::{self, Snapshot};
use iamgate::engine::Outcome;
use iamgate::server::ext_authz::service::{AllowAnswer, CheckAnswer};
use iamgate::server::ext_authz::wire::CheckView;
use iamgate::server::ext_authz::{mapping, response};
use iamgate::server::state::Decided;
use prost::Message as _;

/// Who asks, for which instance, and the instance's team tag.
struct Case {
    principal: &'static str,
    account: &'static str,
    instance: &'static str,
    team: &'static str,
    source_ip: &'static str,
}

const DEMO: Case = Case {
    principal: "arn:aws:iam::111111111111:user/engineering/bob",
    account: "111111111111",
    instance: "i-0abc",
    team: "blue",
    source_ip: "10.0.0.7",
};

const LOAD: Case = Case {
    principal: "arn:aws:iam::111111111111:user/eng/red/user-0042",
    account: "111111111111",
    instance: "i-0a1b2c3d4e5f60718",
    team: "red",
    source_ip: "10.20.30.40",
};

fn check_request(case: &Case) -> CheckRequest {
    let mut headers: HashMap<String, String> = [
        (":authority", "ec2.internal"),
        (":method", "POST"),
        (":scheme", "http"),
        ("accept", "*/*"),
        ("content-length", "0"),
        ("user-agent", "aws-cli/2.15.0"),
        ("x-forwarded-proto", "http"),
        ("x-request-id", "5c6f1b1e-7a0e-4d1e-9d63-0f6c2b1d9e11"),
        ("x-envoy-expected-rq-timeout-ms", "15000"),
        ("x-amz-date", "20261128T010203Z"),
        ("x-iamgate-principal", case.principal),
        ("x-instance-team", case.team),
        (
            "x-amzn-trace-id",
            "Root=1-5759e988-bd862e3fe1be46a994272793",
        ),
        ("accept-encoding", "gzip"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    headers.insert(
        ":path".to_owned(),
        format!("/instances/{}/Stop", case.instance),
    );
    let context_extensions: HashMap<String, String> = [
        ("iamgate.action", "ec2:{path.2}Instances".to_owned()),
        (
            "iamgate.resource",
            format!("arn:aws:ec2:us-east-1:{}:instance/{{path.1}}", case.account),
        ),
        (
            "iamgate.context.aws:RequestedRegion",
            "us-east-1".to_owned(),
        ),
        (
            "iamgate.context.ec2:ResourceTag/team",
            "{header.x-instance-team}".to_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let address = |ip: &str, port: u32| Address {
        address: Some(AddressKind::SocketAddress(SocketAddress {
            address: ip.to_owned(),
            port_specifier: Some(
                envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(
                    port,
                ),
            ),
            ..Default::default()
        })),
    };
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                address: Some(address(case.source_ip, 51234)),
                ..Default::default()
            }),
            destination: Some(Peer {
                address: Some(address("10.0.0.1", 8080)),
                ..Default::default()
            }),
            request: Some(Request {
                http: Some(HttpRequest {
                    id: "1234567890".to_owned(),
                    method: "POST".to_owned(),
                    path: format!("/instances/{}/Stop", case.instance),
                    host: "ec2.internal".to_owned(),
                    scheme: "http".to_owned(),
                    protocol: "HTTP/1.1".to_owned(),
                    headers,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            context_extensions,
            ..Default::default()
        }),
    }
}

fn setup() -> Result<(Snapshot, &'static Case), String> {
    match std::env::var_os("IAMGATE_BENCH_BUNDLE") {
        Some(dir) => bundle::load_path(std::path::Path::new(&dir))
            .map(|s| (s, &LOAD))
            .map_err(|e| format!("IAMGATE_BENCH_BUNDLE: {e}")),
        None => bundle::load_files(&bundle::demo::files(), "demo")
            .map(|s| (s, &DEMO))
            .map_err(|e| format!("demo bundle: {e}")),
    }
}

#[expect(
    clippy::expect_used,
    reason = "a benchmark that cannot set up must stop"
)]
fn ext_authz(c: &mut Criterion) {
    let (snapshot, case) = setup().expect("bench setup");
    let check = check_request(case);
    let bytes = check.encode_to_vec();
    // The bench plays the trusted hop that sets the principal header.
    let principals = mapping::PrincipalSource {
        header: Some("x-iamgate-principal"),
        ..Default::default()
    };
    let now = SystemTime::now();
    let view = CheckView::parse(&bytes).expect("the request reads");
    let mapped = mapping::map_request(&view, principals, now).expect("the request maps");
    let answer = snapshot.authorize(&mapped).expect("the request is decided");
    assert_eq!(
        answer.decision,
        Outcome::Allowed,
        "the bench request must be allowed: {}",
        answer.reason
    );
    let decided = Decided {
        answer,
        decision_id: "0123456789abcdef-000000000001".to_owned(),
    };

    let mut g = c.benchmark_group("ext_authz");
    g.bench_function("decode_message", |b| {
        b.iter(|| CheckRequest::decode(black_box(bytes.as_slice())))
    });
    g.bench_function("read", |b| {
        b.iter(|| CheckView::parse(black_box(bytes.as_slice())))
    });
    g.bench_function("map", |b| {
        b.iter(|| mapping::map_request(black_box(&view), principals, now))
    });
    g.bench_function("authorize", |b| {
        b.iter(|| snapshot.authorize(black_box(&mapped)))
    });
    let allow = CheckAnswer::Allowed(AllowAnswer {
        decision_id: decided.decision_id.clone(),
        principal: mapped.principal_arn.clone(),
        revision: decided.answer.revision.clone(),
    });
    g.bench_function("answer", |b| b.iter(|| black_box(&allow).encode_to_vec()));
    g.bench_function("answer_message", |b| {
        b.iter(|| response::decided(black_box(&decided), &mapped.principal_arn).encode_to_vec())
    });
    g.bench_function("all", |b| {
        b.iter(|| {
            let view = CheckView::parse(black_box(bytes.as_slice())).ok()?;
            let m = mapping::map_request(&view, principals, now).ok()?;
            let answer = snapshot.authorize(&m).ok()?;
            let allow = CheckAnswer::Allowed(AllowAnswer {
                decision_id: "0123456789abcdef-000000000001".to_owned(),
                principal: m.principal_arn,
                revision: answer.revision,
            });
            Some(allow.encode_to_vec())
        })
    });
    g.finish();
}

/// Headers of a signed request, as Envoy's header map gives them.
struct SignedHeaders(Vec<(String, String)>);

impl iamgate::identity::HeaderSource for SignedHeaders {
    fn header(
        &self,
        name: &str,
    ) -> Result<Option<std::borrow::Cow<'_, str>>, iamgate::identity::sigv4::AmbiguousHeader> {
        Ok(self
            .0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| std::borrow::Cow::Borrowed(v.as_str())))
    }
}

/// `sigv4_verify`: one EC2 Query API POST as botocore signs it (signed by
/// the `aws-sigv4` crate), verified with a warm signing-key cache: the
/// cost a SigV4 route adds before mapping and deciding.
#[expect(
    clippy::expect_used,
    reason = "a benchmark that cannot set up must stop"
)]
fn sigv4(c: &mut Criterion) {
    use iamgate::identity::{CredentialStore, Expected, SignedRequest, verify};
    const ID: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let store = CredentialStore::from_json(
        format!(
            r#"{{"AccessKey": {{"UserName": "bob", "AccessKeyId": "{ID}", "Status": "Active", "SecretAccessKey": "{SECRET}"}}}}"#
        )
        .as_bytes(),
    )
    .expect("credentials");
    let now = SystemTime::now();
    let identity = aws_credential_types::Credentials::new(ID, SECRET, None, None, "bench");
    let body = BENCH_BODY;
    let headers = signed_headers(identity, now);
    let request = SignedRequest {
        method: "POST",
        target: "/",
        host: "ec2.us-east-1.amazonaws.com",
        headers: &headers,
        body,
    };
    let scope = Expected {
        region: "us-east-1",
        service: "ec2",
    };
    verify(&request, &store, scope, now).expect("the bench signature verifies");
    c.benchmark_group("ext_authz")
        .bench_function("sigv4_verify", |b| {
            b.iter(|| verify(black_box(&request), &store, scope, now).is_ok())
        });
}

/// `sigv4_verify_session`: the same POST signed with temporary credentials
/// (an STS role session, `X-Amz-Security-Token` header): the token opened
/// (XChaCha20-Poly1305 and its claims read) and the signature checked with
/// a warm signing-key cache per key, date, region and service.
#[expect(
    clippy::expect_used,
    reason = "a benchmark that cannot set up must stop"
)]
fn sigv4_session(c: &mut Criterion) {
    use iamgate::identity::{
        CredentialStore, Expected, SessionClaims, SessionKeys, SignedRequest, verify_caller,
    };
    let keys =
        SessionKeys::parse("k1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
            .expect("session keys");
    let now = SystemTime::now();
    let issued = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let creds = keys
        .issue(SessionClaims {
            access_key_id: String::new(),
            principal_arn: "arn:aws:sts::111111111111:assumed-role/operator/bench".into(),
            role_arn: Some("arn:aws:iam::111111111111:role/operator".into()),
            unique_id: Some("AROADEMOOPERATOR0001".into()),
            session_name: "bench".into(),
            policy: None,
            policy_arns: Vec::new(),
            tags: vec![("team".into(), "blue".into())],
            transitive_tag_keys: Vec::new(),
            source_identity: None,
            issued,
            expires: issued + 3600,
            chained: false,
            mfa: false,
            ec2: None,
        })
        .expect("issued");
    let identity = aws_credential_types::Credentials::new(
        &creds.access_key_id,
        &creds.secret_access_key,
        Some(creds.session_token.clone()),
        None,
        "bench",
    );
    let body = BENCH_BODY;
    let headers = signed_headers(identity, now);
    let request = SignedRequest {
        method: "POST",
        target: "/",
        host: "ec2.us-east-1.amazonaws.com",
        headers: &headers,
        body,
    };
    let scope = Expected {
        region: "us-east-1",
        service: "ec2",
    };
    let store = CredentialStore::empty();
    verify_caller(&request, &store, Some(&keys), scope, now)
        .expect("the bench session signature verifies");
    c.benchmark_group("ext_authz")
        .bench_function("sigv4_verify_session", |b| {
            b.iter(|| verify_caller(black_box(&request), &store, Some(&keys), scope, now).is_ok())
        });
}

criterion_group!(benches, ext_authz, sigv4, sigv4_session);
criterion_main!(benches);

/// The EC2 Query body both SigV4 benches sign.
const BENCH_BODY: &[u8] =
    b"Action=StopInstances&Version=2016-11-15&InstanceId.1=i-0a111000000000001";

/// The headers of [`BENCH_BODY`] POSTed to EC2 in us-east-1, signed at
/// `now` with `credentials` by aws-sigv4 (as the AWS SDKs sign).
#[expect(
    clippy::expect_used,
    reason = "a bench: a request that cannot be signed is a broken bench, not a measurement"
)]
fn signed_headers(
    credentials: aws_credential_types::Credentials,
    now: SystemTime,
) -> SignedHeaders {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let identity = credentials.into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("ec2")
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .expect("signing params")
        .into();
    let mut headers = vec![
        (
            "content-type".to_owned(),
            "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
        ),
        ("host".to_owned(), "ec2.us-east-1.amazonaws.com".to_owned()),
    ];
    let signable = SignableRequest::new(
        "POST",
        "https://ec2.us-east-1.amazonaws.com/",
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(BENCH_BODY),
    )
    .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("signed").into_parts();
    for (k, v) in instructions.headers() {
        headers.push((k.to_ascii_lowercase(), v.to_owned()));
    }
    SignedHeaders(headers)
}
