//! Errors of the engine stage: building principals and compiling policies.

use thiserror::Error;

use crate::policy::ParseError;

/// An engine input that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EngineError {
    /// A policy document was refused.
    #[error("policy `{policy}`: {source}")]
    Policy {
        policy: String,
        #[source]
        source: ParseError,
    },
    /// A caller ARN that is not a user, role session, federated user,
    /// account root or `anonymous`.
    #[error(
        "unsupported principal `{0}`: expected a user, assumed-role session, federated user, account root ARN, or `anonymous`"
    )]
    Principal(String),
}
