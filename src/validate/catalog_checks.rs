//! Warnings from the services' catalogs (each service behind the seam that
//! ships one; EC2's wording below): `ec2:` actions that match no EC2
//! action, actions that support only `"Resource": "*"` used with specific
//! ARNs, EC2 resource ARNs that match no resource type of the statement's
//! EC2 actions, unknown `ec2:` and `aws:` condition keys, and `ec2:` keys
//! that none of the statement's EC2 actions supports. A service without a
//! catalog is not judged.
//!
//! Codes: `UNKNOWN_ACTION`, `ACTION_REQUIRES_WILDCARD_RESOURCE`,
//! `RESOURCE_TYPE_MISMATCH`, `UNKNOWN_CONDITION_KEY`,
//! `UNKNOWN_GLOBAL_CONDITION_KEY`, `CONDITION_KEY_NOT_SUPPORTED`.

use std::collections::BTreeMap;

use crate::policy::wildcard;
use crate::service::catalog::{ActionDef, Catalog, ResourceTypeDef};
use crate::validate::global_keys::{is_cross_service, is_global, lookup, owner};
use crate::validate::located::{Item, Stmt};
use crate::validate::patterns::{Pattern, may_overlap};
use crate::validate::{Finding, Severity};

/// The actions of one catalog that each action pattern names.
type Named<'s> = Vec<(&'s Item, Vec<&'static ActionDef>)>;

/// Runs the catalog checks on one statement, against every catalog.
pub(crate) fn check(
    s: &Stmt<'_>,
    variables: bool,
    catalogs: &[&'static Catalog],
    out: &mut Vec<Finding>,
) {
    let named: Vec<(&'static Catalog, Named<'_>)> = catalogs
        .iter()
        .map(|c| (*c, check_actions_known(s, c, out)))
        .collect();
    check_keys_known(s, catalogs, out);
    if s.not_action() {
        // The statement's actions are "everything but": nothing to judge
        // resources and keys against.
        return;
    }
    for (catalog, named) in &named {
        let scope = union(named.iter().map(|(_, m)| m.as_slice()));
        if !s.not_resource() {
            check_wildcard_only_actions(s, named, out);
            check_resource_types(s, catalog, &scope, variables, out);
        }
        check_keys_supported(s, catalog, &scope, out);
    }
}

/// `UNKNOWN_ACTION`; returns the catalog's actions each action pattern
/// names (patterns that cannot name one of its actions are left out).
fn check_actions_known<'s>(
    s: &'s Stmt<'_>,
    catalog: &Catalog,
    out: &mut Vec<Finding>,
) -> Named<'s> {
    let mut named: Named<'s> = Vec::new();
    for item in &s.actions {
        let Some(matched) = actions_of(catalog, &item.text) else {
            continue;
        };
        if matched.is_empty() && names_service(catalog, &item.text) {
            let what = if item.text.contains(['*', '?']) {
                format!("matches no {} action", catalog.name)
            } else {
                format!("is not an {} action", catalog.name)
            };
            out.push(Finding::new(
                Severity::Warning,
                "UNKNOWN_ACTION",
                item.path.clone(),
                format!("`{}` {what}", item.text),
            ));
        }
        named.push((item, matched));
    }
    named
}

/// Whether the pattern's service part is literally the catalog's prefix
/// (any case).
fn names_service(catalog: &Catalog, pattern: &str) -> bool {
    pattern
        .split_once(':')
        .is_some_and(|(service, _)| service.eq_ignore_ascii_case(catalog.prefix))
}

/// The catalog's actions an action pattern matches (case-insensitively), or
/// `None` when its service part cannot be the catalog's prefix.
fn actions_of(catalog: &Catalog, pattern: &str) -> Option<Vec<&'static ActionDef>> {
    let lower = pattern.to_ascii_lowercase();
    let (service, name) = match lower.split_once(':') {
        Some(parts) => parts,
        None if lower == "*" => ("*", "*"),
        None => return None,
    };
    if !wildcard::matches_str(service, catalog.prefix) {
        return None;
    }
    Some(
        catalog
            .actions
            .iter()
            .filter(|a| wildcard::matches_str(name, &a.name.to_ascii_lowercase()))
            .collect(),
    )
}

/// The distinct actions of several lists, in catalog order.
fn union<'a>(lists: impl Iterator<Item = &'a [&'static ActionDef]>) -> Vec<&'static ActionDef> {
    let mut by_name: BTreeMap<&'static str, &'static ActionDef> = BTreeMap::new();
    for list in lists {
        for a in list {
            by_name.insert(a.name, a);
        }
    }
    by_name.into_values().collect()
}

/// How a finding names a set of the catalog's actions.
fn describe(catalog: &Catalog, actions: &[&'static ActionDef]) -> String {
    match actions {
        [] => format!("no {} action", catalog.name),
        list if list.len() <= 3 => list
            .iter()
            .map(|a| format!("`{}:{}`", catalog.prefix, a.name))
            .collect::<Vec<_>>()
            .join(", "),
        list => format!("any of its {} {} actions", list.len(), catalog.name),
    }
}

/// `ACTION_REQUIRES_WILDCARD_RESOURCE`: a pattern all of whose actions take
/// only `"Resource": "*"`, in a statement that names no `*` resource.
fn check_wildcard_only_actions(s: &Stmt<'_>, named: &Named<'_>, out: &mut Vec<Finding>) {
    if s.resources.is_empty() || s.resources.iter().any(|r| r.text == "*") {
        return;
    }
    for (item, matched) in named {
        if !matched.is_empty() && matched.iter().all(|a| a.resource_types.is_empty()) {
            let what = if matched.len() == 1 {
                "supports"
            } else {
                "matches only actions that support"
            };
            out.push(Finding::new(
                Severity::Warning,
                "ACTION_REQUIRES_WILDCARD_RESOURCE",
                item.path.clone(),
                format!(
                    "`{}` {what} only `\"Resource\": \"*\"`, but the statement names specific resources, so it never applies",
                    item.text
                ),
            ));
        }
    }
}

/// Whether a resource pattern is an ARN in the catalog's namespace.
fn in_namespace(catalog: &Catalog, resource: &str) -> bool {
    resource.starts_with("arn:") && resource.split(':').nth(2) == Some(catalog.prefix)
}

/// `RESOURCE_TYPE_MISMATCH`: an ARN of the service that can match no
/// resource type of the statement's actions of the service.
fn check_resource_types(
    s: &Stmt<'_>,
    catalog: &Catalog,
    scope: &[&'static ActionDef],
    variables: bool,
    out: &mut Vec<Finding>,
) {
    let with_types: Vec<&'static ActionDef> = scope
        .iter()
        .copied()
        .filter(|a| !a.resource_types.is_empty())
        .collect();
    let mut types: BTreeMap<&'static str, &'static ResourceTypeDef> = BTreeMap::new();
    for a in &with_types {
        for r in a.resource_types {
            types.insert(r.definition.name, r.definition);
        }
    }
    if types.is_empty() {
        return;
    }
    let templates: Vec<Pattern> = types
        .values()
        .map(|t| Pattern::template(t.arn_template))
        .collect();
    for r in s
        .resources
        .iter()
        .filter(|r| in_namespace(catalog, &r.text))
    {
        let glob = Pattern::glob(&r.text, variables);
        if !templates.iter().any(|t| may_overlap(&glob, t)) {
            let known = catalog
                .resource_types
                .iter()
                .any(|t| may_overlap(&glob, &Pattern::template(t.arn_template)));
            let why = if known {
                format!(
                    "matches no resource type of the statement's actions ({})",
                    describe(catalog, &with_types)
                )
            } else {
                format!("matches no {} resource type", catalog.name)
            };
            let note = if !variables && r.text.contains("${") {
                " (`${...}` is literal text: the policy's version substitutes no variables)"
            } else {
                ""
            };
            out.push(Finding::new(
                Severity::Warning,
                "RESOURCE_TYPE_MISMATCH",
                r.path.clone(),
                format!("`{}` {why}, so it never applies{note}", r.text),
            ));
        }
    }
}

/// `UNKNOWN_CONDITION_KEY` and `UNKNOWN_GLOBAL_CONDITION_KEY`.
fn check_keys_known(s: &Stmt<'_>, catalogs: &[&'static Catalog], out: &mut Vec<Finding>) {
    for c in &s.conditions {
        if let Some(catalog) = owner(&c.key, catalogs) {
            if catalog.condition_key(&c.key).is_none() {
                out.push(Finding::new(
                    Severity::Warning,
                    "UNKNOWN_CONDITION_KEY",
                    c.path.clone(),
                    format!(
                        "`{}` is not a condition key that {} defines",
                        c.key, catalog.name
                    ),
                ));
            }
        } else if is_global(&c.key) && lookup(&c.key, catalogs).is_none() {
            out.push(Finding::new(
                Severity::Warning,
                "UNKNOWN_GLOBAL_CONDITION_KEY",
                c.path.clone(),
                format!("`{}` is not a documented global condition key", c.key),
            ));
        }
    }
}

/// `CONDITION_KEY_NOT_SUPPORTED`: a key of the service (`ec2:`) that none
/// of the statement's actions of the service supports, so requests for
/// them never carry it.
fn check_keys_supported(
    s: &Stmt<'_>,
    catalog: &Catalog,
    scope: &[&'static ActionDef],
    out: &mut Vec<Finding>,
) {
    if scope.is_empty() {
        return;
    }
    for c in &s.conditions {
        let judged = catalog.owns_key(&c.key)
            && !is_cross_service(&c.key)
            && catalog.condition_key(&c.key).is_some();
        if judged && !scope.iter().any(|a| a.allows_condition_key(&c.key)) {
            out.push(Finding::new(
                Severity::Warning,
                "CONDITION_KEY_NOT_SUPPORTED",
                c.path.clone(),
                format!(
                    "`{}` is not supported by the statement's actions ({}), so requests never carry it",
                    c.key,
                    describe(catalog, scope)
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{PolicyKind, parse_document};
    use crate::validate::located::statements;
    use serde_json::{Value, json};

    fn findings(statement: Value) -> Vec<Finding> {
        findings_in("2012-10-17", statement)
    }

    fn findings_in(version: &str, statement: Value) -> Vec<Finding> {
        let doc = json!({"Version": version, "Statement": [statement]});
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

    #[test]
    fn unknown_actions_and_patterns() {
        let f = findings(json!({"Effect": "Allow", "Resource": "*", "Action": [
            "ec2:RunInstance", "EC2:runinstances", "ec2:Desc*ribeFoo*", "ec2:Describe*",
            "s3:GetObject", "*", "e?2:NoSuchThing"]}));
        assert_eq!(
            codes(&f),
            [
                ("UNKNOWN_ACTION", "$.Statement[0].Action[0]"),
                ("UNKNOWN_ACTION", "$.Statement[0].Action[2]"),
            ]
        );
        assert_eq!(f[0].message, "`ec2:RunInstance` is not an EC2 action");
        assert_eq!(f[1].message, "`ec2:Desc*ribeFoo*` matches no EC2 action");
        let f = findings(json!({"Effect": "Deny", "NotAction": "ec2:Nope", "Resource": "*"}));
        assert_eq!(codes(&f), [("UNKNOWN_ACTION", "$.Statement[0].NotAction")]);
    }

    #[test]
    fn wildcard_only_actions_with_arns() {
        let f = findings(json!({"Effect": "Allow",
            "Action": ["ec2:DescribeInstances", "ec2:Describe*", "ec2:TerminateInstances"],
            "Resource": "arn:aws:ec2:*:*:instance/*"}));
        // `ec2:Describe*` also names actions with resource types.
        assert_eq!(
            codes(&f),
            [(
                "ACTION_REQUIRES_WILDCARD_RESOURCE",
                "$.Statement[0].Action[0]"
            )]
        );
        assert_eq!(
            f[0].message,
            "`ec2:DescribeInstances` supports only `\"Resource\": \"*\"`, but the statement names specific resources, so it never applies"
        );
        let f = findings(json!({"Effect": "Allow", "Action": "ec2:DescribeInstances",
            "Resource": ["*", "arn:aws:ec2:*:*:instance/*"]}));
        assert_eq!(codes(&f), []);
    }

    #[test]
    fn resource_types_are_wildcard_aware() {
        let ok = |r: &str| {
            findings(json!({"Effect": "Allow", "Action": "ec2:TerminateInstances", "Resource": r}))
                .is_empty()
        };
        assert!(ok("arn:aws:ec2:*:*:instance/*"));
        assert!(ok("arn:aws:ec2:us-east-1:111122223333:instance/i-0abc"));
        assert!(ok("arn:aws:ec2:*:*:*"));
        assert!(ok("arn:aws:ec2:*:*:instance/${aws:username}"));
        assert!(ok("arn:aws:s3:::bucket"));
        assert!(!ok("arn:aws:ec2:*:*:volume/*"));
        assert!(!ok("arn:aws:ec2:*:*:instances/*"));
        let f = findings(
            json!({"Effect": "Allow", "Action": "ec2:TerminateInstances",
            "Resource": ["arn:aws:ec2:*:*:volume/*", "arn:aws:ec2:*:*:bucket/*"]}),
        );
        assert_eq!(
            codes(&f),
            [
                ("RESOURCE_TYPE_MISMATCH", "$.Statement[0].Resource[0]"),
                ("RESOURCE_TYPE_MISMATCH", "$.Statement[0].Resource[1]"),
            ]
        );
        assert!(f[0].message.contains("`ec2:TerminateInstances`"));
        assert!(f[1].message.contains("matches no EC2 resource type"));
        // Without variables, `${aws:username}` is literal text with a `:`.
        let stmt = json!({"Effect": "Allow", "Action": "ec2:DeleteKeyPair",
            "Resource": "arn:aws:ec2:*:*:key-pair/${aws:username}"});
        assert_eq!(findings(stmt.clone()), []);
        let f = findings_in("2008-10-17", stmt);
        assert_eq!(
            codes(&f),
            [("RESOURCE_TYPE_MISMATCH", "$.Statement[0].Resource")]
        );
        assert!(
            f[0].message
                .ends_with("the policy's version substitutes no variables)")
        );
        // Several actions: any of their resource types will do.
        let f = findings(json!({"Effect": "Allow",
            "Action": ["ec2:TerminateInstances", "ec2:DeleteVolume"],
            "Resource": ["arn:aws:ec2:*:*:volume/*", "arn:aws:ec2:*:*:instance/*"]}));
        assert_eq!(codes(&f), []);
        // NotResource is not judged.
        let f = findings(json!({"Effect": "Deny", "Action": "ec2:TerminateInstances",
            "NotResource": "arn:aws:ec2:*:*:volume/*"}));
        assert_eq!(codes(&f), []);
    }

    #[test]
    fn condition_keys() {
        let f = findings(json!({"Effect": "Allow", "Action": "ec2:RunInstances",
            "Resource": "*", "Condition": {"StringEquals": {
                "ec2:InstanceType": "t3.micro",
                "ec2:NoSuchKey": "x",
                "aws:NoSuchKey": "x",
                "aws:PrincipalTag/team": "a",
                "aws:RequestTag/team": "a",
                "ec2:ResourceTag/team": "a",
                "ec2:SourceInstanceARN": "arn:aws:ec2:*:*:instance/*",
                "ec2:VpceServiceName": "x",
                "s3:prefix": "x"}}}));
        assert_eq!(
            codes(&f),
            [
                (
                    "UNKNOWN_GLOBAL_CONDITION_KEY",
                    "$.Statement[0].Condition.StringEquals.aws:NoSuchKey"
                ),
                (
                    "UNKNOWN_CONDITION_KEY",
                    "$.Statement[0].Condition.StringEquals.ec2:NoSuchKey"
                ),
                (
                    "CONDITION_KEY_NOT_SUPPORTED",
                    "$.Statement[0].Condition.StringEquals.ec2:VpceServiceName"
                ),
            ]
        );
        // With every EC2 action in scope, some action supports the key.
        let f = findings(
            json!({"Effect": "Allow", "Action": "ec2:*", "Resource": "*",
            "Condition": {"StringEquals": {"ec2:VpceServiceName": "x"}}}),
        );
        assert_eq!(codes(&f), []);
        // Non-EC2 actions only: not judged.
        let f = findings(
            json!({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
            "Condition": {"StringEquals": {"ec2:VolumeSize": "8"}}}),
        );
        assert_eq!(codes(&f), []);
    }
}
