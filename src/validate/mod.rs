//! Policy validation in the manner of IAM Access Analyzer: errors (the
//! document is malformed), warnings (it cannot mean what it says, checked
//! against the catalogs of the services behind the seam, which the caller
//! passes in: this module knows no service), security warnings (it grants more than it seems
//! to) and suggestions.
//!
//! Pure: works on parsed JSON values and returns findings; printing and exit
//! codes belong to the binary.
//!
//! - [`malformed`]: every error of a malformed document.
//! - [`located`]: each statement's elements with their JSON paths.
//! - [`patterns`]: wildcard pattern algebra (may two patterns overlap, does
//!   one cover another).
//! - [`global_keys`]: the documented global condition keys and key typing.
//! - [`catalog_checks`]: actions, resources and condition keys against the
//!   services' catalogs.
//! - [`conditions`]: operators against key types, condition values.
//! - [`services`]: resource ARNs of a service none of the actions acts on.
//! - [`security`]: security warnings.
//! - [`suggestions`]: redundant actions and resources.

mod catalog_checks;
mod conditions;
mod global_keys;
mod located;
mod malformed;
mod patterns;
mod security;
mod services;
mod suggestions;

use serde::Serialize;
use serde_json::Value;

use crate::policy::PolicyKind;
use crate::service::catalog::Catalog;

/// The catalog the unit tests here validate against: EC2's (each other
/// service tests its own catalog through [`validate_document`]).
#[cfg(test)]
pub(crate) const TEST_CATALOGS: &[&Catalog] = &[&crate::ec2::catalog::CATALOG];

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

impl Finding {
    pub(crate) fn new(
        severity: Severity,
        code: &'static str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity,
            code,
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Validates one policy document of the given kind against the services'
/// `catalogs` (`Registry::catalogs`): every error (each malformed element,
/// not only the first), then the other findings of the statements without
/// errors.
pub fn validate_document(
    value: &Value,
    kind: PolicyKind,
    catalogs: &[&'static Catalog],
) -> Vec<Finding> {
    let malformed::Repaired {
        errors: mut out,
        parsed,
        repaired_statements,
    } = malformed::parse_all(value, kind);
    let Some((value, doc)) = parsed else {
        return out;
    };
    let variables = doc.version.has_variables();
    let mut found = Vec::new();
    for stmt in located::statements(&value, &doc) {
        catalog_checks::check(&stmt, variables, catalogs, &mut found);
        services::check(&stmt, catalogs, &mut found);
        conditions::check(&stmt, variables, catalogs, &mut found);
        security::check(&stmt, kind, &mut found);
        suggestions::check(&stmt, &mut found);
    }
    out.extend(found.into_iter().filter(|f| {
        !repaired_statements
            .iter()
            .any(|s| malformed::is_within(&f.path, s))
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn malformed_documents_are_errors() {
        let f = validate_document(
            &json!({"Statement": [{"Effect": "allow", "Action": "ec2:*", "Resource": "*"}]}),
            PolicyKind::Identity,
            crate::validate::TEST_CATALOGS,
        );
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Error);
        assert_eq!(f[0].code, "MALFORMED_POLICY");
        assert_eq!(f[0].path, "$.Statement[0].Effect");
    }

    #[test]
    fn a_clean_policy_has_no_findings() {
        let f = validate_document(
            &json!({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow",
                "Action": ["ec2:RunInstances", "ec2:StartInstances"],
                "Resource": "arn:aws:ec2:*:111122223333:instance/*",
                "Condition": {"StringEquals": {"ec2:InstanceType": "t3.micro",
                                               "aws:RequestedRegion": "us-east-1"}}
            }, {
                "Effect": "Allow",
                "Action": "ec2:Describe*",
                "Resource": "*"
            }]}),
            PolicyKind::Identity,
            crate::validate::TEST_CATALOGS,
        );
        assert_eq!(f, []);
    }
}
