//! `iamgate test PATH...`: runs policy test files (POLICY-TESTS.md runner
//! contract: one line per failure, then `N passed, M failed`; exit 0 when
//! all pass, 1 when any fails, 2 when a file cannot be read or parsed).
//!
//! A test file without `policies` that lives in a bundle's `tests/` (or any
//! file given with `--bundle DIR`) is decided against that bundle's
//! compiled snapshot, exactly as the server's reload gate decides it
//! ([`crate::bundle::gate`]); elsewhere it is decided against no policies.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::bundle::files::{BundleFiles, DEFAULT_MAX_BUNDLE_BYTES};
use crate::bundle::{BundleError, Snapshot, gate};
use crate::commands::json_files;
use crate::testfile::{CaseResult, load_file, run_file};

/// Runs the files and folders in `paths`; `bundle` decides every file
/// without `policies` against that bundle instead of the one (if any) the
/// file lives in.
pub fn run(
    paths: &[PathBuf],
    verbose: bool,
    bundle: Option<&Path>,
    out: &mut dyn Write,
) -> std::io::Result<u8> {
    let files = match json_files(paths) {
        Ok(f) => f,
        Err(e) => {
            writeln!(out, "error: {e}")?;
            writeln!(out, "0 passed, 0 failed")?;
            return Ok(2);
        }
    };
    let mut bundles = Bundles::default();
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
        let cases: Vec<CaseResult> = if gate::uses_snapshot(&file) {
            let root = bundle.map(Path::to_path_buf).or_else(|| bundle_of(path));
            match root {
                Some(root) => match bundles.get(&root) {
                    Ok(snapshot) => gate::run_file_against(snapshot, &file),
                    Err(e) => {
                        writeln!(out, "error: {}: bundle {e}", path.display())?;
                        broken = true;
                        continue;
                    }
                },
                None => run_file(&file).cases,
            }
        } else {
            run_file(&file).cases
        };
        for case in &cases {
            if case.passed {
                passed += 1;
                if verbose {
                    writeln!(out, "ok: {}: {}: {}", path.display(), case.name, case.got)?;
                }
                continue;
            }
            failed += 1;
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

/// Bundles compiled so far, by path; a bundle that fails to compile keeps
/// its error so every file in it reports it.
#[derive(Default)]
struct Bundles(BTreeMap<PathBuf, Result<Snapshot, BundleError>>);

impl Bundles {
    fn get(&mut self, root: &Path) -> Result<&Snapshot, &BundleError> {
        let entry = self.0.entry(root.to_path_buf()).or_insert_with(|| {
            let source = root.display().to_string();
            BundleFiles::read(root, DEFAULT_MAX_BUNDLE_BYTES)
                .and_then(|files| Snapshot::compile(&files, &source))
        });
        entry.as_ref()
    }
}

/// The bundle a test file lives in: the parent of the nearest enclosing
/// `tests` folder, when that parent holds a bundle (an `iam/` folder or a
/// `manifest.json`).
fn bundle_of(file: &Path) -> Option<PathBuf> {
    let file = file.canonicalize().ok()?;
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d.file_name().is_some_and(|n| n == "tests") {
            let root = d.parent()?;
            if root.join("iam").is_dir() || root.join("manifest.json").is_file() {
                return Some(root.to_path_buf());
            }
            return None;
        }
        dir = d.parent();
    }
    None
}
