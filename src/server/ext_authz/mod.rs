//! Envoy ext_authz v3 for the HTTP filter
//! (`envoy.service.auth.v3.Authorization/Check`), opa-envoy-plugin style:
//! [`wire`] reads the `CheckRequest` in place off the wire, [`mapping`]
//! turns it into one IAM request, the shared
//! decision path ([`AppState::decide`]) decides it, and [`response`] shapes
//! the `CheckResponse`; [`service`] is the gRPC service (an allow is
//! written to the wire without building the message). The gRPC listener
//! itself lives in `server::grpc`.
//! Routes whose `iamgate.mapping` (or `--default-mapping`) names a
//! registered service go to it ([`service_route`]): `ec2-query` to [`ec2`],
//! which maps an EC2 Query API call and answers as EC2, any other to the
//! service's own request mapping and answers (`s3`).
//! A generic route with `iamgate.auth: sigv4` takes its caller from the
//! request's signature alone ([`sigv4`]).
//! A `CheckRequest` without an HTTP request comes from Envoy's network
//! filter (one per TCP connection) and goes to [`network`] (security
//! groups).
//!
//! Only the operator's mistakes (a misconfigured route) and iamgate's own
//! state (no snapshot yet) answer `error_response`, where Envoy's
//! `failure_mode_allow` could forward the request; anything a client can
//! cause, down to bytes that do not decode, is a denial.

pub mod ec2;
pub mod mapping;
pub mod network;
pub mod response;
pub mod service;
pub mod service_route;
pub mod sigv4;
pub mod wire;

use std::time::SystemTime;

use envoy_types::pb::envoy::service::auth::v3::CheckRequest;

use crate::engine::Outcome;
use crate::server::errors::ServeError;
use crate::server::state::AppState;
use crate::telemetry::Frontend;
use mapping::MAPPING_KEY;
use prost::Message as _;
use service::{AllowAnswer, AuthorizationService, CheckAnswer};
use wire::{CheckView, WireError};

pub use service_route::{UnknownMapping, check_default_mapping};

/// Headroom over the body limit for the rest of a `CheckRequest`.
const CHECK_OVERHEAD_BYTES: usize = 256 * 1024;

/// The ext_authz service.
#[derive(Debug, Clone)]
pub struct ExtAuthz {
    state: AppState,
}

impl ExtAuthz {
    /// A service over the shared state.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// Answers one encoded `CheckRequest` from Envoy's HTTP or network
    /// filter. Bytes that do not decode are refused with a denial, never a
    /// gRPC error: an error would let Envoy's `failure_mode_allow` forward
    /// the request.
    pub fn check(&self, bytes: &[u8]) -> Result<CheckAnswer, tonic::Status> {
        // The identity sources' metadata is read with the rest, so that an
        // unusual encoding there takes the same path.
        let paths = mapping::PrincipalSource::new(&self.state.config).metadata_paths();
        match CheckView::parse_with(bytes, &paths) {
            Ok(view) => self.check_view(&view, bytes),
            Err(WireError::Unusual) => {
                // Merged by prost, then read again.
                let canonical = match decode(bytes) {
                    Ok(m) => m.encode_to_vec(),
                    Err(e) => return Ok(self.undecodable(e)),
                };
                match CheckView::parse_with(&canonical, &paths) {
                    Ok(view) => self.check_view(&view, &canonical),
                    Err(e) => Ok(self.undecodable(e)),
                }
            }
            Err(e) => Ok(self.undecodable(e)),
        }
    }

    fn check_view(&self, view: &CheckView<'_>, bytes: &[u8]) -> Result<CheckAnswer, tonic::Status> {
        if view.http.is_none() {
            return match decode(bytes) {
                Ok(check) => network::check_request(&self.state, &check).map(CheckAnswer::from),
                Err(e) => Ok(self.undecodable(e)),
            };
        }
        self.check_request(view, bytes, SystemTime::now())
    }

    /// The denial of a `CheckRequest` that does not decode.
    fn undecodable(&self, e: impl std::fmt::Display) -> CheckAnswer {
        let err = ServeError::BadRequest(format!("the CheckRequest does not decode: {e}"));
        self.state
            .metrics
            .request_error(Frontend::ExtAuthz, err.reason());
        response::refused(&err).into()
    }

    /// Maps, decides and answers one `CheckRequest` of the HTTP filter:
    /// `view` is `bytes` read off the wire.
    pub fn check_request(
        &self,
        view: &CheckView<'_>,
        bytes: &[u8],
        now: SystemTime,
    ) -> Result<CheckAnswer, tonic::Status> {
        let frontend = Frontend::ExtAuthz;
        let config = &self.state.config;
        let route = service_route::select(
            view.extension(MAPPING_KEY),
            &config.default_mapping,
            &self.state.services,
        );
        match route {
            Ok(service_route::Route::Ec2Query) => {
                return Ok(match decode(bytes) {
                    Ok(check) => ec2::check_request(&self.state, &check, now).into(),
                    Err(e) => self.undecodable(e),
                });
            }
            Ok(service_route::Route::Service(s)) => {
                return Ok(match (s.http(), decode(bytes)) {
                    (Some(m), Ok(check)) => {
                        service_route::check_request(&self.state, m, &check, now).into()
                    }
                    (None, _) => response::refused(&ServeError::Internal(format!(
                        "service `{}` has no ext_authz request mapping",
                        s.name()
                    )))
                    .into(),
                    (_, Err(e)) => self.undecodable(e),
                });
            }
            Ok(service_route::Route::Generic) => {}
            Err(e) => {
                tracing::warn!(error = %e, "ext_authz: misconfigured route");
                let err = e.into_serve_error();
                self.state.metrics.request_error(frontend, err.reason());
                return Ok(response::refused(&err).into());
            }
        }
        // A SigV4 route: the signature, over the body Envoy forwarded, names
        // the caller (read in place with the rest).
        // Temporary credentials that signed (their session decides).
        let mut session = None;
        let caller = if view.extension(sigv4::AUTH_KEY) == Some("sigv4") {
            match sigv4::generic_signer(&self.state, view, now) {
                Ok((arn, user_id, region, signed_session)) => {
                    session = signed_session;
                    mapping::Caller::Signed {
                        arn,
                        user_id,
                        region,
                    }
                }
                Err(sigv4::Refused::Aws(e)) => {
                    let reason = "unauthenticated";
                    self.state.metrics.request_error(frontend, reason);
                    return Ok(e.denied(reason).into());
                }
                Err(sigv4::Refused::Serve(e)) => {
                    if let ServeError::Internal(message) = &e {
                        tracing::warn!(error = %message, "ext_authz: misconfigured route");
                    }
                    self.state.metrics.request_error(frontend, e.reason());
                    return Ok(response::refused(&e).into());
                }
            }
        } else {
            mapping::Caller::Sources(mapping::PrincipalSource::new(config))
        };
        let mut mapped = match mapping::map_request_as(view, caller, now) {
            Ok(m) => m,
            Err(e) => {
                if e.is_config() {
                    tracing::warn!(error = %e, "ext_authz: misconfigured route");
                }
                let err = e.into_serve_error();
                self.state.metrics.request_error(frontend, err.reason());
                return Ok(response::refused(&err).into());
            }
        };
        if let Some(claims) = &session {
            crate::sts::session::apply(claims, &mut mapped);
        }
        let traceparent = if self.state.uses_traceparent() {
            mapping::traceparent(view)
        } else {
            None
        };
        Ok(
            match self.state.decide(frontend, &mapped, traceparent.as_deref()) {
                Ok(d) if d.answer.decision == Outcome::Allowed => {
                    CheckAnswer::Allowed(AllowAnswer {
                        decision_id: d.decision_id,
                        principal: mapped.principal_arn,
                        revision: d.answer.revision,
                    })
                }
                Ok(d) => response::decided(&d, &mapped.principal_arn).into(),
                // `decide` has counted the error.
                Err(e) => response::refused(&e).into(),
            },
        )
    }
}

/// The whole message, for the paths that read more than the generic
/// mapping: EC2, the network filter.
fn decode(bytes: &[u8]) -> Result<CheckRequest, prost::DecodeError> {
    CheckRequest::decode(bytes)
}

/// The tonic service to add to the gRPC router.
pub fn service(state: AppState) -> AuthorizationService {
    let limit = state
        .config
        .limits
        .max_body_bytes
        .saturating_add(CHECK_OVERHEAD_BYTES);
    AuthorizationService::new(ExtAuthz::new(state), limit)
}
