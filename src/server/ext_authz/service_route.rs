//! ext_authz for the routes of a service behind the seam
//! ([`crate::service`]): route selection by mapping name, and the one
//! adapter that runs any service's [`HttpMapping`].
//!
//! [`select`] reads the route's `iamgate.mapping` (else
//! `--default-mapping`): `generic` is the template mapping
//! ([`super::mapping`]); any other name must be a registered service's. A
//! service with an [`HttpMapping`] is decided here; EC2's Query API keeps
//! its own front door ([`super::ec2`]). An unknown name is the operator's
//! mistake (`error_response`).
//!
//! [`check_request`], for a service's route:
//! 1. Extensions: only `iamgate.mapping` and `iamgate.region` (a region
//!    name); any other `iamgate.*` is a misconfigured route.
//! 2. Principal: the operator's identity sources, as the generic mapping
//!    (peer URI SAN, verified JWT, trusted header; see
//!    `super::mapping::principal`).
//! 3. The service maps the method, raw path and Host to IAM requests, or
//!    refuses the request in its own words (a denial).
//! 4. Each request gets the request-wide keys (`aws:SourceIp` from the
//!    peer, `aws:SecureTransport`, `aws:CurrentTime`, `aws:EpochTime`, and
//!    `aws:RequestedRegion` from the route's region) and is decided; all
//!    must be allowed. The first that is not is answered with the
//!    service's denial; an allowed call goes on with `x-iamgate-principal`
//!    and `x-iamgate-decision-id`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use envoy_types::pb::envoy::config::core::v3::address::Address;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse, DeniedHttpResponse};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::rpc;

use crate::engine::authz::AuthzRequest;
use crate::engine::{Context, ContextValue, Outcome};
use crate::server::config::ServiceMapping;
use crate::server::errors::ServeError;
use crate::server::ext_authz::mapping::{
    self, HttpView, MAPPING_KEY, MappingError, PrincipalSource,
};
use crate::server::ext_authz::response::{self, DECISION_ID_HEADER, header, metadata};
use crate::server::ext_authz::sigv4::REGION_KEY;
use crate::server::state::{AppState, Decided};
use crate::service::{HttpCall, HttpMapping, HttpReply, Registry, Service};
use crate::telemetry::Frontend;

/// What a route's mapping name selects.
#[derive(Debug)]
pub enum Route<'r> {
    /// The `iamgate.action` / `iamgate.resource` templates.
    Generic,
    /// A registered service without a generic HTTP mapping: EC2's Query
    /// API front door.
    Ec2Query,
    /// A registered service decided by [`check_request`].
    Service(&'r Arc<dyn Service>),
}

/// The route a request's `iamgate.mapping` (else `default`) selects.
pub fn select<'r>(
    extension: Option<&str>,
    default: &ServiceMapping,
    services: &'r Registry,
) -> Result<Route<'r>, MappingError> {
    let name = extension.unwrap_or(default.as_str());
    resolve(name, services).map_err(|e| MappingError::BadTemplate {
        key: MAPPING_KEY.to_owned(),
        message: e.to_string(),
    })
}

/// Why a service mapping name selects no route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownMapping {
    #[error("service `{0}` has no ext_authz request mapping")]
    NoHttpMapping(String),
    #[error("unknown service mapping `{name}` (known: {})", known.join(", "))]
    Unknown { name: String, known: Vec<String> },
}

fn resolve<'r>(name: &str, services: &'r Registry) -> Result<Route<'r>, UnknownMapping> {
    if name == ServiceMapping::GENERIC {
        return Ok(Route::Generic);
    }
    match services.by_mapping(name) {
        Some(s) if s.http().is_some() => Ok(Route::Service(s)),
        Some(s) if s.mapping() == crate::ec2::service::MAPPING => Ok(Route::Ec2Query),
        Some(s) => Err(UnknownMapping::NoHttpMapping(s.name().to_owned())),
        None => Err(UnknownMapping::Unknown {
            name: name.to_owned(),
            known: std::iter::once(ServiceMapping::GENERIC)
                .chain(services.mappings())
                .map(|m| format!("`{m}`"))
                .collect(),
        }),
    }
}

/// Checks `--default-mapping` against the registered services (at start,
/// before any listener opens).
pub fn check_default_mapping(
    default: &ServiceMapping,
    services: &Registry,
) -> Result<(), UnknownMapping> {
    resolve(default.as_str(), services).map(|_| ())
}

/// Maps, decides and answers one `CheckRequest` of a service's route.
pub fn check_request(
    state: &AppState,
    http_mapping: &dyn HttpMapping,
    check: &CheckRequest,
    now: SystemTime,
) -> CheckResponse {
    let frontend = Frontend::ExtAuthz;
    match decide_call(state, http_mapping, check, now) {
        Ok((decided, principal)) => response::decided(&decided, &principal),
        Err(Refusal::Serve(e)) => {
            if let ServeError::Internal(message) = &e {
                tracing::warn!(error = %message, "ext_authz: misconfigured service route");
            }
            state.metrics.request_error(frontend, e.reason());
            response::refused(&e)
        }
        // Counted by the decision path.
        Err(Refusal::Counted(e)) => response::refused(&e),
        Err(Refusal::Service {
            reply,
            reason,
            decided,
        }) => {
            if let Some(reason) = reason {
                state.metrics.request_error(frontend, reason);
            }
            service_reply(&reply, decided.as_deref())
        }
    }
}

/// Why a service's call was not forwarded.
#[derive(Debug)]
enum Refusal {
    /// Not the service's answer (misconfigured route, no principal, no
    /// snapshot); not yet counted.
    Serve(ServeError),
    /// As `Serve`, already counted by the decision path.
    Counted(ServeError),
    /// The service's own answer; `reason` labels request errors (`None`
    /// for denials, counted as decisions).
    Service {
        reply: HttpReply,
        reason: Option<&'static str>,
        decided: Option<Box<Decided>>,
    },
}

impl From<ServeError> for Refusal {
    fn from(e: ServeError) -> Self {
        Refusal::Serve(e)
    }
}

fn decide_call(
    state: &AppState,
    http_mapping: &dyn HttpMapping,
    check: &CheckRequest,
    now: SystemTime,
) -> Result<(Decided, String), Refusal> {
    let no_http = || ServeError::BadRequest(MappingError::NoHttpRequest.to_string());
    let attrs = check.attributes.as_ref().ok_or_else(no_http)?;
    let http = attrs
        .request
        .as_ref()
        .and_then(|r| r.http.as_ref())
        .ok_or_else(no_http)?;
    let region = route_region(&attrs.context_extensions)?;
    let view = HttpView::new(http);
    let principals = PrincipalSource::new(&state.config);
    let principal = mapping::principal(
        &mapping::Verified::from_message(attrs, principals),
        &view,
        principals,
    )
    .map_err(MappingError::into_serve_error)?;

    let call = HttpCall {
        method: &http.method,
        path: &http.path,
        host: &http.host,
        headers: &http.headers,
        region,
    };
    let mapped = http_mapping.map(&call).map_err(|refused| {
        tracing::debug!(error = %refused.message, "ext_authz: service refused the request");
        Refusal::Service {
            reply: refused.reply,
            reason: Some("bad_request"),
            decided: None,
        }
    })?;
    if mapped.is_empty() {
        // Nothing to authorize is never an allow.
        return Err(ServeError::Forbidden(
            "the service mapped the request to no authorization".to_owned(),
        )
        .into());
    }

    let mut request_keys = Context::new();
    let peer = attrs
        .source
        .as_ref()
        .and_then(|s| s.address.as_ref())
        .and_then(peer_ip);
    mapping::insert_request_keys(&mut request_keys, peer, &http.scheme, now);
    if let Some(region) = region {
        request_keys.insert_static("aws:requestedregion", ContextValue::One(region.to_owned()));
    }
    let traceparent = view.traceparent();
    let mut first: Option<Decided> = None;
    for m in mapped {
        let mut context = request_keys.clone();
        for (k, v) in m.context {
            context.insert(&k, v);
        }
        let req = AuthzRequest {
            principal_arn: principal.clone(),
            action: m.action,
            resource: m.resource,
            context,
            outcome_only: true,
            ..AuthzRequest::default()
        };
        let d = state
            .decide(Frontend::ExtAuthz, &req, traceparent.as_deref())
            .map_err(Refusal::Counted)?;
        if d.answer.decision != Outcome::Allowed {
            let reply = http_mapping.denied(&call, &req, &d.answer, &d.decision_id);
            return Err(Refusal::Service {
                reply,
                reason: None,
                decided: Some(Box::new(d)),
            });
        }
        first.get_or_insert(d);
    }
    let decided = first.ok_or_else(|| ServeError::Internal("no decision".to_owned()))?;
    Ok((decided, principal))
}

/// The route's `iamgate.region`; any `iamgate.*` extension other than it
/// and `iamgate.mapping` is a misconfigured route.
fn route_region(
    ext: &std::collections::HashMap<String, String>,
) -> Result<Option<&str>, ServeError> {
    let config = |key: &str, message: String| {
        ServeError::Internal(
            MappingError::BadTemplate {
                key: key.to_owned(),
                message,
            }
            .to_string(),
        )
    };
    for key in ext.keys() {
        if key.starts_with("iamgate.") && key != MAPPING_KEY && key != REGION_KEY {
            return Err(config(
                key,
                format!(
                    "unknown iamgate extension on a service route (known: `{MAPPING_KEY}`, `{REGION_KEY}`)"
                ),
            ));
        }
    }
    match ext.get(REGION_KEY) {
        None => Ok(None),
        Some(r) if crate::server::ext_authz::ec2::is_region(r) => Ok(Some(r)),
        Some(r) => Err(config(
            REGION_KEY,
            format!("`{r}` is not a region name (e.g. `us-east-1`)"),
        )),
    }
}

fn peer_ip(address: &envoy_types::pb::envoy::config::core::v3::Address) -> Option<IpAddr> {
    match address.address.as_ref()? {
        Address::SocketAddress(sa) => sa.address.parse().ok(),
        _ => None,
    }
}

/// A `denied_response` carrying the service's answer.
fn service_reply(reply: &HttpReply, decided: Option<&Decided>) -> CheckResponse {
    let mut headers = vec![header("content-type", reply.content_type)];
    let mut fields: Vec<(&str, &str)> = Vec::new();
    if let Some(d) = decided {
        headers.push(header(DECISION_ID_HEADER, &d.decision_id));
        fields.push(("decision_id", &d.decision_id));
        fields.push(("decision", d.answer.decision.as_str()));
        fields.push(("revision", &d.answer.revision));
    }
    let code = match reply.status {
        401 => tonic::Code::Unauthenticated,
        403 => tonic::Code::PermissionDenied,
        _ => tonic::Code::InvalidArgument,
    };
    CheckResponse {
        status: Some(rpc::Status {
            code: code as i32,
            message: format!("denied with HTTP {}", reply.status),
            details: Vec::new(),
        }),
        dynamic_metadata: Some(metadata(&fields)),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: i32::from(reply.status),
            }),
            headers,
            body: reply.body.clone(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        crate::registry::offline().unwrap()
    }

    #[test]
    fn routes_select_by_mapping_name_from_the_registry() {
        let services = registry();
        let generic = ServiceMapping::default();
        let ec2: ServiceMapping = "ec2-query".parse().unwrap();
        assert!(matches!(
            select(None, &generic, &services),
            Ok(Route::Generic)
        ));
        assert!(matches!(select(None, &ec2, &services), Ok(Route::Ec2Query)));
        assert!(matches!(
            select(Some("ec2-query"), &generic, &services),
            Ok(Route::Ec2Query)
        ));
        assert!(matches!(
            select(Some("generic"), &ec2, &services),
            Ok(Route::Generic)
        ));
        let unknown = select(Some("nope"), &generic, &services).unwrap_err();
        assert!(unknown.is_config());
        assert!(
            unknown
                .to_string()
                .contains("unknown service mapping `nope` (known: `generic`, `ec2-query`, `s3`)"),
            "{unknown}"
        );
        // An empty registry knows only the templates.
        let none = Registry::new();
        assert!(select(Some("ec2-query"), &generic, &none).is_err());
        assert!(matches!(
            check_default_mapping(&ec2, &none),
            Err(UnknownMapping::Unknown { name, .. }) if name == "ec2-query"
        ));
        assert!(check_default_mapping(&ec2, &services).is_ok());
        assert!("EC2".parse::<ServiceMapping>().is_err());
    }
}
