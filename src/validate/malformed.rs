//! Every error of a malformed policy document, not only the first: the
//! parser stops at the first problem, so each error found is repaired in a
//! copy of the document (the offending element removed or replaced by a
//! neutral value) and the copy parsed again, until it parses or nothing
//! more can be repaired. Statements that needed a repair are not checked
//! further: their other findings would be about the repairs.

use serde_json::{Map, Value, json};

use crate::policy::{Document, ParseError, ParseErrorKind as K, PolicyKind, parse_document};
use crate::validate::{Finding, Severity};

/// Most errors reported for one document.
const MAX_ERRORS: usize = 100;

/// The outcome of parsing a document with repairs.
pub(crate) struct Repaired {
    /// One `MALFORMED_POLICY` error per problem, in the order found.
    pub errors: Vec<Finding>,
    /// The repaired document and its parse, when the repairs made it valid.
    pub parsed: Option<(Value, Document)>,
    /// JSON paths of the statements that were repaired (`$.Statement[1]`).
    pub repaired_statements: Vec<String>,
}

/// Parses `value`, collecting every error.
pub(crate) fn parse_all(value: &Value, kind: PolicyKind) -> Repaired {
    let mut doc = value.clone();
    let mut out = Repaired {
        errors: Vec::new(),
        parsed: None,
        repaired_statements: Vec::new(),
    };
    while out.errors.len() < MAX_ERRORS {
        let e = match parse_document(&doc, kind) {
            Ok(parsed) => {
                out.parsed = Some((doc, parsed));
                return out;
            }
            Err(e) => e,
        };
        out.errors.push(Finding::new(
            Severity::Error,
            "MALFORMED_POLICY",
            e.path.clone(),
            e.kind.to_string(),
        ));
        let before = doc.clone();
        if !repair(&mut doc, &e, kind) || doc == before {
            return out;
        }
        if let Some(stmt) = statement_of(&e.path)
            && !out.repaired_statements.contains(&stmt)
        {
            out.repaired_statements.push(stmt);
        }
    }
    out
}

/// Whether `path` is `stmt` or inside it.
pub(crate) fn is_within(path: &str, stmt: &str) -> bool {
    path.strip_prefix(stmt)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// The statement a path is in: `$.Statement[2]`, or `$.Statement` when the
/// document's `Statement` is one object.
fn statement_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("$.Statement")?;
    if let Some(inner) = rest.strip_prefix('[') {
        let end = inner.find(']')?;
        return Some(format!("$.Statement[{}]", inner.get(..end)?));
    }
    Some("$.Statement".to_owned())
}

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// `$.Statement[0].Condition.StringEquals` as steps (keys may hold `:`
/// and `/`, as condition keys do).
fn steps(path: &str) -> Option<Vec<Step>> {
    let mut rest = path.strip_prefix('$')?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            out.push(Step::Index(r.get(..end)?.parse().ok()?));
            rest = r.get(end + 1..)?;
        } else if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            out.push(Step::Key(r.get(..end)?.to_owned()));
            rest = r.get(end..)?;
        } else {
            return None;
        }
    }
    Some(out)
}

fn node_mut<'a>(root: &'a mut Value, steps: &[Step]) -> Option<&'a mut Value> {
    steps.iter().try_fold(root, |v, s| match s {
        Step::Key(k) => v.as_object_mut()?.get_mut(k),
        Step::Index(i) => v.as_array_mut()?.get_mut(*i),
    })
}

/// Removes the member at `steps` from its object; an object left empty by
/// it inside a `Condition` goes too, up to the `Condition` itself.
fn remove(root: &mut Value, steps: &[Step]) -> bool {
    let Some((Step::Key(last), parent)) = steps.split_last() else {
        return false;
    };
    let Some(obj) = node_mut(root, parent).and_then(Value::as_object_mut) else {
        return false;
    };
    if obj.remove(last).is_none() {
        return false;
    }
    let emptied = obj.is_empty();
    let in_condition = parent
        .iter()
        .any(|s| matches!(s, Step::Key(k) if k == "Condition"));
    if emptied && in_condition {
        remove(root, parent);
    }
    true
}

fn set(root: &mut Value, steps: &[Step], to: Value) -> bool {
    match node_mut(root, steps) {
        Some(v) => {
            *v = to;
            true
        }
        None => false,
    }
}

/// The statement object a path's steps start with, and the steps to it.
fn statement_steps(steps: &[Step]) -> Option<usize> {
    match steps {
        [Step::Key(s), Step::Index(_), ..] if s == "Statement" => Some(2),
        [Step::Key(s), ..] if s == "Statement" => Some(1),
        _ => None,
    }
}

/// A statement that parses in a document of `kind`.
fn neutral_statement(kind: PolicyKind) -> Value {
    let mut s = Map::new();
    s.insert("Effect".into(), json!("Deny"));
    s.insert("Action".into(), json!("*"));
    if kind != PolicyKind::Trust {
        s.insert("Resource".into(), json!("*"));
    }
    if kind.has_principal() {
        s.insert("Principal".into(), json!("*"));
    }
    Value::Object(s)
}

fn neutral_element(name: &str) -> Value {
    match name {
        "Effect" => json!("Deny"),
        _ => json!("*"),
    }
}

/// Repairs the problem `e` names in `doc`; false when it cannot be.
fn repair(doc: &mut Value, e: &ParseError, kind: PolicyKind) -> bool {
    let Some(steps) = steps(&e.path) else {
        return false;
    };
    let at_statement = statement_steps(&steps);
    let element = at_statement
        .and_then(|n| steps.get(n))
        .and_then(|s| match s {
            Step::Key(k) => Some(k.as_str()),
            Step::Index(_) => None,
        });
    match &e.kind {
        K::UnknownElement(_) | K::Sid(_) | K::DuplicateSid(_) | K::NotAllowedHere(..) => {
            remove(doc, &steps)
        }
        K::Version(_) => remove(doc, &steps),
        K::Type(_) if e.path == "$.Id" => remove(doc, &steps),
        K::NotPrincipalAllow => {
            let removed = remove(doc, &steps);
            if removed && kind.has_principal() {
                let Some((_, stmt)) = steps.split_last() else {
                    return false;
                };
                if let Some(obj) = node_mut(doc, stmt).and_then(Value::as_object_mut) {
                    obj.insert("Principal".into(), json!("*"));
                }
            }
            removed
        }
        K::Missing(name) if at_statement.is_some_and(|n| n == steps.len()) => {
            match node_mut(doc, &steps).and_then(Value::as_object_mut) {
                Some(obj) => {
                    obj.insert((*name).to_owned(), neutral_element(name));
                    true
                }
                None => false,
            }
        }
        K::Conflict(_, second) if at_statement.is_some_and(|n| n == steps.len()) => {
            let mut to = steps.clone();
            to.push(Step::Key((*second).to_owned()));
            remove(doc, &to)
        }
        // A statement that is not an object.
        K::Type(_) if at_statement.is_some_and(|n| n == steps.len() && n == 2) => {
            set(doc, &steps, neutral_statement(kind))
        }
        _ => match element {
            Some("Condition") => {
                // A condition value inside an array: drop the key's values.
                let mut to = steps.clone();
                while matches!(to.last(), Some(Step::Index(_))) {
                    to.pop();
                }
                remove(doc, &to)
            }
            Some(
                name @ ("Effect" | "Action" | "NotAction" | "Resource" | "NotResource"
                | "Principal" | "NotPrincipal"),
            ) => {
                // The item at fault, or the whole element.
                let to = if matches!(steps.last(), Some(Step::Index(_))) {
                    json!("*")
                } else if steps.len() == at_statement.map_or(0, |n| n + 1) {
                    neutral_element(name)
                } else {
                    json!("*")
                };
                set(doc, &steps, to)
            }
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(v: Value, kind: PolicyKind) -> Vec<(String, String)> {
        parse_all(&v, kind)
            .errors
            .into_iter()
            .map(|f| (f.path, f.message))
            .collect()
    }

    #[test]
    fn every_error_of_every_statement_is_reported() {
        let found = errors(
            json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "allow", "Action": "ec2:RunInstances", "Resource": "*"},
                {"Effect": "Allow", "Action": ["ec2:Start*", "ec2 StopInstances", "bad"],
                 "Resource": "not-an-arn", "Condtion": {}},
                {"Effect": "Deny", "Action": "ec2:*", "NotAction": "s3:*", "Resource": "*",
                 "Condition": {"StringEqualz": {"aws:username": "a"}}},
                {"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}
            ]}),
            PolicyKind::Identity,
        );
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "$.Statement[0].Effect",
                "$.Statement[1].Condtion",
                "$.Statement[1].Action[1]",
                "$.Statement[1].Action[2]",
                "$.Statement[1].Resource",
                "$.Statement[2]",
                "$.Statement[2].Condition.StringEqualz",
            ],
            "{found:?}"
        );
    }

    #[test]
    fn missing_and_structural_errors_do_not_cascade() {
        let found = errors(
            json!({"Version": "2013-01-01", "Statement": {"Effect": "Allow"}}),
            PolicyKind::Resource,
        );
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            ["$.Version", "$.Statement", "$.Statement", "$.Statement"],
            "{found:?}"
        );
        assert!(found.iter().any(|(_, m)| m.contains("`Principal`")));
        // Nothing to repair: one error.
        assert_eq!(
            errors(json!({"Statement": []}), PolicyKind::Identity).len(),
            1
        );
        assert_eq!(errors(json!([1]), PolicyKind::Identity).len(), 1);
    }

    #[test]
    fn a_valid_document_has_no_errors_and_no_repairs() {
        let r = parse_all(
            &json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
            PolicyKind::Identity,
        );
        assert!(r.errors.is_empty() && r.parsed.is_some() && r.repaired_statements.is_empty());
    }

    #[test]
    fn paths_within_statements() {
        assert!(is_within("$.Statement[1].Action", "$.Statement[1]"));
        assert!(is_within("$.Statement[1]", "$.Statement[1]"));
        assert!(!is_within("$.Statement[10].Action", "$.Statement[1]"));
    }
}
