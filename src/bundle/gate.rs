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
                        m.policy_type.short_name(),
                        m.policy,
                        m.statement
                    ),
                    None => format!(
                        "{} `{}` statement {}",
                        m.policy_type.short_name(),
                        m.policy,
                        m.statement
                    ),
                })
                .collect(),
            reason: answer.reason.to_string(),
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

/// The decision-diff gate of reloads (issue 15): a candidate snapshot is
/// decided on the sample of recent requests beside the active one, and
/// refused like a failing test when it changes more decisions than the
/// limit: the lower of the operator's `--max-changed-decisions` and the
/// bundle's own `manifest.json` `max_changed_decisions`. Without either,
/// the counts are still computed and reported.
#[derive(Debug)]
pub struct DiffGate {
    sample: std::sync::Arc<crate::bundle::sample::RequestSample>,
    max_changed: Option<u64>,
    last: std::sync::Mutex<Option<DiffSummary>>,
}

/// The last comparison at a reload, for `/v1/status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DiffSummary {
    /// Seconds since the Unix epoch.
    pub at: f64,
    pub active_revision: String,
    pub candidate_revision: String,
    /// Sampled requests decided on both snapshots.
    pub sampled: usize,
    /// Those whose decision differs.
    pub changed: usize,
    /// Changed decisions by `from -> to`.
    pub by_change: std::collections::BTreeMap<String, usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_source: Option<&'static str>,
    /// Whether the candidate was refused for it.
    pub refused: bool,
}

impl Default for DiffGate {
    fn default() -> Self {
        Self::new(
            std::sync::Arc::new(crate::bundle::sample::RequestSample::disabled()),
            None,
        )
    }
}

impl DiffGate {
    /// A gate over `sample` with the operator's limit, if any.
    pub fn new(
        sample: std::sync::Arc<crate::bundle::sample::RequestSample>,
        max_changed: Option<u64>,
    ) -> Self {
        Self {
            sample,
            max_changed,
            last: std::sync::Mutex::new(None),
        }
    }

    /// The sample the decision path feeds.
    pub fn sample(&self) -> &crate::bundle::sample::RequestSample {
        &self.sample
    }

    /// The limit that applies to `candidate`, and where it comes from.
    pub fn limit_for(&self, candidate: &Snapshot) -> Option<(u64, &'static str)> {
        match (self.max_changed, candidate.max_changed_decisions()) {
            (Some(op), Some(m)) if m < op => Some((m, "manifest.json max_changed_decisions")),
            (Some(op), _) => Some((op, "--max-changed-decisions")),
            (None, Some(m)) => Some((m, "manifest.json max_changed_decisions")),
            (None, None) => None,
        }
    }

    /// Compares `candidate` with the `active` snapshot on the sample.
    /// Nothing to compare (no active snapshot, or an empty sample) passes.
    /// The summary is kept for [`DiffGate::last`] whether or not the
    /// candidate passes.
    pub fn check(
        &self,
        active: Option<&Snapshot>,
        candidate: &Snapshot,
    ) -> Result<Option<DiffSummary>, BundleError> {
        let Some(active) = active else {
            return Ok(None);
        };
        let requests: Vec<AuthzRequest> = self
            .sample
            .requests()
            .iter()
            .map(crate::bundle::sample::SampledRequest::to_request)
            .collect();
        if requests.is_empty() {
            return Ok(None);
        }
        let report = crate::bundle::diff::diff(active, candidate, &requests);
        let limit = self.limit_for(candidate);
        let changed = report.changed.len();
        let refused = limit.is_some_and(|(l, _)| u64::try_from(changed).unwrap_or(u64::MAX) > l);
        let summary = DiffSummary {
            at: std::time::SystemTime::now()
                .duration_since(std::time::SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default(),
            active_revision: active.revision().to_string(),
            candidate_revision: candidate.revision().to_string(),
            sampled: report.compared,
            changed,
            by_change: report.by_change(),
            limit: limit.map(|(l, _)| l),
            limit_source: limit.map(|(_, s)| s),
            refused,
        };
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(summary.clone());
        match limit {
            Some((limit, limit_source)) if refused => Err(BundleError::DecisionDiff {
                changed,
                sampled: report.compared,
                limit,
                limit_source,
            }),
            _ => Ok(Some(summary)),
        }
    }

    /// The last comparison made at a reload.
    pub fn last(&self) -> Option<DiffSummary> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod diff_gate_tests {
    use std::sync::Arc;

    use super::*;
    use crate::bundle::sample::RequestSample;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn snapshot(actions: &[&str], manifest: Option<&str>) -> Result<Snapshot, BundleError> {
        let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": actions, "Resource": "*"}]});
        let account = serde_json::json!({"UserDetailList": [{"UserName": "alice", "UserId": "AIDA1",
            "Arn": "arn:aws:iam::111122223333:user/alice", "Path": "/",
            "UserPolicyList": [{"PolicyName": "p", "PolicyDocument": policy}]}],
            "GroupDetailList": [], "RoleDetailList": [], "Policies": []});
        let mut files = vec![("iam/111122223333.json".to_owned(), account.to_string())];
        if let Some(m) = manifest {
            files.push(("manifest.json".to_owned(), m.to_owned()));
        }
        Snapshot::compile(&BundleFiles::from_pairs(files), "test")
    }

    fn sample(actions: &[&str]) -> Arc<RequestSample> {
        let s = Arc::new(RequestSample::new(16, 1));
        for a in actions {
            s.offer(&AuthzRequest {
                principal_arn: "arn:aws:iam::111122223333:user/alice".into(),
                action: (*a).into(),
                resource: "*".into(),
                ..AuthzRequest::default()
            });
        }
        s
    }

    const ACTIONS: [&str; 4] = [
        "ec2:StartInstances",
        "ec2:StopInstances",
        "ec2:RebootInstances",
        "ec2:TerminateInstances",
    ];

    #[test]
    fn the_lower_limit_applies_and_past_it_the_candidate_is_refused() -> TestResult {
        let active = snapshot(&["ec2:StartInstances"], None)?;
        // Two decisions change: StopInstances and RebootInstances.
        let candidate = snapshot(
            &[
                "ec2:StartInstances",
                "ec2:StopInstances",
                "ec2:RebootInstances",
            ],
            None,
        )?;
        let gate = DiffGate::new(sample(&ACTIONS), Some(2));
        let passed = gate.check(Some(&active), &candidate)?;
        assert!(passed.is_some_and(|s| s.sampled == 4 && s.changed == 2 && !s.refused));

        let gate = DiffGate::new(sample(&ACTIONS), Some(1));
        let refused = gate.check(Some(&active), &candidate).err();
        assert!(
            matches!(
                refused,
                Some(BundleError::DecisionDiff {
                    changed: 2,
                    sampled: 4,
                    limit: 1,
                    limit_source: "--max-changed-decisions"
                })
            ),
            "{refused:?}"
        );
        assert!(
            gate.last().is_some_and(
                |s| s.refused && s.by_change.get("implicitDeny -> allowed") == Some(&2)
            )
        );

        // The bundle's own expectation is lower than the operator's.
        let expecting_one = snapshot(
            &[
                "ec2:StartInstances",
                "ec2:StopInstances",
                "ec2:RebootInstances",
            ],
            Some(r#"{"max_changed_decisions": 1}"#),
        )?;
        let gate = DiffGate::new(sample(&ACTIONS), Some(10));
        assert!(matches!(
            gate.check(Some(&active), &expecting_one),
            Err(BundleError::DecisionDiff {
                limit: 1,
                limit_source: "manifest.json max_changed_decisions",
                ..
            })
        ));
        // ...but cannot raise it.
        let expecting_ten = snapshot(
            &[
                "ec2:StartInstances",
                "ec2:StopInstances",
                "ec2:RebootInstances",
            ],
            Some(r#"{"max_changed_decisions": 10}"#),
        )?;
        let gate = DiffGate::new(sample(&ACTIONS), Some(1));
        assert!(gate.check(Some(&active), &expecting_ten).is_err());
        Ok(())
    }

    #[test]
    fn nothing_to_compare_passes_without_a_summary() -> TestResult {
        let active = snapshot(&["ec2:StartInstances"], None)?;
        let candidate = snapshot(&["ec2:DescribeImages"], None)?;
        let gate = DiffGate::new(sample(&ACTIONS), Some(0));
        assert!(gate.check(None, &candidate)?.is_none());
        let empty = DiffGate::new(sample(&[]), Some(0));
        assert!(empty.check(Some(&active), &candidate)?.is_none());
        assert!(gate.last().is_none() && empty.last().is_none());
        Ok(())
    }
}
