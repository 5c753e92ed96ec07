//! `iamgate bundle check DIR|FILE.tar.gz`: the server's bundle gate, offline.
//!
//! It calls the very load path the server's reload task runs before a
//! bundle may serve ([`BundleSource::load`]: read, parse, validate, compile,
//! run the bundle's own tests), so it accepts and refuses exactly what the
//! server would, with the same error text (file and JSON path). Exit codes:
//! 0 the bundle would be activated, 1 one of its tests fails, 2 it cannot be
//! read or is invalid.

use std::io::Write;
use std::path::Path;

use serde_json::json;

use crate::bundle::{BundleError, LoadOptions};
use crate::server::reload::BundleSource;

/// Exit code: the server would activate the bundle.
pub const OK: u8 = 0;
/// Exit code: one of the bundle's own tests fails.
pub const TEST_FAILED: u8 = 1;
/// Exit code: the bundle cannot be read, parsed, validated or compiled.
pub const INVALID: u8 = 2;

/// The exit code for a refused bundle.
pub fn exit_code(err: &BundleError) -> u8 {
    match err {
        BundleError::TestFailed { .. } => TEST_FAILED,
        BundleError::Io { .. }
        | BundleError::Invalid { .. }
        | BundleError::Layout { .. }
        | BundleError::TooLarge { .. }
        | BundleError::Empty { .. }
        | BundleError::Timeout { .. }
        | BundleError::Busy { .. }
        | BundleError::Signature { .. } => INVALID,
        BundleError::DecisionDiff { .. } => TEST_FAILED,
    }
}

/// The error as JSON: its kind and fields, plus the server's message.
fn error_json(err: &BundleError) -> serde_json::Value {
    let detail = match err {
        BundleError::Io { path, source } => {
            json!({"kind": "io", "file": path, "message": source.to_string()})
        }
        BundleError::Invalid {
            file,
            path,
            message,
            ..
        } => json!({"kind": "invalid", "file": file, "path": path, "message": message}),
        BundleError::TestFailed {
            file,
            test,
            expected,
            got,
        } => json!({"kind": "test_failed", "file": file, "test": test,
                     "expected": expected, "got": got}),
        BundleError::Layout { path, message } => {
            json!({"kind": "layout", "file": path, "message": message})
        }
        BundleError::TooLarge { path, limit } => {
            json!({"kind": "too_large", "file": path, "limit": limit})
        }
        BundleError::Empty { source_name } => json!({"kind": "empty", "file": source_name}),
        BundleError::Timeout { seconds } => json!({"kind": "timeout", "seconds": seconds}),
        BundleError::Busy { stuck } => json!({"kind": "busy", "stuck": stuck}),
        BundleError::Signature {
            source_name,
            reason,
        } => json!({"kind": "signature", "file": source_name, "reason": reason.label(),
                     "message": reason.to_string()}),
        BundleError::DecisionDiff {
            changed,
            sampled,
            limit,
            limit_source,
        } => json!({"kind": "decision_diff", "changed": changed, "sampled": sampled,
                     "limit": limit, "limit_source": limit_source}),
    };
    json!({"ok": false, "error": detail, "message": err.to_string()})
}

/// Checks the bundle at `path`, writes the verdict to `out` (one line, or a
/// JSON object with `json`) and returns the exit code.
pub fn run(
    path: &Path,
    options: LoadOptions,
    json: bool,
    out: &mut dyn Write,
) -> std::io::Result<u8> {
    run_verified(path, options, Vec::new(), json, out)
}

/// As [`run`], and with `keys` the bundle's signature must verify by one
/// of them (as `serve --bundle-verify-key`).
pub fn run_verified(
    path: &Path,
    options: LoadOptions,
    keys: Vec<crate::bundle::source::signature::VerifyKey>,
    json: bool,
    out: &mut dyn Write,
) -> std::io::Result<u8> {
    let source = if keys.is_empty() {
        BundleSource::Path {
            path: path.to_path_buf(),
            options,
        }
    } else {
        BundleSource::Signed {
            path: path.to_path_buf(),
            options,
            keys: std::sync::Arc::new(keys),
        }
    };
    match source.load() {
        Ok(snapshot) => {
            let stats = snapshot.stats();
            let compile_ms = snapshot.compile_duration().as_secs_f64() * 1e3;
            if json {
                let v = json!({
                    "ok": true,
                    "revision": &**snapshot.revision(),
                    "source": snapshot.source(),
                    "counts": {
                        "policies": stats.policies,
                        "statements": stats.statements,
                        "principals": stats.principals,
                    },
                    "compile_ms": compile_ms,
                });
                writeln!(out, "{v}")?;
            } else {
                writeln!(
                    out,
                    "ok: {} (revision {}): {} policies, {} statements, {} principals, \
                     compiled in {compile_ms:.1} ms; the bundle's tests pass",
                    snapshot.source(),
                    snapshot.revision(),
                    stats.policies,
                    stats.statements,
                    stats.principals,
                )?;
            }
            Ok(OK)
        }
        Err(err) => {
            if json {
                writeln!(out, "{}", error_json(&err))?;
            } else {
                writeln!(out, "refused: {err}")?;
            }
            Ok(exit_code(&err))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &Path, json: bool) -> (u8, String) {
        let mut out = Vec::new();
        let code = run(path, LoadOptions::default(), json, &mut out).unwrap_or(99);
        (code, String::from_utf8_lossy(&out).into_owned())
    }

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).ok();
        }
        std::fs::write(p, text).ok();
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "iamgate-bundle-check-{name}-{}",
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&d).ok();
        d
    }

    #[test]
    fn exit_codes_follow_the_error_kind() {
        let failed = BundleError::TestFailed {
            file: "tests/a.json".into(),
            test: "t".into(),
            expected: "allowed".into(),
            got: "implicitDeny".into(),
        };
        assert_eq!(exit_code(&failed), TEST_FAILED);
        assert_eq!(exit_code(&BundleError::io("x", "gone")), INVALID);
        assert_eq!(exit_code(&BundleError::invalid("f", "$.a", "bad")), INVALID);
        assert_eq!(
            exit_code(&BundleError::TooLarge {
                path: "b".into(),
                limit: 1
            }),
            INVALID
        );
    }

    #[test]
    fn a_missing_path_is_unreadable() {
        let (code, out) = check(Path::new("/nonexistent/iamgate-bundle"), false);
        assert_eq!(code, INVALID);
        assert!(
            out.starts_with("refused: cannot read `/nonexistent/iamgate-bundle`"),
            "{out}"
        );
    }

    #[test]
    fn json_errors_carry_file_and_path() {
        let dir = temp_dir("json");
        write(&dir, "manifest.json", "{\"revision\": 7}");
        let (code, out) = check(&dir, true);
        assert_eq!(code, INVALID, "{out}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_default();
        assert_eq!(v["ok"], false, "{out}");
        assert_eq!(v["error"]["kind"], "invalid", "{out}");
        assert_eq!(v["error"]["file"], "manifest.json", "{out}");
        assert!(
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("manifest.json"))
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
