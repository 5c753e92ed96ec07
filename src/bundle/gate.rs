//! The reload gate: a bundle's own `tests/*.json` must pass before its
//! snapshot may serve. Tests with a `policies` object are self-contained;
//! tests without one are decided against the bundle's snapshot, so a bundle
//! can pin what its principals may and may not do.

use std::path::Path;

use crate::bundle::err::BundleError;
use crate::bundle::files::BundleFiles;
use crate::bundle::snapshot::{AuthzRequest, Snapshot};
use crate::testfile::{parse_test_file, run_file};

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
        if file.has_policies || file.expect_invalid.is_some() {
            for case in run_file(&file).cases {
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
            continue;
        }
        for case in &file.cases {
            ran += 1;
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
                resource_account: file.resource_account.clone(),
                outcome_only: false,
            };
            let got = snapshot
                .authorize(&req)
                .map(|a| a.decision.as_str().to_owned())
                .unwrap_or_else(|e| e.to_string());
            if got != case.expect.as_str() {
                return Err(BundleError::TestFailed {
                    file: name.to_owned(),
                    test: case.name.clone(),
                    expected: case.expect.as_str().to_owned(),
                    got,
                });
            }
        }
    }
    Ok(ran)
}
