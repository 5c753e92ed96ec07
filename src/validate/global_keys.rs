//! What validation knows about condition keys: the global condition keys
//! documented in the IAM User Guide page "AWS global condition context
//! keys" (with their value types), the keys each service defines (from its
//! catalog),
//! and the lookup that combines them.

use crate::service::catalog::{Catalog, ConditionKeyType};

use ConditionKeyType as T;

/// The documented global keys (`aws:` prefix) and their types. Keys that take
/// a tag key suffix are in [`GLOBAL_KEY_PREFIXES`].
const GLOBAL_KEYS: &[(&str, ConditionKeyType)] = &[
    // Properties of the principal.
    ("aws:PrincipalArn", T::Arn),
    ("aws:PrincipalAccount", T::String),
    ("aws:PrincipalOrgPaths", T::ArrayOfString),
    ("aws:PrincipalOrgID", T::String),
    ("aws:PrincipalIsAWSService", T::Bool),
    ("aws:PrincipalServiceName", T::String),
    ("aws:PrincipalServiceNamesList", T::ArrayOfString),
    ("aws:PrincipalType", T::String),
    ("aws:userid", T::String),
    ("aws:username", T::String),
    // Properties of a role session.
    ("aws:AssumedRoot", T::Bool),
    ("aws:FederatedProvider", T::String),
    ("aws:TokenIssueTime", T::Date),
    ("aws:MultiFactorAuthAge", T::Numeric),
    ("aws:MultiFactorAuthPresent", T::Bool),
    ("aws:ChatbotSourceArn", T::Arn),
    ("aws:Ec2InstanceSourceVpc", T::String),
    ("aws:Ec2InstanceSourcePrivateIPv4", T::IpAddress),
    ("aws:SourceIdentity", T::String),
    // Properties of the network.
    ("aws:SourceIp", T::IpAddress),
    ("aws:SourceVpc", T::String),
    ("aws:SourceVpce", T::String),
    ("aws:VpceAccount", T::String),
    ("aws:VpceOrgID", T::String),
    ("aws:VpceOrgPaths", T::ArrayOfString),
    ("aws:VpcSourceIp", T::IpAddress),
    // Properties of the resource.
    ("aws:ResourceAccount", T::String),
    ("aws:ResourceOrgID", T::String),
    ("aws:ResourceOrgPaths", T::ArrayOfString),
    // Properties of the request.
    ("aws:CalledVia", T::ArrayOfString),
    ("aws:CalledViaFirst", T::String),
    ("aws:CalledViaLast", T::String),
    ("aws:ViaAWSService", T::Bool),
    ("aws:CurrentTime", T::Date),
    // Also works with numeric operators (see `KeyInfo::also_numeric`).
    ("aws:EpochTime", T::Date),
    ("aws:referer", T::String),
    ("aws:RequestedRegion", T::String),
    ("aws:TagKeys", T::ArrayOfString),
    ("aws:SecureTransport", T::Bool),
    ("aws:SourceAccount", T::String),
    ("aws:SourceArn", T::Arn),
    ("aws:SourceOrgID", T::String),
    ("aws:SourceOrgPaths", T::ArrayOfString),
    ("aws:UserAgent", T::String),
];

/// Global keys written `prefix` + a tag key; all single-valued strings.
const GLOBAL_KEY_PREFIXES: &[&str] = &["aws:PrincipalTag/", "aws:RequestTag/", "aws:ResourceTag/"];

/// EC2 keys that the global keys page lists as cross-service: present in
/// requests to any service, so not tied to the EC2 actions of a statement.
const CROSS_SERVICE_EC2_KEYS: &[&str] = &["ec2:RoleDelivery", "ec2:SourceInstanceArn"];

/// The type of a known condition key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyInfo {
    /// The key's name as documented (may end in a placeholder).
    pub name: &'static str,
    pub value_type: ConditionKeyType,
    /// Numeric operators fit as well as the declared type (`aws:EpochTime`).
    pub also_numeric: bool,
}

/// Looks a key up, case-insensitively: the services' catalogs first, then the
/// documented global keys. `None` for keys of other services and unknown keys.
pub(crate) fn lookup(key: &str, catalogs: &[&'static Catalog]) -> Option<KeyInfo> {
    if let Some(def) = catalogs.iter().find_map(|c| c.condition_key(key)) {
        return Some(KeyInfo {
            name: def.name,
            value_type: def.value_type,
            also_numeric: false,
        });
    }
    if let Some((name, ty)) = GLOBAL_KEYS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(key))
    {
        return Some(KeyInfo {
            name,
            value_type: *ty,
            also_numeric: name.eq_ignore_ascii_case("aws:EpochTime"),
        });
    }
    GLOBAL_KEY_PREFIXES
        .iter()
        .find(|p| {
            key.len() > p.len()
                && key
                    .get(..p.len())
                    .is_some_and(|k| k.eq_ignore_ascii_case(p))
        })
        .map(|p| KeyInfo {
            name: p,
            value_type: T::String,
            also_numeric: false,
        })
}

/// Whether `key` is in the `aws:` namespace (case-insensitive).
pub(crate) fn is_global(key: &str) -> bool {
    key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:"))
}

/// The catalog of the service whose namespace `key` is in (`ec2:...`).
pub(crate) fn owner<'c>(key: &str, catalogs: &[&'c Catalog]) -> Option<&'c Catalog> {
    catalogs.iter().copied().find(|c| c.owns_key(key))
}

/// Whether `key` is an EC2 key that applies to every service's requests.
pub(crate) fn is_cross_service(key: &str) -> bool {
    CROSS_SERVICE_EC2_KEYS
        .iter()
        .any(|k| k.eq_ignore_ascii_case(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::TEST_CATALOGS;

    #[test]
    fn catalog_then_global_then_prefixes() {
        let ty = |k: &str| lookup(k, TEST_CATALOGS).map(|i| i.value_type);
        assert_eq!(ty("ec2:InstanceType"), Some(T::String));
        assert_eq!(ty("EC2:volumesize"), Some(T::Numeric));
        assert_eq!(ty("aws:SourceIp"), Some(T::IpAddress));
        assert_eq!(ty("AWS:MULTIFACTORAUTHPRESENT"), Some(T::Bool));
        assert_eq!(ty("aws:TagKeys"), Some(T::ArrayOfString));
        assert_eq!(ty("aws:PrincipalTag/team"), Some(T::String));
        assert_eq!(ty("aws:RequestTag/team"), Some(T::String));
        assert_eq!(ty("aws:PrincipalTag/"), None);
        assert_eq!(ty("aws:SourceIpAddress"), None);
        // A service whose catalog is not given: its keys are not typed.
        assert_eq!(ty("s3:prefix"), None);
        assert!(lookup("aws:EpochTime", TEST_CATALOGS).is_some_and(|i| i.also_numeric));
        assert!(lookup("aws:CurrentTime", TEST_CATALOGS).is_some_and(|i| !i.also_numeric));
    }

    #[test]
    fn namespaces() {
        assert!(is_global("AWS:SourceIp") && !is_global("ec2:Vpc") && !is_global("aw"));
        assert!(
            owner("Ec2:Vpc", TEST_CATALOGS).is_some_and(|c| c.prefix == "ec2")
                && owner("aws:SourceIp", TEST_CATALOGS).is_none()
        );
        assert!(is_cross_service("ec2:sourceinstancearn") && !is_cross_service("ec2:Vpc"));
    }

    #[test]
    fn global_names_are_unique_and_prefixed() {
        for (i, (a, _)) in GLOBAL_KEYS.iter().enumerate() {
            assert!(a.starts_with("aws:"), "{a}");
            for (b, _) in GLOBAL_KEYS.iter().skip(i + 1) {
                assert!(!a.eq_ignore_ascii_case(b), "{a}");
            }
        }
    }
}
