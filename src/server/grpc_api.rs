//! iamgate's own gRPC API, `iamgate.v1.Authorizer` (`proto/iamgate/v1/`):
//! the generated types ([`pb`], server and client), and a thin adapter that
//! turns protobuf requests into [`AuthzRequest`]s, calls the shared decision
//! path ([`AppState::decide`] / [`AppState::decide_on`]) and shapes the
//! answers. Errors become statuses only through [`ServeError::grpc_status`].

use std::collections::HashMap;

use serde_json::Value;
use tonic::{Request, Response, Status};

use crate::bundle::AuthzRequest;
use crate::engine::{Context, ContextValue, Outcome};
use crate::server::errors::{ServeError, check_depth};
use crate::server::state::{AppState, Decided, InvalidRequest, validate};
use crate::telemetry::Frontend;

/// Types, server and client generated from `proto/iamgate/v1/authorizer.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("iamgate.v1");

    /// The encoded `FileDescriptorSet` of `iamgate.v1`, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("iamgate_v1_descriptor");
}

use pb::authorizer_server::{Authorizer, AuthorizerServer};

/// The `iamgate.v1.Authorizer` service.
#[derive(Debug, Clone)]
pub struct AuthorizerService {
    state: AppState,
}

impl AuthorizerService {
    /// The service over the shared state.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// The tonic server for this service, with the message size limit
    /// (`limits.max_body_bytes`) applied.
    pub fn server(state: AppState) -> AuthorizerServer<Self> {
        let limit = state.config.limits.max_body_bytes;
        AuthorizerServer::new(Self::new(state)).max_decoding_message_size(limit)
    }

    /// Counts an error raised by this adapter (not by the decision path,
    /// which counts its own) and turns it into a status.
    fn refuse(&self, e: ServeError) -> Status {
        self.state.metrics.request_error(Frontend::Grpc, e.reason());
        e.grpc_status()
    }
}

#[tonic::async_trait]
impl Authorizer for AuthorizerService {
    async fn authorize(
        &self,
        request: Request<pb::AuthorizeRequest>,
    ) -> Result<Response<pb::AuthorizeResponse>, Status> {
        let traceparent = traceparent(&request);
        let req = request.into_inner();
        let principal = req
            .principal
            .ok_or_else(|| self.refuse(bad("`principal` is required")))?;
        let session_policy = session_policy(&principal, self.state.config.limits.max_depth)
            .map_err(|e| self.refuse(e))?;
        let authz = authz_request(
            &principal,
            session_policy,
            req.action,
            req.resource,
            &req.context,
            req.resource_account,
        )
        .map_err(|e| self.refuse(ServeError::BadRequest(e.to_string())))?;
        let decided = self
            .state
            .decide_owned(Frontend::Grpc, authz, traceparent)
            .await
            .map_err(|e| e.grpc_status())?;
        Ok(Response::new(answer(&decided)))
    }

    async fn authorize_batch(
        &self,
        request: Request<pb::AuthorizeBatchRequest>,
    ) -> Result<Response<pb::AuthorizeBatchResponse>, Status> {
        let traceparent = traceparent(&request);
        let req = request.into_inner();
        let limit = self.state.config.limits.max_batch;
        if req.items.len() > limit {
            return Err(self.refuse(ServeError::BatchTooLarge {
                got: req.items.len(),
                limit,
            }));
        }
        let principal = req
            .principal
            .ok_or_else(|| self.refuse(bad("`principal` is required")))?;
        let session_policy = session_policy(&principal, self.state.config.limits.max_depth)
            .map_err(|e| self.refuse(e))?;
        // Convert every item before deciding any, so a malformed item fails
        // the batch without recording decisions.
        let requests = req
            .items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                authz_request(
                    &principal,
                    session_policy.clone(),
                    item.action,
                    item.resource,
                    &item.context,
                    item.resource_account,
                )
                .and_then(|authz| validate(&authz).map(|()| authz))
                .map_err(|e| ServeError::BadRequest(format!("items[{i}]: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.refuse(e))?;
        // One snapshot for the whole batch: no answer mixes revisions.
        let snapshot = self.state.snapshot().map_err(|e| self.refuse(e))?;
        let revision = snapshot.revision().to_string();
        let results: Vec<_> = self
            .state
            .decide_batch(Frontend::Grpc, snapshot, requests, traceparent)
            .await
            .map_err(|e| e.grpc_status())?
            .iter()
            .map(answer)
            .collect();
        self.state.metrics.batch_items(results.len());
        Ok(Response::new(pb::AuthorizeBatchResponse {
            revision,
            results,
        }))
    }
}

fn bad(msg: &str) -> ServeError {
    ServeError::BadRequest(msg.to_owned())
}

/// The caller's W3C `traceparent` metadata, passed as is to the decision
/// path (which joins the decision span to the caller's trace).
fn traceparent<T>(request: &Request<T>) -> Option<String> {
    request
        .metadata()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Parses the principal's session policy JSON (bounded in depth).
fn session_policy(
    principal: &pb::Principal,
    max_depth: usize,
) -> Result<Option<Value>, ServeError> {
    let Some(text) = principal.session_policy_json.as_deref() else {
        return Ok(None);
    };
    // Refused before parsing: the text is what AWS counts.
    crate::policy::limits::check_session_policy_text(text)
        .map_err(|e| ServeError::BadRequest(format!("principal.session_policy_json: {e}")))?;
    check_depth(text.as_bytes(), max_depth)?;
    serde_json::from_str(text).map(Some).map_err(|e| {
        ServeError::BadRequest(format!("principal.session_policy_json: invalid JSON: {e}"))
    })
}

/// Builds the snapshot request from protobuf parts.
fn authz_request(
    principal: &pb::Principal,
    session_policy: Option<Value>,
    action: String,
    resource: String,
    context: &HashMap<String, pb::ContextValue>,
    resource_account: Option<String>,
) -> Result<AuthzRequest, InvalidRequest> {
    let mut ctx = Context::new();
    for (k, v) in context {
        let value = context_value(v).map_err(|reason| InvalidRequest::ContextValue {
            key: k.clone(),
            reason,
        })?;
        ctx.insert(k, value);
    }
    Ok(AuthzRequest {
        principal_arn: principal.arn.clone(),
        action,
        resource,
        context: ctx,
        session_tags: principal
            .session_tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        session_policy,
        session_policy_arns: Vec::new(),
        resource_account,
        outcome_only: false,
    })
}

/// Converts one protobuf context value into the engine's string form, the
/// way the JSON API converts JSON scalars.
fn context_value(v: &pb::ContextValue) -> Result<ContextValue, &'static str> {
    use pb::context_value::Kind;
    match &v.kind {
        Some(Kind::StringValue(s)) => Ok(ContextValue::One(s.clone())),
        Some(Kind::StringList(l)) => Ok(ContextValue::Many(l.values.clone())),
        Some(Kind::NumberValue(n)) => number(*n)
            .map(ContextValue::One)
            .ok_or("a number must be finite"),
        Some(Kind::BoolValue(b)) => Ok(ContextValue::One(b.to_string())),
        None => Err("no value set (one of string_value, string_list, number_value, bool_value)"),
    }
}

/// A finite number as IAM compares it: integral values without a fraction
/// (`3`, not `3.0`), others in their shortest round-trip form.
fn number(n: f64) -> Option<String> {
    if !n.is_finite() {
        return None;
    }
    // `-0` is `0`; Rust's `Display` already prints integral floats without
    // a fraction and never uses an exponent.
    Some(if n == 0.0 {
        "0".to_owned()
    } else {
        n.to_string()
    })
}

/// The protobuf shape of one answer.
fn answer(d: &Decided) -> pb::AuthorizeResponse {
    let a = &d.answer;
    pb::AuthorizeResponse {
        decision: decision(a.decision) as i32,
        decision_string: a.decision.as_str().to_owned(),
        reason: a.reason.to_string(),
        matched: a
            .matched
            .iter()
            .map(|m| pb::MatchedStatement {
                policy: m.policy.to_string(),
                policy_type: m.policy_type.short_name().to_owned(),
                statement: u32::try_from(m.statement).unwrap_or(u32::MAX),
                sid: m.sid.as_deref().map(str::to_owned),
            })
            .collect(),
        missing_context_keys: a.missing_context_keys.clone(),
        revision: a.revision.to_string(),
        decision_id: d.decision_id.clone(),
    }
}

fn decision(o: Outcome) -> pb::Decision {
    match o {
        Outcome::Allowed => pb::Decision::Allowed,
        Outcome::ExplicitDeny => pb::Decision::ExplicitDeny,
        Outcome::ImplicitDeny => pb::Decision::ImplicitDeny,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_render_like_json() {
        assert_eq!(number(3.0).as_deref(), Some("3"));
        assert_eq!(number(-0.0).as_deref(), Some("0"));
        assert_eq!(number(2.5).as_deref(), Some("2.5"));
        assert_eq!(number(1_700_000_000.0).as_deref(), Some("1700000000"));
        assert_eq!(number(f64::NAN), None);
        assert_eq!(number(f64::INFINITY), None);
    }

    #[test]
    fn context_values_convert() {
        use pb::context_value::Kind;
        let v = |k| pb::ContextValue { kind: Some(k) };
        assert_eq!(
            context_value(&v(Kind::BoolValue(true))),
            Ok(ContextValue::One("true".into()))
        );
        assert_eq!(
            context_value(&v(Kind::StringList(pb::StringList {
                values: vec!["a".into(), "b".into()]
            }))),
            Ok(ContextValue::Many(vec!["a".into(), "b".into()]))
        );
        assert!(context_value(&pb::ContextValue { kind: None }).is_err());
    }
}
