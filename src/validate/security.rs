//! Security warnings: statements that grant more than they seem to, or
//! denials that miss requests they seem to cover.
//!
//! Codes: `ALLOW_WITH_NOT_ACTION`, `ALLOW_WITH_NOT_RESOURCE`,
//! `ALLOW_WITH_NOT_PRINCIPAL`, `ALLOW_ALL_ACTIONS_ON_ALL_RESOURCES`,
//! `PASS_ROLE_ON_ALL_RESOURCES`, `PUBLIC_ACCESS`,
//! `FOR_ALL_VALUES_WITHOUT_NULL_GUARD`, `DENY_MFA_BOOL_WITHOUT_IF_EXISTS`.

use crate::policy::condition::{OpKind, SetQualifier};
use crate::policy::value::parse_bool;
use crate::policy::wildcard;
use crate::policy::{Effect, PolicyKind, PrincipalEntry};
use crate::validate::located::{Cond, Stmt};
use crate::validate::{Finding, Severity};

/// Runs the security checks on one statement of a policy of kind `kind`.
pub(crate) fn check(s: &Stmt<'_>, kind: PolicyKind, out: &mut Vec<Finding>) {
    match s.doc.effect {
        Effect::Allow => check_allow(s, kind, out),
        Effect::Deny => check_deny(s, out),
    }
}

fn warn(code: &'static str, path: &str, message: String) -> Finding {
    Finding::new(Severity::SecurityWarning, code, path, message)
}

fn check_allow(s: &Stmt<'_>, kind: PolicyKind, out: &mut Vec<Finding>) {
    if s.not_action() {
        out.push(warn(
            "ALLOW_WITH_NOT_ACTION",
            &s.action_path,
            "`Allow` with `NotAction` allows every action not listed, including those of services added later"
                .to_owned(),
        ));
    }
    if s.not_resource() {
        out.push(warn(
            "ALLOW_WITH_NOT_RESOURCE",
            &s.resource_path,
            "`Allow` with `NotResource` allows every resource not listed, including those created later"
                .to_owned(),
        ));
    }
    if let (Some(p), Some(path)) = (&s.doc.principal, &s.principal_path)
        && p.negated
    {
        out.push(warn(
            "ALLOW_WITH_NOT_PRINCIPAL",
            path,
            "`Allow` with `NotPrincipal` allows every principal not listed, including anonymous ones"
                .to_owned(),
        ));
    }
    let all_resources = !s.not_resource() && s.resources.iter().any(|r| r.text == "*");
    // Boundaries, SCPs and RCPs only limit; `*` on `*` is their pass-through.
    let grants = matches!(
        kind,
        PolicyKind::Identity | PolicyKind::Session | PolicyKind::Resource
    );
    if all_resources && !s.not_action() {
        for a in &s.actions {
            let lower = a.text.to_ascii_lowercase();
            if lower == "*" || lower == "*:*" {
                if grants {
                    out.push(warn(
                        "ALLOW_ALL_ACTIONS_ON_ALL_RESOURCES",
                        &a.path,
                        format!("`{}` on `*` allows every action on every resource", a.text),
                    ));
                }
            } else if wildcard::matches_str(&lower, "iam:passrole") {
                out.push(warn(
                    "PASS_ROLE_ON_ALL_RESOURCES",
                    &a.path,
                    format!(
                        "`{}` on `*` lets the principal pass any role to a service, and so gain that role's permissions",
                        a.text
                    ),
                ));
            }
        }
    }
    if kind == PolicyKind::Resource
        && s.conditions.is_empty()
        && let (Some(p), Some(path)) = (&s.doc.principal, &s.principal_path)
        && !p.negated
        && p.entries.contains(&PrincipalEntry::Everyone)
    {
        out.push(warn(
            "PUBLIC_ACCESS",
            path,
            "`Principal: *` without a condition allows anyone, including anonymous callers"
                .to_owned(),
        ));
    }
    for c in &s.conditions {
        if c.op.set == SetQualifier::ForAllValues && !c.op.if_exists && !guarded(s, c) {
            out.push(warn(
                "FOR_ALL_VALUES_WITHOUT_NULL_GUARD",
                &c.path,
                format!(
                    "`{}` is true when the request has no `{}` at all; add `\"Null\": {{\"{}\": \"false\"}}` to require the key",
                    c.op_name, c.key, c.key
                ),
            ));
        }
    }
}

/// Whether another condition of the statement requires `c`'s key to be
/// present: `Null: false`, or a positive `ForAnyValue:` operator.
fn guarded(s: &Stmt<'_>, c: &Cond) -> bool {
    s.conditions.iter().any(|g| {
        g.key.eq_ignore_ascii_case(&c.key)
            && match (g.op.kind, g.op.set) {
                (OpKind::Null, _) => {
                    !g.values.is_empty()
                        && g.values.iter().all(|v| parse_bool(&v.text) == Some(false))
                }
                (kind, SetQualifier::ForAnyValue) => !kind.is_negated() && !g.op.if_exists,
                _ => false,
            }
    })
}

fn check_deny(s: &Stmt<'_>, out: &mut Vec<Finding>) {
    for c in &s.conditions {
        if c.op.kind == OpKind::Bool
            && !c.op.if_exists
            && c.op.set == SetQualifier::None
            && c.key.eq_ignore_ascii_case("aws:MultiFactorAuthPresent")
        {
            out.push(warn(
                "DENY_MFA_BOOL_WITHOUT_IF_EXISTS",
                &c.path,
                format!(
                    "`{}` on `{}` does not deny requests made with long-term credentials, which carry no such key; use `BoolIfExists`",
                    c.op_name, c.key
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::parse_document;
    use crate::validate::located::statements;
    use serde_json::{Value, json};

    fn findings(kind: PolicyKind, statement: Value) -> Vec<(&'static str, String)> {
        let doc = json!({"Version": "2012-10-17", "Statement": [statement]});
        let mut out = Vec::new();
        let parsed = parse_document(&doc, kind).expect("test documents parse");
        for s in statements(&doc, &parsed) {
            check(&s, kind, &mut out);
        }
        let mut v: Vec<_> = out.into_iter().map(|f| (f.code, f.path)).collect();
        v.sort();
        v
    }

    fn one(code: &'static str, path: &str) -> Vec<(&'static str, String)> {
        vec![(code, path.to_owned())]
    }

    const ID: PolicyKind = PolicyKind::Identity;

    #[test]
    fn negated_elements_in_allow() {
        assert_eq!(
            findings(
                ID,
                json!({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})
            ),
            one("ALLOW_WITH_NOT_ACTION", "$.Statement[0].NotAction")
        );
        assert_eq!(
            findings(
                ID,
                json!({"Effect": "Allow", "Action": "ec2:RunInstances",
                "NotResource": "arn:aws:ec2:*:*:image/*"})
            ),
            one("ALLOW_WITH_NOT_RESOURCE", "$.Statement[0].NotResource")
        );
        // The parser may already refuse `NotPrincipal` with `Allow`; either
        // way the statement is reported at `NotPrincipal`.
        let f = crate::validate::validate_document(
            &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "NotPrincipal": {"AWS": "111122223333"}, "Action": "ec2:*", "Resource": "*"}]}),
            PolicyKind::Resource,
            crate::validate::TEST_CATALOGS,
        );
        assert!(
            f.iter().any(|f| f.path == "$.Statement[0].NotPrincipal"
                && matches!(f.code, "ALLOW_WITH_NOT_PRINCIPAL" | "MALFORMED_POLICY")),
            "{f:?}"
        );
        assert_eq!(
            findings(
                ID,
                json!({"Effect": "Deny", "NotAction": "iam:*", "NotResource": "*"})
            ),
            []
        );
    }

    #[test]
    fn star_on_star_and_pass_role() {
        assert_eq!(
            findings(
                ID,
                json!({"Effect": "Allow", "Action": ["ec2:*", "*"], "Resource": "*"})
            ),
            one(
                "ALLOW_ALL_ACTIONS_ON_ALL_RESOURCES",
                "$.Statement[0].Action[1]"
            )
        );
        assert_eq!(
            findings(
                PolicyKind::Scp,
                json!({"Effect": "Allow", "Action": "*", "Resource": "*"})
            ),
            []
        );
        assert_eq!(
            findings(
                ID,
                json!({"Effect": "Allow", "Action": "*",
                "Resource": "arn:aws:ec2:*:*:instance/*"})
            ),
            []
        );
        assert_eq!(
            findings(
                ID,
                json!({"Effect": "Allow", "Action": ["iam:PassRole"], "Resource": "*"})
            ),
            one("PASS_ROLE_ON_ALL_RESOURCES", "$.Statement[0].Action[0]")
        );
        assert_eq!(
            findings(
                ID,
                json!({"Effect": "Allow", "Action": "iam:Pass*", "Resource": "*"})
            ),
            one("PASS_ROLE_ON_ALL_RESOURCES", "$.Statement[0].Action")
        );
        assert_eq!(
            findings(
                ID,
                json!({"Effect": "Allow", "Action": "iam:PassRole",
                "Resource": "arn:aws:iam::111122223333:role/app"})
            ),
            []
        );
    }

    #[test]
    fn public_resource_policies() {
        let kind = PolicyKind::Resource;
        assert_eq!(
            findings(
                kind,
                json!({"Effect": "Allow", "Principal": "*",
                "Action": "ec2:DescribeImages", "Resource": "*"})
            ),
            one("PUBLIC_ACCESS", "$.Statement[0].Principal")
        );
        assert_eq!(
            findings(
                kind,
                json!({"Effect": "Allow", "Principal": {"AWS": "*"},
                "Action": "ec2:DescribeImages", "Resource": "*",
                "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-1"}}})
            ),
            []
        );
        assert_eq!(
            findings(
                kind,
                json!({"Effect": "Allow", "Principal": {"AWS": "111122223333"},
                "Action": "ec2:DescribeImages", "Resource": "*"})
            ),
            []
        );
    }

    #[test]
    fn for_all_values_needs_a_guard_in_allow() {
        let stmt = |cond: Value| {
            json!({"Effect": "Allow", "Action": "ec2:CreateTags", "Resource": "*",
                "Condition": cond})
        };
        assert_eq!(
            findings(
                ID,
                stmt(json!({"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]}}))
            ),
            one(
                "FOR_ALL_VALUES_WITHOUT_NULL_GUARD",
                "$.Statement[0].Condition.ForAllValues:StringEquals.aws:TagKeys"
            )
        );
        assert_eq!(
            findings(
                ID,
                stmt(json!({"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]},
                "Null": {"AWS:TagKeys": "false"}}))
            ),
            []
        );
        assert_eq!(
            findings(
                ID,
                stmt(json!({"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]},
                "ForAnyValue:StringEquals": {"aws:TagKeys": ["a"]}}))
            ),
            []
        );
        assert_eq!(
            findings(
                ID,
                stmt(json!({"ForAllValues:StringEqualsIfExists": {"aws:TagKeys": ["a"]}}))
            ),
            []
        );
        assert_eq!(
            findings(
                ID,
                stmt(json!({"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]},
                "Null": {"aws:TagKeys": "true"}}))
            ),
            one(
                "FOR_ALL_VALUES_WITHOUT_NULL_GUARD",
                "$.Statement[0].Condition.ForAllValues:StringEquals.aws:TagKeys"
            )
        );
    }

    #[test]
    fn deny_on_mfa_with_bool() {
        let stmt = |op: &str| {
            json!({"Effect": "Deny", "Action": "*", "Resource": "*",
                "Condition": {op: {"aws:MultiFactorAuthPresent": "false"}}})
        };
        assert_eq!(
            findings(ID, stmt("Bool")),
            one(
                "DENY_MFA_BOOL_WITHOUT_IF_EXISTS",
                "$.Statement[0].Condition.Bool.aws:MultiFactorAuthPresent"
            )
        );
        assert_eq!(findings(ID, stmt("BoolIfExists")), []);
    }
}
