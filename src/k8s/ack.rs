//! The ACK EC2 controller's kinds (`ec2.services.k8s.aws/v1alpha1`): which
//! EC2 Query API calls a CREATE, UPDATE or DELETE of an object makes the
//! controller send, with the parameters built from the object's spec, so
//! that the one EC2 mapping ([`crate::ec2::mapping`]) turns them into IAM
//! authorizations exactly as it does for the Query API. Field names follow
//! the controller's CRDs (`config/crd/bases/` of
//! aws-controllers-k8s/ec2-controller): `imageID` → `ImageId`,
//! `securityGroupIDs[i]` → `SecurityGroupId.N`, `blockDeviceMappings[i].ebs`
//! → `BlockDeviceMapping.N.Ebs.*`, `tags` (+ the controller's own resource
//! tags) → `TagSpecification.1`.
//!
//! Fail closed: a reference to another Kubernetes object (`subnetRef`,
//! `vpcRef`, ...) is refused, since iamgate cannot see which resource the
//! controller will resolve it to; an UPDATE of a spec field the controller
//! applies with a call iamgate does not map is refused (attribute changes
//! become `ModifyInstanceAttribute` / `ModifySubnetAttribute` /
//! `ModifyVpcAttribute`, one call per attribute as EC2 takes them); calls
//! the controller makes after a create (rules of a new security group, VPC
//! attributes) are named in warnings. Pure: JSON in, Query parameters out.

use std::collections::BTreeMap;

use serde_json::Value;

/// The API group of the ACK EC2 controller.
pub const GROUP: &str = "ec2.services.k8s.aws";
/// The annotation naming an object's region.
pub const REGION_ANNOTATION: &str = "services.k8s.aws/region";
/// The annotation naming the account that owns an object's resource.
pub const ACCOUNT_ANNOTATION: &str = "services.k8s.aws/owner-account-id";
/// `retain`: deleting the object leaves the AWS resource alone.
pub const DELETION_POLICY_ANNOTATION: &str = "services.k8s.aws/deletion-policy";

/// The ACK EC2 kinds iamgate maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckKind {
    Instance,
    SecurityGroup,
    Subnet,
    Vpc,
}

impl AckKind {
    /// Every mapped kind.
    pub const ALL: [AckKind; 4] = [
        AckKind::Instance,
        AckKind::SecurityGroup,
        AckKind::Subnet,
        AckKind::Vpc,
    ];

    /// The kind of a `group`/`kind` pair.
    pub fn of_kind(group: &str, kind: &str) -> Option<Self> {
        (group == GROUP)
            .then(|| Self::ALL.into_iter().find(|k| k.kind() == kind))
            .flatten()
    }

    /// The kind of a `group`/`resource` (plural) pair.
    pub fn of_resource(group: &str, resource: &str) -> Option<Self> {
        (group == GROUP)
            .then(|| Self::ALL.into_iter().find(|k| k.plural() == resource))
            .flatten()
    }

    /// The CRD's `kind`.
    pub fn kind(self) -> &'static str {
        match self {
            AckKind::Instance => "Instance",
            AckKind::SecurityGroup => "SecurityGroup",
            AckKind::Subnet => "Subnet",
            AckKind::Vpc => "VPC",
        }
    }

    /// The CRD's plural resource name.
    pub fn plural(self) -> &'static str {
        match self {
            AckKind::Instance => "instances",
            AckKind::SecurityGroup => "securitygroups",
            AckKind::Subnet => "subnets",
            AckKind::Vpc => "vpcs",
        }
    }

    /// The EC2 resource type (in ARNs and `TagSpecification`).
    pub fn resource_type(self) -> &'static str {
        match self {
            AckKind::Instance => "instance",
            AckKind::SecurityGroup => "security-group",
            AckKind::Subnet => "subnet",
            AckKind::Vpc => "vpc",
        }
    }

    /// The `status` field holding the resource's id once created.
    pub fn status_id(self) -> &'static str {
        match self {
            AckKind::Instance => "instanceID",
            AckKind::SecurityGroup => "id",
            AckKind::Subnet => "subnetID",
            AckKind::Vpc => "vpcID",
        }
    }

    /// The call that creates the resource.
    pub fn create_action(self) -> &'static str {
        match self {
            AckKind::Instance => "RunInstances",
            AckKind::SecurityGroup => "CreateSecurityGroup",
            AckKind::Subnet => "CreateSubnet",
            AckKind::Vpc => "CreateVpc",
        }
    }

    /// The call that deletes it, and its id parameter.
    pub fn delete_call(self) -> (&'static str, &'static str) {
        match self {
            AckKind::Instance => ("TerminateInstances", "InstanceId.1"),
            AckKind::SecurityGroup => ("DeleteSecurityGroup", "GroupId"),
            AckKind::Subnet => ("DeleteSubnet", "SubnetId"),
            AckKind::Vpc => ("DeleteVpc", "VpcId"),
        }
    }

    /// The call the controller reads the resource with.
    pub fn describe_action(self) -> &'static str {
        match self {
            AckKind::Instance => "DescribeInstances",
            AckKind::SecurityGroup => "DescribeSecurityGroups",
            AckKind::Subnet => "DescribeSubnets",
            AckKind::Vpc => "DescribeVpcs",
        }
    }

    /// The calls an update may make.
    pub fn update_actions(self) -> &'static [&'static str] {
        match self {
            AckKind::Instance => &["ModifyInstanceAttribute", "CreateTags", "DeleteTags"],
            AckKind::SecurityGroup => &[
                "AuthorizeSecurityGroupIngress",
                "AuthorizeSecurityGroupEgress",
                "RevokeSecurityGroupIngress",
                "RevokeSecurityGroupEgress",
                "CreateTags",
                "DeleteTags",
            ],
            AckKind::Subnet => &["ModifySubnetAttribute", "CreateTags", "DeleteTags"],
            AckKind::Vpc => &["ModifyVpcAttribute", "CreateTags", "DeleteTags"],
        }
    }

    /// The EC2 actions a SubjectAccessReview verb on this kind stands for
    /// (empty: no EC2 call, e.g. a subresource or `impersonate`).
    pub fn verb_actions(self, verb: &str, subresource: &str) -> Vec<&'static str> {
        if !subresource.is_empty() {
            return Vec::new();
        }
        match verb {
            "create" => vec![self.create_action()],
            "delete" | "deletecollection" => vec![self.delete_call().0],
            "get" | "list" | "watch" => vec![self.describe_action()],
            "update" | "patch" => self.update_actions().to_vec(),
            _ => Vec::new(),
        }
    }
}

/// Why an object could not be mapped: the object's doing (a 400-style
/// refusal), never an allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    #[error("`{path}`: {message}")]
    Field { path: String, message: String },
    #[error(
        "`{0}` refers to another Kubernetes object, which iamgate cannot see: give the resource id instead"
    )]
    Reference(String),
    #[error(
        "`{path}` of {kind} changed: iamgate does not map the EC2 call that applies it, so the update is refused"
    )]
    UnsupportedUpdate { path: String, kind: &'static str },
    #[error("the request carries no `{0}`")]
    MissingObject(&'static str),
    #[error("unsupported operation `{0}`")]
    Operation(String),
}

/// One EC2 Query API call the controller will make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ec2Intent {
    /// `Action=...` and the call's parameters.
    pub params: Vec<(String, String)>,
}

impl Ec2Intent {
    fn new(action: &str) -> Self {
        Self {
            params: vec![("Action".into(), action.into())],
        }
    }

    fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.params.push((name.into(), value.into()));
    }

    /// The `Action`.
    pub fn action(&self) -> &str {
        self.params.first().map_or("", |(_, v)| v.as_str())
    }
}

/// What an admission request needs from EC2.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Every call; all must be authorized.
    pub calls: Vec<Ec2Intent>,
    /// Calls the controller also makes that are not authorized here.
    pub warnings: Vec<String>,
    /// Why no call is needed (when `calls` is empty).
    pub no_call: Option<String>,
}

/// A resource tag the controller adds to what it creates (its
/// `--resource-tags`): `%K8S_NAMESPACE%` and `%K8S_RESOURCE_NAME%` are
/// expanded; a tag whose value ends up empty is skipped, as ACK does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerTag {
    pub key: String,
    pub value: String,
}

impl std::str::FromStr for ControllerTag {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| format!("expected KEY=VALUE, got `{s}`"))?;
        if key.trim().is_empty() {
            return Err(format!("empty tag key in `{s}`"));
        }
        Ok(Self {
            key: key.trim().to_owned(),
            value: value.trim().to_owned(),
        })
    }
}

/// An object's `metadata.annotations[name]`.
pub fn annotation<'v>(object: &'v Value, name: &str) -> Option<&'v str> {
    object
        .get("metadata")?
        .get("annotations")?
        .get(name)?
        .as_str()
        .filter(|s| !s.is_empty())
}

/// Plans an admission request on an ACK EC2 object.
pub fn plan(
    kind: AckKind,
    operation: &str,
    object: Option<&Value>,
    old_object: Option<&Value>,
    controller_tags: &[ControllerTag],
) -> Result<Plan, AckError> {
    match operation {
        "CREATE" => create(
            kind,
            object.ok_or(AckError::MissingObject("object"))?,
            controller_tags,
        ),
        "UPDATE" => update(
            kind,
            object.ok_or(AckError::MissingObject("object"))?,
            old_object.ok_or(AckError::MissingObject("oldObject"))?,
            controller_tags,
        ),
        "DELETE" => delete(
            kind,
            old_object.ok_or(AckError::MissingObject("oldObject"))?,
        ),
        other => Err(AckError::Operation(other.to_owned())),
    }
}

fn spec_of(object: &Value) -> Result<&serde_json::Map<String, Value>, AckError> {
    match object.get("spec") {
        Some(Value::Object(m)) => Ok(m),
        None | Some(Value::Null) => Err(AckError::Field {
            path: "spec".into(),
            message: "missing".into(),
        }),
        Some(_) => Err(AckError::Field {
            path: "spec".into(),
            message: "not an object".into(),
        }),
    }
}

fn resource_id(kind: AckKind, object: &Value) -> Option<&str> {
    object
        .get("status")?
        .get(kind.status_id())?
        .as_str()
        .filter(|s| !s.is_empty())
}

fn meta<'v>(object: &'v Value, field: &str) -> &'v str {
    object
        .get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The tags the created resource gets: the spec's, then the controller's
/// for keys the spec does not set.
fn desired_tags(
    object: &Value,
    controller_tags: &[ControllerTag],
) -> Result<BTreeMap<String, String>, AckError> {
    let mut tags = BTreeMap::new();
    if let Some(list) = object.get("spec").and_then(|s| s.get("tags")) {
        let list = list.as_array().ok_or_else(|| AckError::Field {
            path: "spec.tags".into(),
            message: "not a list".into(),
        })?;
        for (i, t) in list.iter().enumerate() {
            let key = t
                .get("key")
                .and_then(Value::as_str)
                .ok_or_else(|| AckError::Field {
                    path: format!("spec.tags[{i}].key"),
                    message: "missing or not a string".into(),
                })?;
            let value = t.get("value").and_then(Value::as_str).unwrap_or_default();
            tags.insert(key.to_owned(), value.to_owned());
        }
    }
    let (namespace, name) = (meta(object, "namespace"), meta(object, "name"));
    for t in controller_tags {
        let value = t
            .value
            .replace("%K8S_NAMESPACE%", namespace)
            .replace("%K8S_RESOURCE_NAME%", name);
        if !value.is_empty() && !tags.contains_key(&t.key) {
            tags.insert(t.key.clone(), value);
        }
    }
    Ok(tags)
}

fn tag_specification(call: &mut Ec2Intent, resource_type: &str, tags: &BTreeMap<String, String>) {
    if tags.is_empty() {
        return;
    }
    call.push("TagSpecification.1.ResourceType", resource_type);
    for (i, (k, v)) in tags.iter().enumerate() {
        call.push(format!("TagSpecification.1.Tag.{}.Key", i + 1), k.clone());
        call.push(format!("TagSpecification.1.Tag.{}.Value", i + 1), v.clone());
    }
}

/// Spec fields applied by the create call itself, per kind (`None`: all
/// but `tags` and `sourceDestCheckEnabled`, which the controller applies with
/// `ModifyInstanceAttribute`).
fn create_fields(kind: AckKind) -> Option<&'static [&'static str]> {
    match kind {
        AckKind::Instance => None,
        AckKind::SecurityGroup => Some(&["name", "description", "vpcID"]),
        AckKind::Subnet => Some(&[
            "availabilityZone",
            "availabilityZoneID",
            "cidrBlock",
            "ipv6CIDRBlock",
            "ipv6Native",
            "outpostARN",
            "vpcID",
        ]),
        AckKind::Vpc => Some(&[
            "amazonProvidedIPv6CIDRBlock",
            "instanceTenancy",
            "ipv4IPAMPoolID",
            "ipv4NetmaskLength",
            "ipv6CIDRBlock",
            "ipv6CIDRBlockNetworkBorderGroup",
            "ipv6IPAMPoolID",
            "ipv6NetmaskLength",
            "ipv6Pool",
        ]),
    }
}

/// Query names that do not follow from the field name.
fn renamed(kind: AckKind, field: &str) -> Option<&'static str> {
    match (kind, field) {
        (AckKind::SecurityGroup, "name") => Some("GroupName"),
        (AckKind::SecurityGroup, "description") => Some("GroupDescription"),
        _ => None,
    }
}

fn create(
    kind: AckKind,
    object: &Value,
    controller_tags: &[ControllerTag],
) -> Result<Plan, AckError> {
    let spec = spec_of(object)?;
    let mut call = Ec2Intent::new(kind.create_action());
    let mut plan = Plan::default();
    let fields = create_fields(kind);
    for (k, v) in spec {
        if v.is_null() || k == "tags" {
            continue;
        }
        let path = format!("spec.{k}");
        if is_reference(k) {
            return Err(AckError::Reference(path));
        }
        if kind == AckKind::Vpc && k == "cidrBlocks" {
            let blocks = v.as_array().ok_or_else(|| AckError::Field {
                path: path.clone(),
                message: "not a list".into(),
            })?;
            if let Some(first) = blocks.first() {
                call.push("CidrBlock", scalar(first, &format!("{path}[0]"))?);
            }
            if blocks.len() > 1 {
                plan.warnings.push(format!(
                    "{path}[1..]: ec2:AssociateVpcCidrBlock on the new VPC is not authorized by this webhook"
                ));
            }
            continue;
        }
        // `None`: every field but those applied after the create.
        let after_create = match fields {
            Some(f) => !f.contains(&k.as_str()),
            None => kind == AckKind::Instance && k == "sourceDestCheckEnabled",
        };
        if after_create {
            reject_nested_references(v, &path)?;
            plan.warnings.push(format!(
                "{path}: applied by the controller after {} with another EC2 call, not authorized by this webhook",
                kind.create_action()
            ));
            continue;
        }
        match renamed(kind, k) {
            Some(name) => call.push(name, scalar(v, &path)?),
            None => flatten(v, &query_name(k, ""), &path, &mut call.params)?,
        }
    }
    if kind == AckKind::Instance {
        for count in ["MinCount", "MaxCount"] {
            if !call.params.iter().any(|(n, _)| n == count) {
                call.push(count, "1");
            }
        }
    }
    tag_specification(
        &mut call,
        kind.resource_type(),
        &desired_tags(object, controller_tags)?,
    );
    plan.calls.push(call);
    Ok(plan)
}

fn update(
    kind: AckKind,
    object: &Value,
    old: &Value,
    controller_tags: &[ControllerTag],
) -> Result<Plan, AckError> {
    let (new_spec, old_spec) = (spec_of(object)?, spec_of(old)?);
    if new_spec == old_spec {
        return Ok(Plan {
            no_call: Some(
                "the spec is unchanged (status, finalizers, labels or annotations only)".into(),
            ),
            ..Plan::default()
        });
    }
    let Some(id) = resource_id(kind, old).or_else(|| resource_id(kind, object)) else {
        // Not created yet: the controller creates it from the new spec.
        return create(kind, object, controller_tags);
    };
    let mut plan = Plan::default();
    let keys: std::collections::BTreeSet<&String> =
        new_spec.keys().chain(old_spec.keys()).collect();
    for k in keys {
        let (n, o) = (new_spec.get(k), old_spec.get(k));
        if n == o || (n.is_none_or(Value::is_null) && o.is_none_or(Value::is_null)) {
            continue;
        }
        match (kind, k.as_str()) {
            (_, "tags") => {}
            (AckKind::SecurityGroup, "ingressRules" | "egressRules") => {
                let direction = if k == "ingressRules" {
                    "Ingress"
                } else {
                    "Egress"
                };
                let (added, removed) = rule_diff(n, o, &format!("spec.{k}"))?;
                for (verb, rules) in [("Authorize", added), ("Revoke", removed)] {
                    if rules.is_empty() {
                        continue;
                    }
                    let mut call = Ec2Intent::new(&format!("{verb}SecurityGroup{direction}"));
                    call.push("GroupId", id);
                    for (i, (path, rule)) in rules.iter().enumerate() {
                        flatten(
                            rule,
                            &format!("IpPermissions.{}", i + 1),
                            path,
                            &mut call.params,
                        )?;
                    }
                    plan.calls.push(call);
                }
            }
            (_, field) if attribute_call(kind, field).is_some() => {
                let Some(value) = n.filter(|v| !v.is_null()) else {
                    plan.warnings.push(format!(
                        "spec.{field} removed: the controller leaves the attribute as it is"
                    ));
                    continue;
                };
                let Some((action, id_param, params)) = attribute_call(kind, field) else {
                    continue;
                };
                let mut call = Ec2Intent::new(action);
                call.push(id_param, id);
                let value = scalar(value, &format!("spec.{field}"))?;
                for (name, fixed) in params {
                    call.push(*name, fixed.map_or_else(|| value.clone(), str::to_owned));
                }
                plan.calls.push(call);
            }
            _ => {
                return Err(AckError::UnsupportedUpdate {
                    path: format!("spec.{k}"),
                    kind: kind.kind(),
                });
            }
        }
    }
    let (new_tags, old_tags) = (
        desired_tags(object, controller_tags)?,
        desired_tags(old, controller_tags)?,
    );
    let changed: Vec<(&String, &String)> = new_tags
        .iter()
        .filter(|(k, v)| old_tags.get(*k) != Some(*v))
        .collect();
    if !changed.is_empty() {
        let mut call = Ec2Intent::new("CreateTags");
        call.push("ResourceId.1", id);
        for (i, (k, v)) in changed.into_iter().enumerate() {
            call.push(format!("Tag.{}.Key", i + 1), k.clone());
            call.push(format!("Tag.{}.Value", i + 1), v.clone());
        }
        plan.calls.push(call);
    }
    let removed: Vec<&String> = old_tags
        .keys()
        .filter(|k| !new_tags.contains_key(*k))
        .collect();
    if !removed.is_empty() {
        let mut call = Ec2Intent::new("DeleteTags");
        call.push("ResourceId.1", id);
        for (i, k) in removed.into_iter().enumerate() {
            call.push(format!("Tag.{}.Key", i + 1), k.clone());
        }
        plan.calls.push(call);
    }
    if plan.calls.is_empty() {
        plan.no_call = Some("the change needs no EC2 call".into());
    }
    Ok(plan)
}

/// The call that applies a change of an attribute field on an existing
/// resource (EC2 modifies one attribute per call): the action, its id
/// parameter, and the parameters (`None`: the field's value).
#[allow(clippy::type_complexity)]
fn attribute_call(
    kind: AckKind,
    field: &str,
) -> Option<(
    &'static str,
    &'static str,
    &'static [(&'static str, Option<&'static str>)],
)> {
    let (action, id, params): (_, _, &'static [(&'static str, Option<&'static str>)]) =
        match (kind, field) {
            (AckKind::Instance, "sourceDestCheckEnabled") => (
                "ModifyInstanceAttribute",
                "InstanceId",
                &[("SourceDestCheck.Value", None)],
            ),
            (AckKind::Vpc, "enableDNSHostnames") => (
                "ModifyVpcAttribute",
                "VpcId",
                &[("EnableDnsHostnames.Value", None)],
            ),
            (AckKind::Vpc, "enableDNSSupport") => (
                "ModifyVpcAttribute",
                "VpcId",
                &[("EnableDnsSupport.Value", None)],
            ),
            (AckKind::Vpc, "enableNetworkAddressUsageMetrics") => (
                "ModifyVpcAttribute",
                "VpcId",
                &[("EnableNetworkAddressUsageMetrics.Value", None)],
            ),
            (AckKind::Subnet, "assignIPv6AddressOnCreation") => (
                "ModifySubnetAttribute",
                "SubnetId",
                &[("AssignIpv6AddressOnCreation.Value", None)],
            ),
            (AckKind::Subnet, "enableDNS64") => (
                "ModifySubnetAttribute",
                "SubnetId",
                &[("EnableDns64.Value", None)],
            ),
            (AckKind::Subnet, "enableResourceNameDNSAAAARecord") => (
                "ModifySubnetAttribute",
                "SubnetId",
                &[("EnableResourceNameDnsAAAARecordOnLaunch.Value", None)],
            ),
            (AckKind::Subnet, "enableResourceNameDNSARecord") => (
                "ModifySubnetAttribute",
                "SubnetId",
                &[("EnableResourceNameDnsARecordOnLaunch.Value", None)],
            ),
            (AckKind::Subnet, "mapPublicIPOnLaunch") => (
                "ModifySubnetAttribute",
                "SubnetId",
                &[("MapPublicIpOnLaunch.Value", None)],
            ),
            (AckKind::Subnet, "hostnameType") => (
                "ModifySubnetAttribute",
                "SubnetId",
                &[("PrivateDnsHostnameTypeOnLaunch", None)],
            ),
            (AckKind::Subnet, "customerOwnedIPv4Pool") => (
                "ModifySubnetAttribute",
                "SubnetId",
                &[
                    ("CustomerOwnedIpv4Pool", None),
                    ("MapCustomerOwnedIpOnLaunch.Value", Some("true")),
                ],
            ),
            _ => return None,
        };
    Some((action, id, params))
}

/// Rules in `new` and not in `old` (added), and the reverse (removed).
#[allow(clippy::type_complexity)]
fn rule_diff<'v>(
    new: Option<&'v Value>,
    old: Option<&'v Value>,
    path: &str,
) -> Result<(Vec<(String, &'v Value)>, Vec<(String, &'v Value)>), AckError> {
    let list = |v: Option<&'v Value>| -> Result<&'v [Value], AckError> {
        match v {
            None | Some(Value::Null) => Ok(&[]),
            Some(Value::Array(a)) => Ok(a.as_slice()),
            Some(_) => Err(AckError::Field {
                path: path.to_owned(),
                message: "not a list".into(),
            }),
        }
    };
    let (n, o) = (list(new)?, list(old)?);
    let added = n
        .iter()
        .enumerate()
        .filter(|(_, r)| !o.contains(r))
        .map(|(i, r)| (format!("{path}[{i}]"), r))
        .collect();
    let removed = o
        .iter()
        .enumerate()
        .filter(|(_, r)| !n.contains(r))
        .map(|(i, r)| (format!("{path}[{i}] (previous)"), r))
        .collect();
    Ok((added, removed))
}

fn delete(kind: AckKind, old: &Value) -> Result<Plan, AckError> {
    if annotation(old, DELETION_POLICY_ANNOTATION).is_some_and(|p| p.eq_ignore_ascii_case("retain"))
    {
        return Ok(Plan {
            no_call: Some(format!(
                "`{DELETION_POLICY_ANNOTATION}: retain`: the controller leaves the resource in place"
            )),
            ..Plan::default()
        });
    }
    let Some(id) = resource_id(kind, old) else {
        return Ok(Plan {
            no_call: Some(format!(
                "status.{} is empty: no EC2 resource was created",
                kind.status_id()
            )),
            ..Plan::default()
        });
    };
    let (action, param) = kind.delete_call();
    let mut call = Ec2Intent::new(action);
    call.push(param, id);
    Ok(Plan {
        calls: vec![call],
        ..Plan::default()
    })
}

fn is_reference(field: &str) -> bool {
    field.ends_with("Ref") || field.ends_with("Refs")
}

fn reject_nested_references(v: &Value, path: &str) -> Result<(), AckError> {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = format!("{path}.{k}");
                if is_reference(k) && !v.is_null() {
                    return Err(AckError::Reference(p));
                }
                reject_nested_references(v, &p)?;
            }
            Ok(())
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                reject_nested_references(v, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn scalar(v: &Value, path: &str) -> Result<String, AckError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(AckError::Field {
            path: path.to_owned(),
            message: "expected a string, number or boolean".into(),
        }),
    }
}

/// A spec field's Query API name: `kmsKeyID` → `KmsKeyId`,
/// `ipv6CIDRBlock` → `Ipv6CidrBlock`. `parent` is the Query name so far
/// (list members differ inside a network interface).
fn query_name(field: &str, parent: &str) -> String {
    let fixed = match field {
        "ramDiskID" => Some("RamdiskId"),
        "type_" => Some("Type"),
        "securityGroupIDs" => Some("SecurityGroupId"),
        "securityGroups" => Some("SecurityGroup"),
        "blockDeviceMappings" => Some("BlockDeviceMapping"),
        "networkInterfaces" => Some("NetworkInterface"),
        "elasticInferenceAccelerators" => Some("ElasticInferenceAccelerator"),
        "licenseSpecifications" => Some("LicenseSpecification"),
        "ipv4Prefixes" => Some("Ipv4Prefix"),
        "ipv6Prefixes" => Some("Ipv6Prefix"),
        "userIDGroupPairs" => Some("Groups"),
        "ipv6Addresses" if parent.starts_with("NetworkInterface.") => Some("Ipv6Addresses"),
        "ipv6Addresses" => Some("Ipv6Address"),
        _ => None,
    };
    if let Some(f) = fixed {
        return f.to_owned();
    }
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    if let Some(c) = chars.next() {
        out.push(c.to_ascii_uppercase());
    }
    out.push_str(chars.as_str());
    for (acronym, word) in [
        ("CIDR", "Cidr"),
        ("IPAM", "Ipam"),
        ("IPv6", "Ipv6"),
        ("IPv4", "Ipv4"),
        ("IDs", "Ids"),
        ("ID", "Id"),
        ("IP", "Ip"),
        ("API", "Api"),
        ("DNS", "Dns"),
        ("ARN", "Arn"),
        ("GPU", "Gpu"),
    ] {
        out = out.replace(acronym, word);
    }
    out
}

/// Writes `value` as Query parameters under `prefix`.
fn flatten(
    value: &Value,
    prefix: &str,
    path: &str,
    out: &mut Vec<(String, String)>,
) -> Result<(), AckError> {
    match value {
        Value::Null => Ok(()),
        Value::Object(m) => {
            for (k, v) in m {
                let p = format!("{path}.{k}");
                if v.is_null() {
                    continue;
                }
                if is_reference(k) {
                    return Err(AckError::Reference(p));
                }
                flatten(v, &format!("{prefix}.{}", query_name(k, prefix)), &p, out)?;
            }
            Ok(())
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(
                    v,
                    &format!("{prefix}.{}", i + 1),
                    &format!("{path}[{i}]"),
                    out,
                )?;
            }
            Ok(())
        }
        other => {
            out.push((prefix.to_owned(), scalar(other, path)?));
            Ok(())
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(call: &Ec2Intent) -> BTreeMap<&str, &str> {
        call.params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    fn instance() -> Value {
        json!({"apiVersion": "ec2.services.k8s.aws/v1alpha1", "kind": "Instance",
            "metadata": {"name": "web", "namespace": "team-a"},
            "spec": {"imageID": "ami-0abc", "instanceType": "t3.micro", "subnetID": "subnet-1",
              "securityGroupIDs": ["sg-1", "sg-2"], "keyName": "deploy",
              "iamInstanceProfile": {"name": "web"},
              "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"volumeSize": 20, "volumeType": "gp3", "encrypted": true, "kmsKeyID": "k"}}],
              "metadataOptions": {"httpTokens": "required"},
              "tags": [{"key": "team", "value": "a"}]}})
    }

    #[test]
    fn instance_spec_becomes_run_instances() {
        let tags = vec![
            "services.k8s.aws/namespace=%K8S_NAMESPACE%"
                .parse()
                .unwrap(),
            "empty=".parse().unwrap(),
        ];
        let plan = plan(AckKind::Instance, "CREATE", Some(&instance()), None, &tags).unwrap();
        assert_eq!(plan.calls.len(), 1);
        let p = params(&plan.calls[0]);
        assert_eq!(p["Action"], "RunInstances");
        assert_eq!(p["ImageId"], "ami-0abc");
        assert_eq!(p["InstanceType"], "t3.micro");
        assert_eq!(p["SubnetId"], "subnet-1");
        assert_eq!(p["SecurityGroupId.2"], "sg-2");
        assert_eq!(p["KeyName"], "deploy");
        assert_eq!(p["IamInstanceProfile.Name"], "web");
        assert_eq!(p["BlockDeviceMapping.1.Ebs.VolumeSize"], "20");
        assert_eq!(p["BlockDeviceMapping.1.Ebs.Encrypted"], "true");
        assert_eq!(p["BlockDeviceMapping.1.Ebs.KmsKeyId"], "k");
        assert_eq!(p["MetadataOptions.HttpTokens"], "required");
        assert_eq!(p["MinCount"], "1");
        assert_eq!(p["TagSpecification.1.ResourceType"], "instance");
        // Sorted by key: the controller's namespace tag, then the spec's.
        assert_eq!(
            p["TagSpecification.1.Tag.1.Key"],
            "services.k8s.aws/namespace"
        );
        assert_eq!(p["TagSpecification.1.Tag.1.Value"], "team-a");
        assert_eq!(p["TagSpecification.1.Tag.2.Key"], "team");
        assert!(!p.values().any(|v| *v == "empty"));
    }

    #[test]
    fn references_are_refused() {
        let mut o = instance();
        o["spec"]["subnetRef"] = json!({"from": {"name": "s"}});
        assert!(matches!(
            plan(AckKind::Instance, "CREATE", Some(&o), None, &[]),
            Err(AckError::Reference(p)) if p == "spec.subnetRef"
        ));
    }

    #[test]
    fn updates_map_to_tag_and_rule_calls() {
        let mut old = instance();
        old["status"] = json!({"instanceID": "i-0123456789abcdef0"});
        let mut new = old.clone();
        new["metadata"]["labels"] = json!({"x": "y"});
        let p = plan(AckKind::Instance, "UPDATE", Some(&new), Some(&old), &[]).unwrap();
        assert!(p.calls.is_empty() && p.no_call.is_some());
        new["spec"]["tags"] = json!([{"key": "env", "value": "prod"}]);
        let p = plan(AckKind::Instance, "UPDATE", Some(&new), Some(&old), &[]).unwrap();
        let actions: Vec<&str> = p.calls.iter().map(Ec2Intent::action).collect();
        assert_eq!(actions, ["CreateTags", "DeleteTags"]);
        assert_eq!(params(&p.calls[0])["ResourceId.1"], "i-0123456789abcdef0");
        assert_eq!(params(&p.calls[1])["Tag.1.Key"], "team");
        new["spec"]["instanceType"] = json!("m5.large");
        assert!(matches!(
            plan(AckKind::Instance, "UPDATE", Some(&new), Some(&old), &[]),
            Err(AckError::UnsupportedUpdate { .. })
        ));

        let old = json!({"spec": {"name": "web", "description": "d", "ingressRules": [
            {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "ipRanges": [{"cidrIP": "10.0.0.0/8"}]}]},
            "status": {"id": "sg-1"}});
        let mut new = old.clone();
        new["spec"]["ingressRules"] = json!([{"ipProtocol": "tcp", "fromPort": 443, "toPort": 443,
            "userIDGroupPairs": [{"groupID": "sg-2"}]}]);
        let p = plan(
            AckKind::SecurityGroup,
            "UPDATE",
            Some(&new),
            Some(&old),
            &[],
        )
        .unwrap();
        let a = params(&p.calls[0]);
        assert_eq!(a["Action"], "AuthorizeSecurityGroupIngress");
        assert_eq!(a["GroupId"], "sg-1");
        assert_eq!(a["IpPermissions.1.Groups.1.GroupId"], "sg-2");
        let r = params(&p.calls[1]);
        assert_eq!(r["Action"], "RevokeSecurityGroupIngress");
        assert_eq!(r["IpPermissions.1.IpRanges.1.CidrIp"], "10.0.0.0/8");
    }

    #[test]
    fn attribute_updates_are_one_modify_call_each() {
        let old = json!({"spec": {"vpcID": "vpc-1", "cidrBlock": "10.0.1.0/24", "mapPublicIPOnLaunch": false},
            "status": {"subnetID": "subnet-1"}});
        let mut new = old.clone();
        new["spec"]["mapPublicIPOnLaunch"] = json!(true);
        new["spec"]["enableDNS64"] = json!(true);
        let p = plan(AckKind::Subnet, "UPDATE", Some(&new), Some(&old), &[]).unwrap();
        let calls: Vec<BTreeMap<&str, &str>> = p.calls.iter().map(params).collect();
        assert_eq!(calls.len(), 2);
        assert!(
            calls
                .iter()
                .all(|c| c["Action"] == "ModifySubnetAttribute" && c["SubnetId"] == "subnet-1")
        );
        assert!(
            calls
                .iter()
                .any(|c| c.get("MapPublicIpOnLaunch.Value") == Some(&"true"))
        );
        assert!(
            calls
                .iter()
                .any(|c| c.get("EnableDns64.Value") == Some(&"true"))
        );
        // Every attribute call names only parameters its action has.
        for kind in AckKind::ALL {
            for field in [
                "sourceDestCheckEnabled",
                "enableDNSHostnames",
                "enableDNSSupport",
                "enableNetworkAddressUsageMetrics",
                "assignIPv6AddressOnCreation",
                "enableDNS64",
                "enableResourceNameDNSAAAARecord",
                "enableResourceNameDNSARecord",
                "mapPublicIPOnLaunch",
                "hostnameType",
                "customerOwnedIPv4Pool",
            ] {
                if let Some((action, id, names)) = attribute_call(kind, field) {
                    let table = crate::ec2::catalog::action_params(action).unwrap();
                    for n in std::iter::once(id).chain(names.iter().map(|(n, _)| *n)) {
                        assert!(table.params.iter().any(|p| p.name == n), "{action} {n}");
                    }
                }
            }
        }
    }

    #[test]
    fn deletes_need_the_created_resource() {
        let old = json!({"metadata": {}, "spec": {"cidrBlocks": ["10.0.0.0/16"]}, "status": {"vpcID": "vpc-1"}});
        let p = plan(AckKind::Vpc, "DELETE", None, Some(&old), &[]).unwrap();
        assert_eq!(params(&p.calls[0])["VpcId"], "vpc-1");
        let never = json!({"spec": {}});
        assert!(
            plan(AckKind::Vpc, "DELETE", None, Some(&never), &[])
                .unwrap()
                .calls
                .is_empty()
        );
        let retained = json!({"metadata": {"annotations": {DELETION_POLICY_ANNOTATION: "retain"}},
            "spec": {}, "status": {"vpcID": "vpc-1"}});
        assert!(
            plan(AckKind::Vpc, "DELETE", None, Some(&retained), &[])
                .unwrap()
                .calls
                .is_empty()
        );
    }

    #[test]
    fn other_kinds_create() {
        let sg = json!({"spec": {"name": "web", "description": "web tier", "vpcID": "vpc-1",
            "ingressRules": [{"ipProtocol": "tcp"}]}});
        let p = plan(AckKind::SecurityGroup, "CREATE", Some(&sg), None, &[]).unwrap();
        let a = params(&p.calls[0]);
        assert_eq!(
            (a["GroupName"], a["GroupDescription"], a["VpcId"]),
            ("web", "web tier", "vpc-1")
        );
        assert_eq!(p.warnings.len(), 1);
        let vpc = json!({"spec": {"cidrBlocks": ["10.0.0.0/16"], "enableDNSSupport": true, "amazonProvidedIPv6CIDRBlock": true}});
        let p = plan(AckKind::Vpc, "CREATE", Some(&vpc), None, &[]).unwrap();
        let a = params(&p.calls[0]);
        assert_eq!(a["CidrBlock"], "10.0.0.0/16");
        assert_eq!(a["AmazonProvidedIpv6CidrBlock"], "true");
        let subnet = json!({"spec": {"vpcID": "vpc-1", "cidrBlock": "10.0.1.0/24", "availabilityZone": "us-east-1a"}});
        let a = plan(AckKind::Subnet, "CREATE", Some(&subnet), None, &[]).unwrap();
        assert_eq!(params(&a.calls[0])["AvailabilityZone"], "us-east-1a");
        assert_eq!(AckKind::of_resource(GROUP, "vpcs"), Some(AckKind::Vpc));
        assert_eq!(
            AckKind::Instance.verb_actions("delete", ""),
            ["TerminateInstances"]
        );
        assert!(
            AckKind::Instance
                .verb_actions("update", "status")
                .is_empty()
        );
    }

    /// A sample value for every leaf of a CRD's `openAPIV3Schema` (lists get
    /// one item); references (`*Ref`, `*Refs`) are left out.
    fn sample(schema: &yaml_serde::Value) -> Option<Value> {
        let ty = schema
            .get("type")
            .and_then(yaml_serde::Value::as_str)
            .unwrap_or("object");
        Some(match ty {
            "string" => json!("x-1"),
            "integer" => json!(1),
            "boolean" => json!(true),
            "array" => json!([sample(schema.get("items")?)?]),
            _ => {
                let mut m = serde_json::Map::new();
                if let Some(yaml_serde::Value::Mapping(props)) = schema.get("properties") {
                    for (k, v) in props {
                        let k = k.as_str()?;
                        if !is_reference(k)
                            && let Some(v) = sample(v)
                        {
                            m.insert(k.to_owned(), v);
                        }
                    }
                }
                Value::Object(m)
            }
        })
    }

    fn crd_spec(file: &str) -> Value {
        let path = format!("{}/tests/e2e/k8s/crds/{file}", env!("CARGO_MANIFEST_DIR"));
        let doc: yaml_serde::Value =
            yaml_serde::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let schema = &doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        sample(schema).unwrap()
    }

    /// Whether `name` fits a catalog parameter pattern (`N` is an index).
    fn fits(pattern: &str, name: &str) -> bool {
        let (p, n): (Vec<&str>, Vec<&str>) =
            (pattern.split('.').collect(), name.split('.').collect());
        p.len() == n.len()
            && p.iter().zip(&n).all(|(p, n)| {
                if *p == "N" {
                    n.bytes().all(|b| b.is_ascii_digit())
                } else {
                    p == n
                }
            })
    }

    /// Every field of every mapped kind's CRD (with a value) becomes a
    /// parameter botocore's EC2 model gives the create call, or a warning:
    /// the naming rules are checked against the CRDs themselves.
    #[test]
    fn every_crd_field_maps_to_a_parameter_of_the_call() {
        for (kind, file) in [
            (AckKind::Instance, "ec2.services.k8s.aws_instances.yaml"),
            (
                AckKind::SecurityGroup,
                "ec2.services.k8s.aws_securitygroups.yaml",
            ),
            (AckKind::Subnet, "ec2.services.k8s.aws_subnets.yaml"),
            (AckKind::Vpc, "ec2.services.k8s.aws_vpcs.yaml"),
        ] {
            let object =
                json!({"metadata": {"name": "n", "namespace": "ns"}, "spec": crd_spec(file)});
            let plan = plan(kind, "CREATE", Some(&object), None, &[]).unwrap();
            let table = crate::ec2::catalog::action_params(kind.create_action()).unwrap();
            let unknown: Vec<&str> = plan.calls[0]
                .params
                .iter()
                .map(|(n, _)| n.as_str())
                .filter(|n| *n != "Action" && !table.params.iter().any(|p| fits(p.name, n)))
                .collect();
            assert!(unknown.is_empty(), "{}: {unknown:?}", kind.kind());
        }
    }

    /// The plan goes through the EC2 mapping as a Query API call would.
    #[test]
    fn instance_plans_go_through_the_ec2_mapping() {
        use crate::ec2::inventory::Inventory;
        use crate::ec2::mapping::{InstanceProfile, map_call_with};
        use crate::ec2::query::QueryParams;
        let (acct, region) = ("111111111111", "us-east-1");
        let mut inv = Inventory::new();
        for doc in [
            json!({"Images": [{"ImageId": "ami-0123456789abcdef0", "OwnerId": acct, "Public": false}]}),
            json!({"Subnets": [{"SubnetId": "subnet-0123456789abcdef0", "VpcId": "vpc-0123456789abcdef0",
                "AvailabilityZone": "us-east-1a", "OwnerId": acct}]}),
            json!({"SecurityGroups": [{"GroupId": "sg-0123456789abcdef0", "GroupName": "web",
                "VpcId": "vpc-0123456789abcdef0", "OwnerId": acct}]}),
            json!({"KeyPairs": [{"KeyPairId": "key-0123456789abcdef0", "KeyName": "deploy"}]}),
        ] {
            inv.load_cli_output(&doc, acct, region).unwrap();
        }
        let object = json!({"metadata": {"name": "web", "namespace": "team-a"}, "spec": {
            "imageID": "ami-0123456789abcdef0", "instanceType": "t3.micro",
            "subnetID": "subnet-0123456789abcdef0", "securityGroupIDs": ["sg-0123456789abcdef0"],
            "keyName": "deploy", "iamInstanceProfile": {"name": "app"},
            "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"volumeSize": 20, "volumeType": "gp3"}}],
            "tags": [{"key": "team", "value": "blue"}]}});
        let tags = ["services.k8s.aws/namespace=%K8S_NAMESPACE%"
            .parse()
            .unwrap()];
        let plan = plan(AckKind::Instance, "CREATE", Some(&object), None, &tags).unwrap();
        let params = QueryParams::from_pairs(plan.calls[0].params.clone()).unwrap();
        let profiles = |_: &str, name: &str| {
            (name == "app").then(|| InstanceProfile {
                arn: format!("arn:aws:iam::{acct}:instance-profile/app"),
                role_arns: vec![format!("arn:aws:iam::{acct}:role/app")],
            })
        };
        let call = map_call_with(&params, region, acct, &inv, &profiles).unwrap();
        let pairs: Vec<(String, String)> = call
            .authorizations
            .iter()
            .map(|a| (a.action.clone(), a.resource.clone()))
            .collect();
        for (action, resource) in [
            (
                "ec2:RunInstances",
                format!("arn:aws:ec2:{region}:{acct}:instance/*"),
            ),
            (
                "ec2:RunInstances",
                format!("arn:aws:ec2:{region}::image/ami-0123456789abcdef0"),
            ),
            (
                "ec2:RunInstances",
                format!("arn:aws:ec2:{region}:{acct}:subnet/subnet-0123456789abcdef0"),
            ),
            (
                "ec2:RunInstances",
                format!("arn:aws:ec2:{region}:{acct}:security-group/sg-0123456789abcdef0"),
            ),
            (
                "ec2:RunInstances",
                format!("arn:aws:ec2:{region}:{acct}:key-pair/deploy"),
            ),
            (
                "ec2:RunInstances",
                format!("arn:aws:ec2:{region}:{acct}:volume/*"),
            ),
            (
                "ec2:CreateTags",
                format!("arn:aws:ec2:{region}:{acct}:instance/*"),
            ),
            ("iam:PassRole", format!("arn:aws:iam::{acct}:role/app")),
        ] {
            assert!(
                pairs.contains(&(action.to_owned(), resource.clone())),
                "{action} {resource}: {pairs:?}"
            );
        }
        let instance = call
            .authorizations
            .iter()
            .find(|a| a.action == "ec2:RunInstances" && a.resource.ends_with("instance/*"))
            .unwrap();
        let keys: Vec<(&str, String)> = instance
            .context
            .iter()
            .map(|(k, v)| (k, format!("{v:?}")))
            .collect();
        let text = format!("{keys:?}");
        assert!(text.contains("t3.micro"), "{text}");
        assert!(text.contains("services.k8s.aws/namespace"), "{text}");
    }

    /// Arbitrary JSON (depth-limited), for objects the API server would
    /// never send.
    fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[a-zA-Z0-9./-]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            let key = prop_oneof![
                Just("spec".to_owned()),
                Just("status".to_owned()),
                Just("tags".to_owned()),
                Just("metadata".to_owned()),
                Just("annotations".to_owned()),
                Just("instanceID".to_owned()),
                Just("ingressRules".to_owned()),
                Just("cidrBlocks".to_owned()),
                Just("key".to_owned()),
                Just("subnetRef".to_owned()),
                "[a-zA-Z]{1,6}",
            ];
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(key, inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Whatever the objects hold, planning answers (a plan or a typed
        /// refusal) and never panics.
        #[test]
        fn planning_never_panics(new in any_json(), old in any_json(), k in 0usize..4, op in 0usize..4) {
            let kind = AckKind::ALL[k];
            let op = ["CREATE", "UPDATE", "DELETE", "CONNECT"][op];
            let _ = plan(kind, op, Some(&new), Some(&old), &[]);
            let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": new});
            let _ = crate::k8s::review::parse_admission(review.to_string().as_bytes());
            let review = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": old});
            let _ = crate::k8s::review::parse_access_review(review.to_string().as_bytes());
        }
    }
}
