//! `iamgate test PATH...`: runs policy test files (POLICY-TESTS.md runner
//! contract: one line per failure, then `N passed, M failed`; exit 0 when
//! all pass, 1 when any fails, 2 when a file cannot be read or parsed).

use std::io::Write;
use std::path::PathBuf;

use crate::commands::json_files;
use crate::testfile::{load_file, run_file};

/// Runs the files and folders in `paths`.
pub fn run(paths: &[PathBuf], verbose: bool, out: &mut dyn Write) -> std::io::Result<u8> {
    let files = match json_files(paths) {
        Ok(f) => f,
        Err(e) => {
            writeln!(out, "error: {e}")?;
            writeln!(out, "0 passed, 0 failed")?;
            return Ok(2);
        }
    };
    let (mut passed, mut failed, mut broken) = (0usize, 0usize, false);
    for path in &files {
        let file = match load_file(path) {
            Ok(f) => f,
            Err(e) => {
                writeln!(out, "error: {e}")?;
                broken = true;
                continue;
            }
        };
        let report = run_file(&file);
        for case in &report.cases {
            if case.passed {
                if verbose {
                    writeln!(out, "ok: {}: {}: {}", path.display(), case.name, case.got)?;
                }
                continue;
            }
            let decided = if case.decided_by.is_empty() {
                String::new()
            } else {
                format!("; decided by {}", case.decided_by.join(", "))
            };
            writeln!(
                out,
                "FAIL: {}: {}: expected {}, got {} ({}{decided})",
                path.display(),
                case.name,
                case.expected,
                case.got,
                case.reason
            )?;
        }
        passed += report.passed();
        failed += report.failed();
    }
    writeln!(out, "{passed} passed, {failed} failed")?;
    Ok(if broken {
        2
    } else if failed > 0 {
        1
    } else {
        0
    })
}
