//! The request and answer of one authorization question, as every front
//! door asks it of a compiled bundle: who, what action on which resource,
//! with which context and session; and the decision with its reason and the
//! deciding statements.
//!
//! Owned by the engine so that the bundle (which answers) and the services
//! and servers (which ask and word the answer) all depend on it, never on
//! each other. Pure data: no I/O.

use std::borrow::Cow;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::engine::{Context, ContextValue, EngineError, Outcome};

/// One authorization question to a snapshot.
#[derive(Debug, Clone, Default)]
pub struct AuthzRequest {
    pub principal_arn: String,
    pub action: String,
    pub resource: String,
    pub context: Context,
    /// Session tags (override the role's tags of the same key).
    pub session_tags: Vec<(String, String)>,
    /// A session policy passed when the session was created.
    pub session_policy: Option<Value>,
    /// Managed session policies (ARNs) passed when the session was
    /// created; an ARN the bundle lacks allows nothing.
    pub session_policy_arns: Vec<String>,
    pub resource_account: Option<String>,
    /// The caller needs the decision, not its explanation: the answer's
    /// `matched` and `missing_context_keys` stay empty (an Envoy allow or
    /// deny carries neither). The decision log still gets the statements.
    pub outcome_only: bool,
}

/// A deciding statement, owned so that it can outlive the snapshot borrow.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MatchedInfo {
    /// Shared with the compiled policy: cloning costs a reference count.
    pub policy: Arc<str>,
    pub policy_type: &'static str,
    pub statement: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<Arc<str>>,
}

/// The answer to an [`AuthzRequest`].
#[derive(Debug, Clone, Serialize)]
pub struct AuthzAnswer {
    pub decision: Outcome,
    /// Why, in the words AWS error messages use.
    pub reason: Cow<'static, str>,
    pub matched: Vec<MatchedInfo>,
    pub missing_context_keys: Vec<String>,
    pub revision: Arc<str>,
}

/// Why a request could not be decided (a caller error, not a deny).
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthzError {
    #[error("invalid session policy: {0}")]
    SessionPolicy(EngineError),
}

/// Converts a JSON context value into the engine's string form.
pub fn context_value(v: &Value) -> Option<ContextValue> {
    fn scalar(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
    match v {
        Value::Array(items) => items
            .iter()
            .map(scalar)
            .collect::<Option<Vec<_>>>()
            .map(ContextValue::Many),
        other => scalar(other).map(ContextValue::One),
    }
}
