//! Running a compiled test file: each case through the engine, compared
//! with its expected decision.

use crate::engine::decide;
use crate::testfile::format::CompiledFile;

/// The result of one test.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub name: String,
    pub expected: String,
    pub got: String,
    pub passed: bool,
    /// The statements that decided, as `kind `id` statement N (Sid)`.
    pub decided_by: Vec<String>,
    /// The reason the engine gives.
    pub reason: String,
}

/// The results of one file.
#[derive(Debug, Clone, Default)]
pub struct FileReport {
    pub cases: Vec<CaseResult>,
}

impl FileReport {
    /// How many tests passed.
    pub fn passed(&self) -> usize {
        self.cases.iter().filter(|c| c.passed).count()
    }

    /// How many tests failed.
    pub fn failed(&self) -> usize {
        self.cases.len() - self.passed()
    }
}

/// Runs every test of a compiled file. An `expect_invalid` file is one
/// test: it passes when its policies were refused.
pub fn run_file(file: &CompiledFile) -> FileReport {
    if let Some(refusal) = &file.expect_invalid {
        let (got, reason) = match refusal {
            Some(e) => ("invalid".to_owned(), e.to_string()),
            None => (
                "valid".to_owned(),
                "every policy parsed and validated".to_owned(),
            ),
        };
        return FileReport {
            cases: vec![CaseResult {
                name: "policies are refused as invalid".to_owned(),
                expected: "invalid".to_owned(),
                passed: refusal.is_some(),
                got,
                decided_by: Vec::new(),
                reason,
            }],
        };
    }
    let policies = file.applicable();
    let cases = file
        .cases
        .iter()
        .map(|case| {
            let req = file.request(case);
            let d = decide(&policies, &req);
            CaseResult {
                name: case.name.clone(),
                expected: case.expect.as_str().to_owned(),
                got: d.outcome.as_str().to_owned(),
                passed: d.outcome == case.expect,
                decided_by: d.matched.iter().map(|m| m.to_string()).collect(),
                reason: d.reason.describe().into_owned(),
            }
        })
        .collect();
    FileReport { cases }
}
