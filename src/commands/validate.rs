//! `iamgate validate FILE...`: findings for policy documents, or for every
//! policy of a policy test file. Exit code 1 when any error is found, 2 when
//! a file cannot be read.

use std::io::Write;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::policy::PolicyKind;
use crate::service::catalog::Catalog;
use crate::validate::{Finding, Severity, validate_document};

/// Validates the files against the services' `catalogs`
/// (`Registry::catalogs`); `kind` applies to plain policy documents.
pub fn run(
    paths: &[PathBuf],
    kind: PolicyKind,
    catalogs: &[&'static Catalog],
    json_out: bool,
    out: &mut dyn Write,
) -> std::io::Result<u8> {
    let mut all: Vec<(String, Finding)> = Vec::new();
    let mut broken = false;
    for path in paths {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                writeln!(out, "error: {}: cannot read: {e}", path.display())?;
                broken = true;
                continue;
            }
        };
        let value: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                all.push((
                    path.display().to_string(),
                    Finding {
                        severity: Severity::Error,
                        code: "MALFORMED_JSON",
                        path: "$".to_owned(),
                        message: format!("not valid JSON: {e}"),
                    },
                ));
                continue;
            }
        };
        for (prefix, doc, kind) in documents(&value, kind) {
            for mut f in validate_document(doc, kind, catalogs) {
                f.path = format!("{prefix}{}", f.path.strip_prefix('$').unwrap_or(&f.path));
                all.push((path.display().to_string(), f));
            }
        }
    }
    if json_out {
        let v: Vec<_> = all
            .iter()
            .map(|(file, f)| {
                json!({"file": file, "severity": f.severity, "code": f.code,
                       "path": f.path, "message": f.message})
            })
            .collect();
        writeln!(out, "{}", Value::Array(v))?;
    } else {
        for (file, f) in &all {
            let sev = match f.severity {
                Severity::Error => "error",
                Severity::SecurityWarning => "security warning",
                Severity::Warning => "warning",
                Severity::Suggestion => "suggestion",
            };
            writeln!(
                out,
                "{file}: {sev}: {} at `{}`: {}",
                f.code, f.path, f.message
            )?;
        }
        let errors = all
            .iter()
            .filter(|(_, f)| f.severity == Severity::Error)
            .count();
        writeln!(out, "{} findings, {errors} errors", all.len())?;
    }
    Ok(if broken {
        2
    } else if all.iter().any(|(_, f)| f.severity == Severity::Error) {
        1
    } else {
        0
    })
}

/// The policy documents in a file: the file itself, or each policy of a
/// policy test file, with its JSON path prefix and kind.
fn documents(value: &Value, kind: PolicyKind) -> Vec<(String, &Value, PolicyKind)> {
    let Some(policies) = value
        .get("policies")
        .filter(|_| value.get("principal").is_some())
    else {
        return vec![("$".to_owned(), value, kind)];
    };
    let mut out = Vec::new();
    if let Some(Value::Array(ids)) = policies.get("identity") {
        for (i, d) in ids.iter().enumerate() {
            out.push((format!("$.policies.identity[{i}]"), d, PolicyKind::Identity));
        }
    }
    for (name, kind) in [
        ("boundary", PolicyKind::Boundary),
        ("session", PolicyKind::Session),
        ("resource", PolicyKind::Resource),
    ] {
        if let Some(d) = policies.get(name) {
            out.push((format!("$.policies.{name}"), d, kind));
        }
    }
    for (name, kind) in [("scps", PolicyKind::Scp), ("rcps", PolicyKind::Rcp)] {
        if let Some(Value::Array(levels)) = policies.get(name) {
            for (l, level) in levels.iter().enumerate() {
                if let Value::Array(docs) = level {
                    for (i, d) in docs.iter().enumerate() {
                        out.push((format!("$.policies.{name}[{l}][{i}]"), d, kind));
                    }
                }
            }
        }
    }
    out
}
