//! iamgate's API over HTTP/JSON: `POST /v1/authorize` and
//! `POST /v1/authorize/batch`. A thin adapter: parse and bound the input,
//! call the shared decision path, shape the answer. `/v1/network/check` is
//! routed to [`super::network_api`]. The inventory API is not served here
//! (404): it is on the authenticated control listener ([`super::control`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use http::{Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::bundle::AuthzRequest;
use crate::engine::Context;
use crate::engine::authz::context_value;
use crate::server::errors::ServeError;
use crate::server::http_util::{Body, error, json as json_response};
use crate::server::router::{Json, TraceParent, with_fallbacks};
use crate::server::state::{AppState, Decided, InvalidRequest, validate};
use crate::telemetry::Frontend;

/// The caller, as JSON requests name it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalJson {
    pub arn: String,
    /// Session tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// A session policy document.
    #[serde(default)]
    pub session_policy: Option<Value>,
}

/// The body of `POST /v1/authorize`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeJson {
    principal: PrincipalJson,
    action: String,
    resource: String,
    #[serde(default)]
    context: BTreeMap<String, Value>,
    #[serde(default)]
    resource_account: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemJson {
    action: String,
    resource: String,
    #[serde(default)]
    context: BTreeMap<String, Value>,
    #[serde(default)]
    resource_account: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchJson {
    principal: PrincipalJson,
    items: Vec<ItemJson>,
}

/// The routes of the API listener (served by [`crate::server::router`]).
pub fn router(state: Arc<AppState>) -> Router {
    with_fallbacks(
        Router::new()
            .route("/v1/authorize", post(authorize))
            .route("/v1/authorize/batch", post(authorize_batch))
            .route(
                crate::server::network_api::HTTP_PATH,
                post(crate::server::network_api::check),
            ),
    )
    .with_state(state)
}

/// `POST /v1/authorize`.
async fn authorize(
    State(state): State<Arc<AppState>>,
    TraceParent(traceparent): TraceParent,
    Json(parsed): Json<AuthorizeJson>,
) -> Result<Response<Body>, ServeError> {
    let req = parsed
        .into_request()
        .map_err(|e| ServeError::BadRequest(e.to_string()))?;
    let d = match state.decide_owned(Frontend::Http, req, traceparent).await {
        Ok(d) => d,
        // Counted by the decision path.
        Err(e) => return Ok(error(&e)),
    };
    Ok(json_response(StatusCode::OK, answer_bytes(&d)))
}

/// `POST /v1/authorize/batch`.
async fn authorize_batch(
    State(state): State<Arc<AppState>>,
    TraceParent(traceparent): TraceParent,
    Json(parsed): Json<BatchJson>,
) -> Result<Response<Body>, ServeError> {
    let limit = state.config.limits.max_batch;
    if parsed.items.len() > limit {
        return Err(ServeError::BatchTooLarge {
            got: parsed.items.len(),
            limit,
        });
    }
    // Convert and check every item before deciding any, so a malformed
    // item fails the batch without recording decisions.
    let requests = parsed
        .items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            authz_request(
                &parsed.principal,
                item.action,
                item.resource,
                &item.context,
                item.resource_account,
            )
            .and_then(|req| validate(&req).map(|()| req))
            .map_err(|e| ServeError::BadRequest(format!("items[{i}]: {e}")))
        })
        .collect::<Result<Vec<_>, ServeError>>()?;
    // One snapshot for the whole batch: no answer mixes revisions.
    let snapshot = state.snapshot()?;
    let revision = snapshot.revision().clone();
    let decided = match state
        .decide_batch(Frontend::Http, snapshot, requests, traceparent)
        .await
    {
        Ok(d) => d,
        // Counted by the decision path.
        Err(e) => return Ok(error(&e)),
    };
    let results: Vec<Value> = decided.iter().map(answer_json).collect();
    state.metrics.batch_items(results.len());
    let body = json!({"revision": &*revision, "results": results});
    Ok(json_response(StatusCode::OK, body.to_string().into_bytes()))
}

/// Parses a `POST /v1/authorize` body as the handler does (the load
/// bench's null HTTP server parses with this too, so that the two differ
/// only in what follows the parse).
pub fn parse_authorize(body: &[u8]) -> Result<AuthorizeJson, ServeError> {
    crate::server::http_util::parse_json(body)
}

impl AuthorizeJson {
    /// The request to decide (the handler's conversion, also used by the
    /// load bench's null HTTP server when it decides).
    pub fn into_request(self) -> Result<AuthzRequest, InvalidRequest> {
        authz_request(
            &self.principal,
            self.action,
            self.resource,
            &self.context,
            self.resource_account,
        )
    }
}

/// Builds the snapshot request from JSON parts.
pub fn authz_request(
    principal: &PrincipalJson,
    action: String,
    resource: String,
    context: &BTreeMap<String, Value>,
    resource_account: Option<String>,
) -> Result<AuthzRequest, InvalidRequest> {
    let mut ctx = Context::new();
    for (k, v) in context {
        let value = context_value(v).ok_or_else(|| InvalidRequest::ContextValue {
            key: k.clone(),
            reason: "a value is a string, number, boolean or an array of those",
        })?;
        ctx.insert(k, value);
    }
    Ok(AuthzRequest {
        principal_arn: principal.arn.clone(),
        action,
        resource,
        context: ctx,
        session_tags: principal
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        session_policy: principal.session_policy.clone(),
        session_policy_arns: Vec::new(),
        resource_account,
        outcome_only: false,
    })
}

/// [`answer_json`], written straight to bytes (the same object, without
/// building a `Value` tree on every request).
pub fn answer_bytes(d: &Decided) -> Vec<u8> {
    /// The fields of [`answer_json`], in the order it writes them.
    #[derive(serde::Serialize)]
    struct Answer<'a> {
        decision: &'a str,
        decision_id: &'a str,
        matched: &'a [crate::engine::authz::MatchedInfo],
        missing_context_keys: &'a [String],
        reason: &'a crate::engine::authz::AnswerReason,
        revision: &'a str,
    }
    let answer = Answer {
        decision: d.answer.decision.as_str(),
        decision_id: &d.decision_id,
        matched: &d.answer.matched,
        missing_context_keys: &d.answer.missing_context_keys,
        reason: &d.answer.reason,
        revision: &d.answer.revision,
    };
    // Serializing these types cannot fail; the tree is the fallback.
    serde_json::to_vec(&answer).unwrap_or_else(|_| answer_json(d).to_string().into_bytes())
}

/// The JSON shape of one answer.
pub fn answer_json(d: &Decided) -> Value {
    json!({
        "decision": d.answer.decision.as_str(),
        "reason": d.answer.reason,
        "matched": d.answer.matched,
        "missing_context_keys": d.answer.missing_context_keys,
        "revision": &*d.answer.revision,
        "decision_id": d.decision_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::authz::{AnswerReason, AuthzAnswer, MatchedInfo};
    use crate::engine::{Outcome, Reason};

    /// Issue 12: the answer written straight to bytes is the object
    /// `answer_json` builds, with and without a statement's `sid`.
    #[test]
    fn answer_bytes_is_answer_json() {
        for sid in [Some("AllowTeam".into()), None] {
            let d = Decided {
                answer: AuthzAnswer {
                    decision: Outcome::Allowed,
                    reason: AnswerReason::Decided(Reason::IdentityAllows),
                    matched: vec![MatchedInfo {
                        policy: "arn:aws:iam::111122223333:policy/p\"q".into(),
                        policy_type: crate::policy::PolicyKind::Identity,
                        statement: 3,
                        sid,
                    }],
                    missing_context_keys: vec!["aws:SourceIp".to_owned()],
                    revision: "rev-1".into(),
                },
                decision_id: "abc-000000000001".to_owned(),
            };
            let bytes = answer_bytes(&d);
            let parsed: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(parsed, answer_json(&d));
        }
    }
}
