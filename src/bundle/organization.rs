//! The organization of a bundle, read from either of two layouts that an
//! operator fills straight from `aws organizations`:
//!
//! - `organization.json`: the flat shape (`Roots`, `OrganizationalUnits` and
//!   `Accounts` with `ParentId`, `Policies` with `Id`, `Type`, `Content`,
//!   `Targets`), where `describe-organization`'s `Organization` object may
//!   stand for `Id`/`ManagementAccountId`, a policy may be
//!   `describe-policy`'s `{"Policy": {"PolicySummary": ..., "Content": ...}}`
//!   and targets may be `list-targets-for-policy`'s target objects;
//! - `organization/`: one file per CLI call, verbatim, the call's argument
//!   in the folder name (see [`read`]).
//!
//! Both come out as one [`Organization`], with where each account and
//! policy came from so that errors name the file and JSON path.

use serde::Deserialize;
use serde_json::Value;

use crate::bundle::aws::{OrgAccount, OrgPolicy, OrgRoot, OrgUnit, Organization};
use crate::bundle::err::BundleError;
use crate::bundle::files::BundleFiles;
use crate::bundle::snapshot::parse_json;

/// The single-file layout.
pub const FILE: &str = "organization.json";
/// The folder layout.
pub const DIR: &str = "organization";

/// The caller account's place in its AWS Organization (what EC2's
/// permission attributes and `OrganizationArn` grants are checked against).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrgMembership {
    /// `arn:aws:organizations::MGMT:organization/o-xxxx`.
    pub organization_arn: String,
    /// Every OU on the account's path from the root, outermost first:
    /// `arn:aws:organizations::MGMT:ou/o-xxxx/ou-xxxx`.
    pub ou_arns: Vec<String>,
}

/// Where a value came from: a bundle file and a JSON path in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At {
    pub file: String,
    pub path: String,
}

impl At {
    fn new(file: &str, path: String) -> Self {
        Self {
            file: file.to_owned(),
            path,
        }
    }
}

/// A bundle's organization and the origin of its accounts and policies
/// (same order as `org.accounts` and `org.policies`).
#[derive(Debug, Default)]
pub struct OrgSource {
    pub org: Organization,
    /// Where each account's `ParentId` is (or the file naming the parent).
    pub account_at: Vec<At>,
    /// Where each policy's `Content` is.
    pub content_at: Vec<At>,
}

/// `describe-organization`'s `Organization` (the CLI prints more fields).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Described {
    id: String,
    #[serde(default)]
    master_account_id: Option<String>,
}

/// `describe-policy`'s `Policy`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribedPolicy {
    policy_summary: PolicySummary,
    content: Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PolicySummary {
    id: String,
    #[serde(rename = "Type")]
    policy_type: String,
}

/// A policy target: an id, or `list-targets-for-policy`'s object.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Target {
    Id(String),
    #[serde(rename_all = "PascalCase")]
    Object {
        target_id: String,
    },
}

impl Target {
    fn into_id(self) -> String {
        match self {
            Target::Id(id) | Target::Object { target_id: id } => id,
        }
    }
}

/// `organization.json`. Unknown top-level fields are refused (a typo would
/// silently drop an SCP).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct OrgFile {
    /// The file's JSON Schema (`schemas/bundle/organization.json`), for editors.
    #[serde(default, rename = "$schema")]
    _schema: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    management_account_id: Option<String>,
    #[serde(default)]
    organization: Option<Described>,
    #[serde(default)]
    roots: Vec<OrgRoot>,
    #[serde(default)]
    organizational_units: Vec<OrgUnit>,
    #[serde(default)]
    accounts: Vec<OrgAccount>,
    #[serde(default)]
    policies: Vec<PolicyEntry>,
}

/// One policy of `organization.json`: the flat shape or `describe-policy`'s.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PolicyEntry {
    #[serde(default)]
    id: Option<String>,
    #[serde(default, rename = "Type")]
    policy_type: Option<String>,
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    policy: Option<DescribedPolicy>,
    #[serde(default)]
    targets: Vec<Target>,
}

/// Reads the bundle's organization: `organization.json`, or the
/// `organization/` folder of CLI outputs, or none (both is refused).
pub fn read(files: &BundleFiles) -> Result<Option<OrgSource>, BundleError> {
    let has_dir = files.under(DIR, ".json").next().is_some();
    match (files.get(FILE), has_dir) {
        (None, false) => Ok(None),
        (Some(_), true) => Err(BundleError::Layout {
            path: format!("{DIR}/"),
            message: format!("a bundle holds `{FILE}` or `{DIR}/`, not both"),
        }),
        (Some(text), false) => from_file(text).map(Some),
        (None, true) => from_dir(files).map(Some),
    }
}

fn from_file(text: &str) -> Result<OrgSource, BundleError> {
    let f: OrgFile = parse_json(FILE, text)?;
    let (described_id, described_mgmt) = match f.organization {
        Some(d) => (Some(d.id), d.master_account_id),
        None => (None, None),
    };
    // The same fact twice must agree: either could be a stale copy.
    for (top, described, at) in [
        (&f.id, &described_id, "$.Organization.Id"),
        (
            &f.management_account_id,
            &described_mgmt,
            "$.Organization.MasterAccountId",
        ),
    ] {
        if let (Some(a), Some(b)) = (top, described)
            && a != b
        {
            return Err(BundleError::invalid(
                FILE,
                at,
                format!("`{b}` disagrees with the top-level `{a}`"),
            ));
        }
    }
    let mut out = OrgSource {
        account_at: (0..f.accounts.len())
            .map(|i| At::new(FILE, format!("$.Accounts[{i}].ParentId")))
            .collect(),
        org: Organization {
            id: f.id.or(described_id),
            management_account_id: f.management_account_id.or(described_mgmt),
            roots: f.roots,
            organizational_units: f.organizational_units,
            accounts: f.accounts,
            policies: Vec::new(),
        },
        content_at: Vec::new(),
    };
    for (i, p) in f.policies.into_iter().enumerate() {
        let targets = p.targets.into_iter().map(Target::into_id).collect();
        let (id, policy_type, content, at) = match (p.policy, p.id, p.policy_type, p.content) {
            (Some(d), None, None, None) => (
                d.policy_summary.id,
                d.policy_summary.policy_type,
                d.content,
                format!("$.Policies[{i}].Policy.Content"),
            ),
            (None, Some(id), Some(t), Some(content)) => {
                (id, t, content, format!("$.Policies[{i}].Content"))
            }
            _ => {
                return Err(BundleError::invalid(
                    FILE,
                    format!("$.Policies[{i}]"),
                    "a policy has `Id`, `Type` and `Content`, or is `describe-policy` output \
                     (`Policy` with `PolicySummary` and `Content`), and `Targets`",
                ));
            }
        };
        out.org.policies.push(OrgPolicy {
            id,
            policy_type,
            content,
            targets,
        });
        out.content_at.push(At::new(FILE, at));
    }
    Ok(out)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeOrganization {
    organization: Described,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListRoots {
    roots: Vec<OrgRoot>,
}

/// An OU or account as the `list-*-for-parent` calls print it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Child {
    id: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListOus {
    organizational_units: Vec<Child>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListAccounts {
    accounts: Vec<Child>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribePolicy {
    policy: DescribedPolicy,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListTargets {
    targets: Vec<Target>,
}

/// The `organization/` folder, each file one CLI call's output:
///
/// ```text
/// organization/describe-organization.json
/// organization/list-roots.json
/// organization/parents/<parent-id>/list-organizational-units-for-parent.json
/// organization/parents/<parent-id>/list-accounts-for-parent.json
/// organization/policies/<policy-id>/describe-policy.json
/// organization/policies/<policy-id>/list-targets-for-policy.json
/// ```
fn from_dir(files: &BundleFiles) -> Result<OrgSource, BundleError> {
    let mut out = OrgSource::default();
    let file = format!("{DIR}/describe-organization.json");
    if let Some(text) = files.get(&file) {
        let d: DescribeOrganization = parse_json(&file, text)?;
        out.org.id = Some(d.organization.id);
        out.org.management_account_id = d.organization.master_account_id;
    }
    let file = format!("{DIR}/list-roots.json");
    if let Some(text) = files.get(&file) {
        let r: ListRoots = parse_json(&file, text)?;
        out.org.roots = r.roots;
    }
    let parents = format!("{DIR}/parents");
    for (name, text) in files.under(&parents, ".json") {
        let Some((parent, call)) = name
            .strip_prefix(&parents)
            .and_then(|r| r.strip_prefix('/'))
            .and_then(|r| r.split_once('/'))
        else {
            continue;
        };
        match call {
            "list-organizational-units-for-parent.json" => {
                let l: ListOus = parse_json(name, text)?;
                out.org
                    .organizational_units
                    .extend(l.organizational_units.into_iter().map(|c| OrgUnit {
                        id: c.id,
                        parent_id: parent.to_owned(),
                        name: c.name,
                    }));
            }
            "list-accounts-for-parent.json" => {
                let l: ListAccounts = parse_json(name, text)?;
                for (i, c) in l.accounts.into_iter().enumerate() {
                    out.account_at
                        .push(At::new(name, format!("$.Accounts[{i}]")));
                    out.org.accounts.push(OrgAccount {
                        id: c.id,
                        parent_id: parent.to_owned(),
                        name: c.name,
                    });
                }
            }
            _ => {}
        }
    }
    let policies = format!("{DIR}/policies");
    for (name, text) in files.under(&policies, "/describe-policy.json") {
        let folder = name.trim_end_matches("/describe-policy.json");
        let folder_id = folder.rsplit('/').next().unwrap_or_default();
        let d: DescribePolicy = parse_json(name, text)?;
        if d.policy.policy_summary.id != folder_id {
            return Err(BundleError::invalid(
                name,
                "$.Policy.PolicySummary.Id",
                format!(
                    "policy `{}` is in the folder of policy `{folder_id}`",
                    d.policy.policy_summary.id
                ),
            ));
        }
        let targets_file = format!("{folder}/list-targets-for-policy.json");
        let targets = match files.get(&targets_file) {
            Some(t) => parse_json::<ListTargets>(&targets_file, t)?
                .targets
                .into_iter()
                .map(Target::into_id)
                .collect(),
            None => Vec::new(),
        };
        out.content_at
            .push(At::new(name, "$.Policy.Content".to_owned()));
        out.org.policies.push(OrgPolicy {
            id: d.policy.policy_summary.id,
            policy_type: d.policy.policy_summary.policy_type,
            content: d.policy.content,
            targets,
        });
    }
    // Targets without their policy would be dropped silently.
    for (name, _) in files.under(&policies, "/list-targets-for-policy.json") {
        let folder = name.trim_end_matches("/list-targets-for-policy.json");
        if files
            .get(&format!("{folder}/describe-policy.json"))
            .is_none()
        {
            return Err(BundleError::Layout {
                path: name.to_owned(),
                message: "targets of a policy without its `describe-policy.json`".to_owned(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(text: &str) -> Result<Organization, String> {
        let files = BundleFiles::from_pairs([(FILE, text)]);
        read(&files)
            .map(|o| o.map(|o| o.org).unwrap_or_default())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn describe_organization_stands_for_the_ids_and_must_agree_with_them() {
        let o = org(
            r#"{"Organization": {"Id": "o-aa111bb222", "MasterAccountId": "999999999999",
                                          "FeatureSet": "ALL"}}"#,
        )
        .unwrap_or_default();
        assert_eq!(o.id.as_deref(), Some("o-aa111bb222"));
        assert_eq!(o.management_account_id.as_deref(), Some("999999999999"));
        let e = org(r#"{"ManagementAccountId": "111111111111",
                        "Organization": {"Id": "o-aa111bb222", "MasterAccountId": "999999999999"}}"#)
        .err()
        .unwrap_or_default();
        assert!(
            e.contains("$.Organization.MasterAccountId") && e.contains("disagrees"),
            "{e}"
        );
    }

    #[test]
    fn a_policy_is_one_shape_or_the_other() {
        let e = org(
            r#"{"Policies": [{"Id": "p-1", "Type": "SERVICE_CONTROL_POLICY",
                        "Policy": {"PolicySummary": {"Id": "p-1", "Type": "SERVICE_CONTROL_POLICY"},
                                   "Content": "{}"}}]}"#,
        )
        .err()
        .unwrap_or_default();
        assert!(e.contains("$.Policies[0]"), "{e}");
        let o = org(r#"{"Policies": [{"Policy": {"PolicySummary": {"Id": "p-1", "Type": "SERVICE_CONTROL_POLICY"},
                                   "Content": "{}"}, "Targets": [{"TargetId": "r-1", "Type": "ROOT"}, "ou-1"]}]}"#)
        .unwrap_or_default();
        let p = o.policies.first();
        assert_eq!(p.map(|p| p.id.as_str()), Some("p-1"));
        assert_eq!(
            p.map(|p| p.targets.clone()),
            Some(vec!["r-1".to_owned(), "ou-1".to_owned()])
        );
    }
}
