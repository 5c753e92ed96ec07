//! Warnings about `Condition` entries on their own: an operator whose type
//! does not fit the key's type, values the operator cannot read, `Null`
//! with a value other than `true`/`false`, and set operators
//! (`ForAllValues:`/`ForAnyValue:`) on single-valued keys or missing on
//! multivalued ones. Key types come from the services' catalogs and the documented
//! global keys; keys of other services are not judged.
//!
//! Codes: `MISMATCHED_OPERATOR_TYPE`, `INVALID_CONDITION_VALUE`,
//! `INVALID_NULL_VALUE`, `SET_OPERATOR_ON_SINGLE_VALUED_KEY`,
//! `MISSING_SET_OPERATOR`.

use crate::policy::condition::{OpKind, SetQualifier};
use crate::policy::value::{Decimal, parse_bool, parse_date, parse_ip_net};
use crate::service::catalog::{Catalog, ConditionKeyType};
use crate::validate::global_keys::lookup;
use crate::validate::located::{Cond, Stmt};
use crate::validate::{Finding, Severity};

/// The kind of value an operator compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    String,
    Numeric,
    Date,
    Bool,
    Binary,
    Ip,
    Arn,
    Null,
}

impl Family {
    fn of(kind: OpKind) -> Self {
        use OpKind as K;
        match kind {
            K::StringEquals
            | K::StringNotEquals
            | K::StringEqualsIgnoreCase
            | K::StringNotEqualsIgnoreCase
            | K::StringLike
            | K::StringNotLike => Self::String,
            K::NumericEquals
            | K::NumericNotEquals
            | K::NumericLessThan
            | K::NumericLessThanEquals
            | K::NumericGreaterThan
            | K::NumericGreaterThanEquals => Self::Numeric,
            K::DateEquals
            | K::DateNotEquals
            | K::DateLessThan
            | K::DateLessThanEquals
            | K::DateGreaterThan
            | K::DateGreaterThanEquals => Self::Date,
            K::Bool => Self::Bool,
            K::BinaryEquals => Self::Binary,
            K::IpAddress | K::NotIpAddress => Self::Ip,
            K::ArnEquals | K::ArnLike | K::ArnNotEquals | K::ArnNotLike => Self::Arn,
            K::Null => Self::Null,
        }
    }

    /// What the operator compares, for messages.
    fn compares(self) -> &'static str {
        match self {
            Self::String => "strings",
            Self::Numeric => "numbers",
            Self::Date => "dates",
            Self::Bool => "booleans",
            Self::Binary => "binary values",
            Self::Ip => "IP addresses",
            Self::Arn => "ARNs",
            Self::Null => "key presence",
        }
    }

    /// Whether the operator fits a key of element type `ty`.
    fn fits(self, ty: ConditionKeyType, also_numeric: bool) -> bool {
        use ConditionKeyType as T;
        match self {
            // String operators also compare ARN keys as text.
            Self::String => matches!(ty, T::String | T::Arn),
            Self::Numeric => ty == T::Numeric || also_numeric,
            Self::Date => ty == T::Date,
            Self::Bool => ty == T::Bool,
            Self::Ip => ty == T::IpAddress,
            Self::Arn => ty == T::Arn,
            // No documented key is binary.
            Self::Binary => false,
            Self::Null => true,
        }
    }
}

/// Runs the condition checks on one statement; `variables` is whether the
/// document substitutes `${...}` policy variables.
pub(crate) fn check(
    s: &Stmt<'_>,
    variables: bool,
    catalogs: &[&'static Catalog],
    out: &mut Vec<Finding>,
) {
    for c in &s.conditions {
        let family = Family::of(c.op.kind);
        check_values(c, family, variables, out);
        check_key_type(c, family, catalogs, out);
    }
}

fn check_values(c: &Cond, family: Family, variables: bool, out: &mut Vec<Finding>) {
    for v in &c.values {
        let text = v.text.as_str();
        let (ok, what) = match family {
            Family::Null => {
                if parse_bool(text).is_none() {
                    out.push(Finding::new(
                        Severity::Warning,
                        "INVALID_NULL_VALUE",
                        v.path.clone(),
                        format!("`Null` takes `true` or `false`, not `{text}`"),
                    ));
                }
                continue;
            }
            Family::Numeric => (Decimal::parse(text).is_some(), "a number"),
            Family::Date => (parse_date(text).is_some(), "a date"),
            Family::Ip => (parse_ip_net(text).is_some(), "an IP address or CIDR block"),
            // `Bool` values may be policy variables.
            Family::Bool => (
                parse_bool(text).is_some() || (variables && text.contains("${")),
                "`true` or `false`",
            ),
            Family::String | Family::Binary | Family::Arn => (true, ""),
        };
        if !ok {
            out.push(Finding::new(
                Severity::Warning,
                "INVALID_CONDITION_VALUE",
                v.path.clone(),
                format!(
                    "`{text}` is not {what}, so `{}` never matches it",
                    c.op_name
                ),
            ));
        }
    }
}

fn check_key_type(c: &Cond, family: Family, catalogs: &[&'static Catalog], out: &mut Vec<Finding>) {
    let Some(info) = lookup(&c.key, catalogs) else {
        return;
    };
    let ty = info.value_type;
    if !family.fits(ty.element_type(), info.also_numeric) {
        out.push(Finding::new(
            Severity::Warning,
            "MISMATCHED_OPERATOR_TYPE",
            c.path.clone(),
            format!(
                "`{}` compares {}, but `{}` is a key of type {ty}",
                c.op_name,
                family.compares(),
                c.key
            ),
        ));
    }
    match c.op.set {
        SetQualifier::ForAllValues | SetQualifier::ForAnyValue if !ty.is_array() => {
            out.push(Finding::new(
                Severity::Warning,
                "SET_OPERATOR_ON_SINGLE_VALUED_KEY",
                c.path.clone(),
                format!(
                    "`{}` is for multivalued keys, but `{}` is single-valued ({ty})",
                    c.op_name, c.key
                ),
            ));
        }
        SetQualifier::None if ty.is_array() && family != Family::Null => {
            out.push(Finding::new(
                Severity::Warning,
                "MISSING_SET_OPERATOR",
                c.path.clone(),
                format!(
                    "`{}` is multivalued ({ty}): use `ForAnyValue:{}` or `ForAllValues:{}` to say how its values must match",
                    c.key, c.op_name, c.op_name
                ),
            ));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{PolicyKind, parse_document};
    use crate::validate::located::statements;
    use serde_json::{Value, json};

    fn findings(version: &str, condition: Value) -> Vec<Finding> {
        let doc = json!({"Version": version, "Statement": {"Effect": "Allow",
            "Action": "ec2:*", "Resource": "*", "Condition": condition}});
        let mut out = Vec::new();
        let parsed = parse_document(&doc, PolicyKind::Identity).expect("test documents parse");
        for s in statements(&doc, &parsed) {
            check(
                &s,
                parsed.version.has_variables(),
                crate::validate::TEST_CATALOGS,
                &mut out,
            );
        }
        out
    }

    /// Codes and paths, sorted by path (condition blocks may come in any order).
    fn codes(f: &[Finding]) -> Vec<(&'static str, &str)> {
        let mut v: Vec<_> = f.iter().map(|f| (f.code, f.path.as_str())).collect();
        v.sort_by_key(|(_, p)| *p);
        v
    }

    fn message<'f>(f: &'f [Finding], path: &str) -> &'f str {
        f.iter()
            .find(|f| f.path == path)
            .map_or("", |f| f.message.as_str())
    }

    #[test]
    fn operator_types() {
        let f = findings(
            "2012-10-17",
            json!({
                "NumericEquals": {"ec2:InstanceType": "1"},
                "DateLessThan": {"ec2:VolumeSize": "2020-01-01"},
                "Bool": {"ec2:InstanceType": "true"},
                "StringEquals": {"ec2:Vpc": "arn:aws:ec2:*:*:vpc/vpc-1", "ec2:Encrypted": "true"},
                "ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/x"},
                "NumericLessThan": {"aws:EpochTime": "1700000000"},
                "IpAddress": {"aws:SourceIp": "10.0.0.0/8"},
                "Null": {"ec2:VolumeSize": "true"},
                "StringLike": {"s3:prefix": "home/*"}
            }),
        );
        assert_eq!(
            codes(&f),
            [
                (
                    "MISMATCHED_OPERATOR_TYPE",
                    "$.Statement.Condition.Bool.ec2:InstanceType"
                ),
                (
                    "MISMATCHED_OPERATOR_TYPE",
                    "$.Statement.Condition.DateLessThan.ec2:VolumeSize"
                ),
                (
                    "MISMATCHED_OPERATOR_TYPE",
                    "$.Statement.Condition.NumericEquals.ec2:InstanceType"
                ),
                (
                    "MISMATCHED_OPERATOR_TYPE",
                    "$.Statement.Condition.StringEquals.ec2:Encrypted"
                ),
            ]
        );
        assert_eq!(
            message(&f, "$.Statement.Condition.NumericEquals.ec2:InstanceType"),
            "`NumericEquals` compares numbers, but `ec2:InstanceType` is a key of type String"
        );
    }

    #[test]
    fn values_must_parse() {
        let f = findings(
            "2012-10-17",
            json!({
                "NumericLessThan": {"ec2:VolumeSize": ["100", "ten", 5]},
                "DateGreaterThan": {"aws:CurrentTime": ["2020-02-30", "2020-01-01T00:00:00Z"]},
                "IpAddress": {"aws:SourceIp": ["10.0.0.0/33", "192.0.2.1"]},
                "Bool": {"aws:SecureTransport": "yes", "aws:ViaAWSService": "${aws:PrincipalTag/x}"},
                "Null": {"aws:TagKeys": "maybe", "ec2:Vpc": false}
            }),
        );
        assert_eq!(
            codes(&f),
            [
                (
                    "INVALID_CONDITION_VALUE",
                    "$.Statement.Condition.Bool.aws:SecureTransport"
                ),
                (
                    "INVALID_CONDITION_VALUE",
                    "$.Statement.Condition.DateGreaterThan.aws:CurrentTime[0]"
                ),
                (
                    "INVALID_CONDITION_VALUE",
                    "$.Statement.Condition.IpAddress.aws:SourceIp[0]"
                ),
                (
                    "INVALID_NULL_VALUE",
                    "$.Statement.Condition.Null.aws:TagKeys"
                ),
                (
                    "INVALID_CONDITION_VALUE",
                    "$.Statement.Condition.NumericLessThan.ec2:VolumeSize[1]"
                ),
            ]
        );
        assert_eq!(
            message(
                &f,
                "$.Statement.Condition.NumericLessThan.ec2:VolumeSize[1]"
            ),
            "`ten` is not a number, so `NumericLessThan` never matches it"
        );
        // Without variables, `${...}` is plain text and not a boolean.
        let f = findings(
            "2008-10-17",
            json!({"Bool": {"aws:ViaAWSService": "${aws:PrincipalTag/x}"}}),
        );
        assert_eq!(codes(&f).len(), 1);
    }

    #[test]
    fn set_operators() {
        let f = findings(
            "2012-10-17",
            json!({
                "ForAllValues:StringEquals": {"aws:TagKeys": ["a"], "ec2:InstanceType": "t3.micro"},
                "ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": "o-1/*"},
                "StringEquals": {"aws:CalledVia": "athena.amazonaws.com"},
                "Null": {"aws:TagKeys": "false"}
            }),
        );
        assert_eq!(
            codes(&f),
            [
                (
                    "SET_OPERATOR_ON_SINGLE_VALUED_KEY",
                    "$.Statement.Condition.ForAllValues:StringEquals.ec2:InstanceType"
                ),
                (
                    "MISSING_SET_OPERATOR",
                    "$.Statement.Condition.StringEquals.aws:CalledVia"
                ),
            ]
        );
    }
}
