//! The AWS shapes a bundle holds, as the AWS CLI prints them:
//! `aws iam get-account-authorization-details`, the Organizations tree and
//! policies, resource policies, and the manifest. Unknown fields are
//! ignored (AWS adds fields over time); missing required ones are errors.

use serde::Deserialize;
use serde_json::Value;

/// `aws iam get-account-authorization-details` output.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AuthorizationDetails {
    #[serde(default)]
    pub user_detail_list: Vec<UserDetail>,
    #[serde(default)]
    pub group_detail_list: Vec<GroupDetail>,
    #[serde(default)]
    pub role_detail_list: Vec<RoleDetail>,
    #[serde(default)]
    pub policies: Vec<ManagedPolicyDetail>,
}

/// An inline policy (`UserPolicyList`, `GroupPolicyList`, `RolePolicyList`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InlinePolicy {
    pub policy_name: String,
    /// A JSON object, or the URL-encoded string the raw API returns.
    pub policy_document: Value,
}

/// An attached managed policy reference.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttachedPolicy {
    #[serde(default)]
    pub policy_name: Option<String>,
    pub policy_arn: String,
}

/// A permissions boundary reference.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Boundary {
    pub permissions_boundary_arn: String,
}

/// An IAM tag.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// A user.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserDetail {
    pub user_name: String,
    pub arn: String,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub user_policy_list: Vec<InlinePolicy>,
    #[serde(default)]
    pub group_list: Vec<String>,
    #[serde(default)]
    pub attached_managed_policies: Vec<AttachedPolicy>,
    #[serde(default)]
    pub permissions_boundary: Option<Boundary>,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// A group.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GroupDetail {
    pub group_name: String,
    #[serde(default)]
    pub arn: Option<String>,
    #[serde(default)]
    pub group_policy_list: Vec<InlinePolicy>,
    #[serde(default)]
    pub attached_managed_policies: Vec<AttachedPolicy>,
}

/// A role.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RoleDetail {
    pub role_name: String,
    pub arn: String,
    #[serde(default)]
    pub role_id: Option<String>,
    #[serde(default)]
    pub assume_role_policy_document: Option<Value>,
    #[serde(default)]
    pub role_policy_list: Vec<InlinePolicy>,
    #[serde(default)]
    pub attached_managed_policies: Vec<AttachedPolicy>,
    #[serde(default)]
    pub permissions_boundary: Option<Boundary>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// The instance profiles the role is in.
    #[serde(default)]
    pub instance_profile_list: Vec<InstanceProfileDetail>,
}

/// An instance profile (`InstanceProfileList` of a role).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstanceProfileDetail {
    pub instance_profile_name: String,
    pub arn: String,
    /// `InstanceProfileId` (`AIPA...`).
    #[serde(default)]
    pub instance_profile_id: Option<String>,
    /// The profile's roles (IAM allows one).
    #[serde(default)]
    pub roles: Vec<InstanceProfileRole>,
}

/// A role of an instance profile (only its ARN is read).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstanceProfileRole {
    pub arn: String,
}

/// A managed policy with its versions.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ManagedPolicyDetail {
    pub policy_name: String,
    pub arn: String,
    #[serde(default)]
    pub default_version_id: Option<String>,
    #[serde(default)]
    pub policy_version_list: Vec<PolicyVersion>,
}

/// One version of a managed policy.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyVersion {
    pub document: Value,
    #[serde(default)]
    pub version_id: Option<String>,
    #[serde(default)]
    pub is_default_version: bool,
}

/// `organization.json`. Unknown fields are refused here (a typo would
/// silently drop an SCP).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Organization {
    /// The organization id (`o-…`), as `aws organizations
    /// describe-organization` prints it in `Organization.Id`. Optional for
    /// older bundles; without it (or without `ManagementAccountId`) no
    /// organization or OU ARN can be built, so organization- and OU-wide
    /// EC2 launch / create-volume permissions cover no account.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub management_account_id: Option<String>,
    #[serde(default)]
    pub roots: Vec<OrgRoot>,
    #[serde(default)]
    pub organizational_units: Vec<OrgUnit>,
    #[serde(default)]
    pub accounts: Vec<OrgAccount>,
    #[serde(default)]
    pub policies: Vec<OrgPolicy>,
}

/// An organization root.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OrgRoot {
    pub id: String,
}

/// An organizational unit.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OrgUnit {
    pub id: String,
    pub parent_id: String,
    #[serde(default)]
    pub name: Option<String>,
}

/// A member account.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OrgAccount {
    pub id: String,
    pub parent_id: String,
    #[serde(default)]
    pub name: Option<String>,
}

/// An SCP or RCP with the targets it is attached to.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OrgPolicy {
    pub id: String,
    #[serde(rename = "Type")]
    pub policy_type: String,
    pub content: Value,
    #[serde(default)]
    pub targets: Vec<String>,
}

/// One entry of `resource-policies.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ResourcePolicyEntry {
    pub resource_arn: String,
    pub policy: Value,
}

/// `manifest.json`.
#[derive(Debug, Default, Deserialize)]
pub struct Manifest {
    #[serde(default)]
    pub revision: Option<String>,
}
