//! ext_authz for an EC2 Query API: a route whose `iamgate.mapping` context
//! extension is `ec2-query` (or any route without one when
//! `--default-mapping ec2-query`) is decided here, as EC2 would.
//!
//! 1. Parameters: the raw `path` query string and, when Envoy forwards it
//!    (`with_request_body`), the form body ([`QueryParams::parse`]). A body
//!    Envoy did not forward (or forwarded only in part) is refused: its
//!    parameters would reach the backend unauthorized.
//! 2. Principal: a mapped peer URI SAN, else the trusted principal header
//!    (as the generic mapping); region: the `iamgate.region` extension,
//!    else the `Host` (`ec2.REGION.amazonaws.com`; `ec2.amazonaws.com` is
//!    `us-east-1`); a route with neither is misconfigured.
//! 3. [`map_call`] turns the call into authorizations; each gets the
//!    request-wide keys (`aws:SourceIp` from the peer, or from
//!    `X-Forwarded-For` with `--xff-trusted-hops N`; `aws:SecureTransport`,
//!    `aws:CurrentTime`, `aws:EpochTime`, `aws:RequestedRegion`,
//!    `ec2:Region`) and is decided; all must be allowed, the first that is
//!    not is named in the answer. Then the owners' launch / create-volume
//!    permissions for cross-account images and snapshots.
//! 4. Answers as EC2 ([`crate::ec2::response`]): a deny is a 403
//!    `UnauthorizedOperation` with an encoded authorization failure message
//!    ([`crate::ec2::message`]); `DryRun=true` is a 412 `DryRunOperation`
//!    when allowed (the backend never sees a DryRun call); a missing owner
//!    grant is EC2's `InvalidAMIID.NotFound` / `InvalidSnapshot.NotFound`
//!    (the image or snapshot is invisible to the caller); malformed
//!    requests are 400s with EC2's codes (`MalformedQueryString`,
//!    `InvalidAction`, `MissingParameter`, ...). An allowed call goes on
//!    with `x-iamgate-principal` and `x-iamgate-decision-id`, and the grant
//!    changes of an allowed `ModifyImageAttribute` /
//!    `ModifySnapshotAttribute` are applied to the live inventory.
//!
//! Errors that are not the request's fault (no snapshot yet, a
//! misconfigured route) are `error_response`s, so Envoy's failure mode
//! applies.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::SystemTime;

use envoy_types::pb::envoy::config::core::v3::address::Address;
use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse, DeniedHttpResponse};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::pb::google::rpc;

use crate::bundle::AuthzRequest;
use crate::ec2::mapping::{
    Authorization, Ec2Call, MappingError as Ec2MappingError, PermissionKind, map_call,
};
use crate::ec2::message::AuthorizationMessage;
use crate::ec2::query::{Body, QueryParams};
use crate::ec2::response::{self as ec2_response, Ec2Error};
use crate::engine::{Context, ContextValue, Outcome};
use crate::server::config::ServiceMapping;
use crate::server::errors::ServeError;
use crate::server::ext_authz::mapping::{
    self, HttpView, MAPPING_KEY, MappingError, PrincipalSource,
};
use crate::server::ext_authz::response::{self, DECISION_ID_HEADER};
use crate::server::state::{AppState, Decided};
use crate::telemetry::Frontend;

/// Context extension naming the region of an EC2 route.
pub const REGION_KEY: &str = "iamgate.region";
/// Header Envoy sets when it forwarded only part of the body.
const PARTIAL_BODY_HEADER: &str = "x-envoy-auth-partial-body";

/// The service mapping a request's route selects: its `iamgate.mapping`
/// extension, else `default`. An unknown name is a configuration error.
pub fn route_mapping(
    extension: Option<&str>,
    default: ServiceMapping,
) -> Result<ServiceMapping, MappingError> {
    let Some(name) = extension else {
        return Ok(default);
    };
    name.parse().map_err(|message| MappingError::BadTemplate {
        key: MAPPING_KEY.to_owned(),
        message,
    })
}

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
        Err(Refusal::Counted(e)) => response::refused(&e),
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
    let region = match region_ext {
        Some(r) => r.to_owned(),
        None => region_from_host(&http.host).ok_or_else(|| {
            ServeError::Internal(format!(
                "route misconfigured: the host `{}` names no EC2 region and the route has no `{REGION_KEY}` context extension",
                http.host
            ))
        })?,
    };
    let view = HttpView::new(http);
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
    let content_type = view
        .header("content-type")
        .map_err(|e| Refusal::bad(Ec2Error::bad_request("MalformedQueryString", e.to_string())))?;
    let params = QueryParams::parse(
        &http.path,
        body.map(|bytes| Body {
            content_type: content_type.as_deref(),
            bytes,
        }),
    )
    .map_err(|e| Refusal::bad(mapping_error(&Ec2MappingError::Query(e))))?;

    let caller_account = principal.split(':').nth(4).unwrap_or_default().to_owned();
    let snapshot = state.snapshot()?;
    let inventory = state.inventory.load();
    let call = map_call(&params, &region, &caller_account, &inventory)
        .map_err(|e| Refusal::bad(mapping_error(&e)))?;

    let request_keys = request_keys(
        attrs.source.as_ref().and_then(|s| s.address.as_ref()),
        http,
        &view,
        config.xff_trusted_hops,
        &region,
        now,
    )?;
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
        let req = AuthzRequest {
            principal_arn: principal.clone(),
            action: a.action.clone(),
            resource: a.resource.clone(),
            context,
            session_tags: Vec::new(),
            session_policy: None,
            resource_account: engine_resource_account(a, &call),
            outcome_only: false,
        };
        let d = state
            .decide_on(&snapshot, Frontend::ExtAuthz, &req, traceparent.as_deref())
            .map_err(Refusal::Counted)?;
        if d.answer.decision != Outcome::Allowed {
            let message = unauthorized(state, &req, &d)?;
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
    let first = first.ok_or_else(|| {
        ServeError::Internal(format!(
            "the EC2 mapping of {} gave no authorization",
            call.action
        ))
    })?;

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
    apply_grants(state, call);
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

/// The grant changes of an allowed, forwarded call, applied to the live
/// inventory as iamgate forwards the call (it does not see the backend's
/// answer; a failed backend call leaves the grant recorded until the
/// inventory is next updated).
fn apply_grants(state: &AppState, call: Ec2Call) {
    if call.grant_updates.is_empty() {
        return;
    }
    let applied = state.inventory.apply(call.grant_updates);
    tracing::info!(
        action = %call.action,
        grants_changed = applied.grants_changed,
        not_found = applied.not_found,
        "EC2 permission attributes updated"
    );
}

/// A decision turned into a deny (for the metadata of a refused call whose
/// IAM authorizations passed).
fn denied(mut d: Decided) -> Decided {
    d.answer.decision = Outcome::ImplicitDeny;
    d
}

/// The `iamgate.region` extension, checking that the route carries no
/// other unknown `iamgate.*` extension (a typo would silently change what
/// is decided).
fn route_region(ext: &HashMap<String, String>) -> Result<Option<&str>, ServeError> {
    for key in ext.keys() {
        if key.starts_with("iamgate.") && key != MAPPING_KEY && key != REGION_KEY {
            return Err(ServeError::Internal(
                MappingError::BadTemplate {
                    key: key.clone(),
                    message: format!(
                        "unknown iamgate extension on an EC2 route (known: `{MAPPING_KEY}`, `{REGION_KEY}`)"
                    ),
                }
                .to_string(),
            ));
        }
    }
    match ext.get(REGION_KEY) {
        None => Ok(None),
        Some(r) if is_region(r) => Ok(Some(r)),
        Some(r) => Err(ServeError::Internal(
            MappingError::BadTemplate {
                key: REGION_KEY.to_owned(),
                message: format!("`{r}` is not a region name"),
            }
            .to_string(),
        )),
    }
}

/// Whether `s` looks like a region name (`us-east-1`, `cn-north-1`).
fn is_region(s: &str) -> bool {
    !s.is_empty()
        && s.contains('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The region of an EC2 endpoint host: `ec2.REGION.amazonaws.com` (also
/// `ec2-fips.`, `.amazonaws.com.cn`, `.api.aws`), with `ec2.amazonaws.com`
/// meaning `us-east-1`. Any port is ignored.
pub fn region_from_host(host: &str) -> Option<String> {
    let host = host.to_ascii_lowercase();
    let name = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h.to_owned(),
        _ => host,
    };
    let name = name.trim_end_matches('.');
    let (service, rest) = name.split_once('.')?;
    if service != "ec2" && service != "ec2-fips" {
        return None;
    }
    if rest == "amazonaws.com" {
        return Some("us-east-1".to_owned());
    }
    let (region, domain) = rest.split_once('.')?;
    let known_domain = matches!(domain, "amazonaws.com" | "amazonaws.com.cn" | "api.aws");
    (known_domain && is_region(region)).then(|| region.to_owned())
}

/// The body Envoy forwarded, if any. A body the request declares but Envoy
/// did not forward in full is refused.
fn request_body<'h>(
    http: &'h HttpRequest,
    view: &HttpView<'_>,
) -> Result<Option<&'h [u8]>, Refusal> {
    let bytes: &[u8] = if http.raw_body.is_empty() {
        http.body.as_bytes()
    } else {
        &http.raw_body
    };
    let partial = view
        .header(PARTIAL_BODY_HEADER)
        .ok()
        .flatten()
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if partial {
        return Err(Refusal::bad(Ec2Error::bad_request(
            "RequestEntityTooLarge",
            "the request body is larger than the authorizer was sent (Envoy's with_request_body.max_request_bytes); its parameters cannot be authorized",
        )));
    }
    let declared = view
        .header("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let chunked = view.header("transfer-encoding").ok().flatten().is_some();
    let size = u64::try_from(http.size).unwrap_or(0);
    if bytes.is_empty() && (declared > 0 || size > 0 || chunked) {
        return Err(ServeError::Internal(
            "route misconfigured: the request has a body but Envoy did not send it (enable with_request_body on the ext_authz filter); its parameters cannot be authorized".to_owned(),
        )
        .into());
    }
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if len < declared.max(size) {
        return Err(Refusal::bad(Ec2Error::bad_request(
            "RequestEntityTooLarge",
            "the authorizer was sent only part of the request body; its parameters cannot be authorized",
        )));
    }
    Ok((!bytes.is_empty()).then_some(bytes))
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
            .map_err(|m| Refusal::bad(Ec2Error::bad_request("InvalidParameterValue", m)))?
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
pub fn client_from_xff(xff: &str, hops: usize) -> Result<Option<IpAddr>, String> {
    let entries: Vec<&str> = xff.split(',').map(str::trim).collect();
    let Some(i) = entries.len().checked_sub(hops + 1) else {
        return Ok(None);
    };
    let entry = entries.get(i).copied().unwrap_or_default();
    entry.parse::<IpAddr>().map(Some).map_err(|_| {
        format!("X-Forwarded-For entry `{entry}` (the client behind {hops} trusted hops) is not an IP address")
    })
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
/// encoded authorization failure message.
fn unauthorized(state: &AppState, req: &AuthzRequest, d: &Decided) -> Result<String, ServeError> {
    let doc = AuthorizationMessage::new(req, &d.answer, &d.decision_id);
    let encoded =
        state.config.message_key.encode(&doc).map_err(|e| {
            ServeError::Internal(format!("encoding the authorization message: {e}"))
        })?;
    Ok(ec2_response::unauthorized_message(
        &req.principal_arn,
        &req.action,
        &req.resource,
        &ec2_response::because(&d.answer, &req.action),
        &encoded,
    ))
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

/// A header that replaces any value the response already had.
fn header(key: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_owned(),
            value: value.to_owned(),
            raw_value: Vec::new(),
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

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

    #[test]
    fn regions_from_hosts() {
        let r = |h: &str| region_from_host(h);
        assert_eq!(
            r("ec2.us-west-2.amazonaws.com").as_deref(),
            Some("us-west-2")
        );
        assert_eq!(
            r("EC2.eu-west-1.amazonaws.com:443").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(r("ec2.amazonaws.com").as_deref(), Some("us-east-1"));
        assert_eq!(
            r("ec2-fips.us-east-2.amazonaws.com").as_deref(),
            Some("us-east-2")
        );
        assert_eq!(
            r("ec2.cn-north-1.amazonaws.com.cn").as_deref(),
            Some("cn-north-1")
        );
        assert_eq!(r("ec2.ap-south-1.api.aws").as_deref(), Some("ap-south-1"));
        for bad in [
            "127.0.0.1:8080",
            "s3.us-east-1.amazonaws.com",
            "ec2.us-east-1.example.com",
            "ec2.US_EAST.amazonaws.com",
            "ec2",
            "",
        ] {
            assert_eq!(r(bad), None, "{bad}");
        }
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
        assert!(client_from_xff("bogus, 10.0.0.2", 1).is_err());
    }

    #[test]
    fn route_selection_and_extensions() {
        let g = ServiceMapping::Generic;
        let e = ServiceMapping::Ec2Query;
        assert_eq!(route_mapping(None, g), Ok(g));
        assert_eq!(route_mapping(None, e), Ok(e));
        assert_eq!(route_mapping(Some("ec2-query"), g), Ok(e));
        assert_eq!(route_mapping(Some("generic"), e), Ok(g));
        assert!(route_mapping(Some("s3"), g).unwrap_err().is_config());

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

    #[test]
    fn bodies_must_arrive_whole() {
        let ok = http(
            "/",
            &[("content-type", "application/x-www-form-urlencoded")],
            "Action=X",
        );
        assert_eq!(
            request_body(&ok, &HttpView::new(&ok)).unwrap(),
            Some(&b"Action=X"[..])
        );
        let none = http("/?Action=X", &[], "");
        assert_eq!(request_body(&none, &HttpView::new(&none)).unwrap(), None);
        // Envoy did not send the body at all: a misconfigured filter.
        let mut unsent = http("/", &[("content-length", "8")], "");
        unsent.size = 8;
        assert!(matches!(
            request_body(&unsent, &HttpView::new(&unsent)),
            Err(Refusal::Serve(ServeError::Internal(_)))
        ));
        let chunked = http("/", &[("transfer-encoding", "chunked")], "");
        assert!(request_body(&chunked, &HttpView::new(&chunked)).is_err());
        // Only part of it.
        let mut part = http("/", &[("content-length", "100")], "Action=X");
        part.size = 100;
        assert!(matches!(
            request_body(&part, &HttpView::new(&part)),
            Err(Refusal::Ec2 { .. })
        ));
        let flagged = http("/", &[(PARTIAL_BODY_HEADER, "true")], "Action=X");
        assert!(request_body(&flagged, &HttpView::new(&flagged)).is_err());
        // Bytes win over the string form.
        let mut raw = http("/", &[], "");
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
