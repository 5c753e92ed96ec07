//! The reload gate: a bundle's own `tests/*.json` must pass before its
//! snapshot may serve. Tests with a `policies` object are self-contained;
//! tests without one are decided against the bundle's snapshot, so a bundle
//! can pin what its principals may and may not do. `iamgate test` decides
//! bundle tests with the same [`decide_case`], so the two never disagree.

use std::path::Path;

use crate::bundle::err::BundleError;
use crate::bundle::files::BundleFiles;
use crate::bundle::snapshot::{AuthzRequest, Snapshot};
use crate::testfile::{CaseResult, CompiledCase, CompiledFile, parse_test_file, run_file};

/// Whether a test file is decided against a bundle's snapshot: it brings no
/// policies of its own and does not expect its policies to be refused.
pub fn uses_snapshot(file: &CompiledFile) -> bool {
    !file.has_policies && file.expect_invalid.is_none()
}

/// Decides one test of a file without `policies` against the snapshot: the
/// file's principal, its session tags and resource account, the case's
/// action, resource and context.
pub fn decide_case(snapshot: &Snapshot, file: &CompiledFile, case: &CompiledCase) -> CaseResult {
    let req = AuthzRequest {
        principal_arn: file.principal_arn.clone(),
        action: case.action.clone(),
        resource: case.resource.clone(),
        context: case.context.clone(),
        session_tags: file
            .principal_tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        session_policy: None,
        session_policy_arns: Vec::new(),
        resource_account: file.resource_account.clone(),
        outcome_only: false,
    };
    let expected = case.expect.as_str().to_owned();
    match snapshot.authorize(&req) {
        Ok(answer) => CaseResult {
            name: case.name.clone(),
            passed: answer.decision == case.expect,
            got: answer.decision.as_str().to_owned(),
            expected,
            decided_by: answer
                .matched
                .iter()
                .map(|m| match &m.sid {
                    Some(sid) => format!(
                        "{} `{}` statement {} ({sid})",
                        m.policy_type, m.policy, m.statement
                    ),
                    None => format!("{} `{}` statement {}", m.policy_type, m.policy, m.statement),
                })
                .collect(),
            reason: answer.reason.into_owned(),
        },
        Err(e) => CaseResult {
            name: case.name.clone(),
            passed: false,
            got: e.to_string(),
            expected,
            decided_by: Vec::new(),
            reason: e.to_string(),
        },
    }
}

/// Runs every test of a file: against the snapshot when the file brings no
/// policies, else against its own policies.
pub fn run_file_against(snapshot: &Snapshot, file: &CompiledFile) -> Vec<CaseResult> {
    if uses_snapshot(file) {
        file.cases
            .iter()
            .map(|case| decide_case(snapshot, file, case))
            .collect()
    } else {
        run_file(file).cases
    }
}

/// Runs every test file of the bundle; the first failure refuses it.
pub fn run_bundle_tests(files: &BundleFiles, snapshot: &Snapshot) -> Result<usize, BundleError> {
    let mut ran = 0;
    for (name, text) in files.under("tests", ".json") {
        let file = parse_test_file(Path::new(name), text).map_err(|e| match e {
            crate::testfile::TestFileError::Format { path, message, .. } => {
                BundleError::invalid(name, path, message)
            }
            other => BundleError::io(name, other),
        })?;
        for case in run_file_against(snapshot, &file) {
            ran += 1;
            if !case.passed {
                return Err(BundleError::TestFailed {
                    file: name.to_owned(),
                    test: case.name,
                    expected: case.expected,
                    got: case.got,
                });
            }
        }
    }
    Ok(ran)
}
