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
    pub policy_document: JsonText,
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
    pub assume_role_policy_document: Option<JsonText>,
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
    pub document: JsonText,
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

/// A JSON value kept as its JSON text, exactly as the file spells it. IAM
/// files hold thousands of policy documents; read as `Value` trees they
/// would all live at once, at several times the size of their text. The
/// text is copied out of the file as it is read, without building or
/// rewriting anything; each document is parsed when its policy compiles
/// ([`JsonText::to_value`]) and the tree dropped right away.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonText(String);

impl JsonText {
    /// The value, parsed.
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(&self.0)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // serde_json checks the value and hands over its text; only a JSON
        // deserializer can (bundles are JSON files).
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        Ok(JsonText(Box::<str>::from(raw).into_string()))
    }
}

#[cfg(test)]
mod json_text_tests {
    use super::*;

    /// Issue 12: a document read as text and parsed when compiled is the
    /// very `Value` reading it directly gives (numbers, escapes, nesting,
    /// empty containers, a URL-encoded string document).
    #[test]
    fn json_text_parses_back_to_the_same_value() -> Result<(), serde_json::Error> {
        let text = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": ["ec2:*", "s3:Get\u002a"], "Resource": [],
            "Condition": {"NumericLessThan": {"k": 10, "n": -3, "f": 1.50, "e": 2e3, "u": 18446744073709551615},
                          "Bool": {"b": true}, "Null": {"x": null}, "O": {}}},
            "line\nbreak \"quoted\" ünï"],
            "Raw": "%7B%22Version%22%3A%222012-10-17%22%7D"}"#;
        let direct: Value = serde_json::from_str(text)?;
        let via: JsonText = serde_json::from_str(text)?;
        assert_eq!(via.to_value()?, direct);
        Ok(())
    }

    /// A document nested far beyond serde_json's recursion limit is taken
    /// as text without exhausting the stack, and refused when it is parsed
    /// to compile (the bundle is refused, naming the document's path).
    #[test]
    fn a_document_nested_too_deep_is_refused_when_parsed() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let text = format!(r#"{{"PolicyName": "p", "PolicyDocument": {deep}}}"#);
        let read = serde_json::from_str::<InlinePolicy>(&text);
        let parsed = read.map(|p| p.policy_document.to_value());
        let message = match parsed {
            Ok(Err(e)) => e.to_string(),
            other => format!("expected a refusal when parsed, got {other:?}"),
        };
        assert!(message.contains("recursion limit"), "{message}");
    }

    /// A refused file is read a second time to find where it went wrong:
    /// documents read the same through that reader, and the path still
    /// points past them.
    #[test]
    fn documents_read_the_same_when_a_refused_file_is_read_for_its_path() {
        let text = r#"{"PolicyList": [{"PolicyName": "p", "PolicyDocument": {"Version": "2012-10-17"}},
                                      {"PolicyName": 7, "PolicyDocument": "%7B%7D"}]}"#;
        #[derive(Debug, Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct File {
            #[allow(dead_code)]
            policy_list: Vec<InlinePolicy>,
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let err = serde_path_to_error::deserialize::<_, File>(&mut de).err();
        let path = err.map(|e| e.path().to_string());
        assert_eq!(path.as_deref(), Some("PolicyList[1].PolicyName"));

        let good = r#"{"PolicyName": "p", "PolicyDocument": {"Version": "2012-10-17"}}"#;
        let mut de = serde_json::Deserializer::from_str(good);
        let read = serde_path_to_error::deserialize::<_, InlinePolicy>(&mut de)
            .map(|p| p.policy_document.as_str().to_owned());
        assert_eq!(read.ok().as_deref(), Some(r#"{"Version": "2012-10-17"}"#));
    }
}
