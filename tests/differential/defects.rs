//! What the oracle is sent for a test, and the cases that hit a known oracle
//! defect which the generator cannot simply leave out (see the list at the
//! top of `tests/differential.rs`).

use serde_json::{Value, json};

/// The oracle's input line for one test of a file: the test with the
/// file's principal and policies inlined (tests/oracle/oracle.mjs).
pub fn oracle_input(file: &Value, test: &Value, id: usize) -> Value {
    let mut policies = file.get("policies").cloned().unwrap_or_else(|| json!({}));
    let principal = &file["principal"];
    // Known defect D8: the oracle gives the root user no implicit access to
    // its own account. The root user can have no identity-based policies, so
    // the oracle is told what that implicit access is: allow everything.
    // Explicit denies, SCPs, RCPs and the cross-account rules still apply.
    if principal["arn"]
        .as_str()
        .is_some_and(|a| a.ends_with(":root"))
    {
        policies["identity"] = json!([{
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]
        }]);
    }
    let mut input = json!({
        "id": id,
        "principal": principal,
        "policies": policies,
        "action": test["action"],
        "resource": test["resource"],
        "context": test.get("context").cloned().unwrap_or_else(|| json!({})),
    });
    if let Some(acct) = file.get("resource_account") {
        input["resource_account"] = acct.clone();
    }
    input
}

/// Every policy document of a file.
pub fn documents(file: &Value) -> Vec<&Value> {
    let p = &file["policies"];
    let mut docs: Vec<&Value> = Vec::new();
    if let Some(ids) = p.get("identity").and_then(Value::as_array) {
        docs.extend(ids);
    }
    for k in ["boundary", "session", "resource"] {
        if let Some(d) = p.get(k) {
            docs.push(d);
        }
    }
    for k in ["scps", "rcps"] {
        if let Some(levels) = p.get(k).and_then(Value::as_array) {
            for level in levels {
                docs.extend(level.as_array().into_iter().flatten());
            }
        }
    }
    docs
}

/// The statements of a document.
pub fn statements(doc: &Value) -> Vec<&Value> {
    match &doc["Statement"] {
        Value::Array(v) => v.iter().collect(),
        v @ Value::Object(_) => vec![v],
        _ => Vec::new(),
    }
}

/// `${name}` variables of a value that have no default (`${name, 'x'}`).
fn variables_without_default(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let inner = &after[..end];
        if !matches!(inner, "*" | "?" | "$") && !inner.contains(", '") {
            out.push(inner.trim().to_ascii_lowercase());
        }
        rest = &after[end + 1..];
    }
    out
}

/// Whether a request has a single value for a key (as a variable needs).
fn has_single_value(file: &Value, test: &Value, key: &str) -> bool {
    if let Some(ctx) = test.get("context").and_then(Value::as_object) {
        for (k, v) in ctx {
            if k.eq_ignore_ascii_case(key) {
                return !v.is_array();
            }
        }
    }
    let principal = &file["principal"];
    let arn = principal["arn"].as_str().unwrap_or_default();
    if arn == "anonymous" {
        return false;
    }
    match key {
        "aws:principalarn" | "aws:principalaccount" | "aws:principaltype" => true,
        "aws:username" => arn.contains(":user/"),
        _ => key.strip_prefix("aws:principaltag/").is_some_and(|tag| {
            principal
                .get("tags")
                .and_then(Value::as_object)
                .is_some_and(|tags| tags.keys().any(|k| k.eq_ignore_ascii_case(tag)))
        }),
    }
}

const NEGATED_STRING_OPERATORS: &[&str] = &[
    "StringNotEquals",
    "StringNotEqualsIgnoreCase",
    "StringNotLike",
    "ArnNotEquals",
    "ArnNotLike",
];

/// The known oracle defect a test hits, if any, among those the generator
/// produces on purpose and excludes here.
pub fn excluded(file: &Value, test: &Value) -> Option<&'static str> {
    for doc in documents(file) {
        let variables = doc.get("Version").and_then(Value::as_str) == Some("2012-10-17");
        // D1: never generated, but minimization must not create it.
        if !variables && doc.to_string().contains("${") {
            return Some("D1");
        }
        for st in statements(doc) {
            // D3 also covers NotResource: an unresolved variable matches no
            // resource, so the statement applies; the oracle drops it.
            for pattern in string_list(st.get("NotResource")) {
                if variables && unresolved(file, test, pattern) {
                    return Some("D3");
                }
            }
            let Some(cond) = st.get("Condition").and_then(Value::as_object) else {
                continue;
            };
            for (op, block) in cond {
                let Some(block) = block.as_object() else {
                    continue;
                };
                // D13: an empty multivalued value is null (`Null` is true).
                if op == "Null" && block.keys().any(|k| empty_list(test, k)) {
                    return Some("D13");
                }
                // D12: `ForAnyValue:...IfExists` on a missing key is true.
                if op.starts_with("ForAnyValue:") && op.ends_with("IfExists") {
                    for key in block.keys() {
                        if !has_key(file, test, &key.to_ascii_lowercase()) {
                            return Some("D12");
                        }
                    }
                }
                let base = op
                    .trim_start_matches("ForAllValues:")
                    .trim_start_matches("ForAnyValue:")
                    .trim_end_matches("IfExists");
                if !variables || !NEGATED_STRING_OPERATORS.contains(&base) {
                    continue;
                }
                for values in block.values() {
                    if string_list(Some(values))
                        .into_iter()
                        .any(|v| unresolved(file, test, v))
                    {
                        return Some("D3");
                    }
                }
            }
        }
    }
    None
}

/// Whether a value has a variable the request cannot resolve.
fn unresolved(file: &Value, test: &Value, value: &str) -> bool {
    variables_without_default(value)
        .iter()
        .any(|var| !has_single_value(file, test, var))
}

/// Whether the request gives a key an empty list of values.
fn empty_list(test: &Value, key: &str) -> bool {
    test.get("context")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .any(|(k, v)| k.eq_ignore_ascii_case(key) && v.as_array().is_some_and(Vec::is_empty))
}

/// A string or the strings of an array.
fn string_list(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::Array(v)) => v.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(s)) => vec![s.as_str()],
        _ => Vec::new(),
    }
}

/// Whether a request carries a key at all (context or derived).
fn has_key(file: &Value, test: &Value, key: &str) -> bool {
    let in_context = test
        .get("context")
        .and_then(Value::as_object)
        .is_some_and(|ctx| ctx.keys().any(|k| k.eq_ignore_ascii_case(key)));
    in_context || has_single_value(file, test, key)
}
