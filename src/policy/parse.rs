//! Reading IAM JSON policy documents the way IAM does: every element, in
//! either the single-value or the array form, and refusing what IAM refuses
//! (`MalformedPolicyDocument`) with the JSON path of the problem.

use std::collections::HashSet;

use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};

use crate::policy::condition::{Operator, OperatorError};
use crate::policy::document::{
    ActionList, ConditionBlock, Document, Effect, PolicyKind, PrincipalEntry, PrincipalSpec,
    ResourceList, StatementDoc, Version,
};
use crate::policy::err::{ParseError, ParseErrorKind as K};
use crate::policy::ids::AccountId;

const TOP_LEVEL: &[&str] = &["Version", "Id", "Statement"];
const STATEMENT: &[&str] = &[
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];

/// Parses policy text: a JSON object, or the URL-encoded form the raw IAM
/// API returns.
pub fn parse_document_str(text: &str, kind: PolicyKind) -> Result<Document, ParseError> {
    let decoded;
    let mut text = text.trim();
    if !text.starts_with('{') && text.contains('%') {
        decoded = percent_decode_str(text)
            .decode_utf8()
            .map_err(|e| ParseError::new("$", K::Json(e.to_string())))?
            .into_owned();
        text = decoded.trim();
    }
    let value: Value =
        serde_json::from_str(text).map_err(|e| ParseError::new("$", K::Json(e.to_string())))?;
    parse_document(&value, kind)
}

/// Parses a policy given as a JSON value: an object, or a string holding
/// the document (URL-encoded or not).
pub fn parse_document_value(value: &Value, kind: PolicyKind) -> Result<Document, ParseError> {
    match value {
        Value::String(s) => parse_document_str(s, kind),
        other => parse_document(other, kind),
    }
}

/// A JSON path, written out only when an error names it: each step
/// borrows its parent, so reading a valid document formats nothing.
#[derive(Debug, Clone, Copy)]
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl<'a> Path<'a> {
    fn key(&'a self, key: &'a str) -> Path<'a> {
        Path::Key(self, key)
    }

    fn index(&'a self, i: usize) -> Path<'a> {
        Path::Index(self, i)
    }
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Root => f.write_str("$"),
            Path::Key(parent, key) => write!(f, "{parent}.{key}"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

impl From<Path<'_>> for String {
    fn from(path: Path<'_>) -> String {
        path.to_string()
    }
}

/// Parses a policy document object.
pub fn parse_document(value: &Value, kind: PolicyKind) -> Result<Document, ParseError> {
    let root = Path::Root;
    let obj = value
        .as_object()
        .ok_or_else(|| ParseError::new(root, K::Type("a JSON object")))?;
    check_known(obj, TOP_LEVEL, root)?;
    let version = match obj.get("Version") {
        None => Version::V2008_10_17,
        Some(Value::String(v)) if v == "2012-10-17" => Version::V2012_10_17,
        Some(Value::String(v)) if v == "2008-10-17" => Version::V2008_10_17,
        Some(Value::String(v)) => return Err(ParseError::new("$.Version", K::Version(v.clone()))),
        Some(other) => {
            return Err(ParseError::new("$.Version", K::Version(other.to_string())));
        }
    };
    let id = match obj.get("Id") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ParseError::new("$.Id", K::Type("a string"))),
    };
    let statement = root.key("Statement");
    let statements = match obj.get("Statement") {
        None => return Err(ParseError::new(root, K::Missing("Statement"))),
        Some(Value::Object(s)) => vec![parse_statement(s, statement, kind)?],
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err(ParseError::new(statement, K::Empty("Statement")));
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let path = statement.index(i);
                let s = item
                    .as_object()
                    .ok_or_else(|| ParseError::new(path, K::Type("a statement object")))?;
                out.push(parse_statement(s, path, kind)?);
            }
            out
        }
        Some(_) => {
            return Err(ParseError::new(
                statement,
                K::Type("a statement object or an array of them"),
            ));
        }
    };
    let mut sids = HashSet::new();
    for (i, s) in statements.iter().enumerate() {
        if let Some(sid) = &s.sid
            && !sid.is_empty()
            && !sids.insert(sid.as_str())
        {
            let path = if statements.len() == 1 {
                "$.Statement.Sid".to_owned()
            } else {
                format!("$.Statement[{i}].Sid")
            };
            return Err(ParseError::new(path, K::DuplicateSid(sid.clone())));
        }
    }
    Ok(Document {
        version,
        id,
        statements,
    })
}

fn check_known(obj: &Map<String, Value>, known: &[&str], path: Path<'_>) -> Result<(), ParseError> {
    for key in obj.keys() {
        if !known.contains(&key.as_str()) {
            return Err(ParseError::new(
                path.key(key),
                K::UnknownElement(key.clone()),
            ));
        }
    }
    Ok(())
}

fn parse_statement(
    obj: &Map<String, Value>,
    path: Path<'_>,
    kind: PolicyKind,
) -> Result<StatementDoc, ParseError> {
    check_known(obj, STATEMENT, path)?;
    let sid = match obj.get("Sid") {
        None => None,
        Some(Value::String(s)) => {
            let iam_rules = matches!(
                kind,
                PolicyKind::Identity | PolicyKind::Boundary | PolicyKind::Session
            );
            if iam_rules && !s.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(ParseError::new(path.key("Sid"), K::Sid(s.clone())));
            }
            Some(s.clone())
        }
        Some(_) => return Err(ParseError::new(path.key("Sid"), K::Type("a string"))),
    };
    let effect = match obj.get("Effect") {
        None => return Err(ParseError::new(path, K::Missing("Effect"))),
        Some(Value::String(e)) if e == "Allow" => Effect::Allow,
        Some(Value::String(e)) if e == "Deny" => Effect::Deny,
        Some(Value::String(e)) => {
            return Err(ParseError::new(path.key("Effect"), K::Effect(e.clone())));
        }
        Some(other) => {
            return Err(ParseError::new(
                path.key("Effect"),
                K::Effect(other.to_string()),
            ));
        }
    };

    let principal = match (obj.get("Principal"), obj.get("NotPrincipal")) {
        (Some(_), Some(_)) => {
            return Err(ParseError::new(
                path,
                K::Conflict("Principal", "NotPrincipal"),
            ));
        }
        (Some(p), None) => Some(parse_principal(p, false, path.key("Principal"))?),
        (None, Some(p)) => Some(parse_principal(p, true, path.key("NotPrincipal"))?),
        (None, None) => None,
    };
    if effect == Effect::Allow && principal.as_ref().is_some_and(|p| p.negated) {
        return Err(ParseError::new(
            path.key("NotPrincipal"),
            K::NotPrincipalAllow,
        ));
    }
    match (&principal, kind) {
        (None, PolicyKind::Resource | PolicyKind::Trust) => {
            return Err(ParseError::new(path, K::Missing("Principal")));
        }
        (Some(p), k) if !k.has_principal() && k != PolicyKind::Rcp => {
            let element = if p.negated {
                "NotPrincipal"
            } else {
                "Principal"
            };
            return Err(ParseError::new(
                path.key(element),
                K::NotAllowedHere(element, k.as_str()),
            ));
        }
        _ => {}
    }

    let action = match (obj.get("Action"), obj.get("NotAction")) {
        (Some(_), Some(_)) => {
            return Err(ParseError::new(path, K::Conflict("Action", "NotAction")));
        }
        (Some(a), None) => ActionList {
            negated: false,
            patterns: parse_actions(a, path.key("Action"))?,
        },
        (None, Some(a)) => ActionList {
            negated: true,
            patterns: parse_actions(a, path.key("NotAction"))?,
        },
        (None, None) => return Err(ParseError::new(path, K::Missing("Action"))),
    };

    let resource = match (obj.get("Resource"), obj.get("NotResource")) {
        (Some(_), Some(_)) => {
            return Err(ParseError::new(
                path,
                K::Conflict("Resource", "NotResource"),
            ));
        }
        (Some(r), None) => Some(ResourceList {
            negated: false,
            patterns: parse_resources(r, path.key("Resource"))?,
        }),
        (None, Some(r)) => Some(ResourceList {
            negated: true,
            patterns: parse_resources(r, path.key("NotResource"))?,
        }),
        (None, None) if kind == PolicyKind::Trust => None,
        (None, None) => return Err(ParseError::new(path, K::Missing("Resource"))),
    };

    let conditions = match obj.get("Condition") {
        None => Vec::new(),
        Some(c) => parse_conditions(c, path.key("Condition"))?,
    };

    Ok(StatementDoc {
        sid,
        effect,
        principal,
        action,
        resource,
        conditions,
    })
}

/// A string or a non-empty array of strings.
fn string_list(v: &Value, path: Path<'_>, what: &'static str) -> Result<Vec<String>, ParseError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => {
            if items.is_empty() {
                return Err(ParseError::new(path, K::Empty(what)));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(ParseError::new(path.index(i), K::Type("a string"))),
                })
                .collect()
        }
        _ => Err(ParseError::new(
            path,
            K::Type("a string or an array of strings"),
        )),
    }
}

/// Where item `i` of a string list stands: `path[i]` in the array form,
/// `path` itself in the single-value form.
fn item_path(v: &Value, path: Path<'_>, i: usize) -> String {
    if matches!(v, Value::Array(_)) {
        path.index(i).to_string()
    } else {
        path.to_string()
    }
}

fn parse_actions(v: &Value, path: Path<'_>) -> Result<Vec<String>, ParseError> {
    let actions = string_list(v, path, "Action")?;
    for (i, a) in actions.iter().enumerate() {
        let at = || item_path(v, path, i);
        if a == "*" {
            continue;
        }
        let Some((service, name)) = a.split_once(':') else {
            return Err(ParseError::new(
                at(),
                K::Action(a.clone(), "an action must be `*` or `service:action`"),
            ));
        };
        let service_ok = !service.is_empty()
            && service
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '*' | '?'));
        if !service_ok {
            return Err(ParseError::new(
                at(),
                K::Action(a.clone(), "the service prefix is not valid"),
            ));
        }
        let name_ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '*' | '?' | '.'));
        if !name_ok {
            return Err(ParseError::new(
                at(),
                K::Action(a.clone(), "the action name is not valid"),
            ));
        }
    }
    Ok(actions)
}

fn parse_resources(v: &Value, path: Path<'_>) -> Result<Vec<String>, ParseError> {
    let resources = string_list(v, path, "Resource")?;
    for (i, r) in resources.iter().enumerate() {
        let ok = r == "*" || (r.starts_with("arn:") && r.matches(':').count() >= 2);
        if !ok {
            return Err(ParseError::new(
                item_path(v, path, i),
                K::Resource(r.clone()),
            ));
        }
    }
    Ok(resources)
}

fn parse_principal(v: &Value, negated: bool, path: Path<'_>) -> Result<PrincipalSpec, ParseError> {
    let mut entries = Vec::new();
    match v {
        Value::String(s) if s == "*" => entries.push(PrincipalEntry::Everyone),
        Value::Object(map) => {
            if map.is_empty() {
                return Err(ParseError::new(path, K::Empty("Principal")));
            }
            for (k, val) in map {
                let at = path.key(k);
                let values = string_list(val, at, "Principal")?;
                for p in values {
                    let entry = match k.as_str() {
                        "AWS" if p == "*" => PrincipalEntry::Everyone,
                        "AWS" => {
                            let account = AccountId::is_valid(&p);
                            if p.contains(['*', '?']) {
                                return Err(ParseError::new(
                                    at,
                                    K::Principal(format!(
                                        "`{p}`: a wildcard may only stand alone, as `*`, for everyone"
                                    )),
                                ));
                            }
                            if !account && !p.starts_with("arn:") {
                                return Err(ParseError::new(
                                    at,
                                    K::Principal(format!(
                                        "`{p}` is neither an account id nor an ARN"
                                    )),
                                ));
                            }
                            PrincipalEntry::Aws(p)
                        }
                        "Service" => PrincipalEntry::Service(p),
                        "Federated" => PrincipalEntry::Federated(p),
                        "CanonicalUser" => PrincipalEntry::CanonicalUser(p),
                        other => {
                            return Err(ParseError::new(
                                at,
                                K::Principal(format!("unknown principal type `{other}`")),
                            ));
                        }
                    };
                    entries.push(entry);
                }
            }
        }
        _ => {
            return Err(ParseError::new(
                path,
                K::Principal("expected `*` or an object of principal types".to_owned()),
            ));
        }
    }
    Ok(PrincipalSpec { negated, entries })
}

fn parse_conditions(v: &Value, path: Path<'_>) -> Result<Vec<ConditionBlock>, ParseError> {
    let obj = v
        .as_object()
        .ok_or_else(|| ParseError::new(path, K::Type("an object of condition operators")))?;
    let mut out = Vec::new();
    for (op_name, block) in obj {
        let at = path.key(op_name);
        let operator = Operator::parse(op_name).map_err(|e| match e {
            OperatorError::Unknown => ParseError::new(at, K::Operator(op_name.clone())),
            OperatorError::NullIfExists => ParseError::new(at, K::NullIfExists(op_name.clone())),
        })?;
        let keys = block
            .as_object()
            .ok_or_else(|| ParseError::new(at, K::Type("an object of condition keys")))?;
        if keys.is_empty() {
            return Err(ParseError::new(at, K::Empty("a condition operator block")));
        }
        for (key, values) in keys {
            let kat = at.key(key);
            if key.is_empty() {
                return Err(ParseError::new(kat, K::Empty("a condition key")));
            }
            let values = condition_values(values, kat)?;
            out.push(ConditionBlock {
                operator,
                key: key.clone(),
                values,
            });
        }
    }
    Ok(out)
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn condition_values(v: &Value, path: Path<'_>) -> Result<Vec<String>, ParseError> {
    match v {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(ParseError::new(path, K::Empty("a condition value list")));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    scalar(item).ok_or_else(|| {
                        ParseError::new(
                            path.index(i),
                            K::ConditionValue("expected a string, number or boolean".to_owned()),
                        )
                    })
                })
                .collect()
        }
        other => scalar(other).map(|s| vec![s]).ok_or_else(|| {
            ParseError::new(
                path,
                K::ConditionValue(
                    "expected a string, number, boolean or an array of them".to_owned(),
                ),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Document, ParseError> {
        parse_document(&v, PolicyKind::Identity)
    }

    #[test]
    fn accepts_single_and_array_forms() {
        let d = parse(json!({"Version": "2012-10-17", "Statement": {
            "Effect": "Allow", "Action": "ec2:*", "Resource": "*"}}));
        assert!(d.is_ok_and(|d| d.statements.len() == 1 && d.version == Version::V2012_10_17));
        let d = parse(json!({"Statement": [{"Sid": "A", "Effect": "Deny",
            "NotAction": ["ec2:Describe*"], "NotResource": ["arn:aws:ec2:*:*:instance/*"]}]}));
        assert!(d.is_ok_and(|d| d.version == Version::V2008_10_17));
    }

    #[test]
    fn refusals_name_the_path() {
        let e = parse(json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "ec2:*", "Resource": "*"},
            {"Effect": "allow", "Action": "ec2:*", "Resource": "*"}]}));
        assert_eq!(
            e.err().map(|e| e.path),
            Some("$.Statement[1].Effect".to_owned())
        );
        let e = parse(json!({"Statement": {"Effect": "Allow", "Action": "a:b",
            "NotAction": "a:c", "Resource": "*"}}));
        assert!(matches!(
            e.map_err(|e| e.kind),
            Err(K::Conflict("Action", "NotAction"))
        ));
        let e = parse(
            json!({"Statement": {"Effect": "Allow", "Action": "a:b", "Resource": "*",
            "Condition": {"NullIfExists": {"aws:TagKeys": "true"}}}}),
        );
        assert!(matches!(e.map_err(|e| e.kind), Err(K::NullIfExists(_))));
        let e = parse(
            json!({"Statement": {"Effect": "Allow", "Action": "a:b", "Resource": "*",
            "Condition": {"StringEqualz": {"aws:TagKeys": "x"}}}}),
        );
        assert_eq!(
            e.err().map(|e| e.path),
            Some("$.Statement.Condition.StringEqualz".to_owned())
        );
        let e = parse(json!({"Version": "2012-10-18", "Statement": []}));
        assert!(matches!(e.map_err(|e| e.kind), Err(K::Version(_))));
    }

    /// The paths are written out only for an error, and name the element
    /// as the eagerly built text did.
    #[test]
    fn nested_refusals_name_the_path() {
        let path = |v: Value| parse(v).err().map(|e| e.path);
        assert_eq!(
            path(
                json!({"Statement": [{"Effect": "Allow", "Action": "a:b", "Resource": "*"},
                {"Effect": "Allow", "Action": ["a:b", "a:c", "nope"], "Resource": "*"}]})
            ),
            Some("$.Statement[1].Action[2]".to_owned())
        );
        assert_eq!(
            path(json!({"Statement": {"Effect": "Allow", "Action": "a:b", "Resource": "x"}})),
            Some("$.Statement.Resource".to_owned())
        );
        assert_eq!(
            path(
                json!({"Statement": [{"Effect": "Allow", "Action": "a:b", "Resource": "*",
                "Condition": {"StringEquals": {"aws:username": ["a", {"b": 1}]}}}]})
            ),
            Some("$.Statement[0].Condition.StringEquals.aws:username[1]".to_owned())
        );
        let trust = parse_document(
            &json!({"Statement": {"Effect": "Allow", "Action": "sts:AssumeRole",
                "Principal": {"AWS": "ar*"}}}),
            PolicyKind::Trust,
        );
        assert_eq!(
            trust.err().map(|e| e.path),
            Some("$.Statement.Principal.AWS".to_owned())
        );
        assert_eq!(
            path(
                json!({"Statement": [{"Effect": "Allow", "Action": "a:b", "Resource": "*",
                "Bogus": 1}]})
            ),
            Some("$.Statement[0].Bogus".to_owned())
        );
        assert_eq!(
            path(json!({"Statement": [], "Other": 1})),
            Some("$.Other".to_owned())
        );
    }

    #[test]
    fn url_encoded_documents() {
        let text = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22ec2%3A*%22%2C%22Resource%22%3A%22*%22%7D%7D";
        assert!(parse_document_str(text, PolicyKind::Identity).is_ok());
    }
}
