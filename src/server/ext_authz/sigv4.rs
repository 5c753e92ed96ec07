//! SigV4 routes of ext_authz, for every service mapping: the one place
//! that reads a route's `iamgate.auth` choice, takes the body Envoy
//! forwarded (refusing one the check may not have seen whole), verifies
//! the signature with [`crate::identity::verify`] against the credentials
//! file (`--credentials`, kept by [`crate::server::credentials`]) and
//! resolves the signing key to the bundle's IAM user. The EC2 Query
//! mapping ([`super::ec2`]) words its refusals as EC2; the generic mapping
//! ([`super::mapping`]) uses [`check_generic`] here, which answers AWS's
//! Query-protocol XML error.
//!
//! On a SigV4 route the principal is the signer, and nothing else: the
//! identity sources of the generic mapping (peer certificate, JWT claim,
//! trusted header) are not read, so no header can change who is decided
//! for. Every failure is the client's, a denial; it never reaches the
//! backend. Owns no key material (the identity module does) and never
//! logs a secret.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::SystemTime;

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{CheckResponse, DeniedHttpResponse};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::pb::google::rpc;

use crate::identity::sigv4::AmbiguousHeader;
use crate::identity::{Expected, HeaderSource, SigV4Error, SignedRequest};
use crate::server::errors::ServeError;
use crate::server::ext_authz::mapping::{HttpView, MappingError};
use crate::server::ext_authz::wire::CheckView;
use crate::server::state::AppState;

/// Context extension choosing who the caller of a route is: `proxy` (the
/// identity sources; the default) or `sigv4` (the request's signature).
pub const AUTH_KEY: &str = "iamgate.auth";
/// Context extension naming the region in a SigV4 route's credential scope
/// (and, on EC2 routes, the region of the call).
pub const REGION_KEY: &str = "iamgate.region";
/// Context extension naming the service in a generic SigV4 route's
/// credential scope (EC2 routes sign for `ec2`).
pub const SERVICE_KEY: &str = "iamgate.service";
/// Header Envoy sets when it forwarded only part of the body.
pub const PARTIAL_BODY_HEADER: &str = "x-envoy-auth-partial-body";

/// How a route's caller is identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteAuth {
    /// The identity sources the operator configured.
    Proxy,
    /// The request's SigV4 signature.
    SigV4,
}

/// A route's `iamgate.auth` value; an unknown one is a configuration error.
pub fn route_auth(value: Option<&str>) -> Result<Option<RouteAuth>, MappingError> {
    match value {
        None => Ok(None),
        Some("proxy") => Ok(Some(RouteAuth::Proxy)),
        Some("sigv4") => Ok(Some(RouteAuth::SigV4)),
        Some(other) => Err(MappingError::BadTemplate {
            key: AUTH_KEY.to_owned(),
            message: format!("unknown value `{other}` (known: `proxy`, `sigv4`)"),
        }),
    }
}

/// A request's headers as SigV4 reads them.
pub struct ViewHeaders<'v, 'r>(pub &'v HttpView<'r>);

impl HeaderSource for ViewHeaders<'_, '_> {
    fn header(&self, name: &str) -> Result<Option<Cow<'_, str>>, AmbiguousHeader> {
        self.0.header(name).map_err(|_| AmbiguousHeader)
    }
}

/// Why the body Envoy forwarded cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The request may carry a body Envoy did not forward.
    #[error(
        "the request body was not sent to the authorizer, so it cannot be authorized (the route needs the ext_authz filter's with_request_body)"
    )]
    Unseen,
    /// Envoy forwarded part of the body.
    #[error(
        "the authorizer was sent only part of the request body (Envoy's with_request_body.max_request_bytes); it cannot be authorized"
    )]
    Partial,
    /// A size header that cannot be read.
    #[error("{0}")]
    Header(String),
}

/// The body Envoy forwarded, if any; refuses a request whose body the
/// check may not have seen in full. Envoy sets `x-envoy-auth-partial-body`
/// (dropping any client copy) exactly when it forwarded the body it
/// buffered; it removes `transfer-encoding` before ext_authz and HTTP/2
/// needs no `content-length`, so without that header only an explicit
/// `content-length` (or a `GET` announcing nothing) proves the body whole
/// or absent.
pub fn forwarded_body<'h>(
    http: &'h HttpRequest,
    view: &HttpView<'_>,
) -> Result<Option<&'h [u8]>, BodyError> {
    let body = BodyFields {
        method: &http.method,
        size: http.size,
        body: http.body.as_bytes(),
        raw_body: &http.raw_body,
    };
    forwarded_body_of(&body, view)
}

/// What [`forwarded_body_of`] reads of Envoy's HTTP attributes, from the
/// decoded message or read in place (`super::wire`).
#[derive(Debug, Clone, Copy)]
pub struct BodyFields<'h> {
    pub method: &'h str,
    pub size: i64,
    /// `body` (a string's bytes).
    pub body: &'h [u8],
    /// `raw_body`.
    pub raw_body: &'h [u8],
}

/// [`forwarded_body`] over [`BodyFields`].
pub fn forwarded_body_of<'h>(
    http: &BodyFields<'h>,
    view: &HttpView<'_>,
) -> Result<Option<&'h [u8]>, BodyError> {
    let bytes: &'h [u8] = if http.raw_body.is_empty() {
        http.body
    } else {
        http.raw_body
    };
    let header = |name: &str| -> Result<Option<Cow<'_, str>>, BodyError> {
        view.header(name)
            .map_err(|e| BodyError::Header(e.to_string()))
    };
    let partial = header(PARTIAL_BODY_HEADER)?;
    let content_length = header("content-length")?;
    let chunked = header("transfer-encoding")?.is_some();
    let declared = match content_length.as_deref().map(str::trim) {
        None => None,
        Some(v) => Some(v.parse::<u64>().map_err(|_| {
            BodyError::Header("the content-length header is not a number".to_owned())
        })?),
    };
    tracing::debug!(
        method = %http.method,
        size = http.size,
        partial = ?partial,
        content_length = ?declared,
        chunked,
        body_bytes = bytes.len(),
        "request body"
    );
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    match partial.as_deref().map(str::trim) {
        Some(p) if p.eq_ignore_ascii_case("false") => {
            let size = u64::try_from(http.size).unwrap_or(0);
            if len < size || declared.is_some_and(|d| d != len) {
                return Err(BodyError::Partial);
            }
            Ok((!bytes.is_empty()).then_some(bytes))
        }
        Some(_) => Err(BodyError::Partial),
        // Not Envoy's with_request_body: whole only if its length says so.
        None if !bytes.is_empty() => {
            let size = u64::try_from(http.size).unwrap_or(0);
            if declared == Some(len) && !chunked && len >= size {
                Ok(Some(bytes))
            } else {
                Err(BodyError::Unseen)
            }
        }
        // Envoy forwarded no body: fine only when there is none.
        None if chunked || declared.is_some_and(|d| d > 0) => Err(BodyError::Unseen),
        None if http.method == "GET" => Ok(None),
        None if declared == Some(0) => Ok(None),
        None => Err(BodyError::Unseen),
    }
}

/// Why a signed request has no principal.
#[derive(Debug)]
pub enum SignerError {
    /// The signature was refused: the client's, a denial.
    SigV4(SigV4Error),
    /// iamgate's state (no snapshot yet).
    Serve(ServeError),
}

/// Who signed a request, checked against the route's credential scope: the
/// IAM user whose active access key signed it, or an STS session whose
/// temporary credentials did (`X-Amz-Security-Token`, opened with
/// `--session-key`): the principal ARN, the user's unique id (long-term
/// keys), and the session's claims.
pub fn signer_or_session(
    state: &AppState,
    http: &HttpRequest,
    view: &HttpView<'_>,
    body: Option<&[u8]>,
    expected: Expected<'_>,
    now: SystemTime,
) -> Result<SignedBy, SignerError> {
    let line = RequestLine {
        method: &http.method,
        target: &http.path,
        host: &http.host,
    };
    signer_or_session_of(state, line, view, body, expected, now)
}

/// A request's method, target (path and query, undecoded) and host.
#[derive(Debug, Clone, Copy)]
pub struct RequestLine<'a> {
    pub method: &'a str,
    pub target: &'a str,
    pub host: &'a str,
}

/// [`signer_or_session`] over a [`RequestLine`].
pub fn signer_or_session_of(
    state: &AppState,
    line: RequestLine<'_>,
    view: &HttpView<'_>,
    body: Option<&[u8]>,
    expected: Expected<'_>,
    now: SystemTime,
) -> Result<SignedBy, SignerError> {
    let store = state.credentials.load();
    let headers = ViewHeaders(view);
    let request = SignedRequest {
        method: line.method,
        target: line.target,
        host: line.host,
        headers: &headers,
        body: body.unwrap_or_default(),
    };
    let caller =
        crate::identity::verify_caller(&request, &store, state.sessions.as_deref(), expected, now)
            .map_err(|e| {
                tracing::debug!(code = e.code(), "SigV4 signature refused");
                SignerError::SigV4(e)
            })?;
    let key = match caller {
        crate::identity::Caller::Key(k) => k,
        crate::identity::Caller::Session(claims) => {
            return Ok((claims.principal_arn.clone(), None, Some(claims)));
        }
    };
    let snapshot = state.snapshot().map_err(SignerError::Serve)?;
    let arn = key.resolve_user(&snapshot).map_err(|e| {
        tracing::warn!(
            access_key_id = %key.access_key_id,
            user = %key.user_name,
            error = %e,
            "a valid access key names no user of the bundle; refused"
        );
        SignerError::SigV4(SigV4Error::UnknownKey)
    })?;
    let user_id = snapshot.user(arn).flatten().map(str::to_owned);
    Ok((arn.to_owned(), user_id, None))
}

/// Who signed: principal ARN, the user's unique id, and the session when
/// temporary credentials signed.
pub type SignedBy = (
    String,
    Option<String>,
    Option<Box<crate::identity::SessionClaims>>,
);

/// A generic route's credential scope: its `iamgate.region` and
/// `iamgate.service`, both required on a SigV4 route.
pub fn route_scope(ext: &HashMap<String, String>) -> Result<(&str, &str), MappingError> {
    route_scope_with(|key| ext.get(key).map(String::as_str))
}

/// [`route_scope`] over any lookup of the context extensions.
pub fn route_scope_with<'e>(
    extension: impl Fn(&str) -> Option<&'e str>,
) -> Result<(&'e str, &'e str), MappingError> {
    let get = |key: &'static str| {
        extension(key)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| MappingError::BadTemplate {
                key: key.to_owned(),
                message: "a route with `iamgate.auth: sigv4` names its region and service"
                    .to_owned(),
            })
    };
    let region = get(REGION_KEY)?;
    let service = get(SERVICE_KEY)?;
    let scope_part = |v: &str| {
        v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    for (key, value) in [(REGION_KEY, region), (SERVICE_KEY, service)] {
        if !scope_part(value) {
            return Err(MappingError::BadTemplate {
                key: key.to_owned(),
                message: format!(
                    "`{value}` is not a credential-scope name (lower-case letters, digits, `-`)"
                ),
            });
        }
    }
    Ok((region, service))
}

/// Who signed a generic route's request: the user's ARN, unique id (when
/// the bundle has it) and the route's region; or why not (a denial in
/// AWS's words, or iamgate's own failure).
pub fn generic_signer(
    state: &AppState,
    check: &CheckView<'_>,
    now: SystemTime,
) -> Result<GenericSigner, Refused> {
    let http = check.http.as_ref().ok_or_else(|| {
        Refused::Serve(ServeError::BadRequest(
            MappingError::NoHttpRequest.to_string(),
        ))
    })?;
    let (region, service) = route_scope_with(|key| check.extension(key))
        .map_err(|e| Refused::Serve(e.into_serve_error()))?;
    // `body` is a proto string: a message where it is not UTF-8 does not
    // decode (prost would refuse it whole).
    if std::str::from_utf8(http.body).is_err() {
        return Err(Refused::Serve(ServeError::BadRequest(
            "the CheckRequest does not decode: invalid string value: data is not UTF-8 encoded"
                .to_owned(),
        )));
    }
    let view = HttpView::from_wire(http);
    let fields = BodyFields {
        method: http.method,
        size: http.size,
        body: http.body,
        raw_body: http.raw_body,
    };
    let body = forwarded_body_of(&fields, &view).map_err(|e| {
        let status = if e == BodyError::Partial { 413 } else { 400 };
        Refused::Aws(AwsError::new(status, "InvalidRequest", e.to_string()))
    })?;
    let line = RequestLine {
        method: http.method,
        target: http.path,
        host: http.host,
    };
    let (arn, user_id, session) =
        signer_or_session_of(state, line, &view, body, Expected { region, service }, now).map_err(
            |e| match e {
                SignerError::SigV4(e) => {
                    Refused::Aws(AwsError::new(e.status(), e.code(), e.to_string()))
                }
                SignerError::Serve(e) => Refused::Serve(e),
            },
        )?;
    Ok((arn, user_id, region.to_owned(), session))
}

/// A generic route's signer: principal ARN, the user's unique id, the
/// route's region, and the session when temporary credentials signed.
pub type GenericSigner = (
    String,
    Option<String>,
    String,
    Option<Box<crate::identity::SessionClaims>>,
);

/// Why [`generic_signer`] gave no principal.
#[derive(Debug)]
pub enum Refused {
    /// A denial in AWS's words (the client's doing).
    Aws(AwsError),
    /// Any other refusal, answered as every generic refusal is.
    Serve(ServeError),
}

/// An AWS error answer: HTTP status, code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl AwsError {
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    /// The Query-protocol error document AWS services answer with
    /// (`ErrorResponse/Error/{Type,Code,Message}` and `RequestId`).
    pub fn body(&self, request_id: &str) -> String {
        use crate::ec2::response::escape;
        format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
            escape(&self.code),
            escape(&self.message),
            escape(request_id)
        )
    }

    /// The `denied_response` carrying this error; `dynamic_metadata` names
    /// the code (`sigv4_error`) and the metrics reason (`error`).
    pub fn denied(&self, reason: &str) -> CheckResponse {
        let request_id = uuid::Uuid::new_v4().to_string();
        let code = match self.status {
            401 => tonic::Code::Unauthenticated,
            403 => tonic::Code::PermissionDenied,
            _ => tonic::Code::InvalidArgument,
        };
        let string = |s: &str| Value {
            kind: Some(Kind::StringValue(s.to_owned())),
        };
        CheckResponse {
            status: Some(rpc::Status {
                code: code as i32,
                message: format!("{}: {}", self.code, self.message),
                details: Vec::new(),
            }),
            dynamic_metadata: Some(Struct {
                fields: [
                    ("sigv4_error".to_owned(), string(&self.code)),
                    ("error".to_owned(), string(reason)),
                ]
                .into_iter()
                .collect(),
            }),
            http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
                status: Some(HttpStatus {
                    code: i32::from(self.status),
                }),
                headers: vec![HeaderValueOption {
                    header: Some(HeaderValue {
                        key: "content-type".to_owned(),
                        value: "text/xml".to_owned(),
                        raw_value: Vec::new(),
                    }),
                    append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
                    ..Default::default()
                }],
                body: self.body(&request_id),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(method: &str, headers: &[(&str, &str)], body: &str) -> HttpRequest {
        HttpRequest {
            method: method.into(),
            path: "/".into(),
            host: "svc.example".into(),
            scheme: "https".into(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.into(),
            size: i64::try_from(body.len()).unwrap(),
            ..Default::default()
        }
    }

    /// Issue 13: an unknown `iamgate.auth` is the route's error; both
    /// known values parse.
    #[test]
    fn route_auth_values() {
        assert_eq!(route_auth(None).unwrap(), None);
        assert_eq!(route_auth(Some("sigv4")).unwrap(), Some(RouteAuth::SigV4));
        assert_eq!(route_auth(Some("proxy")).unwrap(), Some(RouteAuth::Proxy));
        let e = route_auth(Some("SigV4")).unwrap_err();
        assert!(e.is_config(), "{e}");
    }

    /// Issue 13: a generic SigV4 route names its scope in configuration.
    #[test]
    fn generic_scope_comes_from_the_route() {
        let ext = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let ok = ext(&[(REGION_KEY, "eu-west-1"), (SERVICE_KEY, "widgets")]);
        assert_eq!(route_scope(&ok).unwrap(), ("eu-west-1", "widgets"));
        for bad in [
            ext(&[(REGION_KEY, "eu-west-1")]),
            ext(&[(SERVICE_KEY, "widgets")]),
            ext(&[(REGION_KEY, ""), (SERVICE_KEY, "widgets")]),
            ext(&[(REGION_KEY, "eu-west-1"), (SERVICE_KEY, "wid/gets")]),
        ] {
            assert!(route_scope(&bad).unwrap_err().is_config(), "{bad:?}");
        }
    }

    /// Issue 13: only a body Envoy forwarded whole is signed over.
    #[test]
    fn bodies_must_arrive_whole() {
        let whole = http(
            "POST",
            &[
                ("x-envoy-auth-partial-body", "false"),
                ("content-length", "3"),
            ],
            "a=b",
        );
        assert_eq!(
            forwarded_body(&whole, &HttpView::new(&whole)).unwrap(),
            Some(&b"a=b"[..])
        );
        let partial = http("POST", &[("x-envoy-auth-partial-body", "true")], "a=b");
        assert_eq!(
            forwarded_body(&partial, &HttpView::new(&partial)),
            Err(BodyError::Partial)
        );
        let unseen = http("POST", &[("content-length", "10")], "");
        assert_eq!(
            forwarded_body(&unseen, &HttpView::new(&unseen)),
            Err(BodyError::Unseen)
        );
        let get = http("GET", &[], "");
        assert_eq!(forwarded_body(&get, &HttpView::new(&get)).unwrap(), None);
        let post_without_length = http("POST", &[], "");
        assert_eq!(
            forwarded_body(&post_without_length, &HttpView::new(&post_without_length)),
            Err(BodyError::Unseen)
        );
    }

    /// Issue 13: a refusal is a denial with AWS's XML error, never an
    /// `error_response`.
    #[test]
    fn aws_errors_are_xml_denials() {
        let e = AwsError::new(403, "SignatureDoesNotMatch", "a <b> & c");
        let r = e.denied("unauthenticated");
        let Some(HttpResponse::DeniedResponse(d)) = &r.http_response else {
            panic!("not a denial: {r:?}");
        };
        assert_eq!(d.status.as_ref().map(|s| s.code), Some(403));
        assert!(
            d.body.starts_with(
                "<ErrorResponse><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>a &lt;b&gt; &amp; c</Message>"
            ),
            "{}",
            d.body
        );
        assert_eq!(
            r.status.as_ref().map(|s| s.code),
            Some(tonic::Code::PermissionDenied as i32)
        );
    }
}
