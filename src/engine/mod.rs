//! The compiled policy engine: statements compiled and indexed by action,
//! and the IAM evaluation flow over them (SCP and RCP levels, resource-based
//! policy, identity-based policies, permissions boundary, session policy,
//! cross-account), with an explanation of every decision.
//!
//! Pure: no I/O, no async runtime, no metrics. Front-ends and the bundle
//! loader build [`Applicable`] views over compiled [`PolicySet`]s and call
//! [`decide`]; this module must not know where policies came from.

pub mod authz;
pub mod compile;
pub mod decision;
pub mod err;
pub mod evaluate;
pub mod reference;
pub mod request;
mod values;

pub use authz::{AnswerReason, AuthzAnswer, AuthzError, AuthzRequest, MatchedInfo};
pub use compile::{CompiledPolicy, PolicySet, Statement};
pub use decision::{Decision, MatchedStatement, Outcome, Reason};
pub use err::EngineError;
pub use evaluate::{Applicable, decide};
pub use request::{
    CallerFacts, Context, ContextValue, Principal, PrincipalArn, PrincipalKind, Request,
    ResourcePolicyRule, ascii_lowercase,
};
