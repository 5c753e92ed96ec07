//! The mapping's value checks and helpers: condition keys filtered against
//! the catalog, tag specifications, resource ids and their types, and the
//! parsing of parameter values (regions, accounts, names, ARNs, numbers,
//! grants). No inventory lookups and no authorization decisions.

use super::*;

/// Condition keys of one authorization, filtered against the catalog.
pub(super) struct Keys {
    pub(super) action: &'static ActionDef,
    pub(super) row: Option<&'static ActionResource>,
    pub(super) ctx: Context,
}

impl Keys {
    pub(super) fn new(action: &'static ActionDef, row: Option<&'static ActionResource>) -> Self {
        Self {
            action,
            row,
            ctx: Context::new(),
        }
    }

    /// Whether the catalog lists `key` for the action or its (action,
    /// resource type) row.
    pub(super) fn allows(&self, key: &str) -> bool {
        let listed = |keys: &[&str]| keys.iter().any(|p| key_matches(p, key));
        listed(self.action.condition_keys) || self.row.is_some_and(|r| listed(r.condition_keys))
    }

    pub(super) fn put(&mut self, key: &str, value: String) {
        self.put_value(key, ContextValue::One(value));
    }

    pub(super) fn put_value(&mut self, key: &str, value: ContextValue) {
        if self.allows(key) {
            self.ctx.insert(key, value);
        }
    }

    /// `ec2:Region` (when listed) and the global `aws:RequestedRegion`.
    pub(super) fn action_keys(&mut self, region: &str) {
        self.put(keys::EC2_REGION, region.to_owned());
        self.ctx
            .insert("aws:RequestedRegion", ContextValue::One(region.to_owned()));
    }

    /// `aws:RequestTag/K` (for tags with a value) and `aws:TagKeys`.
    pub(super) fn request_tags<'t>(
        &mut self,
        tags: impl Iterator<Item = (&'t str, Option<&'t str>)>,
    ) {
        let mut keys = Vec::new();
        for (k, v) in tags {
            if let Some(v) = v {
                self.put(
                    &format!("{}{k}", keys::AWS_REQUEST_TAG_PREFIX),
                    v.to_owned(),
                );
            }
            keys.push(k.to_owned());
        }
        if !keys.is_empty() {
            self.put_value(keys::AWS_TAG_KEYS, ContextValue::Many(keys));
        }
    }
}

/// Catalog key pattern matching (`aws:RequestTag/${TagKey}` matches
/// `aws:RequestTag/team`), case-insensitive.
fn key_matches(pattern: &str, key: &str) -> bool {
    if pattern.eq_ignore_ascii_case(key) {
        return true;
    }
    match pattern.split_once("${") {
        Some((prefix, rest)) if rest.ends_with('}') => {
            key.len() > prefix.len()
                && key
                    .get(..prefix.len())
                    .is_some_and(|h| h.eq_ignore_ascii_case(prefix))
        }
        _ => false,
    }
}

/// Tags requested for one resource type: `(resource type, [(key, value)])`.
pub(super) type TagSpec = (String, Vec<(String, String)>);

/// Validated tag specifications, one per resource type.
pub(super) fn tag_specs(
    params: &QueryParams,
    def: &ActionDef,
) -> Result<Vec<TagSpec>, MappingError> {
    let specs: Vec<TagSpecification> = params.tag_specifications()?;
    let mut out: Vec<TagSpec> = Vec::new();
    for (i, s) in specs.into_iter().enumerate() {
        let n = i + 1;
        let rt = s.resource_type.ok_or_else(|| {
            MappingError::MissingParameter(format!("TagSpecification.{n}.ResourceType"))
        })?;
        let taggable = def.resource(&rt).is_some_and(|r| {
            r.condition_keys
                .iter()
                .any(|k| key_matches(k, "aws:RequestTag/x"))
        });
        if !taggable {
            return Err(MappingError::InvalidParameterValue {
                name: format!("TagSpecification.{n}.ResourceType"),
                reason: format!("{} cannot tag a '{rt}' on creation", def.name),
            });
        }
        if out.iter().any(|(t, _)| t.eq_ignore_ascii_case(&rt)) {
            return Err(MappingError::InvalidParameterValue {
                name: format!("TagSpecification.{n}.ResourceType"),
                reason: format!("'{rt}' is given in more than one TagSpecification"),
            });
        }
        let mut seen: Vec<&str> = Vec::new();
        for (m, (k, _)) in s.tags.iter().enumerate() {
            if seen.contains(&k.as_str()) {
                return Err(MappingError::InvalidParameterValue {
                    name: format!("TagSpecification.{n}.Tag.{}.Key", m + 1),
                    reason: format!("duplicate tag key '{k}'"),
                });
            }
            seen.push(k);
        }
        out.push((rt, s.tags));
    }
    Ok(out)
}

/// EC2 id prefixes (before the `-` that starts the hex part) and the
/// resource type they belong to.
pub(super) const ID_PREFIXES: [(&str, &str); 47] = [
    ("acl", "network-acl"),
    ("afi", "fpga-image"),
    ("aki", "image"),
    ("ami", "image"),
    ("ari", "image"),
    ("cagw", "carrier-gateway"),
    ("cgw", "customer-gateway"),
    ("cr", "capacity-reservation"),
    ("crf", "capacity-reservation-fleet"),
    ("cvpn-endpoint", "client-vpn-endpoint"),
    ("dopt", "dhcp-options"),
    ("eigw", "egress-only-internet-gateway"),
    ("eipalloc", "elastic-ip"),
    ("eni", "network-interface"),
    ("export-ami", "export-image-task"),
    ("export-i", "export-instance-task"),
    ("fl", "vpc-flow-log"),
    ("fleet", "fleet"),
    ("h", "dedicated-host"),
    ("i", "instance"),
    ("igw", "internet-gateway"),
    ("import-ami", "import-image-task"),
    ("import-snap", "import-snapshot-task"),
    ("ipam", "ipam"),
    ("ipam-pool", "ipam-pool"),
    ("ipam-scope", "ipam-scope"),
    ("key", "key-pair"),
    ("lt", "launch-template"),
    ("nat", "natgateway"),
    ("pcx", "vpc-peering-connection"),
    ("pg", "placement-group"),
    ("pl", "prefix-list"),
    ("rtb", "route-table"),
    ("sfr", "spot-fleet-request"),
    ("sg", "security-group"),
    ("sgr", "security-group-rule"),
    ("sir", "spot-instances-request"),
    ("snap", "snapshot"),
    ("subnet", "subnet"),
    ("tgw", "transit-gateway"),
    ("tgw-attach", "transit-gateway-attachment"),
    ("tgw-rtb", "transit-gateway-route-table"),
    ("vgw", "vpn-gateway"),
    ("vol", "volume"),
    ("vpc", "vpc"),
    ("vpce", "vpc-endpoint"),
    ("vpce-svc", "vpc-endpoint-service"),
];

/// The catalog resource type an id belongs to, by its prefix: everything
/// before the last `-` (`tgw-attach-0abc` is a transit gateway attachment,
/// `tgw-0abc` a transit gateway; a prefix not listed, such as
/// `ipam-res-disco`, tells nothing). Fleet ids end in a UUID.
pub fn resource_type_of_id(id: &str) -> Option<&'static str> {
    let prefix = match id.rsplit_once('-') {
        Some((p, body)) if !p.is_empty() && !body.is_empty() => p,
        _ => return None,
    };
    let prefix = if id.starts_with("fleet-") {
        "fleet"
    } else {
        prefix
    };
    ID_PREFIXES
        .iter()
        .find(|(p, _)| *p == prefix)
        .map(|(_, rt)| *rt)
        .filter(|rt| catalog::resource_type(rt).is_some())
}

/// Every list in the request is numbered from 1 without gaps (each list
/// prefix, nested ones included: `NetworkInterface.2.SecurityGroupId.1`
/// has the lists `NetworkInterface` and `NetworkInterface.2.SecurityGroupId`).
/// One pass over the parameters, so a long list costs linear time.
pub(super) fn check_lists(params: &QueryParams) -> Result<(), MappingError> {
    // Lowercased prefix -> (the prefix as first given, its indexes).
    let mut lists: std::collections::HashMap<String, (String, Vec<u32>)> =
        std::collections::HashMap::new();
    for (name, _) in params.iter() {
        let mut prefix = String::new();
        for seg in name.split('.') {
            if let Ok(n) = seg.parse::<u32>()
                && !prefix.is_empty()
            {
                lists
                    .entry(prefix.to_ascii_lowercase())
                    .or_insert_with(|| (prefix.clone(), Vec::new()))
                    .1
                    .push(n);
            }
            if !prefix.is_empty() {
                prefix.push('.');
            }
            prefix.push_str(seg);
        }
    }
    for (_, (prefix, mut seen)) in lists {
        seen.sort_unstable();
        seen.dedup();
        if let Some(missing) = (1u32..).zip(&seen).find(|(want, got)| want != *got) {
            return Err(MappingError::Query(QueryError::ListGap {
                prefix,
                missing: missing.0,
            }));
        }
    }
    Ok(())
}

/// The parameter to ask for when a call names none of a resource: the
/// least nested one that `wanted` accepts, its first list entry
/// (`SecurityGroupId.1`).
pub(super) fn missing_param(
    table: &ActionParams,
    wanted: impl Fn(&ExistingRef) -> bool,
) -> Option<String> {
    table
        .params
        .iter()
        .filter(|p| matches!(p.role, ParamRole::Existing(r) if wanted(&r)))
        .min_by_key(|p| p.name.matches('.').count())
        .map(|p| p.name.replace(".N", ".1"))
}

/// Whether the inventory records associations like `id` on resources of
/// `kind` (by the association id's prefix): IAM instance profile
/// associations on instances, IPv6 CIDR block associations on subnets,
/// attachments on network interfaces.
pub(super) fn recorded_association(kind: ResourceKind, id: &str) -> bool {
    let prefix = match kind {
        ResourceKind::Instance => "iip-assoc-",
        ResourceKind::Subnet => "subnet-cidr-assoc-",
        ResourceKind::NetworkInterface => "eni-attach-",
        _ => return false,
    };
    id.strip_prefix(prefix).is_some_and(|rest| !rest.is_empty())
}

/// What makes two targets the same resource: type, id, region, ARN.
pub(super) type ResourceKey = (&'static str, Option<String>, Option<String>, Option<String>);

pub(super) fn resource_key(t: &Target<'_>) -> ResourceKey {
    (
        t.resource_type,
        t.id.clone(),
        t.region.clone(),
        t.arn.clone(),
    )
}

/// EC2 takes a resource by one name at a time: `GroupId` or `GroupName`,
/// `KeyName` or `KeyPairId`, `LaunchTemplateId` or `LaunchTemplateName`.
pub(super) fn check_combination(
    scalars: &[(&'static str, ExistingRef)],
) -> Result<(), MappingError> {
    for (i, (a, ra)) in scalars.iter().enumerate() {
        for (b, rb) in scalars.iter().skip(i + 1) {
            if ra.resource_types == rb.resource_types && ra.by != rb.by {
                return Err(MappingError::InvalidParameterCombination(format!(
                    "{a} and {b} cannot both be given"
                )));
            }
        }
    }
    Ok(())
}

/// A Region name the request gives (`SourceRegion`): `us-east-1`,
/// `us-gov-west-1`, ... ([`Region`]'s rule). It goes into an ARN, so
/// nothing else is accepted.
pub(super) fn check_region(param: &str, v: &str) -> Result<Region, MappingError> {
    Region::parse(v).map_err(|_| MappingError::InvalidParameterValue {
        name: param.to_owned(),
        reason: format!("'{v}' is not a Region name"),
    })
}

/// An account id the request gives (`PeerOwnerId`, `UserId`):
/// [`AccountId`]'s rule.
pub(super) fn check_account(param: &str, v: &str) -> Result<AccountId, MappingError> {
    AccountId::parse(v).map_err(|_| MappingError::InvalidParameterValue {
        name: param.to_owned(),
        reason: format!("'{v}' is not a 12-digit account id"),
    })
}

/// A name to look up (matched exactly; never put into an ARN).
pub(super) fn check_name(param: &str, v: &str) -> Result<(), MappingError> {
    if v.is_empty() || v.len() > 255 || v.chars().any(char::is_control) {
        return Err(MappingError::InvalidParameterValue {
            name: param.to_owned(),
            reason: format!("'{v}' is not a valid name"),
        });
    }
    Ok(())
}

/// An id to look up whose prefix is its own (an association id).
pub(super) fn check_chars(param: &str, v: &str) -> Result<(), MappingError> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(MappingError::InvalidParameterValue {
            name: param.to_owned(),
            reason: format!("'{v}' is not a valid id"),
        });
    }
    Ok(())
}

/// An ARN the request gives: no wildcards, which would match more than the
/// one resource in a policy's eyes.
pub(super) fn check_arn(param: &str, v: &str) -> Result<(), MappingError> {
    if !v.starts_with("arn:")
        || v.len() > 2048
        || v.chars()
            .any(|c| matches!(c, '*' | '?') || c.is_whitespace() || c.is_control())
    {
        return Err(MappingError::InvalidParameterValue {
            name: param.to_owned(),
            reason: format!("'{v}' is not a valid ARN"),
        });
    }
    Ok(())
}

/// Checks an id's shape: no characters that could change the ARN's meaning,
/// and the type's id prefix when the type has one.
pub(super) fn check_id(resource_type: &str, param: &str, id: &str) -> Result<(), MappingError> {
    let bad = |reason: String| MappingError::InvalidParameterValue {
        name: param.to_owned(),
        reason,
    };
    if id.is_empty() {
        return Err(bad("empty".into()));
    }
    if resource_type == "key-pair" || resource_type == "placement-group" {
        // Names: any printable text, but never ARN wildcards or separators.
        if id.len() > 255 || id.chars().any(|c| matches!(c, '*' | '?' | ':' | '/')) {
            return Err(bad(format!("'{id}' is not a valid name")));
        }
        return Ok(());
    }
    if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(bad(format!("'{id}' is not a valid id")));
    }
    if let Some(expected) = resource_type_of_id(id).map(|rt| rt == resource_type) {
        if !expected {
            return Err(bad(format!("'{id}' is not a {resource_type} id")));
        }
    } else if matches!(
        resource_type,
        "instance"
            | "image"
            | "snapshot"
            | "volume"
            | "security-group"
            | "network-interface"
            | "subnet"
            | "vpc"
    ) {
        return Err(bad(format!("'{id}' is not a {resource_type} id")));
    }
    Ok(())
}

/// Keys derived from an id alone (known even for resources the inventory
/// lacks).
pub(super) fn id_keys(resource_type: &str, id: &str) -> Vec<(&'static str, String)> {
    let key = match resource_type {
        "instance" => keys::EC2_INSTANCE_ID,
        "image" => keys::EC2_IMAGE_ID,
        "snapshot" => keys::EC2_SNAPSHOT_ID,
        "volume" => keys::EC2_VOLUME_ID,
        "security-group" => keys::EC2_SECURITY_GROUP_ID,
        "subnet" => keys::EC2_SUBNET_ID,
        "network-interface" => keys::EC2_NETWORK_INTERFACE_ID,
        "vpc" => keys::EC2_VPC_ID,
        "key-pair" => keys::EC2_KEY_PAIR_NAME,
        "elastic-ip" => keys::EC2_ALLOCATION_ID,
        "placement-group" => keys::EC2_PLACEMENT_GROUP_NAME,
        _ => return Vec::new(),
    };
    let mut out = vec![(key, id.to_owned())];
    if resource_type == "image"
        && let Some(t) = image_type(id)
    {
        out.push((keys::EC2_IMAGE_TYPE, t.to_owned()));
    }
    out
}

/// `ec2:ImageType` from the id prefix.
pub(super) fn image_type(id: &str) -> Option<&'static str> {
    match id.split_once('-')?.0 {
        "ami" => Some("machine"),
        "aki" => Some("kernel"),
        "ari" => Some("ramdisk"),
        _ => None,
    }
}

/// `ec2:Owner`: `amazon` / `aws-marketplace` for those owners, else the
/// account id.
pub(super) fn owner_value(r: &Resource) -> String {
    let alias = match &r.attributes {
        Attributes::Image(a) => a.owner_alias.as_deref(),
        _ => None,
    };
    match alias {
        Some(a @ ("amazon" | "aws-marketplace")) => a.to_owned(),
        _ => r.account.clone(),
    }
}

pub(super) fn opt(one: &mut impl FnMut(&str, String), key: &str, v: Option<String>) {
    if let Some(v) = v {
        one(key, v);
    }
}

pub(super) fn one(v: impl Into<String>) -> ContextValue {
    ContextValue::One(v.into())
}

/// One value as `One`, several as `Many`, none as `None`.
pub(super) fn many(mut v: Vec<String>) -> Option<ContextValue> {
    match v.len() {
        0 => None,
        1 => v.pop().map(ContextValue::One),
        _ => Some(ContextValue::Many(v)),
    }
}

pub(super) fn parse_bool(name: &str, v: &str) -> Result<bool, MappingError> {
    if v.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(MappingError::InvalidParameterValue {
            name: name.to_owned(),
            reason: format!("'{v}' is not a boolean (true or false)"),
        })
    }
}

pub(super) fn parse_number(name: &str, v: &str) -> Result<u64, MappingError> {
    v.parse::<u64>()
        .ok()
        .filter(|_| !v.starts_with('+'))
        .ok_or_else(|| MappingError::InvalidParameterValue {
            name: name.to_owned(),
            reason: format!("'{v}' is not a non-negative integer"),
        })
}

pub(super) fn account_grant(name: &str, v: &str) -> Result<Grant, MappingError> {
    Ok(Grant::Account(check_account(name, v)?.into()))
}

pub(super) fn group_grant(name: &str, v: &str) -> Result<Grant, MappingError> {
    if v == "all" {
        Ok(Grant::All)
    } else {
        Err(MappingError::InvalidParameterValue {
            name: name.to_owned(),
            reason: format!("'{v}' is not a valid group: the only group is 'all'"),
        })
    }
}

pub(super) fn org_grant(name: &str, v: &str, ou: bool) -> Result<Grant, MappingError> {
    let shape = if ou { ":ou/o-" } else { ":organization/o-" };
    let ok = v.starts_with("arn:")
        && v.split(':').nth(2) == Some("organizations")
        && v.contains(shape)
        && !v.contains(['*', '?']);
    if !ok {
        return Err(MappingError::InvalidParameterValue {
            name: name.to_owned(),
            reason: format!(
                "'{v}' is not an {} ARN",
                if ou {
                    "organizational unit"
                } else {
                    "organization"
                }
            ),
        });
    }
    Ok(if ou {
        Grant::OrganizationalUnit(v.to_owned())
    } else {
        Grant::Organization(v.to_owned())
    })
}
