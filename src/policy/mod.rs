//! The IAM policy language: the document model, parsing with located errors,
//! wildcard and ARN matching, condition operators and policy variables, and
//! the grammar of the action and resource a request names, and the size
//! limits of policies that callers send.
//!
//! Everything here is pure: no I/O, no async runtime, no metrics. The engine
//! compiles documents from here into indexed snapshots; this module must not
//! know about principals directories, bundles or front-ends.

pub mod arn;
pub mod condition;
pub mod document;
pub mod err;
pub mod ids;
pub mod intern;
pub mod limits;
pub mod names;
pub mod parse;
pub mod value;
pub mod variables;
pub mod wildcard;

pub use document::{
    ActionList, ConditionBlock, Document, Effect, PolicyKind, PrincipalEntry, PrincipalSpec,
    ResourceList, StatementDoc, Version,
};
pub use err::{ParseError, ParseErrorKind};
pub use ids::{AccountId, IdError, Region};
pub use parse::{parse_document, parse_document_str, parse_document_value};
