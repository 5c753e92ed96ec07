//! Decision diffs: the same requests decided on two snapshots, and which
//! ones change decision, from what to what. `iamgate bundle diff` prints
//! one; the reload gate ([`crate::bundle::gate::DiffGate`]) computes one on
//! the sample of recent requests and refuses a candidate that changes more
//! decisions than allowed; shadow evaluation compares one request at a time.
//!
//! Pure: no files, no metrics. It decides through [`Snapshot::authorize`]
//! like every front-end, so a diff shows what serving would answer.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::bundle::err::BundleError;
use crate::bundle::files::BundleFiles;
use crate::bundle::snapshot::{AuthzRequest, Snapshot};

/// The field of `manifest.json` in which a bundle's author states how many
/// sampled decisions the bundle may change at most when it replaces the
/// active one (see [`manifest_limit`]).
pub const MANIFEST_FIELD: &str = "max_changed_decisions";

/// The decision a snapshot gives a request, as a label: an outcome
/// (`allowed`, `explicitDeny`, `implicitDeny`) or `error` for a request it
/// cannot decide.
pub fn decision_label(snapshot: &Snapshot, req: &AuthzRequest) -> &'static str {
    match snapshot.authorize_with(req, false) {
        Ok(answer) => answer.decision.as_str(),
        Err(_) => "error",
    }
}

/// One request whose decision changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub principal: String,
    pub action: String,
    pub resource: String,
    pub from: &'static str,
    pub to: &'static str,
}

/// The changes of one principal and action.
#[derive(Debug, Clone, Serialize)]
pub struct Group<'a> {
    pub principal: &'a str,
    pub action: &'a str,
    pub changes: Vec<&'a Change>,
}

/// The outcome of deciding requests on two snapshots.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DiffReport {
    /// Requests decided on both.
    pub compared: usize,
    /// Those whose decision differs, in the order given.
    pub changed: Vec<Change>,
}

impl DiffReport {
    /// Changed decisions by `from -> to` pair.
    pub fn by_change(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for c in &self.changed {
            *out.entry(format!("{} -> {}", c.from, c.to)).or_insert(0) += 1;
        }
        out
    }

    /// The changes grouped by principal, then action (both sorted).
    pub fn groups(&self) -> Vec<Group<'_>> {
        let mut map: BTreeMap<(&str, &str), Vec<&Change>> = BTreeMap::new();
        for c in &self.changed {
            map.entry((c.principal.as_str(), c.action.as_str()))
                .or_default()
                .push(c);
        }
        map.into_iter()
            .map(|((principal, action), changes)| Group {
                principal,
                action,
                changes,
            })
            .collect()
    }
}

/// Decides every request on `old` and `new` and reports the changes.
pub fn diff<'r>(
    old: &Snapshot,
    new: &Snapshot,
    requests: impl IntoIterator<Item = &'r AuthzRequest>,
) -> DiffReport {
    let mut report = DiffReport::default();
    for req in requests {
        report.compared += 1;
        let (from, to) = (decision_label(old, req), decision_label(new, req));
        if from != to {
            report.changed.push(Change {
                principal: req.principal_arn.clone(),
                action: req.action.clone(),
                resource: req.resource.clone(),
                from,
                to,
            });
        }
    }
    report
}

/// The bundle author's expectation: `manifest.json`'s
/// `max_changed_decisions`, a non-negative integer, if present.
pub fn manifest_limit(files: &BundleFiles) -> Result<Option<u64>, BundleError> {
    let Some(text) = files.get("manifest.json") else {
        return Ok(None);
    };
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| BundleError::invalid_from("manifest.json", "$", e))?;
    match value.get(MANIFEST_FIELD) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            BundleError::invalid(
                "manifest.json",
                format!("$.{MANIFEST_FIELD}"),
                "expected a non-negative integer",
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Context;

    fn bundle(policy: &str, manifest: Option<&str>) -> BundleFiles {
        let account = format!(
            r#"{{"UserDetailList": [{{"UserName": "alice", "UserId": "AIDA1", "Arn": "arn:aws:iam::111122223333:user/alice", "Path": "/",
                "UserPolicyList": [{{"PolicyName": "p", "PolicyDocument": {policy}}}]}}],
               "GroupDetailList": [], "RoleDetailList": [], "Policies": []}}"#
        );
        let mut files = vec![("iam/111122223333.json".to_owned(), account)];
        if let Some(m) = manifest {
            files.push(("manifest.json".to_owned(), m.to_owned()));
        }
        BundleFiles::from_pairs(files)
    }

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn snapshot(policy: &str) -> Result<Snapshot, BundleError> {
        Snapshot::compile(&bundle(policy, None), "test")
    }

    fn req(action: &str) -> AuthzRequest {
        AuthzRequest {
            principal_arn: "arn:aws:iam::111122223333:user/alice".into(),
            action: action.into(),
            resource: "*".into(),
            context: Context::new(),
            ..AuthzRequest::default()
        }
    }

    #[test]
    fn only_changed_decisions_are_reported_with_both_sides() -> TestResult {
        let old = snapshot(
            r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}]}"#,
        )?;
        let new = snapshot(
            r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["ec2:Describe*", "ec2:StartInstances"], "Resource": "*"},
                {"Effect": "Deny", "Action": "ec2:DescribeImages", "Resource": "*"}]}"#,
        )?;
        let reqs = [
            req("ec2:DescribeInstances"),
            req("ec2:DescribeImages"),
            req("ec2:StartInstances"),
            req("ec2:StopInstances"),
        ];
        let report = diff(&old, &new, &reqs);
        assert_eq!(report.compared, 4);
        let pairs: Vec<(&str, &str, &str)> = report
            .changed
            .iter()
            .map(|c| (c.action.as_str(), c.from, c.to))
            .collect();
        assert_eq!(
            pairs,
            [
                ("ec2:DescribeImages", "allowed", "explicitDeny"),
                ("ec2:StartInstances", "implicitDeny", "allowed"),
            ]
        );
        let by = report.by_change();
        assert_eq!(by.get("allowed -> explicitDeny"), Some(&1));
        assert_eq!(by.get("implicitDeny -> allowed"), Some(&1));
        let groups = report.groups();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].action, "ec2:DescribeImages");
        // The same snapshot on both sides changes nothing.
        assert!(diff(&old, &old, &reqs).changed.is_empty());
        Ok(())
    }

    #[test]
    fn the_manifest_limit_is_a_non_negative_integer() -> TestResult {
        let p = r#"{"Version": "2012-10-17", "Statement": []}"#;
        assert_eq!(manifest_limit(&bundle(p, None))?, None);
        assert_eq!(
            manifest_limit(&bundle(p, Some(r#"{"max_changed_decisions": 3}"#)))?,
            Some(3)
        );
        let err = manifest_limit(&bundle(p, Some(r#"{"max_changed_decisions": -1}"#)))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("$.max_changed_decisions"), "{err}");
        Ok(())
    }
}
