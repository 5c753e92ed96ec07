//! Fuzzes the generic ext_authz mapping: bytes → `CheckRequest` (read off
//! the wire, as the server does) → `map_request`, with every identity
//! source configured. It must never panic, and:
//! - a refusal is typed: only the route's templates and extensions are
//!   configuration errors (→ `error_response`); every other refusal is a
//!   denial (4xx `denied_response`), never Envoy's failure mode;
//! - a mapped request keeps the structure its templates give it: the action
//!   holds exactly the template's one `:`, the resource is `*` or an ARN
//!   with exactly the template's `:`s, and the principal comes from a
//!   configured source.
//!
//! Half the inputs build a `CheckRequest` from fragments that exercise the
//! mapping's rules (separators, encodings, matrix parameters, identities);
//! the rest are taken as an encoded `CheckRequest` as they are.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use envoy_types::pb::envoy::config::core::v3::Metadata;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{Struct, Value};
use iamgate::server::config::{JwtMapping, UriSanMapping};
use iamgate::server::ext_authz::mapping::{
    ACTION_KEY, JWT_AUTHN_NAMESPACE, MappingError, PrincipalSource, RESOURCE_KEY, map_request,
};
use iamgate::server::ext_authz::response;
use iamgate::server::ext_authz::wire::CheckView;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

const SEGMENTS: &[&str] = &[
    "instances",
    "i-0abc",
    "i-0prod",
    "Start",
    "Terminate",
    "",
    ".",
    "..",
    "%2E%2E",
    "%2F",
    "%2f",
    "%5C",
    "\\",
    "%20",
    "a%20b",
    "%09",
    "%00",
    "%7F",
    "%C2%A0",
    ";jsessionid=x",
    "i-0prod;jsessionid=x",
    "%3B",
    "a:b",
    "%3A",
    "*",
    "%2A",
    "?",
    "%3F",
    "caf%C3%A9",
    "%",
    "%4",
    "%zz",
    "%FF",
    "+",
    "a+b",
    "~user",
    "#",
    "x#y",
];
const VALUES: &[&str] = &[
    "us-east-1",
    "us-east-1:111111111111:instance/i-0dev:",
    "eu-west-1",
    "a/b",
    "*",
    "?",
    "",
    " ",
    "a b",
    "x,y",
    "blue",
    "\u{7f}",
    "é",
    "i-0abc",
    ":",
    "/",
    "us-east-1/x",
];
const ACTIONS: &[&str] = &[
    "ec2:{path.2}Instances",
    "ec2:{path.3}Instances",
    "{path.0}:{path.1}",
    "ec2:{header.x-action}",
    "ec2:{query.Action}",
    "ec2:{method}",
    "{header.x-action}",
    "ec2:{path.1}:x",
    "ec2:{path.1+}",
    "ec2:X",
    "",
    "ec2:{",
    "ec2:}",
    "ec2:{{x}}",
];
const RESOURCES: &[&str] = &[
    "arn:aws:ec2:us-east-1:111111111111:instance/{path.1}",
    "arn:aws:ec2:{header.x-region}:111111111111:instance/{path.2}",
    "arn:{header.x-partition}:{path.0}:{query.region}:{header.x-account}:instance/{query.id}",
    "arn:aws:s3:::{path.0}/{path.1+}",
    "arn:aws:logs:us-east-1:1:log-group:{header.x-group}:*",
    "arn:aws:ec2:{path.1+}::instance/x",
    "arn:aws:ec2:{header.x-region}",
    "instance/{path.1}",
    "{header.x-resource}",
    "*",
    "",
    "arn:aws:ec2:::{host}",
];
const HEADERS: &[&str] = &[
    "x-iamgate-principal",
    "x-region",
    "x-partition",
    "x-account",
    "x-action",
    "x-group",
    "x-resource",
    "x-team",
    "traceparent",
];
const PEERS: &[&str] = &[
    "",
    "spiffe://example.org/ns/ops/sa/ops-automation",
    "spiffe://example.org/ns/ops/sa/",
    "spiffe://example.org/ns/ops/sa/a:b",
    "spiffe://other.org/x",
    "spiffe://example.org/ns/ops/sa/a/b",
];

fn pick<'a>(u: &mut Unstructured<'a>, from: &[&'a str]) -> Result<&'a str> {
    if u.ratio(1, 8)? {
        u.arbitrary()
    } else {
        u.choose(from).copied()
    }
}

fn path(u: &mut Unstructured<'_>) -> Result<String> {
    let mut p = String::new();
    for _ in 0..u.int_in_range(0..=5)? {
        p.push('/');
        p.push_str(pick(u, SEGMENTS)?);
    }
    if p.is_empty() || u.ratio(1, 16)? {
        p.insert_str(0, pick(u, &["/", "*", "http://h", ""])?);
    }
    if u.ratio(1, 3)? {
        p.push('?');
        for i in 0..u.int_in_range(0..=3)? {
            if i > 0 {
                p.push_str(pick(u, &["&", ";", "&&"])?);
            }
            p.push_str(pick(u, &["id", "region", "Action", "x", ""])?);
            p.push('=');
            p.push_str(pick(u, &[VALUES, SEGMENTS].concat())?);
        }
    }
    Ok(p)
}

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_owned())),
    }
}

fn object(fields: Vec<(String, Value)>) -> Struct {
    Struct {
        fields: fields.into_iter().collect(),
    }
}

fn jwt_metadata(u: &mut Unstructured<'_>) -> Result<Option<Metadata>> {
    if u.ratio(1, 2)? {
        return Ok(None);
    }
    let claim = match u.int_in_range(0..=3)? {
        0 => string(pick(
            u,
            &["engineering/bob", "alice", "arn:aws:iam::1:root", "a b", ""],
        )?),
        1 => Value {
            kind: Some(Kind::NumberValue(7.0)),
        },
        2 => Value::default(),
        _ => Value {
            kind: Some(Kind::StructValue(object(vec![("sub".into(), string("x"))]))),
        },
    };
    let name = pick(u, &["sub", "role", "other"])?.to_owned();
    let payload = Value {
        kind: Some(Kind::StructValue(object(vec![(name, claim)]))),
    };
    let key = pick(u, &["corp", "ci", "other"])?.to_owned();
    Ok(Some(Metadata {
        filter_metadata: [(JWT_AUTHN_NAMESPACE.to_owned(), object(vec![(key, payload)]))].into(),
        ..Default::default()
    }))
}

fn build(u: &mut Unstructured<'_>) -> Result<CheckRequest> {
    let mut headers = std::collections::HashMap::new();
    for _ in 0..u.int_in_range(0..=4)? {
        headers.insert(pick(u, HEADERS)?.to_owned(), pick(u, VALUES)?.to_owned());
    }
    let mut extensions = std::collections::HashMap::new();
    if !u.ratio(1, 16)? {
        extensions.insert(ACTION_KEY.to_owned(), pick(u, ACTIONS)?.to_owned());
    }
    if !u.ratio(1, 16)? {
        extensions.insert(RESOURCE_KEY.to_owned(), pick(u, RESOURCES)?.to_owned());
    }
    for _ in 0..u.int_in_range(0..=2)? {
        let key = pick(
            u,
            &[
                "iamgate.path.allow_params",
                "iamgate.path.allow_spaces",
                "iamgate.context.aws:RequestedRegion",
                "iamgate.context.",
                "iamgate.contxt.x",
                "iamgate.mapping",
                "other",
            ],
        )?;
        let value = pick(
            u,
            &[
                "true",
                "false",
                "yes",
                "{header.x-region}",
                "{path.0+}",
                "{",
            ],
        )?;
        extensions.insert(key.to_owned(), value.to_owned());
    }
    Ok(CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                principal: pick(u, PEERS)?.to_owned(),
                ..Default::default()
            }),
            request: Some(Request {
                time: None,
                http: Some(HttpRequest {
                    method: pick(u, &["POST", "GET", ""])?.to_owned(),
                    path: path(u)?,
                    host: pick(u, &["api.example.com", "h:8443", ""])?.to_owned(),
                    scheme: "https".to_owned(),
                    headers,
                    ..Default::default()
                }),
            }),
            context_extensions: extensions,
            metadata_context: jwt_metadata(u)?,
            ..Default::default()
        }),
    })
}

/// The `:`s a template writes itself (outside placeholders).
fn literal_colons(template: &str) -> usize {
    let (mut n, mut rest) = (0, template);
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("{{") || rest.starts_with("}}") {
            rest = &rest[2..];
            continue;
        }
        if c == '{' {
            match rest.find('}') {
                Some(end) => rest = &rest[end + 1..],
                None => break,
            }
            continue;
        }
        if c == ':' {
            n += 1;
        }
        rest = &rest[c.len_utf8()..];
    }
    n
}

fn check(bytes: &[u8], header: bool) {
    let sans = [UriSanMapping {
        prefix: "spiffe://example.org/ns/ops/sa/".to_owned(),
        template: "arn:aws:sts::111111111111:assumed-role/{rest}/mesh".to_owned(),
    }];
    let jwts: Vec<JwtMapping> = [
        "corp:sub=arn:aws:iam::111111111111:user/{claim}",
        "ci:role=arn:aws:sts::111111111111:assumed-role/{claim}/ci",
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect();
    let source = PrincipalSource {
        uri_sans: &sans,
        jwts: &jwts,
        header: header.then_some("x-iamgate-principal"),
    };
    let Ok(view) = CheckView::parse_with(bytes, &source.metadata_paths()) else {
        return;
    };
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    match map_request(&view, source, now) {
        Ok(r) => {
            let action = view.extension(ACTION_KEY).unwrap_or_default();
            let resource = view.extension(RESOURCE_KEY).unwrap_or_default();
            assert_eq!(r.action.matches(':').count(), 1, "{action} → {}", r.action);
            assert_eq!(literal_colons(action), 1, "{action}");
            if resource == "*" {
                assert_eq!(r.resource, "*");
            } else {
                assert!(
                    r.resource.starts_with("arn:"),
                    "{resource} → {}",
                    r.resource
                );
                assert_eq!(
                    r.resource.matches(':').count(),
                    literal_colons(resource),
                    "{resource} → {}",
                    r.resource
                );
            }
            for c in ['*', '?'] {
                assert_eq!(
                    r.resource.matches(c).count(),
                    resource.matches(c).count(),
                    "{resource} → {}",
                    r.resource
                );
            }
            assert!(
                r.principal_arn
                    .starts_with("arn:aws:sts::111111111111:assumed-role/")
                    || r.principal_arn
                        .starts_with("arn:aws:iam::111111111111:user/")
                    || header,
                "{}",
                r.principal_arn
            );
        }
        Err(e) => {
            let config = matches!(
                e,
                MappingError::MissingTemplate(_) | MappingError::BadTemplate { .. }
            );
            assert_eq!(e.is_config(), config, "{e}");
            let err = e.into_serve_error();
            assert_eq!(response::is_failure(&err), config, "{err}");
            let _ = response::refused(&err);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(mode) = u.arbitrary::<u8>() else {
        return;
    };
    let header = mode & 1 == 1;
    if mode & 2 == 0 {
        check(u.take_rest(), header);
    } else if let Ok(c) = build(&mut u) {
        check(&c.encode_to_vec(), header);
    }
});
