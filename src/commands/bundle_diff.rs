//! `iamgate bundle diff OLD NEW --requests FILE...`: decides the same
//! requests on two bundles and reports those whose decision changes, from
//! what to what, grouped by principal and action (issue 15).
//!
//! Requests come from policy test files (`principal`, each test's
//! `action`, `resource` and `context`; the expectations and any policies of
//! the file are ignored) or from JSON lines as the decision log writes them
//! (`principal`, `action`, `resource`, and `context` when logged). Both
//! bundles are compiled as the server compiles them; their own tests are
//! not run, so a candidate whose tests fail can still be compared. Exit
//! codes: 0 no decision changes, 1 some change, 2 a bundle or request file
//! cannot be used.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::bundle::diff::{DiffReport, diff};
use crate::bundle::files::BundleFiles;
use crate::bundle::{AuthzRequest, BundleError, Snapshot};
use crate::engine::Context;
use crate::engine::authz::context_value;
use crate::testfile::{TestFileError, parse_test_file};

/// Exit code: no request changes decision.
pub const UNCHANGED: u8 = 0;
/// Exit code: at least one request changes decision.
pub const CHANGED: u8 = 1;
/// Exit code: a bundle or a request file cannot be used.
pub const ERROR: u8 = 2;

/// What `bundle diff` was asked.
#[derive(Debug)]
pub struct DiffArgs<'a> {
    pub old: &'a Path,
    pub new: &'a Path,
    pub requests: &'a [PathBuf],
    pub max_bundle_bytes: u64,
    pub json: bool,
}

/// A request line of a decision log (other fields are ignored).
#[derive(Debug, Deserialize)]
struct LogLine {
    principal: String,
    action: String,
    resource: String,
    #[serde(default)]
    context: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    resource_account: Option<String>,
}

/// Why a bundle or a request file of `bundle diff` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DiffInputError {
    #[error("bundle `{bundle}`: {source}")]
    Bundle { bundle: String, source: BundleError },
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    TestFile(#[from] TestFileError),
    #[error("{}: line {line}: {source}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
    #[error(
        "{}: line {line}: `context.{key}`: expected a string, number, boolean or an array of those",
        path.display()
    )]
    ContextValue {
        path: PathBuf,
        line: usize,
        key: String,
    },
}

fn compile(path: &Path, max_bytes: u64) -> Result<Snapshot, DiffInputError> {
    let bundle = path.display().to_string();
    BundleFiles::read(path, max_bytes)
        .and_then(|files| Snapshot::compile(&files, &bundle))
        .map_err(|source| DiffInputError::Bundle { bundle, source })
}

/// Reads the requests of one file: a policy test file, or decision-log
/// JSON lines.
pub fn read_requests(path: &Path) -> Result<Vec<AuthzRequest>, DiffInputError> {
    let text = std::fs::read_to_string(path).map_err(|source| DiffInputError::Read {
        path: path.to_owned(),
        source,
    })?;
    let whole: Option<Value> = serde_json::from_str(&text).ok();
    if whole
        .as_ref()
        .is_some_and(|v| v.get("principal").is_some_and(Value::is_object))
    {
        let file = parse_test_file(path, &text)?;
        let tags: Vec<(String, String)> = file
            .principal_tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        return Ok(file
            .cases
            .iter()
            .map(|case| AuthzRequest {
                principal_arn: file.principal_arn.clone(),
                action: case.action.clone(),
                resource: case.resource.clone(),
                context: case.context.clone(),
                session_tags: tags.clone(),
                session_policy: None,
                session_policy_arns: Vec::new(),
                resource_account: file.resource_account.clone(),
                outcome_only: true,
            })
            .collect());
    }
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let rec: LogLine = serde_json::from_str(line).map_err(|source| DiffInputError::Line {
            path: path.to_owned(),
            line: n + 1,
            source,
        })?;
        let mut context = Context::new();
        for (k, v) in rec.context.iter().flatten() {
            let value = context_value(v).ok_or_else(|| DiffInputError::ContextValue {
                path: path.to_owned(),
                line: n + 1,
                key: k.clone(),
            })?;
            context.insert(k, value);
        }
        out.push(AuthzRequest {
            principal_arn: rec.principal,
            action: rec.action,
            resource: rec.resource,
            context,
            session_tags: Vec::new(),
            session_policy: None,
            session_policy_arns: Vec::new(),
            resource_account: rec.resource_account,
            outcome_only: true,
        });
    }
    Ok(out)
}

fn report_json(old: &Snapshot, new: &Snapshot, report: &DiffReport) -> Value {
    let groups: Vec<Value> = report
        .groups()
        .iter()
        .map(|g| {
            json!({
                "principal": g.principal,
                "action": g.action,
                "changes": g.changes.iter().map(|c| json!({
                    "resource": c.resource, "from": c.from, "to": c.to,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "old_revision": &**old.revision(),
        "new_revision": &**new.revision(),
        "compared": report.compared,
        "changed": report.changed.len(),
        "by_change": report.by_change(),
        "groups": groups,
    })
}

fn report_text(
    old: &Snapshot,
    new: &Snapshot,
    report: &DiffReport,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    for g in report.groups() {
        writeln!(out, "{} {}", g.principal, g.action)?;
        for c in &g.changes {
            writeln!(out, "  {}: {} -> {}", c.resource, c.from, c.to)?;
        }
    }
    let pairs: Vec<String> = report
        .by_change()
        .iter()
        .map(|(pair, n)| format!("{pair}: {n}"))
        .collect();
    let tail = if pairs.is_empty() {
        String::new()
    } else {
        format!(" ({})", pairs.join(", "))
    };
    writeln!(
        out,
        "{} of {} requests change decision from {} to {}{tail}",
        report.changed.len(),
        report.compared,
        old.revision(),
        new.revision(),
    )
}

/// Runs the diff, writes the report and returns the exit code.
pub fn run(args: &DiffArgs<'_>, out: &mut dyn Write) -> std::io::Result<u8> {
    let fail = |out: &mut dyn Write, msg: String| -> std::io::Result<u8> {
        if args.json {
            writeln!(out, "{}", json!({"ok": false, "error": msg}))?;
        } else {
            writeln!(out, "error: {msg}")?;
        }
        Ok(ERROR)
    };
    let files = match crate::commands::json_files(args.requests) {
        Ok(f) => f,
        Err(e) => return fail(out, format!("--requests: {e}")),
    };
    let mut requests = Vec::new();
    for f in &files {
        match read_requests(f) {
            Ok(r) => requests.extend(r),
            Err(e) => return fail(out, e.to_string()),
        }
    }
    let old = match compile(args.old, args.max_bundle_bytes) {
        Ok(s) => s,
        Err(e) => return fail(out, e.to_string()),
    };
    let new = match compile(args.new, args.max_bundle_bytes) {
        Ok(s) => s,
        Err(e) => return fail(out, e.to_string()),
    };
    let report = diff(&old, &new, &requests);
    if args.json {
        writeln!(out, "{}", report_json(&old, &new, &report))?;
    } else {
        report_text(&old, &new, &report, out)?;
    }
    Ok(if report.changed.is_empty() {
        UNCHANGED
    } else {
        CHANGED
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, text: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!(
            "iamgate-bundle-diff-{name}-{}",
            uuid::Uuid::new_v4()
        ));
        std::fs::write(&p, text).ok();
        p
    }

    #[test]
    fn decision_log_lines_and_test_files_give_requests() -> Result<(), DiffInputError> {
        let log = temp(
            "log",
            concat!(
                r#"{"decision_id": "d-1", "principal": "arn:aws:iam::111122223333:user/a", "action": "ec2:RunInstances", "resource": "*", "decision": "allowed", "context": {"aws:SourceIp": "10.0.0.1", "aws:TagKeys": ["a", "b"]}}"#,
                "\n\n",
                r#"{"principal": "arn:aws:iam::111122223333:user/b", "action": "ec2:StopInstances", "resource": "*"}"#,
                "\n"
            ),
        );
        let reqs = read_requests(&log)?;
        assert_eq!(reqs.len(), 2);
        assert!(reqs[0].context.get("aws:sourceip").is_some());
        assert_eq!(reqs[1].principal_arn, "arn:aws:iam::111122223333:user/b");

        let tf = temp(
            "tf",
            r#"{"principal": {"arn": "arn:aws:iam::111122223333:user/a", "tags": {"team": "x"}},
                "tests": [{"name": "t", "action": "ec2:StartInstances", "resource": "*", "expect": "allowed"}]}"#,
        );
        let reqs = read_requests(&tf)?;
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].session_tags, [("team".into(), "x".into())]);

        let bad = temp("bad", "{\"principal\": \"a\"}\nnot json\n");
        let err = read_requests(&bad).unwrap_err();
        assert!(
            matches!(&err, DiffInputError::Line { line: 1, source, .. } if source.is_data()),
            "{err}"
        );
        assert!(err.to_string().contains("line 1"), "{err}");
        let missing = read_requests(&bad.with_extension("absent")).unwrap_err();
        assert!(
            matches!(&missing, DiffInputError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
            "{missing}"
        );
        for p in [log, tf, bad] {
            std::fs::remove_file(p).ok();
        }
        Ok(())
    }
}
