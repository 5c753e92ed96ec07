//! ext_authz response mapping: a decision or an error → `CheckResponse`.
//!
//! - allowed → status OK and an `ok_response` that sets (overwriting any
//!   client-sent value) `x-iamgate-decision-id` and `x-iamgate-principal`
//!   on the upstream request;
//! - explicit or implicit deny → `PERMISSION_DENIED` and a 403
//!   `denied_response` with a JSON body
//!   `{"decision","reason","decision_id","revision"}`;
//! - a request iamgate refuses to map (ambiguous path: 400; no principal:
//!   401; a verified identity that maps to no principal: 403; ...) → a
//!   `denied_response` with the status [`ServeError::http_status`] gives
//!   and the JSON error body;
//! - not ready, internal errors, misconfigured routes → an `error_response`
//!   without a status, so Envoy's `failure_mode_allow` and
//!   `status_on_error` decide. Nothing a client sends ends up here
//!   ([`is_failure`]).
//!
//! `dynamic_metadata` (namespace `envoy.filters.http.ext_authz`) carries
//! `decision_id`, `decision` and `revision`, or `error` for refusals.
//!
//! The generic mapping's allow, the answer on every request path, is
//! written straight to the wire by [`super::service`]; [`decided`] is the
//! message it must decode to (tested there) and what the EC2 path sends.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::pb::google::rpc;

use crate::engine::Outcome;
use crate::server::errors::ServeError;
use crate::server::state::Decided;

/// Upstream header carrying the decision id on allowed requests.
pub const DECISION_ID_HEADER: &str = "x-iamgate-decision-id";
/// Upstream header carrying the decided principal on allowed requests.
pub const PRINCIPAL_HEADER: &str = "x-iamgate-principal";

/// The answer to a decided request.
pub fn decided(d: &Decided, principal: &str) -> CheckResponse {
    let metadata = metadata(&[
        ("decision_id", d.decision_id.as_str()),
        ("decision", d.answer.decision.as_str()),
        ("revision", &d.answer.revision),
    ]);
    if d.answer.decision == Outcome::Allowed {
        return CheckResponse {
            status: Some(status(tonic::Code::Ok, String::new())),
            dynamic_metadata: Some(metadata),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                headers: vec![
                    header(DECISION_ID_HEADER, &d.decision_id),
                    header(PRINCIPAL_HEADER, principal),
                ],
                ..Default::default()
            })),
        };
    }
    let body = serde_json::json!({
        "decision": d.answer.decision.as_str(),
        "reason": d.answer.reason,
        "decision_id": d.decision_id,
        "revision": &*d.answer.revision,
    });
    CheckResponse {
        status: Some(status(
            tonic::Code::PermissionDenied,
            format!("{}: {}", d.answer.decision, d.answer.reason),
        )),
        dynamic_metadata: Some(metadata),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus { code: 403 }),
            headers: vec![
                header("content-type", "application/json"),
                header(DECISION_ID_HEADER, &d.decision_id),
            ],
            body: body.to_string(),
        })),
    }
}

/// Whether an error leaves the decision to Envoy's failure mode rather than
/// denying.
pub fn is_failure(e: &ServeError) -> bool {
    matches!(
        e,
        ServeError::NotReady | ServeError::Internal(_) | ServeError::Timeout
    )
}

/// The answer to a request that was not decided.
pub fn refused(e: &ServeError) -> CheckResponse {
    let grpc = e.grpc_status();
    let body = String::from_utf8_lossy(&e.http_body()).into_owned();
    let headers = vec![header("content-type", "application/json")];
    let http_response = if is_failure(e) {
        // No status: Envoy's `status_on_error` applies.
        HttpResponse::ErrorResponse(DeniedHttpResponse {
            status: None,
            headers,
            body,
        })
    } else {
        HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: i32::from(e.http_status().as_u16()),
            }),
            headers,
            body,
        })
    };
    CheckResponse {
        status: Some(status(grpc.code(), grpc.message().to_owned())),
        dynamic_metadata: Some(metadata(&[("error", e.reason())])),
        http_response: Some(http_response),
    }
}

fn status(code: tonic::Code, message: String) -> rpc::Status {
    rpc::Status {
        code: code as i32,
        message,
        details: Vec::new(),
    }
}

/// A header that replaces any value the request or response already had.
pub(crate) fn header(key: &str, value: &str) -> HeaderValueOption {
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

/// A `dynamic_metadata` struct of string fields.
pub(crate) fn metadata(fields: &[(&str, &str)]) -> Struct {
    Struct {
        fields: fields
            .iter()
            .map(|(k, v)| {
                (
                    (*k).to_owned(),
                    Value {
                        kind: Some(Kind::StringValue((*v).to_owned())),
                    },
                )
            })
            .collect::<HashMap<_, _>>(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::AuthzAnswer;

    fn decision(outcome: Outcome) -> Decided {
        Decided {
            answer: AuthzAnswer {
                decision: outcome,
                reason: crate::engine::Reason::NoIdentityAllow.into(),
                matched: Vec::new(),
                missing_context_keys: Vec::new(),
                revision: "rev-7".into(),
            },
            decision_id: "abc-000000000001".to_owned(),
        }
    }

    fn meta(r: &CheckResponse, key: &str) -> Option<String> {
        match r
            .dynamic_metadata
            .as_ref()?
            .fields
            .get(key)?
            .kind
            .as_ref()?
        {
            Kind::StringValue(s) => Some(s.clone()),
            _ => None,
        }
    }

    fn headers(h: &[HeaderValueOption]) -> Vec<(String, String, i32)> {
        h.iter()
            .filter_map(|o| {
                let hv = o.header.as_ref()?;
                Some((hv.key.clone(), hv.value.clone(), o.append_action))
            })
            .collect()
    }

    #[test]
    fn allow_forwards_with_headers_and_metadata() {
        let r = decided(&decision(Outcome::Allowed), "arn:aws:iam::1:user/bob");
        assert_eq!(r.status.as_ref().map(|s| s.code), Some(0));
        let Some(HttpResponse::OkResponse(ok)) = &r.http_response else {
            panic!("not an ok_response: {r:?}");
        };
        let overwrite = HeaderAppendAction::OverwriteIfExistsOrAdd as i32;
        assert_eq!(
            headers(&ok.headers),
            vec![
                (
                    DECISION_ID_HEADER.to_owned(),
                    "abc-000000000001".to_owned(),
                    overwrite
                ),
                (
                    PRINCIPAL_HEADER.to_owned(),
                    "arn:aws:iam::1:user/bob".to_owned(),
                    overwrite
                ),
            ]
        );
        assert_eq!(meta(&r, "decision_id").as_deref(), Some("abc-000000000001"));
        assert_eq!(meta(&r, "decision").as_deref(), Some("allowed"));
        assert_eq!(meta(&r, "revision").as_deref(), Some("rev-7"));
    }

    #[test]
    fn deny_is_a_403_with_a_json_body() {
        for outcome in [Outcome::ExplicitDeny, Outcome::ImplicitDeny] {
            let r = decided(&decision(outcome), "p");
            assert_eq!(
                r.status.as_ref().map(|s| s.code),
                Some(tonic::Code::PermissionDenied as i32)
            );
            let Some(HttpResponse::DeniedResponse(d)) = &r.http_response else {
                panic!("not a denied_response: {r:?}");
            };
            assert_eq!(d.status.as_ref().map(|s| s.code), Some(403));
            let body: serde_json::Value = serde_json::from_str(&d.body).unwrap();
            assert_eq!(
                body,
                serde_json::json!({
                    "decision": outcome.as_str(),
                    "reason": "no identity-based policy allows the action",
                    "decision_id": "abc-000000000001",
                    "revision": "rev-7",
                })
            );
            assert!(
                headers(&d.headers)
                    .iter()
                    .any(|(k, v, _)| k == "content-type" && v == "application/json")
            );
            assert_eq!(meta(&r, "decision").as_deref(), Some(outcome.as_str()));
        }
    }

    #[test]
    fn bad_requests_are_denied_with_their_status() {
        let r = refused(&ServeError::BadRequest(
            "ambiguous or invalid path: x".into(),
        ));
        assert_eq!(
            r.status.as_ref().map(|s| s.code),
            Some(tonic::Code::InvalidArgument as i32)
        );
        let Some(HttpResponse::DeniedResponse(d)) = &r.http_response else {
            panic!("not a denied_response: {r:?}");
        };
        assert_eq!(d.status.as_ref().map(|s| s.code), Some(400));
        let body: serde_json::Value = serde_json::from_str(&d.body).unwrap();
        assert_eq!(body["error"]["code"], "bad_request");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("ambiguous")
        );
        assert_eq!(meta(&r, "error").as_deref(), Some("bad_request"));
    }

    #[test]
    fn refused_identities_are_denied() {
        for (e, http, grpc) in [
            (
                ServeError::Unauthenticated("no principal".into()),
                401,
                tonic::Code::Unauthenticated,
            ),
            (
                ServeError::Forbidden("unmapped".into()),
                403,
                tonic::Code::PermissionDenied,
            ),
        ] {
            let r = refused(&e);
            assert_eq!(r.status.as_ref().map(|s| s.code), Some(grpc as i32));
            let Some(HttpResponse::DeniedResponse(d)) = &r.http_response else {
                panic!("not a denied_response: {r:?}");
            };
            assert_eq!(d.status.as_ref().map(|s| s.code), Some(http));
            assert_eq!(meta(&r, "error").as_deref(), Some(e.reason()));
        }
    }

    #[test]
    fn failures_are_error_responses_without_status() {
        for e in [
            ServeError::NotReady,
            ServeError::Internal("route misconfigured".into()),
            ServeError::Timeout,
        ] {
            let r = refused(&e);
            assert_ne!(r.status.as_ref().map(|s| s.code), Some(0));
            let Some(HttpResponse::ErrorResponse(d)) = &r.http_response else {
                panic!("not an error_response: {r:?}");
            };
            assert!(d.status.is_none(), "status_on_error must apply");
            assert!(d.body.contains(e.reason()));
        }
    }
}
