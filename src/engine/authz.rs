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

use crate::engine::{Context, ContextValue, EngineError, Outcome, Reason};
use crate::policy::PolicyKind;

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
    /// The policy's kind; written as its short name (`identity`, `scp`, ...).
    #[serde(serialize_with = "short_kind")]
    pub policy_type: PolicyKind,
    pub statement: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<Arc<str>>,
}

/// The answer to an [`AuthzRequest`].
#[derive(Debug, Clone, Serialize)]
pub struct AuthzAnswer {
    pub decision: Outcome,
    /// Why; worded by [`AnswerReason::describe`] where text is needed.
    pub reason: AnswerReason,
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

fn short_kind<S: serde::Serializer>(kind: &PolicyKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.short_name())
}

/// Why an answer came out as it did: the engine's [`Reason`], or a caller
/// the bundle cannot evaluate (an implicit deny before any policy is read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerReason {
    /// The engine decided.
    Decided(Reason),
    /// The principal ARN is well formed but the bundle does not hold it.
    UnknownPrincipal(String),
    /// The principal ARN could not be read (the parser's message).
    InvalidPrincipal(String),
}

impl AnswerReason {
    /// The reason as text, in the words AWS error messages use: the one
    /// wording used by the HTTP and gRPC answers, Envoy's metadata and the
    /// decision log.
    pub fn describe(&self) -> Cow<'static, str> {
        match self {
            AnswerReason::Decided(r) => r.describe(),
            AnswerReason::UnknownPrincipal(arn) => {
                format!("unknown principal `{arn}`: not in the bundle").into()
            }
            AnswerReason::InvalidPrincipal(message) => message.clone().into(),
        }
    }

    /// The engine's reason, when the engine decided.
    pub fn engine(&self) -> Option<Reason> {
        match self {
            AnswerReason::Decided(r) => Some(*r),
            _ => None,
        }
    }
}

impl From<Reason> for AnswerReason {
    fn from(r: Reason) -> Self {
        AnswerReason::Decided(r)
    }
}

impl std::fmt::Display for AnswerReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Written as its text (the JSON answers' `reason` field).
impl Serialize for AnswerReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON answers and the decision log keep their fields: `reason` as
    /// text, `policy_type` as the short name (issue 12).
    #[test]
    fn answers_serialize_as_before() -> Result<(), serde_json::Error> {
        let answer = AuthzAnswer {
            decision: Outcome::ExplicitDeny,
            reason: Reason::ExplicitDeny(PolicyKind::Scp).into(),
            matched: vec![MatchedInfo {
                policy: "o-1#p-1".into(),
                policy_type: PolicyKind::Scp,
                statement: 2,
                sid: Some("Deny".into()),
            }],
            missing_context_keys: vec!["aws:SourceIp".into()],
            revision: "r1".into(),
        };
        assert_eq!(
            serde_json::to_string(&answer)?,
            r#"{"decision":"explicitDeny","reason":"with an explicit deny in a service control policy","matched":[{"policy":"o-1#p-1","policy_type":"scp","statement":2,"sid":"Deny"}],"missing_context_keys":["aws:SourceIp"],"revision":"r1"}"#
        );
        assert_eq!(
            AnswerReason::UnknownPrincipal("arn:aws:iam::1:user/x".into()).to_string(),
            "unknown principal `arn:aws:iam::1:user/x`: not in the bundle"
        );
        assert_eq!(
            AnswerReason::Decided(Reason::NoRcpAllow { level: 1 }).to_string(),
            "no resource control policy allows the action (level 1)"
        );
        assert_eq!(AnswerReason::InvalidPrincipal("bad".into()).engine(), None);
        Ok(())
    }
}
