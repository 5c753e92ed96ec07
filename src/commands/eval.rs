//! `iamgate eval`: one request against a policy test file's policies,
//! printing the decision and its explanation (`--json` for machines).

use std::io::Write;
use std::path::Path;

use serde_json::json;

use crate::engine::{Context, ContextValue, Principal, Request, decide};
use crate::testfile::load_file;

/// One `eval` request.
#[derive(Debug, Clone)]
pub struct EvalArgs<'a> {
    pub policies: &'a Path,
    pub principal: Option<&'a str>,
    pub action: &'a str,
    pub resource: &'a str,
    /// `key=value` pairs; a key given more than once becomes multivalued.
    pub context: &'a [String],
    pub resource_account: Option<&'a str>,
    pub json: bool,
}

/// Evaluates and prints; exit code 0 when allowed, 1 when denied, 2 on
/// bad input.
pub fn run(args: &EvalArgs<'_>, out: &mut dyn Write) -> std::io::Result<u8> {
    let file = match load_file(args.policies) {
        Ok(f) => f,
        Err(e) => {
            writeln!(out, "error: {e}")?;
            return Ok(2);
        }
    };
    let principal = match args.principal {
        Some(arn) => match Principal::parse(arn) {
            Ok(p) => p,
            Err(e) => {
                writeln!(out, "error: {e}")?;
                return Ok(2);
            }
        },
        None => file.principal.clone(),
    };
    let mut context = Context::new();
    let mut seen: Vec<(String, Vec<String>)> = Vec::new();
    for kv in args.context {
        let Some((k, v)) = kv.split_once('=') else {
            writeln!(out, "error: context `{kv}` is not key=value")?;
            return Ok(2);
        };
        let k = k.trim().to_ascii_lowercase();
        match seen.iter_mut().find(|(key, _)| *key == k) {
            Some((_, vs)) => vs.push(v.to_owned()),
            None => seen.push((k, vec![v.to_owned()])),
        }
    }
    for (k, mut vs) in seen {
        let value = if vs.len() == 1 {
            ContextValue::One(vs.remove(0))
        } else {
            ContextValue::Many(vs)
        };
        context.insert(&k, value);
    }
    let account = args.resource_account.or(file.resource_account.as_deref());
    let req = Request::new(&principal, args.action, args.resource, &context);
    let req = match account {
        Some(a) => req.with_resource_account(a),
        None => req,
    };
    let d = decide(&file.applicable(), &req);
    if args.json {
        let matched: Vec<_> = d
            .matched
            .iter()
            .map(|m| {
                json!({
                    "policy": m.policy_id(),
                    "policy_type": m.kind().short_name(),
                    "statement": m.index,
                    "sid": m.sid(),
                })
            })
            .collect();
        let v = json!({
            "decision": d.outcome.as_str(),
            "reason": d.reason.describe(),
            "matched": matched,
            "missing_context_keys": d.missing_keys.as_slice(),
        });
        writeln!(out, "{v}")?;
    } else {
        writeln!(out, "{}: {}", d.outcome, d.reason.describe())?;
        for m in &d.matched {
            writeln!(out, "  decided by {m}")?;
        }
        if !d.missing_keys.is_empty() {
            writeln!(out, "  missing context keys: {}", d.missing_keys.join(", "))?;
        }
    }
    Ok(if d.outcome == crate::engine::Outcome::Allowed {
        0
    } else {
        1
    })
}
