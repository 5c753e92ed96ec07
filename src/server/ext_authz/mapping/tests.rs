//! The generic mapping's tests: templates, path and query decoding,
//! principals from each identity source, request keys.

use super::request_keys::*;
use super::*;
use envoy_types::pb::envoy::config::core::v3::Address as EnvoyAddress;
use envoy_types::pb::envoy::config::core::v3::HeaderValue;
use envoy_types::pb::envoy::config::core::v3::address::Address;
use envoy_types::pb::envoy::config::core::v3::{HeaderMap, SocketAddress};
use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{Peer, Request};
use envoy_types::pb::google::protobuf::{Struct as ProtoStruct, Value as ProtoValue};
use prost::Message as _;

use crate::policy::variables::ValueRef;

const BOB: &str = "arn:aws:iam::111111111111:user/engineering/bob";

fn check(path: &str, headers: &[(&str, &str)], ext: &[(&str, &str)]) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                address: Some(EnvoyAddress {
                    address: Some(Address::SocketAddress(SocketAddress {
                        address: "10.1.2.3".to_owned(),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            }),
            request: Some(Request {
                time: None,
                http: Some(HttpRequest {
                    method: "POST".to_owned(),
                    path: path.to_owned(),
                    host: "api.example.com".to_owned(),
                    scheme: "https".to_owned(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                    ..Default::default()
                }),
            }),
            context_extensions: ext
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Default::default()
        }),
    }
}

const ROUTE: &[(&str, &str)] = &[
    ("iamgate.action", "ec2:{path.2}Instances"),
    (
        "iamgate.resource",
        "arn:aws:ec2:us-east-1:111111111111:instance/{path.1}",
    ),
    ("iamgate.context.ec2:ResourceTag/team", "{header.x-team}"),
    ("iamgate.context.aws:RequestedRegion", "us-east-1"),
];

/// Trusts the principal header (tests of templates and context).
fn src() -> PrincipalSource<'static> {
    PrincipalSource {
        header: Some("x-iamgate-principal"),
        ..Default::default()
    }
}

/// Maps a request as the server does: encoded, then read off the wire.
fn map_message(
    c: &CheckRequest,
    source: PrincipalSource<'_>,
    now: SystemTime,
) -> Result<AuthzRequest, MappingError> {
    let bytes = c.encode_to_vec();
    let view = CheckView::parse_with(&bytes, &source.metadata_paths()).unwrap();
    map_request(&view, source, now)
}

fn map(c: &CheckRequest) -> Result<AuthzRequest, MappingError> {
    map_message(
        c,
        src(),
        UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
    )
}

/// Issue 13: on a SigV4 route the verified signer is the principal and
/// no identity source (here the trusted header) is read; such a route
/// is never mapped from the identity sources, and a scope without
/// SigV4 is the route's error.
#[test]
fn sigv4_routes_take_the_signer_only() {
    let mut ext = ROUTE.to_vec();
    ext.extend([
        ("iamgate.auth", "sigv4"),
        ("iamgate.region", "us-east-1"),
        ("iamgate.service", "widgets"),
    ]);
    let c = check(
        "/instances/i-1/Describe",
        &[("x-iamgate-principal", BOB), ("x-team", "a")],
        &ext,
    );
    let bytes = c.encode_to_vec();
    let view = CheckView::parse_with(&bytes, &src().metadata_paths()).unwrap();
    let signer = "arn:aws:iam::111111111111:user/alice";
    let now = UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    let signed = Caller::Signed {
        arn: signer.to_owned(),
        user_id: Some("AIDAALICE".to_owned()),
        region: "eu-west-1".to_owned(),
    };
    let r = map_request_as(&view, signed.clone(), now).unwrap();
    assert_eq!(r.principal_arn, signer);
    assert_eq!(ctx(&r, "aws:userid").as_deref(), Some("AIDAALICE"));
    // The route's `iamgate.context.aws:RequestedRegion` (configuration)
    // still wins over the derived key.
    assert_eq!(ctx(&r, "aws:RequestedRegion").as_deref(), Some("us-east-1"));
    // The identity sources cannot map a SigV4 route.
    let e = map_request(&view, src(), now).unwrap_err();
    assert!(e.is_config(), "{e}");
    // A signer is never taken on a route that does not require SigV4.
    let plain = check(
        "/instances/i-1/Describe",
        &[("x-iamgate-principal", BOB), ("x-team", "a")],
        ROUTE,
    );
    let bytes = plain.encode_to_vec();
    let view = CheckView::parse_with(&bytes, &src().metadata_paths()).unwrap();
    assert!(map_request_as(&view, signed, now).unwrap_err().is_config());
    // A credential scope on a proxy route, or an unknown auth value.
    for extra in [
        [("iamgate.auth", "proxy"), ("iamgate.region", "us-east-1")],
        [("iamgate.auth", "SIGV4"), ("iamgate.context.k", "v")],
    ] {
        let mut ext = ROUTE.to_vec();
        ext.extend(extra);
        let c = check(
            "/instances/i-1/Describe",
            &[("x-iamgate-principal", BOB)],
            &ext,
        );
        assert!(map(&c).unwrap_err().is_config(), "{extra:?}");
    }
    // `proxy` is the default, spelled out.
    let mut ext = ROUTE.to_vec();
    ext.push(("iamgate.auth", "proxy"));
    let c = check(
        "/instances/i-1/Describe",
        &[("x-iamgate-principal", BOB), ("x-team", "a")],
        &ext,
    );
    assert_eq!(map(&c).unwrap().principal_arn, BOB);
}

fn ctx(r: &AuthzRequest, key: &str) -> Option<String> {
    let key = key.to_ascii_lowercase();
    match r.context.iter().find(|(k, _)| *k == key)?.1.value() {
        ValueRef::One(s) => Some(s.to_owned()),
        ValueRef::Many(v) => Some(v.join(",")),
    }
}

#[test]
fn maps_templates_principal_and_context() {
    let c = check(
        "/instances/i-0abc/Start?x=1",
        &[("x-iamgate-principal", BOB), ("x-team", "blue")],
        ROUTE,
    );
    let r = map(&c).unwrap();
    assert_eq!(r.principal_arn, BOB);
    assert_eq!(r.action, "ec2:StartInstances");
    assert_eq!(
        r.resource,
        "arn:aws:ec2:us-east-1:111111111111:instance/i-0abc"
    );
    assert_eq!(ctx(&r, "ec2:ResourceTag/team").as_deref(), Some("blue"));
    assert_eq!(ctx(&r, "aws:RequestedRegion").as_deref(), Some("us-east-1"));
    assert_eq!(ctx(&r, "aws:SourceIp").as_deref(), Some("10.1.2.3"));
    assert_eq!(ctx(&r, "aws:SecureTransport").as_deref(), Some("true"));
    assert_eq!(ctx(&r, "aws:EpochTime").as_deref(), Some("1700000000"));
    assert_eq!(
        ctx(&r, "aws:CurrentTime").as_deref(),
        Some("2023-11-14T22:13:20Z")
    );
}

#[test]
fn missing_or_bad_templates_are_config_errors() {
    let c = check("/a", &[("x-iamgate-principal", BOB)], &[]);
    let e = map(&c).unwrap_err();
    assert_eq!(e, MappingError::MissingTemplate(ACTION_KEY));
    assert!(e.is_config());
    assert!(matches!(e.into_serve_error(), ServeError::Internal(_)));

    let c = check(
        "/a",
        &[("x-iamgate-principal", BOB)],
        &[("iamgate.action", "ec2:{verb}"), ("iamgate.resource", "*")],
    );
    let e = map(&c).unwrap_err();
    assert!(e.is_config(), "{e}");
    assert!(
        e.to_string().contains("unknown placeholder `{verb}`"),
        "{e}"
    );

    // No principal on a misconfigured route: still the route's fault.
    let c = check("/a", &[], &[("iamgate.action", "ec2:X")]);
    assert!(map(&c).unwrap_err().is_config());
}

#[test]
fn ip_text_matches_display() {
    for ip in [
        "0.0.0.0",
        "10.20.30.40",
        "192.168.100.9",
        "255.255.255.255",
        "1.2.3.4",
        "::1",
        "2001:db8::7",
        "::ffff:10.0.0.1",
    ] {
        let ip: IpAddr = ip.parse().unwrap();
        assert_eq!(ip_text(ip), ip.to_string());
    }
}

#[test]
fn template_syntax() {
    let t = Template::parse("a{{b}}c{method}").unwrap();
    assert_eq!(
        t.parts.to_vec(),
        vec![
            Part::Lit("a{b}c".into()),
            Part::Value(Source::Method, Rule::Any)
        ]
    );
    for (bad, why) in [
        ("{", TemplateError::Unterminated(0)),
        ("}", TemplateError::UnmatchedClose(0)),
        ("{path.}", TemplateError::SegmentIndex("path.".into())),
        ("{path.x}", TemplateError::SegmentIndex("path.x".into())),
        (
            "{path.99999999999999999999}",
            TemplateError::SegmentIndexTooLarge("path.99999999999999999999".into()),
        ),
        ("{header.}", TemplateError::HeaderName("header.".into())),
        (
            "{header.a b}",
            TemplateError::HeaderName("header.a b".into()),
        ),
        ("{query.}", TemplateError::EmptyQueryName("query.".into())),
        ("{nope}", TemplateError::UnknownPlaceholder("nope".into())),
        ("x{method", TemplateError::Unterminated(1)),
    ] {
        assert_eq!(Template::parse(bad).err(), Some(why), "{bad}");
    }
    // The wording operators see, braces and all.
    assert_eq!(
        TemplateError::UnmatchedClose(3).to_string(),
        "unmatched `}` at byte 3 (write `}}` for a literal brace)"
    );
    assert_eq!(
        TemplateError::HeaderName("header.a b".into()).to_string(),
        "`{header.a b}`: not a header name"
    );
    assert_eq!(
        Template::parse("{header.X-Team}").unwrap().parts.to_vec(),
        vec![Part::Value(Source::Header("x-team".into()), Rule::Any)]
    );
}

#[test]
fn placeholders_render() {
    let c = check(
        "/v1/%7Euser/caf%C3%A9/a+b?name=J%C3%B6rg+M&empty=&dup=1&dup=2",
        &[("x-team", "blue")],
        &[],
    );
    let http = c
        .attributes
        .as_ref()
        .unwrap()
        .request
        .as_ref()
        .unwrap()
        .http
        .as_ref()
        .unwrap();
    let v = HttpView::new(http);
    let r = |s: &str| Template::parse(s).unwrap().render(&v);
    assert_eq!(r("{method} {host}").unwrap(), "POST api.example.com");
    assert_eq!(
        r("{path.0}|{path.1}|{path.2}|{path.3}").unwrap(),
        "v1|~user|café|a+b"
    );
    assert_eq!(r("{query.name}").unwrap(), "Jörg M");
    assert_eq!(r("{header.x-team}").unwrap(), "blue");
    assert_eq!(r("{path.4}").unwrap_err(), MappingError::NoSegment(4));
    assert_eq!(
        r("{query.empty}").unwrap_err(),
        MappingError::MissingQuery("empty".into())
    );
    assert_eq!(
        r("{query.none}").unwrap_err(),
        MappingError::MissingQuery("none".into())
    );
    assert_eq!(
        r("{query.dup}").unwrap_err(),
        MappingError::DuplicateQuery("dup".into())
    );
    assert_eq!(
        r("{header.x-none}").unwrap_err(),
        MappingError::MissingHeader("x-none".into())
    );
}

#[test]
fn path_splitting() {
    let strict = PathRules::default();
    assert_eq!(split_path("/", "/", strict).unwrap().to_vec(), vec![""]);
    assert_eq!(
        split_path("/a//b/", "/a//b/", strict).unwrap().to_vec(),
        vec!["a", "", "b", ""]
    );
    assert_eq!(
        split_path("/caf%C3%A9/%25", "", strict).unwrap().to_vec(),
        vec!["café", "%"]
    );
    // `+` is literal in paths.
    assert_eq!(
        split_path("/a+b", "", strict).unwrap().to_vec(),
        vec!["a+b"]
    );
}

#[test]
fn ambiguous_paths_are_refused() {
    for (path, why) in [
        ("/a%2Fb", "encoded `/`"),
        ("/a%2fb", "encoded `/`"),
        ("/a%5Cb", "backslash"),
        ("/a\\b", "backslash"),
        ("/a/../b", "dot segment"),
        ("/a/%2E%2E/b", "dot segment"),
        ("/a/./b", "dot segment"),
        ("/a%zz", "invalid percent-encoding"),
        ("/a%4", "invalid percent-encoding"),
        ("/a%", "invalid percent-encoding"),
        ("/a%00", "control character"),
        ("/a%FF", "invalid UTF-8"),
        ("http://h/a", "does not start with `/`"),
        ("*", "does not start with `/`"),
    ] {
        let e =
            split_path(path.split('?').next().unwrap(), path, PathRules::default()).unwrap_err();
        assert!(e.to_string().contains(why), "{path}: {e}");
    }
    // The refusal applies to any path placeholder, even an earlier segment.
    let c = check(
        "/instances/i-1/x%2Fy",
        &[("x-iamgate-principal", BOB)],
        &[
            ("iamgate.action", "ec2:X"),
            ("iamgate.resource", "arn:aws:ec2:::instance/{path.1}"),
        ],
    );
    let e = map(&c).unwrap_err();
    assert!(matches!(e, MappingError::Path(_)), "{e}");
    assert!(matches!(e.into_serve_error(), ServeError::BadRequest(_)));
    // Empty segments are never substituted.
    let c = check(
        "/instances//start",
        &[("x-iamgate-principal", BOB)],
        &[
            ("iamgate.action", "ec2:X"),
            ("iamgate.resource", "arn:aws:ec2:::instance/{path.1}"),
        ],
    );
    assert_eq!(map(&c).unwrap_err(), MappingError::EmptySegment(1));
    // A route that uses no path placeholder does not look at the path.
    let c = check(
        "/a%2Fb",
        &[("x-iamgate-principal", BOB)],
        &[("iamgate.action", "ec2:X"), ("iamgate.resource", "*")],
    );
    assert!(map(&c).is_ok());
}

#[test]
fn ambiguous_queries_are_refused() {
    assert!(split_query("a=1;b=2").is_err());
    assert!(split_query("a=%G1").is_err());
    assert!(split_query("a=%0A").is_err());
    assert_eq!(
        split_query("a=1&&b&c=x%3Dy").unwrap(),
        vec![
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), String::new()),
            ("c".to_owned(), "x=y".to_owned())
        ]
    );
}

#[test]
fn principal_sources() {
    // No principal at all.
    let c = check(
        "/a",
        &[],
        &[("iamgate.action", "ec2:X"), ("iamgate.resource", "*")],
    );
    assert!(matches!(
        map(&c).unwrap_err(),
        MappingError::NoPrincipal { .. }
    ));
    // Merged repeated headers are ambiguous.
    let c = check(
        "/a",
        &[(
            "x-iamgate-principal",
            "arn:aws:iam::1:user/a,arn:aws:iam::1:user/b",
        )],
        &[("iamgate.action", "ec2:X"), ("iamgate.resource", "*")],
    );
    assert!(matches!(
        map(&c).unwrap_err(),
        MappingError::AmbiguousPrincipal(_)
    ));

    // The header is trusted only when configured.
    let c = check(
        "/a",
        &[("x-iamgate-principal", "arn:aws:iam::111111111111:root")],
        &[("iamgate.action", "ec2:X"), ("iamgate.resource", "*")],
    );
    let e = map_message(&c, PrincipalSource::default(), SystemTime::now()).unwrap_err();
    assert!(matches!(e, MappingError::NoPrincipal { .. }), "{e}");
    assert!(e.to_string().contains("none is configured"), "{e}");
    assert!(matches!(
        e.into_serve_error(),
        ServeError::Unauthenticated(_)
    ));
}

const SPIFFE: &str = "spiffe://example.org/ns/ops/sa/";
const OPS: &str = "arn:aws:sts::111111111111:assumed-role/ops-automation/spiffe";

fn sans() -> Vec<UriSanMapping> {
    vec![UriSanMapping {
        prefix: SPIFFE.to_owned(),
        template: "arn:aws:sts::111111111111:assumed-role/{rest}/spiffe".to_owned(),
    }]
}

fn jwts() -> Vec<JwtMapping> {
    [
        "corp:sub=arn:aws:iam::111111111111:user/{claim}",
        "ci:role=arn:aws:sts::111111111111:assumed-role/{claim}/ci",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect()
}

fn set_peer(c: &mut CheckRequest, principal: &str) {
    c.attributes
        .as_mut()
        .unwrap()
        .source
        .as_mut()
        .unwrap()
        .principal = principal.to_owned();
}

fn string(s: &str) -> ProtoValue {
    ProtoValue {
        kind: Some(Kind::StringValue(s.to_owned())),
    }
}

fn object(fields: &[(&str, ProtoValue)]) -> ProtoStruct {
    ProtoStruct {
        fields: fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    }
}

/// Sets the `jwt_authn` metadata: payload key → claims.
fn set_jwt(c: &mut CheckRequest, payloads: &[(&str, ProtoValue)]) {
    c.attributes.as_mut().unwrap().metadata_context = Some(Metadata {
        filter_metadata: [(JWT_AUTHN_NAMESPACE.to_owned(), object(payloads))].into(),
        ..Default::default()
    });
}

fn payload(claims: &[(&str, ProtoValue)]) -> ProtoValue {
    ProtoValue {
        kind: Some(Kind::StructValue(object(claims))),
    }
}

#[test]
fn a_verified_peer_is_mapped_or_refused() {
    let (sans, jwts) = (sans(), jwts());
    let source = PrincipalSource {
        uri_sans: &sans,
        jwts: &jwts,
        header: Some("x-iamgate-principal"),
    };
    let mut c = check(
        "/a",
        &[("x-iamgate-principal", BOB)],
        &[("iamgate.action", "ec2:X"), ("iamgate.resource", "*")],
    );
    set_jwt(&mut c, &[("corp", payload(&[("sub", string("carol"))]))]);
    let principal = |c: &CheckRequest| map_message(c, source, SystemTime::now());
    // The certificate wins over a JWT and the header.
    set_peer(&mut c, &format!("{SPIFFE}ops-automation"));
    assert_eq!(principal(&c).unwrap().principal_arn, OPS);
    // A SAN that matches no prefix is refused, never re-identified by
    // the JWT or the header.
    set_peer(&mut c, "spiffe://other.org/x");
    let e = principal(&c).unwrap_err();
    assert!(matches!(e, MappingError::UnmappedIdentity(_)), "{e}");
    assert!(e.to_string().contains("spiffe://other.org/x"), "{e}");
    assert!(matches!(e.into_serve_error(), ServeError::Forbidden(_)));
    // So is a matching prefix with a remainder that is no IAM name.
    for rest in ["a:b", "", "a b", "a*"] {
        set_peer(&mut c, &format!("{SPIFFE}{rest}"));
        let e = principal(&c).unwrap_err();
        assert!(
            matches!(e, MappingError::UnmappedIdentity(_)),
            "{rest}: {e}"
        );
    }
    // Without URI SAN mappings the certificate is not an identity
    // source: the next one applies.
    set_peer(&mut c, "spiffe://other.org/x");
    let no_sans = PrincipalSource {
        uri_sans: &[],
        ..source
    };
    assert_eq!(
        map_message(&c, no_sans, SystemTime::now())
            .unwrap()
            .principal_arn,
        "arn:aws:iam::111111111111:user/carol"
    );
}

#[test]
fn verified_jwt_claims_are_mapped_or_refused() {
    let jwts = jwts();
    let source = PrincipalSource {
        jwts: &jwts,
        header: Some("x-iamgate-principal"),
        ..Default::default()
    };
    let with = |payloads: &[(&str, ProtoValue)]| {
        let mut c = check(
            "/a",
            &[("x-iamgate-principal", BOB)],
            &[("iamgate.action", "ec2:X"), ("iamgate.resource", "*")],
        );
        set_jwt(&mut c, payloads);
        map_message(&c, source, SystemTime::now())
    };
    let ok = |payloads: &[(&str, ProtoValue)]| with(payloads).unwrap().principal_arn;
    assert_eq!(
        ok(&[("corp", payload(&[("sub", string("engineering/bob"))]))]),
        BOB
    );
    assert_eq!(
        ok(&[("ci", payload(&[("role", string("deployer"))]))]),
        "arn:aws:sts::111111111111:assumed-role/deployer/ci"
    );
    // Mappings are tried in order; a payload under another key is no
    // identity, and then the header applies.
    assert_eq!(
        ok(&[
            ("ci", payload(&[("role", string("deployer"))])),
            ("corp", payload(&[("sub", string("alice"))]))
        ]),
        "arn:aws:iam::111111111111:user/alice"
    );
    assert_eq!(ok(&[("other", payload(&[("sub", string("alice"))]))]), BOB);
    // Two mappings of one payload: the first claim it holds.
    let two: Vec<JwtMapping> = [
        "corp:prod=arn:aws:iam::111111111111:user/{claim}",
        "corp:dev=arn:aws:iam::222222222222:user/{claim}",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let mut c = check(
        "/a",
        &[("x-iamgate-principal", BOB)],
        &[("iamgate.action", "ec2:X"), ("iamgate.resource", "*")],
    );
    set_jwt(&mut c, &[("corp", payload(&[("dev", string("dave"))]))]);
    let both = PrincipalSource {
        jwts: &two,
        ..source
    };
    assert_eq!(
        map_message(&c, both, SystemTime::now())
            .unwrap()
            .principal_arn,
        "arn:aws:iam::222222222222:user/dave"
    );
    // A verified payload without a usable claim is refused, never
    // re-identified by the header.
    for claims in [
        payload(&[]),
        payload(&[("sub", ProtoValue::default())]),
        payload(&[("sub", payload(&[("x", string("y"))]))]),
        payload(&[("sub", string(""))]),
        payload(&[("sub", string("arn:aws:iam::111111111111:root"))]),
        payload(&[("sub", string("bob smith"))]),
        string("not a payload"),
    ] {
        let e = with(&[("corp", claims.clone())]).unwrap_err();
        assert!(
            matches!(e, MappingError::UnmappedIdentity(_)),
            "{claims:?}: {e}"
        );
        assert!(matches!(e.into_serve_error(), ServeError::Forbidden(_)));
    }
    // Without the header, no payload is no principal.
    let jwt_only = PrincipalSource {
        header: None,
        ..source
    };
    let mut c = check(
        "/a",
        &[("x-iamgate-principal", BOB)],
        &[("iamgate.action", "ec2:X"), ("iamgate.resource", "*")],
    );
    set_jwt(&mut c, &[("other", payload(&[]))]);
    assert!(matches!(
        map_message(&c, jwt_only, SystemTime::now()).unwrap_err(),
        MappingError::NoPrincipal { .. }
    ));
    // A view read without the metadata paths sees no JWT (fails closed).
    set_jwt(&mut c, &[("corp", payload(&[("sub", string("alice"))]))]);
    let bytes = c.encode_to_vec();
    let view = CheckView::parse(&bytes).unwrap();
    assert!(matches!(
        map_request(&view, jwt_only, SystemTime::now()).unwrap_err(),
        MappingError::NoPrincipal { .. }
    ));
}

#[test]
fn decoded_and_wire_metadata_agree() {
    // The EC2 path reads the decoded message; the generic path the wire.
    let jwts = jwts();
    let source = PrincipalSource {
        jwts: &jwts,
        ..Default::default()
    };
    let mut c = check("/a", &[], &[]);
    set_jwt(
        &mut c,
        &[
            ("corp", payload(&[("sub", string("bob"))])),
            ("ci", payload(&[("role", ProtoValue::default())])),
        ],
    );
    let bytes = c.encode_to_vec();
    let view = CheckView::parse_with(&bytes, &source.metadata_paths()).unwrap();
    let decoded = Verified::from_message(c.attributes.as_ref().unwrap(), source);
    assert_eq!(Verified::from_view(&view).claims, decoded.claims);
    assert_eq!(
        decoded.claims.to_vec(),
        vec![MetadataValue::String("bob"), MetadataValue::Other]
    );
}

#[test]
fn action_and_resource_templates_must_give_the_structure() {
    for (role, src) in [
        (Role::Action, "ec2:{path.2}Instances"),
        (Role::Action, "{path.0}:{path.1}"),
        (Role::Resource, "*"),
        (
            Role::Resource,
            "arn:aws:ec2:us-east-1:111111111111:instance/{path.1}",
        ),
        (
            Role::Resource,
            "arn:{header.p}:ec2:{header.r}:{header.a}:instance/{path.1}",
        ),
        (Role::Resource, "arn:aws:s3:::bucket/{path.1+}"),
        (
            Role::Resource,
            "arn:aws:logs:us-east-1:1:log-group:{query.g}:*",
        ),
        (Role::Context, "{header.x}:{path.0+}"),
    ] {
        assert!(Template::parse_as(src, role).is_ok(), "{src}");
    }
    for (role, src, why) in [
        (Role::Action, "{header.x-action}", "SERVICE:ACTION"),
        (Role::Action, "ec2:{path.1}:x", "SERVICE:ACTION"),
        (Role::Action, "ec2:{path.1+}", "resource part"),
        (Role::Resource, "{header.x-resource}", "`*` or an ARN"),
        (Role::Resource, "instance/{path.1}", "`*` or an ARN"),
        (Role::Resource, "arn:aws:ec2:{header.x-region}", "five `:`"),
        (Role::Resource, "{{arn:aws:ec2:::x", "`*` or an ARN"),
        (
            Role::Resource,
            "arn:aws:ec2:{path.1+}::instance/x",
            "resource part",
        ),
    ] {
        let e = Template::parse_as(src, role).unwrap_err().to_string();
        assert!(e.contains(why), "{src}: {e}");
    }
    let t = Template::parse_as(
        "arn:aws:ec2:{header.x-region}:111111111111:instance/{path.1}",
        Role::Resource,
    )
    .unwrap();
    assert_eq!(
        t.parts.to_vec(),
        vec![
            Part::Lit("arn:aws:ec2:".into()),
            Part::Value(
                Source::Header("x-region".into()),
                Rule::Field("the ARN's region")
            ),
            Part::Lit(":111111111111:instance/".into()),
            Part::Value(Source::Path(1), Rule::Resource),
        ]
    );
}

/// A route whose resource takes its region from a header.
const REGIONAL: &[(&str, &str)] = &[
    ("iamgate.action", "ec2:{path.2}Instances"),
    (
        "iamgate.resource",
        "arn:aws:ec2:{header.x-region}:111111111111:instance/{path.1}",
    ),
    ("iamgate.context.aws:RequestedRegion", "{header.x-region}"),
];

#[test]
fn values_never_change_the_arn_structure() {
    let map_with = |path: &str, region: &str, ext: &[(&str, &str)]| {
        map(&check(
            path,
            &[("x-iamgate-principal", BOB), ("x-region", region)],
            ext,
        ))
    };
    let r = map_with("/instances/i-0prod/Terminate", "eu-west-1", REGIONAL).unwrap();
    assert_eq!(
        r.resource,
        "arn:aws:ec2:eu-west-1:111111111111:instance/i-0prod"
    );
    // Issue 11, item 2: a region that carries the rest of another ARN.
    let e = map_with(
        "/instances/i-0prod/Terminate",
        "us-east-1:111111111111:instance/i-0dev:",
        REGIONAL,
    )
    .unwrap_err();
    assert_eq!(
        e,
        MappingError::Value {
            placeholder: "{header.x-region}".into(),
            what: "the ARN's region",
            allowed: "only ASCII letters, digits and `-`",
        }
    );
    assert!(matches!(e.into_serve_error(), ServeError::BadRequest(_)));
    for region in ["us-east-1/x", "us east", "*", "us-east-1."] {
        assert!(
            matches!(
                map_with("/instances/i-1/Start", region, REGIONAL),
                Err(MappingError::Value { .. })
            ),
            "{region}"
        );
    }
    // The resource part: no separators or wildcards from a value.
    for (path, what) in [
        ("/instances/a:b/Start", "{path.1}"),
        ("/instances/*/Start", "{path.1}"),
        ("/instances/i%3F/Start", "{path.1}"),
        ("/instances/i-1/Sta:rt", "{path.2}"),
        ("/instances/i-1/Sta.rt", "{path.2}"),
    ] {
        let e = map_with(path, "eu-west-1", REGIONAL).unwrap_err();
        assert!(
            matches!(&e, MappingError::Value { placeholder, .. } if placeholder == what),
            "{path}: {e}"
        );
    }
    let header_resource = [
        ("iamgate.action", "ec2:DescribeInstances"),
        (
            "iamgate.resource",
            "arn:aws:ec2:us-east-1:111111111111:instance/{header.x-region}",
        ),
    ];
    assert!(matches!(
        map_with("/x", "i-1/../i-2", &header_resource),
        Err(MappingError::Value { .. })
    ));
    // Context values are text: anything goes (and is untrusted).
    let r = map_with(
        "/x",
        "a:b/c *",
        &[
            ("iamgate.action", "ec2:X"),
            ("iamgate.resource", "*"),
            ("iamgate.context.app:Region", "{header.x-region}"),
        ],
    )
    .unwrap();
    assert_eq!(ctx(&r, "app:Region").as_deref(), Some("a:b/c *"));
}

#[test]
fn path_rest_joins_canonical_segments() {
    let route = [
        ("iamgate.action", "s3:GetObject"),
        ("iamgate.resource", "arn:aws:s3:::{path.0}/{path.1+}"),
    ];
    let key = |path: &str| map(&check(path, &[("x-iamgate-principal", BOB)], &route));
    assert_eq!(
        key("/photos/2024/a%20b.jpg").unwrap_err(),
        MappingError::Path(
            "segment 2 contains whitespace (a route may allow it with `iamgate.path.allow_spaces`)"
                .into()
        )
    );
    assert_eq!(
        key("/photos/2024/cat.jpg").unwrap().resource,
        "arn:aws:s3:::photos/2024/cat.jpg"
    );
    assert_eq!(key("/photos").unwrap_err(), MappingError::NoSegment(1));
    assert_eq!(key("/photos/").unwrap_err(), MappingError::EmptySegment(1));
    assert_eq!(
        key("/photos/a//b").unwrap_err(),
        MappingError::EmptySegment(2)
    );
    assert_eq!(
        key("/photos/a/b/").unwrap_err(),
        MappingError::EmptySegment(3)
    );
    assert!(matches!(
        key("/photos/a/b:c").unwrap_err(),
        MappingError::Value { .. }
    ));
}

#[test]
fn matrix_parameters_and_whitespace_need_the_route_to_allow_them() {
    // Issue 11, item 6.
    let route = |extra: &[(&'static str, &'static str)]| {
        let mut ext = vec![
            ("iamgate.action", "ec2:{path.2}Instances"),
            (
                "iamgate.resource",
                "arn:aws:ec2:us-east-1:111111111111:instance/{path.1}",
            ),
        ];
        ext.extend_from_slice(extra);
        ext
    };
    let map_path = |path: &str, extra: &[(&'static str, &'static str)]| {
        map(&check(path, &[("x-iamgate-principal", BOB)], &route(extra)))
    };
    for (path, why) in [
        ("/instances/i-0prod;jsessionid=x/Terminate", "contains `;`"),
        ("/instances/i-0prod%3Bx/Terminate", "contains `;`"),
        ("/instances/i-0prod/Terminate;x", "contains `;`"),
        ("/instances/i-0prod%20/Terminate", "whitespace"),
        ("/instances/%C2%A0i-0prod/Terminate", "whitespace"),
        ("/instances/i-0prod%09/Terminate", "control character"),
        ("/instances/i-0prod%7F/Terminate", "control character"),
        // Anywhere in the path, even where no placeholder looks.
        ("/instances/i-0prod/Terminate/x;y", "contains `;`"),
    ] {
        let e = map_path(path, &[]).unwrap_err();
        assert!(
            matches!(&e, MappingError::Path(m) if m.contains(why)),
            "{path}: {e}"
        );
        assert!(matches!(e.into_serve_error(), ServeError::BadRequest(_)));
    }
    // A route may allow them; the resource part still refuses what
    // would change the ARN.
    let params = [("iamgate.path.allow_params", "true")];
    let r = map_path("/instances/i-0prod/Terminate/x;y", &params).unwrap();
    assert_eq!(r.action, "ec2:TerminateInstances");
    let r = map_path("/instances/i-0prod;v=1/Terminate", &params).unwrap();
    assert_eq!(
        r.resource,
        "arn:aws:ec2:us-east-1:111111111111:instance/i-0prod;v=1"
    );
    let spaces = [("iamgate.path.allow_spaces", "true")];
    assert!(map_path("/instances/i-0prod/Terminate/a%20b", &spaces).is_ok());
    assert!(matches!(
        map_path("/instances/i-0prod%20/Terminate", &spaces).unwrap_err(),
        MappingError::Value { .. }
    ));
    assert!(map_path("/instances/i-0prod%09/Terminate", &spaces).is_err());
    let off = [("iamgate.path.allow_params", "false")];
    assert!(map_path("/instances/i;x/Terminate", &off).is_err());
    // Anything but `true` or `false` is the route's error.
    let e = map_path(
        "/instances/i/Terminate",
        &[("iamgate.path.allow_params", "yes")],
    )
    .unwrap_err();
    assert!(e.is_config(), "{e}");
}

#[test]
fn only_the_route_causes_error_responses() {
    // Issue 11, item 5: everything a client can cause is a denial.
    use crate::server::ext_authz::response;
    use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
    let config = [
        MappingError::MissingTemplate(ACTION_KEY),
        MappingError::BadTemplate {
            key: "k".into(),
            message: "m".into(),
        },
    ];
    let client = [
        MappingError::NoHttpRequest,
        MappingError::NoPrincipal {
            sources: "s".into(),
        },
        MappingError::UnmappedIdentity("u".into()),
        MappingError::AmbiguousPrincipal("a".into()),
        MappingError::Value {
            placeholder: "p".into(),
            what: "w",
            allowed: "a",
        },
        MappingError::Path("p".into()),
        MappingError::NoSegment(1),
        MappingError::EmptySegment(1),
        MappingError::Query("q".into()),
        MappingError::MissingQuery("q".into()),
        MappingError::DuplicateQuery("q".into()),
        MappingError::MissingHeader("h".into()),
        MappingError::DuplicateHeader("h".into()),
        MappingError::HeaderEncoding("h".into()),
        MappingError::MissingAttribute("host"),
    ];
    for e in config {
        assert!(e.is_config());
        let answer = response::refused(&e.into_serve_error());
        assert!(matches!(
            answer.http_response,
            Some(HttpResponse::ErrorResponse(_))
        ));
    }
    for e in client {
        assert!(!e.is_config(), "{e}");
        let err = e.clone().into_serve_error();
        let answer = response::refused(&err);
        let Some(HttpResponse::DeniedResponse(d)) = answer.http_response else {
            panic!("{e}: not a denial");
        };
        let status = d.status.unwrap().code;
        assert!((400..500).contains(&status), "{e}: {status}");
    }
}

#[test]
fn raw_headers_detect_repeats() {
    let mut c = check(
        "/a",
        &[],
        &[("iamgate.action", "ec2:X"), ("iamgate.resource", "*")],
    );
    let raw = |pairs: &[(&str, &str)]| HeaderMap {
        headers: pairs
            .iter()
            .map(|(k, v)| HeaderValue {
                key: (*k).to_owned(),
                value: String::new(),
                raw_value: v.as_bytes().to_vec(),
            })
            .collect(),
    };
    let set = |c: &mut CheckRequest, m: HeaderMap| {
        if let Some(h) = c
            .attributes
            .as_mut()
            .and_then(|a| a.request.as_mut())
            .and_then(|r| r.http.as_mut())
        {
            h.header_map = Some(m);
        }
    };
    set(
        &mut c,
        raw(&[("x-iamgate-principal", "arn:aws:iam::1:user/a,b")]),
    );
    assert_eq!(map(&c).unwrap().principal_arn, "arn:aws:iam::1:user/a,b");
    set(
        &mut c,
        raw(&[("x-iamgate-principal", BOB), ("x-iamgate-principal", BOB)]),
    );
    assert_eq!(
        map(&c).unwrap_err(),
        MappingError::DuplicateHeader("x-iamgate-principal".into())
    );
}

#[test]
fn traceparent_header() {
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let of = |c: CheckRequest| traceparent(&CheckView::parse(&c.encode_to_vec()).unwrap());
    assert_eq!(
        of(check("/", &[("traceparent", tp)], &[])).as_deref(),
        Some(tp)
    );
    assert_eq!(of(check("/", &[], &[])), None);
}

#[test]
fn extensions_override_derived_keys_and_render() {
    let c = check(
        "/x",
        &[("x-iamgate-principal", BOB)],
        &[
            ("iamgate.action", "ec2:X"),
            ("iamgate.resource", "*"),
            ("iamgate.context.aws:SecureTransport", "false"),
            ("iamgate.context.app:Host", "{host}"),
        ],
    );
    let r = map(&c).unwrap();
    assert_eq!(ctx(&r, "aws:SecureTransport").as_deref(), Some("false"));
    assert_eq!(ctx(&r, "app:host").as_deref(), Some("api.example.com"));
    let c = check(
        "/x",
        &[("x-iamgate-principal", BOB)],
        &[
            ("iamgate.action", "ec2:X"),
            ("iamgate.resource", "*"),
            ("iamgate.context.", "v"),
        ],
    );
    assert!(map(&c).unwrap_err().is_config());
    // Misspelt extensions are configuration errors; `iamgate.mapping`
    // is reserved and accepted.
    let with = |k: &'static str| {
        check(
            "/x",
            &[("x-iamgate-principal", BOB)],
            &[
                ("iamgate.action", "ec2:X"),
                ("iamgate.resource", "*"),
                (k, "v"),
            ],
        )
    };
    let e = map(&with("iamgate.contxt.aws:SourceVpc")).unwrap_err();
    assert!(
        e.is_config() && e.to_string().contains("unknown iamgate extension"),
        "{e}"
    );
    assert!(map(&with("iamgate.mapping")).is_ok());
    assert!(map(&with("other.key")).is_ok());
}
