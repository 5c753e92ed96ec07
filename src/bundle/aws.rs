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

/// A JSON value kept as compact JSON text. IAM files hold thousands of
/// policy documents; read as `Value` trees they would all live at once, at
/// several times the size of their text. Each document is parsed when its
/// policy compiles ([`JsonText::to_value`]) and the tree dropped right away.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonText(String);

impl JsonText {
    /// The value, parsed.
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(&self.0)
    }

    /// The compact text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut out = Vec::new();
        d.deserialize_any(Transcode(&mut out))?;
        String::from_utf8(out)
            .map(JsonText)
            .map_err(serde::de::Error::custom)
    }
}

/// Writes the value being deserialized as compact JSON, so that parsing
/// the text again gives the `Value` reading it directly would have given.
struct Transcode<'a>(&'a mut Vec<u8>);

impl Transcode<'_> {
    fn write<T: serde::Serialize + ?Sized, E: serde::de::Error>(self, v: &T) -> Result<(), E> {
        serde_json::to_writer(&mut *self.0, v).map_err(E::custom)
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Transcode<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Transcode<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<(), E> {
        self.write(&v)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        self.write(&v)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        self.write(&v)
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        // As `Value` holds it: a finite number (JSON has no other).
        let n = serde_json::Number::from_f64(v)
            .ok_or_else(|| E::custom("a number that is not finite"))?;
        self.write(&n)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.write(v)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.0.extend_from_slice(b"null");
        Ok(())
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let out = self.0;
        out.push(b'[');
        let mut first = true;
        loop {
            let mark = out.len();
            if !first {
                out.push(b',');
            }
            if seq.next_element_seed(Transcode(out))?.is_none() {
                out.truncate(mark);
                break;
            }
            first = false;
        }
        out.push(b']');
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let out = self.0;
        out.push(b'{');
        let mut first = true;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if !first {
                out.push(b',');
            }
            first = false;
            serde_json::to_writer(&mut *out, key.as_ref()).map_err(serde::de::Error::custom)?;
            out.push(b':');
            map.next_value_seed(Transcode(out))?;
        }
        out.push(b'}');
        Ok(())
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
        assert!(!via.as_str().contains('\n'), "{}", via.as_str());
        Ok(())
    }
}
