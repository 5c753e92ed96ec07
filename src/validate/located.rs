//! The statements of a parsed policy with every element's JSON path, in
//! the path style of `src/policy/parse.rs` (`$.Statement` for a single
//! statement object, `$.Statement[i]` in an array; `[j]` after an element
//! only when it was written as an array). Only built for documents that
//! parsed, so the raw JSON is known to have the expected shape.

use serde_json::Value;

use crate::policy::condition::Operator;
use crate::policy::{Document, StatementDoc};

/// A string element (an action, a resource or a condition value) and its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Item {
    pub text: String,
    pub path: String,
}

/// One `operator: {key: values}` entry and its paths.
#[derive(Debug, Clone)]
pub(crate) struct Cond {
    pub op: Operator,
    /// The operator as written (`ForAllValues:StringLike`).
    pub op_name: String,
    /// The key as written.
    pub key: String,
    /// Path of the key: `$.Statement[0].Condition.StringEquals.ec2:Vpc`.
    pub path: String,
    pub values: Vec<Item>,
}

/// One statement with its elements located.
#[derive(Debug)]
pub(crate) struct Stmt<'a> {
    pub doc: &'a StatementDoc,
    /// Path of `Action` / `NotAction`.
    pub action_path: String,
    pub actions: Vec<Item>,
    /// Path of `Resource` / `NotResource`.
    pub resource_path: String,
    pub resources: Vec<Item>,
    /// Path of `Principal` / `NotPrincipal`, when present.
    pub principal_path: Option<String>,
    pub conditions: Vec<Cond>,
}

impl Stmt<'_> {
    /// Whether the statement uses `NotAction`.
    pub fn not_action(&self) -> bool {
        self.doc.action.negated
    }

    /// Whether the statement uses `NotResource`.
    pub fn not_resource(&self) -> bool {
        self.doc.resource.as_ref().is_some_and(|r| r.negated)
    }
}

/// Locates every statement of `doc`, which was parsed from `value`.
pub(crate) fn statements<'a>(value: &Value, doc: &'a Document) -> Vec<Stmt<'a>> {
    let raw: Vec<(String, Option<&Value>)> = match value.get("Statement") {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("$.Statement[{i}]"), Some(v)))
            .collect(),
        other => vec![("$.Statement".to_owned(), other)],
    };
    doc.statements
        .iter()
        .zip(raw)
        .map(|(s, (path, raw))| locate(s, path, raw))
        .collect()
}

fn locate<'a>(doc: &'a StatementDoc, path: String, raw: Option<&Value>) -> Stmt<'a> {
    let get = |name: &str| raw.and_then(|r| r.get(name));
    let action_name = if doc.action.negated {
        "NotAction"
    } else {
        "Action"
    };
    let action_path = format!("{path}.{action_name}");
    let actions = items(get(action_name), &action_path, &doc.action.patterns);
    let (resource_name, patterns): (&str, &[String]) = match &doc.resource {
        Some(r) if r.negated => ("NotResource", &r.patterns),
        Some(r) => ("Resource", &r.patterns),
        None => ("Resource", &[]),
    };
    let resource_path = format!("{path}.{resource_name}");
    let resources = items(get(resource_name), &resource_path, patterns);
    let principal_path = doc.principal.as_ref().map(|p| {
        let name = if p.negated {
            "NotPrincipal"
        } else {
            "Principal"
        };
        format!("{path}.{name}")
    });
    let conditions = match get("Condition") {
        Some(Value::Object(ops)) => conditions(ops, &format!("{path}.Condition")),
        _ => Vec::new(),
    };
    Stmt {
        doc,
        action_path,
        actions,
        resource_path,
        resources,
        principal_path,
        conditions,
    }
}

/// Pairs parsed strings with their paths: `base[i]` when the element was an
/// array, `base` when it was a single string.
fn items(raw: Option<&Value>, base: &str, texts: &[String]) -> Vec<Item> {
    let array = matches!(raw, Some(Value::Array(_)));
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| Item {
            text: t.clone(),
            path: if array {
                format!("{base}[{i}]")
            } else {
                base.to_owned()
            },
        })
        .collect()
}

fn conditions(ops: &serde_json::Map<String, Value>, base: &str) -> Vec<Cond> {
    let mut out = Vec::new();
    for (op_name, block) in ops {
        let (Ok(op), Value::Object(keys)) = (Operator::parse(op_name), block) else {
            continue;
        };
        for (key, values) in keys {
            let path = format!("{base}.{op_name}.{key}");
            let values = match values {
                Value::Array(vs) => vs
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| {
                        scalar(v).map(|text| Item {
                            text,
                            path: format!("{path}[{i}]"),
                        })
                    })
                    .collect(),
                v => scalar(v)
                    .map(|text| Item {
                        text,
                        path: path.clone(),
                    })
                    .into_iter()
                    .collect(),
            };
            out.push(Cond {
                op,
                op_name: op_name.clone(),
                key: key.clone(),
                path,
                values,
            });
        }
    }
    out
}

/// A condition value as the parser reads it: strings as they are, numbers
/// and booleans as their JSON text.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{PolicyKind, parse_document};
    use serde_json::json;

    fn located(v: &Value, f: impl FnOnce(&[Stmt<'_>])) {
        let doc = parse_document(v, PolicyKind::Identity).expect("test documents parse");
        f(&statements(v, &doc));
    }

    #[test]
    fn single_statement_and_single_strings() {
        let v = json!({"Statement": {"Effect": "Allow", "Action": "ec2:RunInstances",
            "Resource": ["*", "arn:aws:ec2:*:*:instance/*"],
            "Condition": {"Bool": {"aws:SecureTransport": true},
                          "StringEquals": {"ec2:InstanceType": ["t3.micro", "t3.small"]}}}});
        located(&v, |s| {
            assert_eq!(s.len(), 1);
            assert_eq!(s[0].actions[0].path, "$.Statement.Action");
            assert_eq!(s[0].resources[1].path, "$.Statement.Resource[1]");
            assert_eq!(s[0].conditions.len(), 2);
            let bool_cond = &s[0].conditions[0];
            assert_eq!(
                bool_cond.path,
                "$.Statement.Condition.Bool.aws:SecureTransport"
            );
            assert_eq!(bool_cond.values[0].text, "true");
            assert_eq!(bool_cond.values[0].path, bool_cond.path);
            assert_eq!(
                s[0].conditions[1].values[1].path,
                "$.Statement.Condition.StringEquals.ec2:InstanceType[1]"
            );
        });
    }

    #[test]
    fn statement_arrays_and_negated_elements() {
        let v = json!({"Statement": [
            {"Effect": "Allow", "Action": "ec2:*", "Resource": "*"},
            {"Effect": "Deny", "NotAction": ["iam:*", "sts:*"], "NotResource": "*"}]});
        located(&v, |s| {
            assert_eq!(s[0].action_path, "$.Statement[0].Action");
            assert!(s[1].not_action() && s[1].not_resource());
            assert_eq!(s[1].action_path, "$.Statement[1].NotAction");
            assert_eq!(s[1].actions[1].path, "$.Statement[1].NotAction[1]");
            assert_eq!(s[1].resources[0].path, "$.Statement[1].NotResource");
            assert_eq!(s[1].principal_path, None);
        });
    }
}
