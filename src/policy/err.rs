//! Errors raised while reading a policy document. Each names the JSON path of
//! the offending element, the way IAM's `MalformedPolicyDocument` does.

use thiserror::Error;

/// A policy document that IAM would refuse, with the JSON path of the problem.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("at `{path}`: {kind}")]
pub struct ParseError {
    /// JSON path of the element at fault, e.g. `$.Statement[0].Effect`.
    pub path: String,
    /// What is wrong.
    pub kind: ParseErrorKind,
}

impl ParseError {
    pub(crate) fn new(path: impl Into<String>, kind: ParseErrorKind) -> Self {
        Self {
            path: path.into(),
            kind,
        }
    }
}

/// The reasons a policy document is malformed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseErrorKind {
    #[error("not valid JSON: {0}")]
    Json(String),
    #[error("expected {0}")]
    Type(&'static str),
    #[error("unknown element `{0}`")]
    UnknownElement(String),
    #[error("missing required element `{0}`")]
    Missing(&'static str),
    #[error("`{0}` and `{1}` cannot appear in the same statement")]
    Conflict(&'static str, &'static str),
    #[error("unsupported policy version `{0}`")]
    Version(String),
    #[error("invalid effect `{0}`: must be `Allow` or `Deny`")]
    Effect(String),
    #[error("invalid action `{0}`: {1}")]
    Action(String, &'static str),
    #[error("invalid resource `{0}`: must be an ARN or `*`")]
    Resource(String),
    #[error("invalid principal: {0}")]
    Principal(String),
    #[error("`{0}` is not allowed in a {1}")]
    NotAllowedHere(&'static str, &'static str),
    #[error("unknown condition operator `{0}`")]
    Operator(String),
    #[error("`{0}` cannot be combined with `IfExists`")]
    NullIfExists(String),
    #[error("invalid condition value: {0}")]
    ConditionValue(String),
    #[error("duplicate statement id `{0}`")]
    DuplicateSid(String),
    #[error("{0} must not be empty")]
    Empty(&'static str),
    #[error("`NotPrincipal` must be used with `\"Effect\": \"Deny\"`")]
    NotPrincipalAllow,
    #[error("invalid statement id `{0}`")]
    Sid(String),
}
