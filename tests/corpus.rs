//! Runs the project's policy-test corpus (`tests/corpus`) and the shared
//! conformance starter set (`tests/conformance`) through the engine, exactly
//! as `iamgate test` does, and checks the corpus's own rules: every file
//! cites its IAM User Guide source and the corpus holds at least 300 tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use iamgate::commands::json_files;
use iamgate::testfile::{load_file, run_file};

fn run_dir(dir: &str) -> (usize, Vec<String>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let files = json_files(&[root]).expect("list corpus");
    assert!(!files.is_empty(), "{dir} is empty");
    let mut passed = 0;
    let mut failures = Vec::new();
    for path in files {
        let file = match load_file(&path) {
            Ok(f) => f,
            Err(e) => {
                failures.push(format!("error: {e}"));
                continue;
            }
        };
        for case in run_file(&file).cases {
            if case.passed {
                passed += 1;
            } else {
                failures.push(format!(
                    "{}: {}: expected {}, got {} ({}; {:?})",
                    path.display(),
                    case.name,
                    case.expected,
                    case.got,
                    case.reason,
                    case.decided_by
                ));
            }
        }
    }
    (passed, failures)
}

#[test]
fn corpus_passes() {
    let (passed, failures) = run_dir("tests/corpus");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(passed >= 300, "the corpus holds only {passed} tests");
}

#[test]
fn conformance_starter_set_passes() {
    let (_, failures) = run_dir("tests/conformance");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_corpus_file_cites_the_docs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let files: Vec<PathBuf> = json_files(&[root]).expect("list corpus");
    for path in files {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let source = v.get("source").and_then(|s| s.as_str()).unwrap_or("");
        assert!(
            source.contains("User Guide"),
            "{}: `source` must cite its IAM User Guide page",
            path.display()
        );
        let description = v.get("description").and_then(|s| s.as_str()).unwrap_or("");
        assert!(
            !description.is_empty(),
            "{}: no description",
            path.display()
        );
    }
}
