//! ext_authz for an EC2 Query API: a route whose `iamgate.mapping` context
//! extension is `ec2-query` (or any route without one when
//! `--default-mapping ec2-query`) is decided here, as EC2 would.
//!
//! 1. Method and body: the EC2 Query API takes `GET` and `POST`; any other
//!    method is refused. Parameters come from the raw `path` query string
//!    and the form body when Envoy forwards it (`with_request_body`), and
//!    only a body iamgate saw in full may reach the backend: Envoy marks a
//!    body it forwarded with `x-envoy-auth-partial-body` (`false` when
//!    whole; it drops any client copy of that header), and a request that
//!    may carry a body Envoy did not forward is refused. Envoy removes
//!    `transfer-encoding` before ext_authz and HTTP/2 needs no
//!    `content-length`, so the size headers cannot prove a body absent: a
//!    `POST` passes without a forwarded body only with `content-length: 0`,
//!    and a `GET` only when nothing announces a body. EC2 routes therefore
//!    need `with_request_body` (with `allow_partial_message: false`).
//!    Parameters are parsed with [`QueryParams::parse_with_limit`]
//!    (`--ec2-max-parameters`).
//! 2. Principal: on a SigV4 route (`iamgate.auth: sigv4`, or
//!    `--ec2-auth sigv4` for routes without the extension) the IAM user
//!    whose active access key signed the request, and nothing else: the
//!    signature is verified ([`crate::identity::sigv4`]) over the body
//!    Envoy forwarded, scoped to the route's region and `ec2`, and a
//!    failure is EC2's `AuthFailure`, `SignatureDoesNotMatch`,
//!    `IncompleteSignature`, `RequestExpired` or `InvalidClientTokenId`.
//!    Otherwise (`proxy`) a mapped peer URI SAN, else the trusted principal
//!    header (as the generic mapping). Region: configuration, never the client's
//!    word: the route's `iamgate.region` extension, else, when the operator
//!    maps hosts (`--ec2-host-region HOST=REGION`), the region of the
//!    request's Host (an unmapped Host is refused), else `--ec2-region`; a
//!    server with none of them is misconfigured.
//! 3. [`map_call_with`] turns the call into authorizations (instance
//!    profiles from the snapshot); every resource id in
//!    them must be canonical ([`crate::ec2::ids`]: `i-0ABC` is refused, not
//!    decided as a resource the backend may spell differently). Each gets
//!    the request-wide keys (`aws:SourceIp` from the peer, or from
//!    `X-Forwarded-For` with `--xff-trusted-hops N`; `aws:SecureTransport`,
//!    `aws:CurrentTime`, `aws:EpochTime`, `aws:RequestedRegion`,
//!    `ec2:Region`) and is decided; all must be allowed, the first that is
//!    not is named in the answer. Then the owners' launch / create-volume
//!    permissions for cross-account images and snapshots.
//! 4. Answers as EC2 ([`crate::ec2::response`]): a deny is a 403
//!    `UnauthorizedOperation` with an encoded authorization failure message
//!    ([`crate::sts::message`]); `DryRun=true` is a 412 `DryRunOperation`
//!    when allowed (the backend never sees a DryRun call); a missing owner
//!    grant is EC2's `InvalidAMIID.NotFound` / `InvalidSnapshot.NotFound`
//!    (the image or snapshot is invisible to the caller); malformed
//!    requests are 400s with EC2's codes (`MalformedQueryString`,
//!    `InvalidAction`, `MissingParameter`, `InvalidInstanceID.Malformed`,
//!    ...). An allowed call goes on with `x-iamgate-principal` and
//!    `x-iamgate-decision-id`. Nothing here changes the inventory: iamgate
//!    does not see the backend's answer, so the control plane reports the
//!    changes the backend confirmed (a `ModifyImageAttribute` grant, ...)
//!    through the authenticated inventory API ([`crate::server::control`]).
//!
//! Everything the client sends (method, Host, path, headers, body) can only
//! lead to a decision or a denial (`denied_response`). Only what the client
//! cannot cause is an `error_response`, where Envoy's failure mode applies:
//! no snapshot yet, a misconfigured route or server (an unknown `iamgate.*`
//! extension, no region source).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::SystemTime;

use envoy_types::pb::envoy::config::core::v3::address::Address;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse, DeniedHttpResponse};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::pb::google::rpc;

use crate::bundle::AuthzRequest;
use crate::ec2::ids;
use crate::ec2::mapping::{
    Authorization, Ec2Call, InstanceProfile, MappingError as Ec2MappingError, PermissionKind,
    map_call_with,
};
use crate::ec2::query::{Body, QueryParams};
use crate::ec2::response::{self as ec2_response, Ec2Error};
use crate::ec2::service::Ec2Service;
use crate::engine::{Context, ContextValue, Outcome};
use crate::identity::Expected;
use crate::policy::Region;
use crate::server::config::{Ec2Auth, Ec2Settings};
use crate::server::errors::ServeError;
use crate::server::ext_authz::mapping::{
    self, HttpView, MAPPING_KEY, MappingError, PrincipalSource,
};
use crate::server::ext_authz::response::{self, DECISION_ID_HEADER, header, is_failure};
use crate::server::ext_authz::sigv4::{self, BodyError, SignerError};
use crate::server::state::{AppState, Decided};
use crate::sts::message::AuthorizationMessage;
use crate::telemetry::Frontend;

/// Context extension choosing who the caller of an EC2 route is (`proxy`
/// or `sigv4`; see [`Ec2Auth`]).
pub use super::sigv4::AUTH_KEY;
/// Context extension naming the region of an EC2 route.
pub use super::sigv4::REGION_KEY;
/// The service in the credential scope of EC2 requests.
const SIGNING_SERVICE: &str = "ec2";

/// Why an EC2 request was not forwarded.
#[derive(Debug)]
enum Refusal {
    /// Not an EC2 answer (misconfigured route, no snapshot, ...): an
    /// `error_response` or the generic refusal; not yet counted.
    Serve(ServeError),
    /// As `Serve`, already counted by the decision path.
    Counted(ServeError),
    /// An EC2 error answer; `reason` is the metrics label of request errors
    /// (`None` for decided denials, already counted as decisions).
    Ec2 {
        error: Ec2Error,
        reason: Option<&'static str>,
        decided: Option<Box<Decided>>,
    },
}

impl Refusal {
    fn bad(error: Ec2Error) -> Self {
        Refusal::Ec2 {
            error,
            reason: Some("bad_request"),
            decided: None,
        }
    }
}

impl From<ServeError> for Refusal {
    fn from(e: ServeError) -> Self {
        Refusal::Serve(e)
    }
}

/// Maps, decides and answers one EC2 Query API `CheckRequest`.
pub fn check_request(state: &AppState, check: &CheckRequest, now: SystemTime) -> CheckResponse {
    let frontend = Frontend::ExtAuthz;
    match decide_call(state, check, now) {
        Ok((decided, principal)) => response::decided(&decided, &principal),
        Err(Refusal::Serve(e)) => {
            if let ServeError::Internal(message) = &e {
                tracing::warn!(error = %message, "ext_authz (EC2): misconfigured route");
            }
            state.metrics.request_error(frontend, e.reason());
            response::refused(&e)
        }
        Err(Refusal::Counted(e)) if is_failure(&e) => response::refused(&e),
        // A request the engine refused to decide (a malformed action or
        // resource): the client's doing, so EC2's 400.
        Err(Refusal::Counted(e)) => ec2_error(
            &Ec2Error::bad_request("InvalidParameterValue", e.to_string()),
            None,
        ),
        Err(Refusal::Ec2 {
            error,
            reason,
            decided,
        }) => {
            if let Some(reason) = reason {
                state.metrics.request_error(frontend, reason);
            }
            ec2_error(&error, decided.as_deref())
        }
    }
}

/// The whole EC2 path; `Ok` is an allowed call to forward.
fn decide_call(
    state: &AppState,
    check: &CheckRequest,
    now: SystemTime,
) -> Result<(Decided, String), Refusal> {
    let config = &state.config;
    let attrs = check
        .attributes
        .as_ref()
        .ok_or_else(|| ServeError::BadRequest(MappingError::NoHttpRequest.to_string()))?;
    let region_ext = route_region(&attrs.context_extensions)?;
    let http = attrs
        .request
        .as_ref()
        .and_then(|r| r.http.as_ref())
        .ok_or_else(|| ServeError::BadRequest(MappingError::NoHttpRequest.to_string()))?;
    let region = route_region_for(&config.ec2, region_ext, &http.host)?;
    check_method(&http.method)?;
    let view = HttpView::new(http);
    let auth = route_auth(&attrs.context_extensions, config.ec2.auth)?;
    // On a SigV4 route the body is part of what was signed: read it first,
    // and the principal is the signature's alone.
    let (principal, body, user_id, session) = if auth == Ec2Auth::SigV4 {
        let body = request_body(http, &view)?;
        let (principal, user_id, session) =
            sigv4_principal(state, http, &view, body, &region, now)?;
        (principal, body, user_id, session)
    } else {
        let principals = PrincipalSource::new(config);
        let principal = mapping::principal(
            &mapping::Verified::from_message(attrs, principals),
            &view,
            principals,
        )
        .map_err(|e| match e {
            MappingError::NoPrincipal { .. } => Refusal::Ec2 {
                error: Ec2Error::new(401, "AuthFailure", e.to_string()),
                reason: Some("unauthenticated"),
                decided: None,
            },
            other => Refusal::Ec2 {
                error: Ec2Error::new(401, "AuthFailure", other.to_string()),
                reason: Some("bad_request"),
                decided: None,
            },
        })?;
        let body = request_body(http, &view)?;
        (principal, body, None, None)
    };
    let content_type = view
        .header("content-type")
        .map_err(|e| Refusal::bad(Ec2Error::bad_request("MalformedQueryString", e.to_string())))?;
    let params = QueryParams::parse_with_limit(
        &http.path,
        body.map(|bytes| Body {
            content_type: content_type.as_deref(),
            bytes,
        }),
        config.ec2.max_parameters,
    )
    .map_err(|e| Refusal::bad(mapping_error(&Ec2MappingError::Query(e))))?;

    let caller_account = principal.split(':').nth(4).unwrap_or_default().to_owned();
    let snapshot = state.snapshot()?;
    let inventory = state.service::<Ec2Service>()?.inventory().load();
    // Instance profiles are IAM data: the snapshot's, as EC2 mapping needs them.
    let profiles = |account: &str, name: &str| {
        snapshot
            .instance_profile(account, name)
            .map(|p| InstanceProfile {
                arn: p.arn.clone(),
                role_arns: p.role_arns.clone(),
            })
    };
    let call = map_call_with(&params, &region, &caller_account, &inventory, &profiles)
        .map_err(|e| Refusal::bad(mapping_error(&e)))?;
    canonical_ids(&call).map_err(|e| {
        Refusal::bad(Ec2Error::bad_request(
            e.code,
            format!("Invalid id: \"{}\" (expecting {})", e.id, e.expected),
        ))
    })?;

    let request_keys = request_keys(
        attrs.source.as_ref().and_then(|s| s.address.as_ref()),
        http,
        &view,
        config.xff_trusted_hops,
        &region,
        now,
    )?;
    let mut request_keys = request_keys;
    // The engine derives the other principal keys from the ARN; the user's
    // unique id is the bundle's.
    if let Some(id) = user_id {
        request_keys.insert_static("aws:userid", ContextValue::One(id));
    }
    let traceparent = view.traceparent();
    let mut first: Option<Decided> = None;
    for a in &call.authorizations {
        let mut context = a.context.clone();
        for (k, v) in request_keys.iter() {
            context.insert(k, v.clone());
        }
        if let Some(owner) = &a.resource_account {
            context.insert("aws:ResourceAccount", ContextValue::One(owner.clone()));
        }
        let mut req = AuthzRequest {
            principal_arn: principal.clone(),
            action: a.action.clone(),
            resource: a.resource.clone(),
            context,
            session_tags: Vec::new(),
            session_policy: None,
            session_policy_arns: Vec::new(),
            resource_account: engine_resource_account(a, &call),
            outcome_only: false,
        };
        // A session decides as its role (or user), narrowed by its
        // session policies, with its tags and session keys.
        if let Some(claims) = &session {
            crate::sts::session::apply(claims, &mut req);
        }
        let d = state
            .decide_on(&snapshot, Frontend::ExtAuthz, &req, traceparent.as_deref())
            .map_err(Refusal::Counted)?;
        if d.answer.decision != Outcome::Allowed {
            let message = unauthorized(state, &req, &d);
            return Err(Refusal::Ec2 {
                error: Ec2Error::unauthorized(message),
                reason: None,
                decided: Some(Box::new(d)),
            });
        }
        if first.is_none() {
            first = Some(d);
        }
    }
    // The mapping always gives at least one authorization; were it ever
    // to give none, nothing was decided and the call must not go on.
    let Some(first) = first else {
        tracing::error!(action = %call.action, "the EC2 mapping gave no authorization");
        return Err(Refusal::Ec2 {
            error: Ec2Error::new(
                500,
                "InternalError",
                "An internal error has occurred; the call was not authorized.",
            ),
            reason: Some("internal"),
            decided: None,
        });
    };

    let membership = snapshot.org_membership(&caller_account);
    if let Some(c) = call
        .permission_checks
        .iter()
        .find(|c| !c.permits(&caller_account, membership))
    {
        let error = match c.kind {
            PermissionKind::Launch => Ec2Error::bad_request(
                "InvalidAMIID.NotFound",
                format!("The image id '[{}]' does not exist", c.resource_id),
            ),
            PermissionKind::CreateVolume => Ec2Error::bad_request(
                "InvalidSnapshot.NotFound",
                format!("The snapshot '{}' does not exist.", c.resource_id),
            ),
        };
        tracing::debug!(
            resource = %c.resource_id,
            attribute = c.kind.attribute(),
            "EC2 permission attribute does not cover the caller's account"
        );
        return Err(Refusal::Ec2 {
            error,
            reason: None,
            decided: Some(Box::new(denied(first))),
        });
    }

    if call.dry_run {
        return Err(Refusal::Ec2 {
            error: Ec2Error::dry_run(),
            reason: None,
            decided: Some(Box::new(first)),
        });
    }
    Ok((first, principal))
}

/// The owner account to give the engine. An image or snapshot of another
/// account that the call uses under a launch / create-volume permission has
/// no resource-based policy: its owner's side is that permission (checked
/// after the IAM decisions), so IAM decides only the caller's side, as EC2
/// does. Every other resource keeps its owner.
fn engine_resource_account(a: &Authorization, call: &Ec2Call) -> Option<String> {
    let id = a.resource.rsplit('/').next().unwrap_or_default();
    let permitted_by_attribute = matches!(a.resource_type.as_str(), "image" | "snapshot")
        && call.permission_checks.iter().any(|c| c.resource_id == id);
    if permitted_by_attribute {
        None
    } else {
        a.resource_account.clone()
    }
}

/// A decision turned into a deny (for the metadata of a refused call whose
/// IAM authorizations passed).
fn denied(mut d: Decided) -> Decided {
    d.answer.decision = Outcome::ImplicitDeny;
    d
}

/// How a route's caller is identified: its `iamgate.auth` extension, else
/// `--ec2-auth`. An unknown value is a configuration error.
fn route_auth(ext: &HashMap<String, String>, default: Ec2Auth) -> Result<Ec2Auth, ServeError> {
    match ext.get(AUTH_KEY) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|message| {
            ServeError::Internal(
                MappingError::BadTemplate {
                    key: AUTH_KEY.to_owned(),
                    message,
                }
                .to_string(),
            )
        }),
    }
}

/// The caller of a SigV4 route: the IAM user whose active key signed the
/// request, or the session whose temporary credentials signed it
/// ([`sigv4::signer_or_session`]). Every failure is EC2's answer to the
/// client; none reaches the backend.
fn sigv4_principal(
    state: &AppState,
    http: &HttpRequest,
    view: &HttpView<'_>,
    body: Option<&[u8]>,
    region: &str,
    now: SystemTime,
) -> Result<sigv4::SignedBy, Refusal> {
    let expected = Expected {
        region,
        service: SIGNING_SERVICE,
    };
    sigv4::signer_or_session(state, http, view, body, expected, now).map_err(|e| match e {
        SignerError::SigV4(e) => Refusal::Ec2 {
            error: Ec2Error::new(e.status(), e.code(), e.to_string()),
            reason: Some("unauthenticated"),
            decided: None,
        },
        SignerError::Serve(e) => Refusal::Serve(e),
    })
}

/// The `iamgate.region` extension, checking that the route carries no
/// other unknown `iamgate.*` extension (a typo would silently change what
/// is decided).
fn route_region(ext: &HashMap<String, String>) -> Result<Option<&str>, ServeError> {
    for key in ext.keys() {
        if key.starts_with("iamgate.") && key != MAPPING_KEY && key != REGION_KEY && key != AUTH_KEY
        {
            return Err(ServeError::Internal(
                MappingError::BadTemplate {
                    key: key.clone(),
                    message: format!(
                        "unknown iamgate extension on an EC2 route (known: `{MAPPING_KEY}`, `{REGION_KEY}`, `{AUTH_KEY}`)"
                    ),
                }
                .to_string(),
            ));
        }
    }
    match ext.get(REGION_KEY) {
        None => Ok(None),
        Some(r) if Region::is_valid(r) => Ok(Some(r)),
        Some(r) => Err(ServeError::Internal(
            MappingError::BadTemplate {
                key: REGION_KEY.to_owned(),
                message: format!("`{r}` is not a region name"),
            }
            .to_string(),
        )),
    }
}

/// Whether `s` is a region name (`us-east-1`, `cn-north-1`): [`Region`]'s
/// rule, kept under this name for the flag and configuration parsers.
pub fn is_region(s: &str) -> bool {
    Region::is_valid(s)
}

/// The region of an EC2 request (see the module docs): the route's
/// extension, else the operator's host mapping (an unmapped Host is the
/// client's doing: a 400), else `--ec2-region`; with none configured, the
/// server is misconfigured.
fn route_region_for(
    settings: &Ec2Settings,
    extension: Option<&str>,
    host: &str,
) -> Result<String, Refusal> {
    if let Some(r) = extension {
        return Ok(r.to_owned());
    }
    if !settings.host_regions.is_empty() {
        return host_region(settings, host)
            .map(str::to_owned)
            .ok_or_else(|| {
                Refusal::bad(Ec2Error::bad_request(
                    "InvalidRequest",
                    format!(
                        "the host `{}` is not an EC2 endpoint served here",
                        host.chars()
                            .filter(|c| !c.is_control())
                            .take(256)
                            .collect::<String>()
                    ),
                ))
            });
    }
    settings.region.clone().ok_or_else(|| {
        ServeError::Internal(format!(
            "EC2 route misconfigured: no `{REGION_KEY}` context extension, and the server has neither --ec2-region nor --ec2-host-region"
        ))
        .into()
    })
}

/// The region the operator mapped `host` to: compared ASCII
/// case-insensitively, without a trailing dot, and without the port
/// unless the mapping names one.
fn host_region<'s>(settings: &'s Ec2Settings, host: &str) -> Option<&'s str> {
    let host = host.to_ascii_lowercase();
    let host = host.trim_end_matches('.');
    let without_port = match host.rsplit_once(':') {
        Some((h, port))
            if !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!h.contains(':') || h.ends_with(']')) =>
        {
            h.trim_end_matches('.')
        }
        _ => host,
    };
    settings
        .host_regions
        .iter()
        .find(|m| m.host == host || m.host == without_port)
        .map(|m| m.region.as_str())
}

/// The EC2 Query API takes `GET` and `POST` (`HEAD`, `PUT`, `DELETE`, ...
/// would reach a backend that may still act on their parameters).
fn check_method(method: &str) -> Result<(), Refusal> {
    if method == "GET" || method == "POST" {
        return Ok(());
    }
    Err(Refusal::bad(Ec2Error::bad_request(
        "InvalidRequest",
        format!(
            "the EC2 Query API takes GET and POST requests, not `{}`",
            method
                .chars()
                .filter(|c| !c.is_control())
                .take(32)
                .collect::<String>()
        ),
    )))
}

/// Checks that every resource id the call is authorized on is in its
/// type's canonical form.
fn canonical_ids(call: &Ec2Call) -> Result<(), ids::IdError> {
    for a in &call.authorizations {
        if let Some(id) = ids::id_in_arn(&a.resource, &a.resource_type) {
            ids::check(&a.resource_type, id)?;
        }
    }
    for c in &call.permission_checks {
        let resource_type = match c.kind {
            PermissionKind::Launch => "image",
            PermissionKind::CreateVolume => "snapshot",
        };
        ids::check(resource_type, &c.resource_id)?;
    }
    Ok(())
}

/// The body Envoy forwarded, if any ([`sigv4::forwarded_body`]), refusals
/// in EC2's words.
fn request_body<'h>(
    http: &'h HttpRequest,
    view: &HttpView<'_>,
) -> Result<Option<&'h [u8]>, Refusal> {
    sigv4::forwarded_body(http, view).map_err(|e| match e {
        BodyError::Partial => Refusal::bad(Ec2Error::bad_request(
            "RequestEntityTooLarge",
            "the authorizer was sent only part of the request body (Envoy's with_request_body.max_request_bytes); its parameters cannot be authorized",
        )),
        BodyError::Unseen => Refusal::bad(Ec2Error::bad_request(
            "InvalidRequest",
            "the request body was not sent to the authorizer, so its parameters cannot be authorized (an EC2 route needs the ext_authz filter's with_request_body)",
        )),
        BodyError::Header(message) => {
            Refusal::bad(Ec2Error::bad_request("InvalidRequest", message))
        }
    })
}

/// The request-wide context keys every authorization of the call gets.
fn request_keys(
    peer: Option<&envoy_types::pb::envoy::config::core::v3::Address>,
    http: &HttpRequest,
    view: &HttpView<'_>,
    trusted_hops: usize,
    region: &str,
    now: SystemTime,
) -> Result<Context, Refusal> {
    let mut context = Context::new();
    let peer_ip = peer.and_then(|a| a.address.as_ref()).and_then(|a| match a {
        Address::SocketAddress(sa) => sa.address.parse::<IpAddr>().ok(),
        _ => None,
    });
    let xff = if trusted_hops == 0 {
        None
    } else {
        view.header("x-forwarded-for").map_err(|e| {
            Refusal::bad(Ec2Error::bad_request(
                "InvalidParameterValue",
                e.to_string(),
            ))
        })?
    };
    let source_ip = match xff {
        Some(x) => client_from_xff(&x, trusted_hops)
            .map_err(|m| {
                Refusal::bad(Ec2Error::bad_request(
                    "InvalidParameterValue",
                    m.to_string(),
                ))
            })?
            .or(peer_ip),
        None => peer_ip,
    };
    crate::server::ext_authz::mapping::insert_request_keys(
        &mut context,
        source_ip,
        &http.scheme,
        now,
    );
    context.insert("aws:RequestedRegion", ContextValue::One(region.to_owned()));
    context.insert("ec2:Region", ContextValue::One(region.to_owned()));
    Ok(context)
}

/// The client address in `X-Forwarded-For` behind `hops` trusted proxies,
/// counted as Envoy's `xff_num_trusted_hops` with `use_remote_address`:
/// the entry `hops` places left of the right end (the right end being the
/// peer Envoy appended). Too few entries: `None` (use the peer). An entry
/// that is not an address is refused.
pub fn client_from_xff(xff: &str, hops: usize) -> Result<Option<IpAddr>, BadForwardedFor> {
    let entries: Vec<&str> = xff.split(',').map(str::trim).collect();
    let Some(i) = entries.len().checked_sub(hops + 1) else {
        return Ok(None);
    };
    let entry = entries.get(i).copied().unwrap_or_default();
    entry
        .parse::<IpAddr>()
        .map(Some)
        .map_err(|source| BadForwardedFor {
            entry: entry.to_owned(),
            hops,
            source,
        })
}

/// An `X-Forwarded-For` entry, where the client should be, that is not an
/// address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "X-Forwarded-For entry `{entry}` (the client behind {hops} trusted hops) is not an IP address"
)]
pub struct BadForwardedFor {
    pub entry: String,
    pub hops: usize,
    pub source: std::net::AddrParseError,
}

/// The EC2 answer to a mapping failure.
fn mapping_error(e: &Ec2MappingError) -> Ec2Error {
    match e {
        Ec2MappingError::InvalidAction(action) => Ec2Error::invalid_action(action),
        Ec2MappingError::MissingAction => {
            Ec2Error::bad_request(e.code(), "The request must contain the parameter Action")
        }
        other => Ec2Error::bad_request(other.code(), other.to_string()),
    }
}

/// The `UnauthorizedOperation` message of a denied authorization, with its
/// encoded authorization failure message. The call is denied either way: a
/// message that cannot be encoded is left out, never turned into an error
/// that Envoy's failure mode could let through.
fn unauthorized(state: &AppState, req: &AuthzRequest, d: &Decided) -> String {
    let doc = AuthorizationMessage::new(req, &d.answer, &d.decision_id, &state.services.catalogs());
    let encoded = match state.config.message_key.encode(&doc) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, decision_id = %d.decision_id, "encoding the authorization failure message");
            String::new()
        }
    };
    ec2_response::unauthorized_message(
        &req.principal_arn,
        &req.action,
        &req.resource,
        &ec2_response::because(&d.answer, &req.action),
        &encoded,
    )
}

/// A `denied_response` carrying EC2's XML error.
fn ec2_error(error: &Ec2Error, decided: Option<&Decided>) -> CheckResponse {
    let request_id = decided
        .map(|d| d.decision_id.clone())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut headers = vec![header("content-type", ec2_response::CONTENT_TYPE)];
    let mut fields = vec![("ec2_error", error.code.clone())];
    if let Some(d) = decided {
        headers.push(header(DECISION_ID_HEADER, &d.decision_id));
        fields.push(("decision_id", d.decision_id.clone()));
        fields.push(("decision", d.answer.decision.as_str().to_owned()));
        fields.push(("revision", d.answer.revision.to_string()));
    }
    let code = match error.status {
        401 => tonic::Code::Unauthenticated,
        403 | 412 => tonic::Code::PermissionDenied,
        _ => tonic::Code::InvalidArgument,
    };
    CheckResponse {
        status: Some(rpc::Status {
            code: code as i32,
            message: format!("{}: {}", error.code, error.message),
            details: Vec::new(),
        }),
        dynamic_metadata: Some(Struct {
            fields: fields
                .into_iter()
                .map(|(k, v)| {
                    (
                        k.to_owned(),
                        Value {
                            kind: Some(Kind::StringValue(v)),
                        },
                    )
                })
                .collect(),
        }),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: i32::from(error.status),
            }),
            headers,
            body: error.body(&request_id),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::HeaderSource as _;
    use crate::server::ext_authz::sigv4::{PARTIAL_BODY_HEADER, ViewHeaders};

    fn http(path: &str, headers: &[(&str, &str)], body: &str) -> HttpRequest {
        HttpRequest {
            method: "POST".into(),
            path: path.into(),
            host: "ec2.us-east-1.amazonaws.com".into(),
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

    fn settings(region: Option<&str>, hosts: &[&str]) -> Ec2Settings {
        Ec2Settings {
            region: region.map(str::to_owned),
            host_regions: hosts.iter().map(|h| h.parse().unwrap()).collect(),
            ..Ec2Settings::default()
        }
    }

    #[test]
    fn the_route_or_the_flag_selects_sigv4() {
        let ext = |v: &[(&str, &str)]| -> HashMap<String, String> {
            v.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(
            route_auth(&ext(&[]), Ec2Auth::Proxy).unwrap(),
            Ec2Auth::Proxy
        );
        assert_eq!(
            route_auth(&ext(&[]), Ec2Auth::SigV4).unwrap(),
            Ec2Auth::SigV4
        );
        let sigv4 = ext(&[(AUTH_KEY, "sigv4")]);
        assert_eq!(route_auth(&sigv4, Ec2Auth::Proxy).unwrap(), Ec2Auth::SigV4);
        let proxy = ext(&[(AUTH_KEY, "proxy")]);
        assert_eq!(route_auth(&proxy, Ec2Auth::SigV4).unwrap(), Ec2Auth::Proxy);
        // A typo is the operator's: an error_response, never a guess.
        let typo = ext(&[(AUTH_KEY, "sigv2")]);
        assert!(matches!(
            route_auth(&typo, Ec2Auth::SigV4),
            Err(ServeError::Internal(_))
        ));
        // The extension is known to the region check.
        assert!(route_region(&sigv4).is_ok());
    }

    #[test]
    fn sigv4_reads_headers_from_envoy_view() {
        let h = http("/", &[("x-amz-date", "20260101T000000Z")], "");
        let view = HttpView::new(&h);
        let headers = ViewHeaders(&view);
        assert_eq!(
            headers.header("x-amz-date").unwrap().as_deref(),
            Some("20260101T000000Z")
        );
        assert_eq!(headers.header("authorization").unwrap(), None);
    }

    fn region_of(s: &Ec2Settings, ext: Option<&str>, host: &str) -> Result<String, String> {
        route_region_for(s, ext, host).map_err(|e| match e {
            Refusal::Ec2 { error, .. } => format!("{} {}", error.status, error.code),
            Refusal::Serve(e) | Refusal::Counted(e) => format!("serve {}", e.reason()),
        })
    }

    #[test]
    fn regions_come_from_configuration() {
        let ok = |r: &str| Ok::<String, String>(r.to_owned());
        // The route's extension wins over everything else.
        let mapped = settings(
            Some("us-east-1"),
            &[
                "ec2.eu-west-1.amazonaws.com=eu-west-1",
                "api.example:8443=ap-south-1",
            ],
        );
        assert_eq!(
            region_of(&mapped, Some("sa-east-1"), "anything"),
            ok("sa-east-1")
        );
        // Mapped hosts: case, a trailing dot and the port do not matter,
        // unless the mapping names a port.
        for host in [
            "ec2.eu-west-1.amazonaws.com",
            "EC2.EU-WEST-1.amazonaws.com.",
            "ec2.eu-west-1.amazonaws.com:443",
        ] {
            assert_eq!(region_of(&mapped, None, host), ok("eu-west-1"), "{host}");
        }
        assert_eq!(
            region_of(&mapped, None, "api.example:8443"),
            ok("ap-south-1")
        );
        // Anything else is refused, never guessed from its name, and never
        // the configured default region.
        for host in [
            "ec2.eu-west-9.amazonaws.com",
            "ec2.us-east-1.amazonaws.com",
            "api.example",
            "api.example:9443",
            "127.0.0.1:8080",
            "",
        ] {
            assert_eq!(
                region_of(&mapped, None, host),
                Err("400 InvalidRequest".into()),
                "{host}"
            );
        }
        // Without host mappings: the configured region, whatever the Host.
        let fixed = settings(Some("eu-central-1"), &[]);
        assert_eq!(
            region_of(&fixed, None, "ec2.eu-west-9.amazonaws.com"),
            ok("eu-central-1")
        );
        // Nothing configured: the operator's mistake, not the client's.
        assert_eq!(
            region_of(&settings(None, &[]), None, "ec2.us-east-1.amazonaws.com"),
            Err("serve internal".into())
        );
    }

    #[test]
    fn host_region_mappings_parse() {
        use crate::server::config::HostRegion;
        let m: HostRegion = "EC2.us-east-1.amazonaws.com.=us-east-1".parse().unwrap();
        assert_eq!(m.host, "ec2.us-east-1.amazonaws.com");
        assert_eq!(m.region, "us-east-1");
        for bad in [
            "ec2.example",
            "=us-east-1",
            "h=US EAST",
            "h=",
            "a b=us-east-1",
        ] {
            assert!(bad.parse::<HostRegion>().is_err(), "{bad}");
        }
        assert!(is_region("cn-north-1") && !is_region("east") && !is_region("-a-"));
        // One rule with the EC2 mapping's `SourceRegion` and the bundle
        // layout (issue 12): a region ends in a number.
        assert!(!is_region("us-east") && !is_region("local-zone"));
    }

    #[test]
    fn only_get_and_post() {
        assert!(check_method("GET").is_ok() && check_method("POST").is_ok());
        for m in ["PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "get", ""] {
            assert!(matches!(check_method(m), Err(Refusal::Ec2 { .. })), "{m}");
        }
    }

    #[test]
    fn resource_ids_must_be_canonical() {
        // The mapping resolves ids through the inventory (an unknown id is
        // NotFound, or Malformed when not canonical): ids a bundle holds in
        // a non-canonical spelling are the ones that reach this check.
        let mut inv = crate::ec2::inventory::Inventory::new();
        inv.load_cli_output(
            &serde_json::json!({
                "Reservations": [{"Instances": [{"InstanceId": "i-0123456789abcdef0"},
                    {"InstanceId": "i-0123456789ABCDEF0"}, {"InstanceId": "i-0abc"}]}],
                "Images": [{"ImageId": "ami-0A111000000000001", "OwnerId": "111111111111"}],
                "Subnets": [{"SubnetId": "subnet-0123456789abcdef0", "VpcId": "vpc-0123456789abcdef0"}],
                "SecurityGroups": [{"GroupId": "sg-0123456789abcdef0", "GroupName": "default",
                    "VpcId": "vpc-0123456789abcdef0"}]}),
            "111111111111",
            "us-east-1",
        )
        .unwrap();
        let call = |q: &str| {
            let params = QueryParams::parse(q, None).unwrap();
            crate::ec2::mapping::map_call(&params, "us-east-1", "111111111111", &inv).unwrap()
        };
        let ok = call("/?Action=TerminateInstances&InstanceId.1=i-0123456789abcdef0");
        assert_eq!(canonical_ids(&ok), Ok(()));
        let upper = call("/?Action=TerminateInstances&InstanceId.1=i-0123456789ABCDEF0");
        let e = canonical_ids(&upper).unwrap_err();
        assert_eq!(
            (e.code, e.id.as_str()),
            ("InvalidInstanceID.Malformed", "i-0123456789ABCDEF0")
        );
        let second =
            call("/?Action=StopInstances&InstanceId.1=i-0123456789abcdef0&InstanceId.2=i-0abc");
        assert!(canonical_ids(&second).is_err());
        let image = call(
            "/?Action=RunInstances&ImageId=ami-0A111000000000001&MinCount=1&MaxCount=1&SubnetId=subnet-0123456789abcdef0",
        );
        assert_eq!(
            canonical_ids(&image).unwrap_err().code,
            "InvalidAMIID.Malformed"
        );
        // New resources (`type/*`) and actions without resources pass.
        assert_eq!(canonical_ids(&call("/?Action=DescribeInstances")), Ok(()));
    }

    #[test]
    fn forwarded_for_with_trusted_hops() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let xff = "198.51.100.1, 203.0.113.7,10.0.0.2";
        assert_eq!(client_from_xff(xff, 1), Ok(ip("203.0.113.7")));
        assert_eq!(client_from_xff(xff, 2), Ok(ip("198.51.100.1")));
        assert_eq!(client_from_xff(xff, 3), Ok(None));
        assert_eq!(
            client_from_xff("2001:db8::1, 10.0.0.2", 1),
            Ok(ip("2001:db8::1"))
        );
        let bad = client_from_xff("bogus, 10.0.0.2", 1).unwrap_err();
        assert_eq!((bad.entry.as_str(), bad.hops), ("bogus", 1));
    }

    #[test]
    fn route_selection_and_extensions() {
        let ext = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(route_region(&ext(&[])).unwrap(), None);
        assert_eq!(
            route_region(&ext(&[(REGION_KEY, "eu-west-1")])).unwrap(),
            Some("eu-west-1")
        );
        for bad in [
            &[(REGION_KEY, "EU WEST")][..],
            &[(REGION_KEY, "")][..],
            &[("iamgate.regoin", "us-east-1")][..],
            &[("iamgate.action", "ec2:X")][..],
        ] {
            assert!(
                matches!(route_region(&ext(bad)), Err(ServeError::Internal(_))),
                "{bad:?}"
            );
        }
    }

    fn body_of(
        method: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Option<Vec<u8>>, String> {
        let mut h = http("/", headers, body);
        h.method = method.into();
        request_body(&h, &HttpView::new(&h))
            .map(|b| b.map(<[u8]>::to_vec))
            .map_err(|e| match e {
                Refusal::Ec2 { error, .. } => format!("{} {}", error.status, error.code),
                Refusal::Serve(e) | Refusal::Counted(e) => format!("serve {}", e.reason()),
            })
    }

    #[test]
    fn bodies_must_arrive_whole() {
        let whole = (PARTIAL_BODY_HEADER, "false");
        let form = ("content-type", "application/x-www-form-urlencoded");
        let unseen = Err("400 InvalidRequest".to_owned());
        // Forwarded whole, with or without content-length (chunked, h2).
        assert_eq!(
            body_of("POST", &[form, whole, ("content-length", "8")], "Action=X"),
            Ok(Some(b"Action=X".to_vec()))
        );
        assert_eq!(
            body_of("POST", &[form, whole], "Action=X"),
            Ok(Some(b"Action=X".to_vec()))
        );
        assert_eq!(
            body_of("GET", &[form, whole], "Action=X"),
            Ok(Some(b"Action=X".to_vec()))
        );
        // No body at all.
        assert_eq!(body_of("GET", &[], ""), Ok(None));
        assert_eq!(body_of("POST", &[("content-length", "0")], ""), Ok(None));
        // A body Envoy did not forward, however its size is (not) announced:
        // chunked HTTP/1.1 (Envoy drops transfer-encoding), HTTP/2 without
        // content-length, or a route without with_request_body.
        assert_eq!(body_of("POST", &[], ""), unseen);
        assert_eq!(body_of("POST", &[("content-length", "8")], ""), unseen);
        assert_eq!(
            body_of("POST", &[("transfer-encoding", "chunked")], ""),
            unseen
        );
        assert_eq!(body_of("GET", &[("content-length", "8")], ""), unseen);
        assert_eq!(
            body_of("GET", &[("transfer-encoding", "chunked")], ""),
            unseen
        );
        assert_eq!(body_of("POST", &[("content-length", "x")], ""), unseen);
        // Bytes without Envoy's marker: whole only if content-length says so.
        assert_eq!(
            body_of("POST", &[form, ("content-length", "8")], "Action=X"),
            Ok(Some(b"Action=X".to_vec()))
        );
        assert_eq!(
            body_of("POST", &[("content-length", "9")], "Action=X"),
            unseen
        );
        assert_eq!(body_of("POST", &[], "Action=X"), unseen);
        // Only part of it.
        let partial = Err("400 RequestEntityTooLarge".to_owned());
        assert_eq!(
            body_of("POST", &[(PARTIAL_BODY_HEADER, "true")], "Action=X"),
            partial
        );
        assert_eq!(
            body_of("POST", &[whole, ("content-length", "100")], "Action=X"),
            partial
        );
        let mut short = http("/", &[whole], "Action=X");
        short.size = 100;
        assert!(request_body(&short, &HttpView::new(&short)).is_err());
        // Bytes win over the string form.
        let mut raw = http("/", &[whole], "");
        raw.raw_body = b"Action=Y".to_vec();
        raw.size = 8;
        assert_eq!(
            request_body(&raw, &HttpView::new(&raw)).unwrap(),
            Some(&b"Action=Y"[..])
        );
    }

    #[test]
    fn request_wide_keys() {
        let h = http("/", &[("x-forwarded-for", "203.0.113.7, 127.0.0.1")], "");
        let peer = envoy_types::pb::envoy::config::core::v3::Address {
            address: Some(Address::SocketAddress(
                envoy_types::pb::envoy::config::core::v3::SocketAddress {
                    address: "127.0.0.1".into(),
                    ..Default::default()
                },
            )),
        };
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let get = |c: &Context, k: &str| match c.get(&k.to_ascii_lowercase()) {
            Some(crate::policy::variables::ValueRef::One(s)) => s.to_owned(),
            other => panic!("{k}: {other:?}"),
        };
        let c = request_keys(Some(&peer), &h, &HttpView::new(&h), 0, "eu-west-1", at).unwrap();
        assert_eq!(get(&c, "aws:SourceIp"), "127.0.0.1");
        assert_eq!(get(&c, "aws:SecureTransport"), "true");
        assert_eq!(get(&c, "aws:CurrentTime"), "2023-11-14T22:13:20Z");
        assert_eq!(get(&c, "aws:EpochTime"), "1700000000");
        assert_eq!(get(&c, "aws:RequestedRegion"), "eu-west-1");
        assert_eq!(get(&c, "ec2:Region"), "eu-west-1");
        let c = request_keys(Some(&peer), &h, &HttpView::new(&h), 1, "eu-west-1", at).unwrap();
        assert_eq!(get(&c, "aws:SourceIp"), "203.0.113.7");
    }

    #[test]
    fn ec2_errors_are_xml_denials() {
        let r = ec2_error(&Ec2Error::invalid_action("Launch"), None);
        let Some(HttpResponse::DeniedResponse(d)) = &r.http_response else {
            panic!("not denied: {r:?}");
        };
        assert_eq!(d.status.as_ref().map(|s| s.code), Some(400));
        assert!(d.body.contains("<Code>InvalidAction</Code>"), "{}", d.body);
        assert!(d.headers.iter().any(|h| {
            h.header
                .as_ref()
                .is_some_and(|h| h.key == "content-type" && h.value.starts_with("text/xml"))
        }));
        assert_eq!(
            r.status.as_ref().map(|s| s.code),
            Some(tonic::Code::InvalidArgument as i32)
        );
        let r = ec2_error(&Ec2Error::dry_run(), None);
        assert_eq!(
            r.status.as_ref().map(|s| s.code),
            Some(tonic::Code::PermissionDenied as i32)
        );
    }
}
