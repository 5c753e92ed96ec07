//! How one EC2 Query API call maps onto IAM: the `ec2:` action, every
//! resource it must be authorized against (with the resource's ARN, owner
//! and condition keys), the permission-attribute checks cross-account AMIs
//! and snapshots need, and the grant changes `ModifyImageAttribute` /
//! `ModifySnapshotAttribute` make. Pure: parameters, region, caller account
//! and inventory in; an [`Ec2Call`] out. Deciding is the caller's job (the
//! ext_authz glue): every [`Authorization`] must be allowed, every
//! [`PermissionCheck`] must pass, and only then are `grant_updates` applied.
//!
//! ```
//! use iamgate::ec2::inventory::Inventory;
//! use iamgate::ec2::mapping::map_call;
//! use iamgate::ec2::query::QueryParams;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut inventory = Inventory::new();
//! inventory.load_cli_output(
//!     &serde_json::json!({"Reservations": [{"Instances": [{"InstanceId": "i-0abc",
//!         "Tags": [{"Key": "team", "Value": "blue"}]}]}]}),
//!     "111111111111",
//!     "us-east-1",
//! )?;
//! let params = QueryParams::parse(
//!     "/?Action=TerminateInstances&InstanceId.1=i-0abc&DryRun=true",
//!     None,
//! )?;
//! let call = map_call(&params, "us-east-1", "111111111111", &inventory)?;
//! assert_eq!(call.action, "TerminateInstances");
//! assert!(call.dry_run);
//! for a in &call.authorizations {
//!     // Ask the snapshot: a.action ("ec2:TerminateInstances"), a.resource
//!     // ("arn:aws:ec2:us-east-1:111111111111:instance/i-0abc"), a.context
//!     // (merged with the request's global keys), a.resource_account.
//!     assert_eq!(a.action, "ec2:TerminateInstances");
//! }
//! // Then: every call.permission_checks[i].permits(caller, membership),
//! // and on allow (not DryRun) apply call.grant_updates to the inventory.
//! # Ok(()) }
//! ```
//!
//! # Resources
//! Resource types, ARN formats and the condition keys each (action,
//! resource type) pair supports come from [`super::catalog`]; so do the
//! Query API parameters of every action that has resource types, each with
//! its role ([`catalog::ParamRole`], generated from botocore's EC2 model).
//! The region is the caller's (passed in); new resources (`instance/*`) are
//! the caller's. Images and snapshots carry no account in their ARN: their
//! owner goes into [`Authorization::resource_account`].
//!
//! Every parameter of such an action is resolved before anything else
//! (the request is never authorized against a stand-in for a resource it
//! names):
//! - a parameter the action does not have is refused (`UnknownParameter`):
//!   a backend might read it as a resource;
//! - a parameter that identifies an existing resource resolves through the
//!   inventory to that resource (its ARN, owner and tags): by id, by name
//!   (`GroupName`, `LaunchTemplateName`), by an id the ARN does not use
//!   (`KeyPairId`), by an association id (`DisassociateIamInstanceProfile`),
//!   in the region it names (a copy's `SourceRegion`). A resource of a kind
//!   the inventory tracks that it does not hold there is EC2's `*.NotFound`
//!   (`*.Malformed` when the id is not canonical, [`super::ids`]; for images
//!   and snapshots another account may share, the owner's permission check,
//!   which an unknown one never passes). A lookup the
//!   inventory cannot make (an Elastic IP by address, an association it
//!   does not record) is refused. A kind it does not track (`vpc`,
//!   `route-table`, ...) is authorized by the ARN its id gives, owned by the
//!   account the request names, else the caller, without tags;
//! - a parameter that names the resource the call creates (`GroupName` of
//!   `CreateSecurityGroup`, `KeyName` of `CreateKeyPair`) is not a lookup.
//!
//! Actions with dedicated mappings: `RunInstances`, `CreateVolume`,
//! `CreateSnapshot`, `CreateTags`, `DeleteTags`, `DetachVolume`,
//! `ModifyImageAttribute`, `ModifySnapshotAttribute`. Every other action is
//! mapped generically: for each of its resource types, every resolved
//! resource of the type, and the new one (`type/*`, with the request's
//! tags) when the call creates the type (its row accepts request tags) and
//! the type is required or tagged on creation. A required type the call
//! neither names nor creates is refused (`MissingParameter` when a
//! parameter could name it, else unsupported: the backend derives it and
//! iamgate cannot tell which it is), except the instance a named volume or
//! interface is attached to. Whatever a dedicated mapping reads, every
//! resolved resource is authorized. Only an action without resource types
//! is authorized against `*`.
//!
//! Tag-on-create: each `TagSpecification` also needs `ec2:CreateTags` on
//! the new resource, with `ec2:CreateAction` set to the creating action, as
//! EC2 does.
//!
//! Passing a role: `RunInstances`, `AssociateIamInstanceProfile` and
//! `ReplaceIamInstanceProfileAssociation` with `IamInstanceProfile.Arn` or
//! `.Name` also need `iam:PassRole` on the profile's role, with
//! `iam:PassedToService` = `ec2.amazonaws.com` (EC2 User Guide, "Grant
//! permissions to attach an IAM role to an instance"; IAM User Guide, "Grant
//! a user permissions to pass a role to an AWS service"). Profiles come from
//! the caller's [`ProfileLookup`] (the bundle's IAM data); one the caller's
//! account does not have is EC2's `InvalidParameterValue`.
//!
//! # Context keys
//! Only keys the catalog lists for the action or the (action, resource
//! type) pair are set, plus `aws:RequestedRegion` (global). Values: the
//! request's own parameters (`ec2:InstanceType`, `ec2:VolumeSize`, ...,
//! `aws:RequestTag/K`, `aws:TagKeys`), identifiers (`ec2:InstanceID`,
//! ...), and, for resources the inventory knows, their attributes and tags
//! (`ec2:ResourceTag/K`, `aws:ResourceTag/K`, `ec2:Owner`, `ec2:Public`,
//! `ec2:Vpc`, ...). A resource of a kind the inventory does not track lacks
//! them.
//!
//! # Known approximations
//! - `RunInstances` authorizes the root volume as one `volume/*` without
//!   size keys unless `BlockDeviceMapping.N.Ebs` entries are given (then one
//!   `volume/*` per entry, with their keys): the inventory does not know an
//!   AMI's block devices.
//! - `RunInstances` with a launch template needs an explicit `ImageId` (the
//!   template's contents are not in the inventory).
//! - Without `SubnetId`, `RunInstances` authorizes every default subnet of
//!   the Region (of the requested zone): EC2 picks one. Without security
//!   groups, the default group of each subnet's VPC. A default the
//!   inventory does not hold is refused.

use std::collections::HashSet;
use std::sync::Arc;

use super::catalog::keys;
use super::catalog::{
    self, ActionDef, ActionParams, ActionResource, ExistingRef, IdentifiedBy, ParamRole,
};
use super::ids;
use super::inventory::{Grant, Inventory, Resource, ResourceKind};
use super::inventory_store::Change;
use super::permissions::{self, OrgMembership};
use super::query::{QueryError, QueryParams, TagSpecification};
use crate::engine::{Context, ContextValue};
use crate::policy::ids::partition_of;
use crate::policy::{AccountId, Region};

/// One EC2 API call, mapped.
#[derive(Debug, Clone, PartialEq)]
pub struct Ec2Call {
    /// The API action in the catalog's casing (`"RunInstances"`).
    pub action: String,
    /// `DryRun=true`: answer `DryRunOperation` / `UnauthorizedOperation`
    /// and never forward.
    pub dry_run: bool,
    /// Every authorization the call needs; all must be allowed.
    pub authorizations: Vec<Authorization>,
    /// Owner grants the call needs on top (cross-account AMIs, snapshots).
    pub permission_checks: Vec<PermissionCheck>,
    /// Inventory changes to apply when (and only when) the call is allowed
    /// and forwarded.
    pub grant_updates: Vec<Change>,
}

/// One IAM authorization question.
#[derive(Debug, Clone, PartialEq)]
pub struct Authorization {
    /// `"ec2:RunInstances"` (or `"ec2:CreateTags"` for tag-on-create).
    pub action: String,
    /// The resource ARN, or `"*"`.
    pub resource: String,
    /// The catalog resource type (`"instance"`), empty for `"*"`.
    pub resource_type: String,
    /// Action- and resource-level condition keys (not the request-wide
    /// ones such as `aws:SourceIp`: the glue adds those).
    pub context: Context,
    /// The owner when the ARN carries no account (images, snapshots).
    pub resource_account: Option<String>,
}

/// An IAM instance profile as EC2 uses it: the roles it passes to an
/// instance (IAM allows one per profile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceProfile {
    /// `arn:aws:iam::ACCOUNT:instance-profile/PATH/NAME`.
    pub arn: String,
    pub role_arns: Vec<String>,
}

/// Finds an instance profile by account and name (compared as IAM compares
/// names, case-insensitively).
pub type ProfileLookup<'a> = &'a dyn Fn(&str, &str) -> Option<InstanceProfile>;

/// The service principal EC2 passes instance profile roles to.
const EC2_SERVICE: &str = "ec2.amazonaws.com";

/// Which permission attribute a check reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermissionKind {
    /// An AMI's launch permission (`RunInstances`).
    Launch,
    /// A snapshot's create-volume permission (`CreateVolume`).
    CreateVolume,
}

impl PermissionKind {
    /// The attribute name as EC2 spells it.
    pub fn attribute(self) -> &'static str {
        match self {
            PermissionKind::Launch => "launchPermission",
            PermissionKind::CreateVolume => "createVolumePermission",
        }
    }
}

/// A cross-account use of an image or snapshot that the owner must allow.
#[derive(Debug, Clone, PartialEq)]
pub struct PermissionCheck {
    /// `ami-…` / `snap-…`.
    pub resource_id: String,
    pub kind: PermissionKind,
    /// The owner, `None` when the inventory does not know the resource.
    pub owner_account: Option<String>,
    /// The resource as the inventory held it at mapping time.
    pub resource: Option<Arc<Resource>>,
}

impl PermissionCheck {
    /// Whether the owner's grants let `caller_account` use the resource. An
    /// unknown resource never passes.
    pub fn permits(&self, caller_account: &str, membership: Option<&OrgMembership>) -> bool {
        self.resource
            .as_deref()
            .is_some_and(|r| permissions::permits(r, caller_account, membership))
    }
}

/// Why a call could not be mapped: a client error, answered the way EC2
/// would (see [`MappingError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// No `Action` parameter.
    #[error("the request has no Action parameter")]
    MissingAction,
    /// `Action` is not an EC2 action.
    #[error("the action {0} is not valid for this web service")]
    InvalidAction(String),
    /// A parameter the action requires is absent.
    #[error("the request must contain the parameter {0}")]
    MissingParameter(String),
    /// A parameter's value is malformed or not allowed.
    #[error("invalid value for parameter {name}: {reason}")]
    InvalidParameterValue { name: String, reason: String },
    /// Parameters that cannot be used together.
    #[error("{0}")]
    InvalidParameterCombination(String),
    /// A parameter the action does not have (EC2's `UnknownParameter`):
    /// iamgate cannot tell whether the backend would read it as a resource.
    #[error("The parameter {0} is not recognized")]
    UnknownParameter(String),
    /// The request names an existing resource the inventory does not hold
    /// (in the region the request names it in): EC2's `*.NotFound`.
    #[error("{}", not_found_message(resource_type, *by, value))]
    NotFound {
        resource_type: &'static str,
        by: IdentifiedBy,
        value: String,
    },
    /// An id not in its type's canonical form (EC2's `*.Malformed`).
    #[error("Invalid id: \"{}\" (expecting {})", .0.id, .0.expected)]
    MalformedId(ids::IdError),
    /// `IamInstanceProfile.Arn` / `.Name` names no instance profile of the
    /// caller's account (EC2's `InvalidParameterValue`, in its words).
    #[error(
        "Value ({value}) for parameter {param} is invalid. Invalid IAM Instance Profile {what}"
    )]
    InvalidInstanceProfile {
        param: &'static str,
        what: &'static str,
        value: String,
    },
    /// A form iamgate cannot authorize faithfully, refused rather than
    /// guessed.
    #[error("unsupported by iamgate: {0}")]
    Unsupported(String),
    /// The parameters themselves are malformed.
    #[error(transparent)]
    Query(#[from] QueryError),
}

impl MappingError {
    /// The EC2 error code to answer with (HTTP 400).
    pub fn code(&self) -> &'static str {
        match self {
            MappingError::MissingAction => "MissingAction",
            MappingError::InvalidAction(_) => "InvalidAction",
            MappingError::MissingParameter(_) => "MissingParameter",
            MappingError::InvalidParameterValue { .. }
            | MappingError::InvalidInstanceProfile { .. } => "InvalidParameterValue",
            MappingError::InvalidParameterCombination(_) => "InvalidParameterCombination",
            MappingError::UnknownParameter(_) => "UnknownParameter",
            MappingError::MalformedId(e) => e.code,
            MappingError::NotFound {
                resource_type, by, ..
            } => not_found_code(resource_type, *by),
            MappingError::Unsupported(_) => "UnsupportedOperation",
            MappingError::Query(_) => "MalformedQueryString",
        }
    }
}

/// EC2's error code for a resource that does not exist.
fn not_found_code(resource_type: &str, by: IdentifiedBy) -> &'static str {
    match (resource_type, by) {
        (_, IdentifiedBy::Association) => "InvalidAssociationID.NotFound",
        ("launch-template", IdentifiedBy::Name) => "InvalidLaunchTemplateName.NotFoundException",
        ("launch-template", _) => "InvalidLaunchTemplateId.NotFound",
        ("instance", _) => "InvalidInstanceID.NotFound",
        ("image", _) => "InvalidAMIID.NotFound",
        ("snapshot", _) => "InvalidSnapshot.NotFound",
        ("volume", _) => "InvalidVolume.NotFound",
        ("security-group", _) => "InvalidGroup.NotFound",
        ("network-interface", _) => "InvalidNetworkInterfaceID.NotFound",
        ("subnet", _) => "InvalidSubnetID.NotFound",
        ("prefix-list", _) => "InvalidPrefixListID.NotFound",
        ("key-pair", _) => "InvalidKeyPair.NotFound",
        _ => "InvalidParameterValue",
    }
}

/// EC2's wording for a resource that does not exist.
fn not_found_message(resource_type: &str, by: IdentifiedBy, value: &str) -> String {
    match (resource_type, by) {
        (_, IdentifiedBy::Association) => format!("The association ID '{value}' does not exist"),
        ("launch-template", IdentifiedBy::Name) => {
            format!("The specified launch template, with template name {value}, does not exist.")
        }
        ("launch-template", _) => {
            format!("The specified launch template, with template ID {value}, does not exist.")
        }
        ("instance", _) => format!("The instance ID '{value}' does not exist"),
        ("image", _) => format!("The image id '[{value}]' does not exist"),
        ("snapshot", _) => format!("The snapshot '{value}' does not exist."),
        ("volume", _) => format!("The volume '{value}' does not exist."),
        ("security-group", _) => format!("The security group '{value}' does not exist"),
        ("network-interface", _) => format!("The networkInterface ID '{value}' does not exist"),
        ("subnet", _) => format!("The subnet ID '{value}' does not exist"),
        ("prefix-list", _) => format!("The prefix list ID '{value}' does not exist"),
        ("key-pair", _) => format!("The key pair '{value}' does not exist"),
        (rt, by) => format!("The {rt} {} '{value}' does not exist", by.as_str()),
    }
}

/// Maps one EC2 Query API call. `region` is the region the call is for (the
/// host's or the route's), `caller_account` the calling principal's account.
/// No instance profile is known: a call that names one is refused (see
/// [`map_call_with`]).
pub fn map_call(
    params: &QueryParams,
    region: &str,
    caller_account: &str,
    inventory: &Inventory,
) -> Result<Ec2Call, MappingError> {
    map_call_with(params, region, caller_account, inventory, &|_, _| None)
}

/// [`map_call`] with the instance profiles the caller's account has.
pub fn map_call_with(
    params: &QueryParams,
    region: &str,
    caller_account: &str,
    inventory: &Inventory,
    profiles: ProfileLookup<'_>,
) -> Result<Ec2Call, MappingError> {
    let name = params.get("Action").ok_or(MappingError::MissingAction)?;
    let def = catalog::action(name)
        .filter(|d| d.name == name)
        .ok_or_else(|| MappingError::InvalidAction(name.to_owned()))?;
    let dry_run = match params.get("DryRun") {
        None => false,
        Some(v) => parse_bool("DryRun", v)?,
    };
    let table = catalog::action_params(def.name);
    if table.is_some_and(|t| !t.in_query_api) {
        return Err(MappingError::Unsupported(format!(
            "{} is not an EC2 Query API call iamgate knows the parameters of",
            def.name
        )));
    }
    let mut m = Mapper {
        params,
        def,
        table,
        region,
        partition: partition_of(region),
        caller: caller_account,
        inventory,
        tag_specs: tag_specs(params, def)?,
        resolved: Vec::new(),
        profile: None,
        call: Ec2Call {
            action: def.name.to_owned(),
            dry_run,
            authorizations: Vec::new(),
            permission_checks: Vec::new(),
            grant_updates: Vec::new(),
        },
    };
    m.resolve_params()?;
    if matches!(
        def.name,
        "RunInstances" | "AssociateIamInstanceProfile" | "ReplaceIamInstanceProfileAssociation"
    ) {
        m.profile = m.instance_profile(profiles)?;
    }
    match def.name {
        "RunInstances" => m.run_instances()?,
        "CreateVolume" => m.create_volume()?,
        "CreateSnapshot" => m.create_snapshot()?,
        "CreateTags" | "DeleteTags" => m.tags()?,
        "DetachVolume" => m.detach_volume()?,
        "ModifyImageAttribute" => m.modify_image_attribute()?,
        "ModifySnapshotAttribute" => m.modify_snapshot_attribute()?,
        _ => m.generic()?,
    }
    m.authorize_resolved();
    m.tag_on_create();
    m.pass_role();
    if m.call.authorizations.is_empty() {
        if !m.def.resource_types.is_empty() {
            // An action with resource types is never authorized against `*`.
            return Err(m.names_nothing());
        }
        m.wildcard();
    }
    Ok(m.call)
}

/// Parameters of the protocol and of request signing, valid with every
/// action.
const PROTOCOL_PARAMS: [&str; 17] = [
    "Action",
    "Version",
    "DryRun",
    "AWSAccessKeyId",
    "SignatureMethod",
    "SignatureVersion",
    "Signature",
    "Timestamp",
    "Expires",
    "SecurityToken",
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
];

/// Images and snapshots whose use another account's owner must permit:
/// their existence is checked by that permission (an unknown one never
/// passes), which EC2 answers with the same `*.NotFound`.
fn permission_kind(action: &str, param_pattern: &str) -> Option<PermissionKind> {
    match (action, param_pattern) {
        ("RunInstances", "ImageId") | ("CopyImage", "SourceImageId") => {
            Some(PermissionKind::Launch)
        }
        ("CreateVolume", "SnapshotId") | ("CopySnapshot", "SourceSnapshotId") => {
            Some(PermissionKind::CreateVolume)
        }
        _ => None,
    }
}

/// A resource to authorize against, before its context is built.
#[derive(Clone)]
struct Target<'r> {
    resource_type: &'static str,
    /// The id its ARN ends in, or `None` for a new resource (`type/*`).
    id: Option<String>,
    /// The inventory's record, when known.
    known: Option<&'r Arc<Resource>>,
    /// Request-derived keys (filtered against the catalog later).
    extra: Vec<(String, ContextValue)>,
    /// The region when not the call's (a copy's source, a peer).
    region: Option<String>,
    /// The owner when the request names it and the inventory does not know
    /// the resource (a peer VPC).
    account: Option<String>,
    /// The ARN itself, for resources named by ARN (`role`, `certificate`).
    arn: Option<String>,
    /// The parameter that named it (`InstanceId.2`), for resolved ones.
    param: Option<String>,
}

struct Mapper<'a> {
    params: &'a QueryParams,
    def: &'static ActionDef,
    /// The action's parameters and their roles (actions with resource types).
    table: Option<&'static ActionParams>,
    region: &'a str,
    partition: &'static str,
    caller: &'a str,
    inventory: &'a Inventory,
    tag_specs: Vec<TagSpec>,
    /// Every existing resource the request names, resolved.
    resolved: Vec<Target<'a>>,
    /// The instance profile the call passes, resolved.
    profile: Option<InstanceProfile>,
    call: Ec2Call,
}

impl<'a> Mapper<'a> {
    // ---- building blocks -------------------------------------------------

    /// An existing resource named by parameter `param`: the resolved one
    /// (every parameter that names a resource is resolved up front), else
    /// one the mapping derived from the inventory (the instance a volume is
    /// attached to, a VPC's default group).
    fn existing(
        &self,
        resource_type: &'static str,
        param: &str,
        id: &str,
    ) -> Result<Target<'a>, MappingError> {
        if let Some(t) = self
            .resolved
            .iter()
            .find(|t| t.resource_type == resource_type && t.id.as_deref() == Some(id))
        {
            return Ok(Target {
                extra: Vec::new(),
                ..t.clone()
            });
        }
        check_id(resource_type, param, id)?;
        let known = self.lookup(resource_type, id, self.region);
        if known.is_none() && ResourceKind::of_type(resource_type).is_some() {
            return Err(MappingError::NotFound {
                resource_type,
                by: IdentifiedBy::Id,
                value: id.to_owned(),
            });
        }
        Ok(Target {
            id: Some(id.to_owned()),
            known,
            ..Self::new_resource(resource_type)
        })
    }

    /// A resource the call creates (`type/*`).
    fn new_resource(resource_type: &'static str) -> Target<'a> {
        Target {
            resource_type,
            id: None,
            known: None,
            extra: Vec::new(),
            region: None,
            account: None,
            arn: None,
            param: None,
        }
    }

    /// The inventory's record of resource `id` of `resource_type` in
    /// `region`, by the id its ARN ends in.
    fn lookup(&self, resource_type: &str, id: &str, region: &str) -> Option<&'a Arc<Resource>> {
        let kind = ResourceKind::of_type(resource_type)?;
        if kind == ResourceKind::KeyPair {
            // A key pair's ARN ends in its name; its record is keyed by id.
            return self.inventory.named(kind, self.caller, region, id).next();
        }
        self.inventory
            .get(id)
            .filter(|r| r.kind == kind && r.region == region)
    }

    // ---- resolution ------------------------------------------------------

    /// Checks every parameter against the action's Query API parameters and
    /// resolves each one that names an existing resource. A parameter the
    /// action does not have is refused (`UnknownParameter`), a resource the
    /// inventory does not hold is EC2's `*.NotFound`, and a way of naming a
    /// resource the inventory cannot follow (an association it does not
    /// record, an Elastic IP by address) is refused: the call is never
    /// authorized against a stand-in for the resource.
    fn resolve_params(&mut self) -> Result<(), MappingError> {
        let Some(table) = self.table else {
            return Ok(());
        };
        let params = self.params;
        check_lists(params)?;
        // Top-level parameters that name a resource, for the combination check.
        let mut scalars: Vec<(&'static str, ExistingRef)> = Vec::new();
        // Each resource once, however many parameters name it.
        let mut seen: HashSet<ResourceKey> = HashSet::new();
        for (name, value) in params.iter() {
            if PROTOCOL_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(name)) {
                continue;
            }
            let pattern = catalog::param_pattern(name);
            let def = table
                .param(&pattern)
                .ok_or_else(|| MappingError::UnknownParameter(name.to_owned()))?;
            let ParamRole::Existing(r) = def.role else {
                continue;
            };
            let t = self.resolve(name, def.name, value, &r)?;
            if !def.name.contains('.') {
                scalars.push((def.name, r));
            }
            if seen.insert(resource_key(&t)) {
                self.resolved.push(t);
            }
        }
        check_combination(&scalars)
    }

    /// Resolves one parameter (`param` as given, `pattern` its table entry).
    fn resolve(
        &self,
        param: &str,
        pattern: &str,
        value: &str,
        r: &ExistingRef,
    ) -> Result<Target<'a>, MappingError> {
        let resource_type = self.type_named(param, value, r)?;
        let by = Self::identified_by(r, resource_type, value);
        let region = match r
            .region_param
            .and_then(|p| self.params.get(p).map(|v| (p, v)))
        {
            Some((p, v)) => Some(String::from(check_region(p, v)?)),
            None => None,
        };
        let account = match r
            .account_param
            .and_then(|p| self.params.get(p).map(|v| (p, v)))
        {
            Some((p, v)) => Some(String::from(check_account(p, v)?)),
            None => None,
        };
        let in_region = region.as_deref().unwrap_or(self.region);
        let kind = ResourceKind::of_type(resource_type);
        let not_found = || MappingError::NotFound {
            resource_type,
            by,
            value: value.to_owned(),
        };
        let unresolvable = || {
            MappingError::Unsupported(format!(
                "{param} identifies its {resource_type} by {}, which the inventory cannot resolve",
                by.as_str()
            ))
        };
        let mut t = Target {
            param: Some(param.to_owned()),
            region: region.clone(),
            ..Self::new_resource(resource_type)
        };
        match by {
            IdentifiedBy::Id => {
                check_id(resource_type, param, value)?;
                t.id = Some(value.to_owned());
                match kind {
                    Some(_) => {
                        t.known = self.lookup(resource_type, value, in_region);
                        if t.known.is_none() {
                            // Not held: a malformed id is EC2's *.Malformed
                            // (`i-0ABC...` is never the backend's `i-0abc...`).
                            ids::check(resource_type, value).map_err(MappingError::MalformedId)?;
                            if permission_kind(self.def.name, pattern).is_none() {
                                return Err(not_found());
                            }
                        }
                    }
                    // A type the inventory does not track: its ARN is exact,
                    // its owner the one the request names, else the caller.
                    None => t.account = account,
                }
            }
            IdentifiedBy::Name | IdentifiedBy::AltId | IdentifiedBy::Association => {
                let kind = kind.ok_or_else(unresolvable)?;
                if by == IdentifiedBy::Name {
                    check_name(param, value)?;
                } else {
                    // Association and alternate ids have prefixes of their
                    // own (`iip-assoc-`, `key-`): only their characters.
                    check_chars(param, value)?;
                }
                let found = match by {
                    IdentifiedBy::Name => self.unique_named(kind, param, value, in_region)?,
                    IdentifiedBy::AltId => self
                        .inventory
                        .get(value)
                        .filter(|x| x.kind == kind && x.region == in_region),
                    _ => {
                        if !recorded_association(kind, value) {
                            return Err(unresolvable());
                        }
                        self.inventory
                            .holding_association(kind, value)
                            .filter(|x| x.region == in_region)
                    }
                };
                let found = found.ok_or_else(not_found)?;
                let id = found.arn_id().ok_or_else(unresolvable)?;
                check_id(resource_type, param, id)?;
                t.id = Some(id.to_owned());
                t.known = Some(found);
            }
            IdentifiedBy::Arn => {
                let def = catalog::resource_type(resource_type).ok_or_else(unresolvable)?;
                check_arn(param, value)?;
                let id =
                    def.resource_id(value)
                        .ok_or_else(|| MappingError::InvalidParameterValue {
                            name: param.to_owned(),
                            reason: format!("'{value}' is not the ARN of a {resource_type}"),
                        })?;
                t.id = Some(id.to_owned());
                t.arn = Some(value.to_owned());
            }
            IdentifiedBy::PublicIp => return Err(unresolvable()),
        }
        Ok(t)
    }

    /// The resource type a parameter names: its only one, else the one the
    /// id's prefix tells (`CreateTags`, `AssociateRouteTable&GatewayId`).
    fn type_named(
        &self,
        param: &str,
        value: &str,
        r: &ExistingRef,
    ) -> Result<&'static str, MappingError> {
        if let [only] = r.resource_types {
            return Ok(only);
        }
        let candidates: Vec<&'static str> = if r.resource_types.is_empty() {
            self.def
                .resource_types
                .iter()
                .filter(|row| row.definition.service() == catalog::SERVICE_PREFIX)
                .map(|row| row.resource_type)
                .collect()
        } else {
            r.resource_types.to_vec()
        };
        resource_type_of_id(value)
            .and_then(|rt| candidates.into_iter().find(|c| *c == rt))
            .ok_or_else(|| MappingError::InvalidParameterValue {
                name: param.to_owned(),
                reason: format!(
                    "'{value}' is not the id of a resource {} acts on",
                    self.def.name
                ),
            })
    }

    /// How a value names a resource: as the reference says, except that an
    /// id whose prefix told its type (`CreateTags&ResourceId.N`) is the
    /// resource's own id even where the ARN uses a name (`key-0abc` of a key
    /// pair).
    fn identified_by(r: &ExistingRef, resource_type: &str, value: &str) -> IdentifiedBy {
        let by_prefix = r.resource_types.len() != 1;
        let arn_uses_name = matches!(resource_type, "key-pair" | "placement-group");
        if r.by == IdentifiedBy::Id
            && by_prefix
            && arn_uses_name
            && resource_type_of_id(value) == Some(resource_type)
        {
            IdentifiedBy::AltId
        } else {
            r.by
        }
    }

    /// The one resource of `kind` named `name` in the caller's account.
    /// Security group names are unique per VPC; EC2 reads a name in the
    /// default VPC, so when several VPCs use it, the default VPC's wins.
    fn unique_named(
        &self,
        kind: ResourceKind,
        param: &str,
        name: &str,
        region: &str,
    ) -> Result<Option<&'a Arc<Resource>>, MappingError> {
        let found: Vec<&'a Arc<Resource>> = self
            .inventory
            .named(kind, self.caller, region, name)
            .collect();
        let default_vpc = self
            .inventory
            .default_subnets(self.caller, region)
            .find_map(|s| s.attributes.vpc_id.as_deref());
        let in_default = || {
            found
                .iter()
                .copied()
                .filter(|r| r.attributes.vpc_id.as_deref() == default_vpc && default_vpc.is_some())
                .collect::<Vec<_>>()
        };
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            _ => match in_default().as_slice() {
                [one] => Ok(Some(one)),
                _ => Err(MappingError::InvalidParameterCombination(format!(
                    "{param}: the {} name '{name}' is used in several VPCs: name it by its id",
                    kind.arn_type()
                ))),
            },
        }
    }

    /// Authorizes every resolved resource that the action-specific mapping
    /// did not: whatever a handler reads, every resource the request names
    /// is authorized.
    fn authorize_resolved(&mut self) {
        let main = format!("{}:{}", catalog::SERVICE_PREFIX, self.def.name);
        let mut done: HashSet<String> = self
            .call
            .authorizations
            .iter()
            .filter(|a| a.action == main)
            .map(|a| a.resource.clone())
            .collect();
        for t in self.resolved.clone() {
            if self.def.resource(t.resource_type).is_none() {
                continue;
            }
            let auth = self.build(self.def, t, true);
            if done.insert(auth.resource.clone()) {
                self.call.authorizations.push(auth);
            }
        }
    }

    /// The refusal of a call that names no resource for a type it needs.
    fn names_nothing(&self) -> MappingError {
        let param = self.table.and_then(|t| missing_param(t, |_| true));
        match param {
            Some(p) => MappingError::MissingParameter(p),
            None => MappingError::Unsupported(format!(
                "{} names none of the resources it is authorized against",
                self.def.name
            )),
        }
    }

    /// Adds the authorization of `self.def` against `t`.
    fn authorize(&mut self, t: Target<'_>) {
        let auth = self.build(self.def, t, true);
        self.call.authorizations.push(auth);
    }

    /// Builds one authorization of `action` against `t`; `request_tags`
    /// adds the tag specification's tags to a new resource.
    fn build(
        &self,
        action: &'static ActionDef,
        t: Target<'_>,
        request_tags: bool,
    ) -> Authorization {
        let row = action.resource(t.resource_type);
        let def = row
            .map(|r| r.definition)
            .or_else(|| catalog::resource_type(t.resource_type));
        let account = t
            .known
            .map(|r| r.account.as_str())
            .or(t.account.as_deref())
            .unwrap_or(self.caller)
            .to_owned();
        let resource = match (&t.arn, def) {
            (Some(arn), _) => arn.clone(),
            (None, Some(d)) => d.arn(
                self.partition,
                t.region.as_deref().unwrap_or(self.region),
                &account,
                t.id.as_deref().unwrap_or("*"),
            ),
            (None, None) => "*".to_owned(),
        };
        let arn_has_account = def.is_some_and(|d| d.arn_template.contains("${Account}"));
        let resource_account = if arn_has_account {
            None
        } else if let Some(r) = t.known {
            Some(r.account.clone())
        } else if t.id.is_none() || t.account.is_some() {
            Some(account)
        } else {
            None
        };
        let mut ctx = Keys::new(action, row);
        ctx.action_keys(self.region);
        if let Some(id) = &t.id {
            for (k, v) in id_keys(t.resource_type, id) {
                ctx.put(k, v);
            }
        }
        if let Some(r) = t.known {
            for (k, v) in self.resource_keys(r) {
                ctx.put_value(&k, v);
            }
        }
        if t.id.is_none()
            && request_tags
            && let Some((_, tags)) = self
                .tag_specs
                .iter()
                .find(|(rt, _)| rt.eq_ignore_ascii_case(t.resource_type))
        {
            ctx.request_tags(tags.iter().map(|(k, v)| (k.as_str(), Some(v.as_str()))));
        }
        for (k, v) in t.extra {
            ctx.put_value(&k, v);
        }
        Authorization {
            action: format!("{}:{}", catalog::SERVICE_PREFIX, action.name),
            resource,
            resource_type: def.map_or("", |d| d.name).to_owned(),
            context: ctx.ctx,
            resource_account,
        }
    }

    /// The authorization against `*` (no resource types, or none named).
    fn wildcard(&mut self) {
        let mut ctx = Keys::new(self.def, None);
        ctx.action_keys(self.region);
        self.call.authorizations.push(Authorization {
            action: format!("{}:{}", catalog::SERVICE_PREFIX, self.def.name),
            resource: "*".to_owned(),
            resource_type: String::new(),
            context: ctx.ctx,
            resource_account: None,
        });
    }

    /// `ec2:CreateTags` on each resource a `TagSpecification` tags at creation.
    fn tag_on_create(&mut self) {
        let Some(create_tags) = catalog::action("CreateTags") else {
            return;
        };
        if self.def.name == "CreateTags" {
            return;
        }
        let mut extra = Vec::new();
        for (rt, tags) in &self.tag_specs {
            let Some(def) = catalog::resource_type(rt) else {
                continue;
            };
            let mut t = Self::new_resource(def.name);
            t.extra = vec![(
                keys::EC2_CREATE_ACTION.to_owned(),
                ContextValue::One(self.def.name.to_owned()),
            )];
            let mut auth = self.build(create_tags, t, false);
            let mut keys = Keys {
                action: create_tags,
                row: create_tags.resource(def.name),
                ctx: auth.context,
            };
            keys.request_tags(tags.iter().map(|(k, v)| (k.as_str(), Some(v.as_str()))));
            auth.context = keys.ctx;
            extra.push(auth);
        }
        self.call.authorizations.extend(extra);
    }

    /// Keys an inventory record carries (filtered later).
    fn resource_keys(&self, r: &Resource) -> Vec<(String, ContextValue)> {
        let mut out: Vec<(String, ContextValue)> = Vec::new();
        let mut one = |k: &str, v: String| out.push((k.to_owned(), ContextValue::One(v)));
        for (k, v) in &r.tags {
            one(&format!("{}{k}", keys::EC2_RESOURCE_TAG_PREFIX), v.clone());
            one(&format!("{}{k}", keys::AWS_RESOURCE_TAG_PREFIX), v.clone());
        }
        let a = &r.attributes;
        let vpc = a
            .vpc_id
            .as_deref()
            .map(|v| self.arn_of("vpc", &r.account, v));
        match r.kind {
            ResourceKind::Instance => {
                opt(&mut one, keys::EC2_INSTANCE_TYPE, a.instance_type.clone());
                opt(
                    &mut one,
                    keys::EC2_AVAILABILITY_ZONE,
                    a.availability_zone.clone(),
                );
                opt(&mut one, keys::EC2_TENANCY, a.tenancy.clone());
                opt(
                    &mut one,
                    keys::EC2_ROOT_DEVICE_TYPE,
                    a.root_device_type.clone(),
                );
                opt(
                    &mut one,
                    keys::EC2_EBS_OPTIMIZED,
                    a.ebs_optimized.map(|b| b.to_string()),
                );
                opt(
                    &mut one,
                    keys::EC2_INSTANCE_PROFILE,
                    a.instance_profile.clone(),
                );
                opt(&mut one, keys::EC2_VPC, vpc);
            }
            ResourceKind::Image => {
                one(keys::EC2_OWNER, owner_value(r));
                opt(&mut one, keys::EC2_PUBLIC, a.public.map(|b| b.to_string()));
                opt(
                    &mut one,
                    keys::EC2_ROOT_DEVICE_TYPE,
                    a.root_device_type.clone(),
                );
                if let Some(t) = image_type(&r.id) {
                    one(keys::EC2_IMAGE_TYPE, t.to_owned());
                }
            }
            ResourceKind::Snapshot => {
                one(keys::EC2_OWNER, owner_value(r));
                opt(
                    &mut one,
                    keys::EC2_ENCRYPTED,
                    a.encrypted.map(|b| b.to_string()),
                );
                opt(
                    &mut one,
                    keys::EC2_VOLUME_SIZE,
                    a.volume_size.map(|n| n.to_string()),
                );
                opt(
                    &mut one,
                    keys::EC2_PARENT_VOLUME,
                    a.volume_id
                        .as_deref()
                        .map(|v| self.arn_of("volume", &r.account, v)),
                );
            }
            ResourceKind::Volume => {
                opt(
                    &mut one,
                    keys::EC2_VOLUME_SIZE,
                    a.volume_size.map(|n| n.to_string()),
                );
                opt(&mut one, keys::EC2_VOLUME_TYPE, a.volume_type.clone());
                opt(
                    &mut one,
                    keys::EC2_VOLUME_IOPS,
                    a.iops.map(|n| n.to_string()),
                );
                opt(
                    &mut one,
                    keys::EC2_ENCRYPTED,
                    a.encrypted.map(|b| b.to_string()),
                );
                opt(
                    &mut one,
                    keys::EC2_AVAILABILITY_ZONE,
                    a.availability_zone.clone(),
                );
                opt(
                    &mut one,
                    keys::EC2_PARENT_SNAPSHOT,
                    a.snapshot_id
                        .as_deref()
                        .map(|s| self.arn_of("snapshot", "", s)),
                );
            }
            ResourceKind::SecurityGroup => opt(&mut one, keys::EC2_VPC, vpc),
            ResourceKind::NetworkInterface => {
                opt(&mut one, keys::EC2_VPC, vpc);
                opt(
                    &mut one,
                    keys::EC2_SUBNET,
                    a.subnet_id
                        .as_deref()
                        .map(|s| self.arn_of("subnet", &r.account, s)),
                );
                let az = a
                    .subnet_id
                    .as_deref()
                    .and_then(|s| self.inventory.get(s))
                    .and_then(|s| s.attributes.availability_zone.clone());
                opt(&mut one, keys::EC2_AVAILABILITY_ZONE, az);
            }
            ResourceKind::Subnet => {
                opt(&mut one, keys::EC2_VPC, vpc);
                opt(
                    &mut one,
                    keys::EC2_AVAILABILITY_ZONE,
                    a.availability_zone.clone(),
                );
            }
            ResourceKind::PrefixList | ResourceKind::KeyPair | ResourceKind::LaunchTemplate => {}
        }
        out
    }

    /// An ARN of `resource_type` in this call's region.
    fn arn_of(&self, resource_type: &str, account: &str, id: &str) -> String {
        match catalog::resource_type(resource_type) {
            Some(d) => d.arn(self.partition, self.region, account, id),
            None => format!(
                "arn:{}:ec2:{}:{account}:{resource_type}/{id}",
                self.partition, self.region
            ),
        }
    }

    /// The ARN of an existing resource, with its inventory owner.
    fn arn_of_existing(&self, resource_type: &str, id: &str) -> String {
        let account = self
            .inventory
            .get(id)
            .map_or(self.caller, |r| r.account.as_str());
        self.arn_of(resource_type, account, id)
    }

    // ---- generic ---------------------------------------------------------

    /// For each resource type of the action: every resolved resource of the
    /// type; the new one (`type/*`, with the request's tags) when the call
    /// creates the type and it is required or tagged on creation; a required
    /// type neither named nor created is refused (never `type/*`).
    fn generic(&mut self) -> Result<(), MappingError> {
        let creates = self.table.map_or(&[][..], |t| t.creates);
        for row in self.def.resource_types {
            let rt = row.resource_type;
            let named: Vec<Target<'a>> = self
                .resolved
                .iter()
                .filter(|t| t.resource_type == rt)
                .cloned()
                .collect();
            let tagged = self
                .tag_specs
                .iter()
                .any(|(t, _)| t.eq_ignore_ascii_case(rt));
            let created = creates.contains(&rt) && (row.required || tagged);
            let mut named = named;
            if named.is_empty() && !created && rt == "instance" {
                // The instance a named volume or interface is attached to
                // (DetachNetworkInterface names only the attachment).
                named.extend(self.attached_instance()?);
            }
            if named.is_empty() && !created {
                if row.required {
                    return Err(self.type_not_named(rt));
                }
                continue;
            }
            for t in named {
                let kind = t
                    .param
                    .as_deref()
                    .and_then(|p| permission_kind(self.def.name, &catalog::param_pattern(p)));
                if let (Some(kind), Some(id)) = (kind, t.id.clone()) {
                    self.permission_check(&id, t.known, kind);
                }
                self.authorize(t);
            }
            if created {
                let mut t = Self::new_resource(rt);
                t.extra = self.created_names(rt);
                self.authorize(t);
            }
        }
        Ok(())
    }

    /// The instance that a resolved volume or network interface is
    /// attached to, per the inventory.
    fn attached_instance(&self) -> Result<Option<Target<'a>>, MappingError> {
        let attached = self.resolved.iter().find_map(|t| {
            t.known
                .filter(|r| {
                    matches!(
                        r.kind,
                        ResourceKind::Volume | ResourceKind::NetworkInterface
                    )
                })
                .and_then(|r| r.attributes.attached_to.clone())
        });
        match attached {
            Some(id) => Ok(Some(self.existing("instance", "InstanceId", &id)?)),
            None => Ok(None),
        }
    }

    /// Keys of the name a create call gives its new resource
    /// (`ec2:KeyPairName`, `ec2:PlacementGroupName`).
    fn created_names(&self, resource_type: &str) -> Vec<(String, ContextValue)> {
        let Some(table) = self.table else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, value) in self.params.iter() {
            let role = table.param(&catalog::param_pattern(name)).map(|p| p.role);
            if matches!(role, Some(ParamRole::Creates(c)) if c == resource_type) {
                for (k, v) in id_keys(resource_type, value) {
                    out.push((k.to_owned(), one(v)));
                }
            }
        }
        out
    }

    /// The refusal of a call that does not name a resource of a type it
    /// requires: the parameter that would, else unsupported (the backend
    /// derives it, and iamgate cannot tell which it is).
    fn type_not_named(&self, resource_type: &str) -> MappingError {
        let param = self
            .table
            .and_then(|t| missing_param(t, |r| r.resource_types.contains(&resource_type)));
        match param {
            Some(p) => MappingError::MissingParameter(p),
            None => MappingError::Unsupported(format!(
                "{} names no {resource_type}, and iamgate cannot tell which one it acts on",
                self.def.name
            )),
        }
    }

    // ---- RunInstances ----------------------------------------------------

    /// The instance profile `IamInstanceProfile.Arn` / `.Name` names, in
    /// the caller's account (EC2 uses no other account's profiles). Both
    /// given must name the same profile.
    fn instance_profile(
        &self,
        profiles: ProfileLookup<'_>,
    ) -> Result<Option<InstanceProfile>, MappingError> {
        let p = self.params;
        let by_arn = match p.get("IamInstanceProfile.Arn") {
            None => None,
            Some(arn) => {
                let invalid = || MappingError::InvalidInstanceProfile {
                    param: "iamInstanceProfile.arn",
                    what: "ARN",
                    value: arn.to_owned(),
                };
                let parsed = crate::policy::arn::Arn::parse(arn).ok_or_else(invalid)?;
                let name = parsed
                    .resource
                    .strip_prefix("instance-profile/")
                    .and_then(|r| r.rsplit('/').next())
                    .filter(|_| parsed.service == "iam" && parsed.account == self.caller)
                    .ok_or_else(invalid)?;
                let profile = profiles(self.caller, name)
                    .filter(|found| found.arn == arn)
                    .ok_or_else(invalid)?;
                Some(profile)
            }
        };
        let by_name = match p.get("IamInstanceProfile.Name") {
            None => None,
            Some(name) => Some(profiles(self.caller, name).ok_or_else(|| {
                MappingError::InvalidInstanceProfile {
                    param: "iamInstanceProfile.name",
                    what: "name",
                    value: name.to_owned(),
                }
            })?),
        };
        match (by_arn, by_name) {
            (Some(a), Some(n)) if a != n => Err(MappingError::InvalidParameterCombination(
                "IamInstanceProfile.Arn and IamInstanceProfile.Name name different instance profiles"
                    .into(),
            )),
            (a, n) => Ok(a.or(n)),
        }
    }

    /// `iam:PassRole` on each role of the profile the call passes.
    fn pass_role(&mut self) {
        let Some(profile) = self.profile.take() else {
            return;
        };
        for role in profile.role_arns {
            let mut context = Context::new();
            context.insert_static("iam:PassedToService", one(EC2_SERVICE));
            self.call.authorizations.push(Authorization {
                action: "iam:PassRole".into(),
                resource: role,
                resource_type: "role".into(),
                context,
                resource_account: None,
            });
        }
    }

    fn run_instances(&mut self) -> Result<(), MappingError> {
        let p = self.params;
        // The launch template by id or by name (resolved to its id).
        let lt_id = self
            .resolved
            .iter()
            .find(|t| t.resource_type == "launch-template")
            .and_then(|t| t.id.clone());
        let lt_id = lt_id.as_deref();
        let image_id = match (p.get("ImageId"), lt_id) {
            (Some(i), _) => i,
            (None, Some(_)) => {
                return Err(MappingError::Unsupported(
                    "a launch template without an explicit ImageId (the template's image is unknown)"
                        .into(),
                ));
            }
            (None, None) => return Err(MappingError::MissingParameter("ImageId".into())),
        };
        let lt_arn = match lt_id {
            Some(id) => {
                check_id("launch-template", "LaunchTemplate.LaunchTemplateId", id)?;
                Some(self.arn_of_existing("launch-template", id))
            }
            None => None,
        };
        let with_lt = |t: &mut Target<'_>| {
            if let Some(a) = &lt_arn {
                t.extra.push((
                    keys::EC2_LAUNCH_TEMPLATE.into(),
                    ContextValue::One(a.clone()),
                ));
            }
        };

        // Network interfaces given explicitly.
        let mut enis_existing: Vec<String> = Vec::new();
        let mut enis_new: Vec<Vec<(String, ContextValue)>> = Vec::new();
        let mut subnet_ids: Vec<String> = Vec::new();
        let mut group_ids: Vec<String> = Vec::new();
        for i in p.indices("NetworkInterface")? {
            let pre = format!("NetworkInterface.{i}");
            if let Some(id) = p.get(&format!("{pre}.NetworkInterfaceId")) {
                check_id(
                    "network-interface",
                    &format!("{pre}.NetworkInterfaceId"),
                    id,
                )?;
                enis_existing.push(id.to_owned());
                continue;
            }
            let mut extra = Vec::new();
            if let Some(s) = p.get(&format!("{pre}.SubnetId")) {
                check_id("subnet", &format!("{pre}.SubnetId"), s)?;
                subnet_ids.push(s.to_owned());
                extra.extend(self.subnet_context(s));
            }
            if let Some(v) = p.get(&format!("{pre}.AssociatePublicIpAddress")) {
                let b = parse_bool(&format!("{pre}.AssociatePublicIpAddress"), v)?;
                extra.push((
                    keys::EC2_ASSOCIATE_PUBLIC_IP_ADDRESS.into(),
                    one(b.to_string()),
                ));
            }
            for g in p.list(&format!("{pre}.SecurityGroupId"))? {
                group_ids.push(g.to_owned());
            }
            enis_new.push(extra);
        }
        if let Some(s) = p.get("SubnetId") {
            if !enis_existing.is_empty() || !enis_new.is_empty() {
                return Err(MappingError::InvalidParameterCombination(
                    "SubnetId cannot be given with NetworkInterface.N".into(),
                ));
            }
            check_id("subnet", "SubnetId", s)?;
            subnet_ids.push(s.to_owned());
        }
        for g in p.list("SecurityGroupId")? {
            group_ids.push(g.to_owned());
        }
        // Security groups by name, resolved to their ids.
        for t in &self.resolved {
            if t.param
                .as_deref()
                .is_some_and(|n| catalog::param_pattern(n).eq_ignore_ascii_case("SecurityGroup.N"))
                && let Some(id) = &t.id
            {
                group_ids.push(id.clone());
            }
        }
        p.list("SecurityGroup")?;
        // Interfaces that exist bring their subnet and groups.
        for id in &enis_existing {
            if let Some(eni) = self.lookup("network-interface", id, self.region) {
                subnet_ids.extend(eni.attributes.subnet_id.clone());
                group_ids.extend(eni.attributes.groups.iter().cloned());
            }
        }
        // No subnet: EC2 launches into a default subnet of the Region (of
        // the requested zone) and picks which, so each must be allowed.
        let defaulted = subnet_ids.is_empty();
        if defaulted {
            let zone = p.get("Placement.AvailabilityZone");
            subnet_ids = self
                .inventory
                .default_subnets(self.caller, self.region)
                .filter(|s| zone.is_none() || s.attributes.availability_zone.as_deref() == zone)
                .map(|s| s.id.clone())
                .collect();
            subnet_ids.sort_unstable();
            if subnet_ids.is_empty() {
                return Err(MappingError::Unsupported(
                    "RunInstances without SubnetId: the inventory holds no default subnet \
                     for the caller here, so iamgate cannot tell which subnet it uses"
                        .into(),
                ));
            }
        }

        // The instance.
        let image = self.inventory.get(image_id);
        let mut inst = Self::new_resource("instance");
        let it = p.get("InstanceType").unwrap_or("m1.small");
        inst.extra.push((keys::EC2_INSTANCE_TYPE.into(), one(it)));
        // The zone: requested, else the subnet's (when there is one choice).
        let az = p
            .get("Placement.AvailabilityZone")
            .map(str::to_owned)
            .or_else(|| match subnet_ids.as_slice() {
                [s] => self
                    .inventory
                    .get(s)
                    .and_then(|s| s.attributes.availability_zone.clone()),
                _ => None,
            });
        if let Some(az) = &az {
            inst.extra
                .push((keys::EC2_AVAILABILITY_ZONE.into(), one(az)));
        }
        inst.extra.push((
            keys::EC2_TENANCY.into(),
            one(p.get("Placement.Tenancy").unwrap_or("default")),
        ));
        let ebs_opt = match p.get("EbsOptimized") {
            Some(v) => parse_bool("EbsOptimized", v)?,
            None => false,
        };
        inst.extra
            .push((keys::EC2_EBS_OPTIMIZED.into(), one(ebs_opt.to_string())));
        let market = p
            .get("InstanceMarketOptions.MarketType")
            .unwrap_or("on-demand");
        inst.extra
            .push((keys::EC2_INSTANCE_MARKET_TYPE.into(), one(market)));
        if let Some(profile) = &self.profile {
            inst.extra
                .push((keys::EC2_INSTANCE_PROFILE.into(), one(profile.arn.clone())));
        }
        for (param, key) in [
            ("MetadataOptions.HttpTokens", keys::EC2_METADATA_HTTP_TOKENS),
            (
                "MetadataOptions.HttpEndpoint",
                keys::EC2_METADATA_HTTP_ENDPOINT,
            ),
            (
                "MetadataOptions.HttpPutResponseHopLimit",
                keys::EC2_METADATA_HTTP_PUT_RESPONSE_HOP_LIMIT,
            ),
            (
                "MetadataOptions.InstanceMetadataTags",
                keys::EC2_INSTANCE_METADATA_TAGS,
            ),
        ] {
            if let Some(v) = p.get(param) {
                inst.extra.push((key.into(), one(v)));
            }
        }
        if let Some(g) = p.get("Placement.GroupName") {
            let arn = self.arn_of("placement-group", self.caller, g);
            inst.extra
                .push((keys::EC2_PLACEMENT_GROUP.into(), one(arn)));
        }
        if let Some(rdt) = image.and_then(|i| i.attributes.root_device_type.clone()) {
            inst.extra
                .push((keys::EC2_ROOT_DEVICE_TYPE.into(), one(rdt)));
        }
        with_lt(&mut inst);
        self.authorize(inst);

        // The image, and its launch permission.
        let mut img = self.existing("image", "ImageId", image_id)?;
        with_lt(&mut img);
        self.permission_check(image_id, img.known, PermissionKind::Launch);
        self.authorize(img);

        // Subnets: named, of the interfaces named, or the default ones.
        let mut seen = Vec::new();
        for s in &subnet_ids {
            if seen.contains(s) {
                continue;
            }
            seen.push(s.clone());
            let mut t = self.existing("subnet", "SubnetId", s)?;
            with_lt(&mut t);
            self.authorize(t);
        }

        // Security groups: named, of the interfaces named, else the
        // default group of each candidate subnet's VPC.
        if group_ids.is_empty() {
            for s in &subnet_ids {
                let id = self.default_group(s).ok_or_else(|| {
                    MappingError::Unsupported(format!(
                        "RunInstances without a security group: the inventory holds no \
                         default security group for the VPC of {s}"
                    ))
                })?;
                group_ids.push(id);
            }
        }
        let mut seen = Vec::new();
        for g in &group_ids {
            if seen.contains(g) {
                continue;
            }
            seen.push(g.clone());
            let mut t = self.existing("security-group", "SecurityGroupId", g)?;
            with_lt(&mut t);
            self.authorize(t);
        }

        // Network interfaces: existing ones, new ones (one if none given).
        for id in &enis_existing {
            let mut t = self.existing("network-interface", "NetworkInterfaceId", id)?;
            with_lt(&mut t);
            self.authorize(t);
        }
        if enis_existing.is_empty() && enis_new.is_empty() {
            let extra = match subnet_ids.as_slice() {
                [s] => self.subnet_context(s),
                _ => Vec::new(),
            };
            enis_new.push(extra);
        }
        for extra in enis_new {
            let mut t = Self::new_resource("network-interface");
            t.extra = extra;
            with_lt(&mut t);
            self.authorize(t);
        }

        // Volumes: one per EBS block device, else the root volume.
        let bdms = p.block_device_mappings()?;
        let mut any_ebs = false;
        for (i, b) in bdms.iter().enumerate() {
            let Some(ebs) = &b.ebs else { continue };
            any_ebs = true;
            let pre = format!("BlockDeviceMapping.{}.Ebs", i + 1);
            let mut t = Self::new_resource("volume");
            t.extra = self.volume_context(
                &pre,
                ebs.volume_size.as_deref(),
                ebs.volume_type.as_deref(),
                ebs.encrypted.as_deref(),
                ebs.iops.as_deref(),
                ebs.throughput.as_deref(),
                ebs.kms_key_id.as_deref(),
                ebs.snapshot_id.as_deref(),
            )?;
            if let Some(az) = &az {
                t.extra.push((keys::EC2_AVAILABILITY_ZONE.into(), one(az)));
            }
            with_lt(&mut t);
            self.authorize(t);
        }
        let instance_store =
            image.and_then(|i| i.attributes.root_device_type.as_deref()) == Some("instance-store");
        if !any_ebs && !instance_store {
            let mut t = Self::new_resource("volume");
            if let Some(az) = &az {
                t.extra.push((keys::EC2_AVAILABILITY_ZONE.into(), one(az)));
            }
            with_lt(&mut t);
            self.authorize(t);
        }

        // Key pair, launch template, spot request.
        if let Some(k) = p.get("KeyName") {
            let mut t = self.existing("key-pair", "KeyName", k)?;
            with_lt(&mut t);
            self.authorize(t);
        }
        if let Some(id) = lt_id {
            let mut t = self.existing("launch-template", "LaunchTemplate.LaunchTemplateId", id)?;
            with_lt(&mut t);
            self.authorize(t);
        }
        if market.eq_ignore_ascii_case("spot") {
            self.authorize(Self::new_resource("spot-instances-request"));
        }
        Ok(())
    }

    /// `ec2:Subnet`, `ec2:Vpc`, `ec2:AvailabilityZone` of a new network
    /// interface in subnet `s`.
    fn subnet_context(&self, s: &str) -> Vec<(String, ContextValue)> {
        let mut out = vec![(
            keys::EC2_SUBNET.to_owned(),
            one(self.arn_of_existing("subnet", s)),
        )];
        if let Some(sub) = self.inventory.get(s) {
            if let Some(v) = &sub.attributes.vpc_id {
                out.push((
                    keys::EC2_VPC.into(),
                    one(self.arn_of("vpc", &sub.account, v)),
                ));
            }
            if let Some(az) = &sub.attributes.availability_zone {
                out.push((keys::EC2_AVAILABILITY_ZONE.into(), one(az)));
            }
        }
        out
    }

    /// The `default` security group of the subnet's VPC, from the inventory.
    fn default_group(&self, subnet: &str) -> Option<String> {
        let subnet = self.inventory.get(subnet)?;
        let vpc = subnet.attributes.vpc_id.as_deref()?;
        self.inventory
            .named(
                ResourceKind::SecurityGroup,
                &subnet.account,
                &subnet.region,
                "default",
            )
            .find(|r| r.attributes.vpc_id.as_deref() == Some(vpc))
            .map(|r| r.id.clone())
    }

    /// Adds a launch / create-volume permission check when the owner is
    /// another account or unknown.
    fn permission_check(&mut self, id: &str, known: Option<&Arc<Resource>>, kind: PermissionKind) {
        if known.is_some_and(|r| r.account == self.caller) {
            return;
        }
        self.call.permission_checks.push(PermissionCheck {
            resource_id: id.to_owned(),
            kind,
            owner_account: known.map(|r| r.account.clone()),
            resource: known.cloned(),
        });
    }

    /// Keys of a new volume from request parameters (validated).
    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per EBS parameter, all validated here"
    )]
    fn volume_context(
        &self,
        pre: &str,
        size: Option<&str>,
        volume_type: Option<&str>,
        encrypted: Option<&str>,
        iops: Option<&str>,
        throughput: Option<&str>,
        kms: Option<&str>,
        snapshot: Option<&str>,
    ) -> Result<Vec<(String, ContextValue)>, MappingError> {
        let snap = match snapshot {
            Some(s) => {
                check_id("snapshot", &format!("{pre}.SnapshotId"), s)?;
                self.inventory.get(s)
            }
            None => None,
        };
        let mut out = Vec::new();
        let size = match size {
            Some(v) => Some(parse_number(&format!("{pre}.VolumeSize"), v)?.to_string()),
            None => snap
                .and_then(|s| s.attributes.volume_size)
                .map(|n| n.to_string()),
        };
        if let Some(s) = size {
            out.push((keys::EC2_VOLUME_SIZE.into(), one(s)));
        }
        out.push((
            keys::EC2_VOLUME_TYPE.into(),
            one(volume_type.unwrap_or("gp2")),
        ));
        let enc = match encrypted {
            Some(v) => parse_bool(&format!("{pre}.Encrypted"), v)?,
            None => snap.and_then(|s| s.attributes.encrypted).unwrap_or(false),
        };
        out.push((keys::EC2_ENCRYPTED.into(), one(enc.to_string())));
        if let Some(v) = iops {
            let n = parse_number(&format!("{pre}.Iops"), v)?;
            out.push((keys::EC2_VOLUME_IOPS.into(), one(n.to_string())));
        }
        if let Some(v) = throughput {
            let n = parse_number(&format!("{pre}.Throughput"), v)?;
            out.push((keys::EC2_VOLUME_THROUGHPUT.into(), one(n.to_string())));
        }
        if let Some(k) = kms {
            out.push((keys::EC2_KMS_KEY_ID.into(), one(k)));
        }
        if let Some(s) = snapshot {
            out.push((
                keys::EC2_PARENT_SNAPSHOT.into(),
                one(self.arn_of("snapshot", "", s)),
            ));
        }
        Ok(out)
    }

    // ---- volumes and snapshots ------------------------------------------

    fn create_volume(&mut self) -> Result<(), MappingError> {
        let p = self.params;
        let snapshot = p.get("SnapshotId");
        let mut vol = Self::new_resource("volume");
        vol.extra = self.volume_context(
            "",
            p.get("Size"),
            p.get("VolumeType"),
            p.get("Encrypted"),
            p.get("Iops"),
            p.get("Throughput"),
            p.get("KmsKeyId"),
            snapshot,
        )?;
        // Parameter names are top-level here (`Size`, not `.VolumeSize`).
        if let Some(az) = p.get("AvailabilityZone") {
            vol.extra
                .push((keys::EC2_AVAILABILITY_ZONE.into(), one(az)));
        }
        self.authorize(vol);
        if let Some(s) = snapshot {
            let t = self.existing("snapshot", "SnapshotId", s)?;
            self.permission_check(s, t.known, PermissionKind::CreateVolume);
            self.authorize(t);
        }
        Ok(())
    }

    fn create_snapshot(&mut self) -> Result<(), MappingError> {
        let vol_id = self
            .params
            .get("VolumeId")
            .ok_or_else(|| MappingError::MissingParameter("VolumeId".into()))?;
        let vol = self.existing("volume", "VolumeId", vol_id)?;
        let mut snap = Self::new_resource("snapshot");
        snap.extra.push((
            keys::EC2_PARENT_VOLUME.into(),
            one(self.arn_of_existing("volume", vol_id)),
        ));
        if let Some(n) = vol.known.and_then(|v| v.attributes.volume_size) {
            snap.extra
                .push((keys::EC2_VOLUME_SIZE.into(), one(n.to_string())));
        }
        self.authorize(snap);
        self.authorize(vol);
        Ok(())
    }

    fn detach_volume(&mut self) -> Result<(), MappingError> {
        let vol_id = self
            .params
            .get("VolumeId")
            .ok_or_else(|| MappingError::MissingParameter("VolumeId".into()))?;
        let vol = self.existing("volume", "VolumeId", vol_id)?;
        let instance = match self.params.get("InstanceId") {
            Some(i) => Some(i.to_owned()),
            None => vol.known.and_then(|v| v.attributes.attached_to.clone()),
        };
        self.authorize(vol);
        if let Some(i) = instance {
            let t = self.existing("instance", "InstanceId", &i)?;
            self.authorize(t);
        }
        Ok(())
    }

    // ---- tags --------------------------------------------------------------

    fn tags(&mut self) -> Result<(), MappingError> {
        let ids = self.params.list("ResourceId")?;
        if ids.is_empty() {
            return Err(MappingError::MissingParameter("ResourceId.1".into()));
        }
        let tags = self.params.tags("Tag")?;
        let creating = self.def.name == "CreateTags";
        if creating && tags.is_empty() {
            return Err(MappingError::MissingParameter("Tag.1.Key".into()));
        }
        let mut seen_keys: Vec<&str> = Vec::new();
        for (i, (k, _)) in tags.iter().enumerate() {
            if seen_keys.contains(&k.as_str()) {
                return Err(MappingError::InvalidParameterValue {
                    name: format!("Tag.{}.Key", i + 1),
                    reason: format!("duplicate tag key '{k}'"),
                });
            }
            seen_keys.push(k);
        }
        // Each resource, as resolved from its ResourceId.N (its type from
        // the id's prefix), once.
        let targets: Vec<Target<'a>> = self
            .resolved
            .iter()
            .filter(|t| {
                t.param
                    .as_deref()
                    .is_some_and(|n| catalog::param_pattern(n).eq_ignore_ascii_case("ResourceId.N"))
            })
            .cloned()
            .collect();
        for t in targets {
            let row = self.def.resource(t.resource_type);
            let mut auth = self.build(self.def, t, false);
            let mut keys = Keys {
                action: self.def,
                row,
                ctx: auth.context,
            };
            // CreateTags: each tag is requested with its value (missing = "").
            // DeleteTags: keys are requested; values only when given.
            keys.request_tags(tags.iter().map(|(k, v)| {
                let v = match (creating, v) {
                    (true, None) => Some(""),
                    (_, v) => v.as_deref(),
                };
                (k.as_str(), v)
            }));
            auth.context = keys.ctx;
            self.call.authorizations.push(auth);
        }
        Ok(())
    }

    // ---- permission attributes ------------------------------------------

    fn modify_image_attribute(&mut self) -> Result<(), MappingError> {
        let id = self
            .params
            .get("ImageId")
            .ok_or_else(|| MappingError::MissingParameter("ImageId".into()))?;
        let mut t = self.existing("image", "ImageId", id)?;
        let (add, remove) = self.grants("LaunchPermission", "launchPermission", true)?;
        if let Some(attr) =
            self.attribute_name("launchPermission", !(add.is_empty() && remove.is_empty()))
        {
            t.extra.push((keys::EC2_ATTRIBUTE.into(), one(attr)));
        }
        self.authorize(t);
        self.push_grants(id, add, remove);
        Ok(())
    }

    fn modify_snapshot_attribute(&mut self) -> Result<(), MappingError> {
        let id = self
            .params
            .get("SnapshotId")
            .ok_or_else(|| MappingError::MissingParameter("SnapshotId".into()))?;
        let mut t = self.existing("snapshot", "SnapshotId", id)?;
        let (add, remove) =
            self.grants("CreateVolumePermission", "createVolumePermission", false)?;
        if let Some(attr) = self.attribute_name(
            "createVolumePermission",
            !(add.is_empty() && remove.is_empty()),
        ) {
            t.extra.push((keys::EC2_ATTRIBUTE.into(), one(attr)));
        }
        for (key, list) in [("Add", &add), ("Remove", &remove)] {
            let users: Vec<String> = list
                .iter()
                .filter_map(|g| match g {
                    Grant::Account(a) => Some(a.clone()),
                    _ => None,
                })
                .collect();
            let groups: Vec<String> = list
                .iter()
                .filter(|g| matches!(g, Grant::All))
                .map(|_| "all".to_owned())
                .collect();
            if let Some(v) = many(users) {
                t.extra.push((format!("ec2:{key}/userId"), v));
            }
            if let Some(v) = many(groups) {
                t.extra.push((format!("ec2:{key}/group"), v));
            }
        }
        self.authorize(t);
        self.push_grants(id, add, remove);
        Ok(())
    }

    /// The attribute being modified: `Attribute=…`, or `implied` when the
    /// structured permission parameters are used.
    fn attribute_name(&self, implied: &str, has_grants: bool) -> Option<String> {
        match self.params.get("Attribute") {
            Some(a) => Some(a.to_owned()),
            None => has_grants.then(|| implied.to_owned()),
        }
    }

    fn push_grants(&mut self, id: &str, add: Vec<Grant>, remove: Vec<Grant>) {
        if add.is_empty() && remove.is_empty() {
            return;
        }
        self.call.grant_updates.push(Change::Grants {
            id: id.to_owned(),
            add,
            remove,
        });
    }

    /// Reads permission changes: the structured form (`<structured>.Add.N.*`,
    /// `.Remove.N.*`) or the older one (`OperationType` with `UserId.N`,
    /// `UserGroup.N` / `GroupName.N`, and for images `OrganizationArn.N`,
    /// `OrganizationalUnitArn.N`).
    fn grants(
        &self,
        structured: &str,
        attribute: &str,
        image: bool,
    ) -> Result<(Vec<Grant>, Vec<Grant>), MappingError> {
        let p = self.params;
        let group_param = "UserGroup";
        let mut old_params = vec!["UserId", group_param];
        if image {
            old_params.extend(["OrganizationArn", "OrganizationalUnitArn"]);
        }
        let old_form = old_params.iter().any(|n| p.has_prefix(n));
        let new_form = p.has_prefix(structured);
        if let Some(a) = p.get("Attribute")
            && (old_form || new_form)
            && !a.eq_ignore_ascii_case(attribute)
        {
            return Err(MappingError::InvalidParameterCombination(format!(
                "Attribute={a} cannot change {attribute}"
            )));
        }
        if old_form && new_form {
            return Err(MappingError::InvalidParameterCombination(format!(
                "{structured} cannot be combined with OperationType and {}",
                old_params.join(".N / ")
            )));
        }
        let mut add = Vec::new();
        let mut remove = Vec::new();
        if new_form {
            for (op, out) in [("Add", &mut add), ("Remove", &mut remove)] {
                let list = format!("{structured}.{op}");
                for i in p.indices(&list)? {
                    let pre = format!("{list}.{i}");
                    let before = out.len();
                    if let Some(u) = p.get(&format!("{pre}.UserId")) {
                        out.push(account_grant(&format!("{pre}.UserId"), u)?);
                    }
                    if let Some(g) = p.get(&format!("{pre}.Group")) {
                        out.push(group_grant(&format!("{pre}.Group"), g)?);
                    }
                    if image {
                        if let Some(a) = p.get(&format!("{pre}.OrganizationArn")) {
                            out.push(org_grant(&format!("{pre}.OrganizationArn"), a, false)?);
                        }
                        if let Some(a) = p.get(&format!("{pre}.OrganizationalUnitArn")) {
                            out.push(org_grant(&format!("{pre}.OrganizationalUnitArn"), a, true)?);
                        }
                    }
                    if out.len() == before {
                        return Err(MappingError::InvalidParameterValue {
                            name: pre,
                            reason: "names no account, group or organization".into(),
                        });
                    }
                }
            }
        } else if old_form {
            let op = p
                .get("OperationType")
                .ok_or_else(|| MappingError::MissingParameter("OperationType".into()))?;
            let out = if op.eq_ignore_ascii_case("add") {
                &mut add
            } else if op.eq_ignore_ascii_case("remove") {
                &mut remove
            } else {
                return Err(MappingError::InvalidParameterValue {
                    name: "OperationType".into(),
                    reason: format!("'{op}' is neither add nor remove"),
                });
            };
            for (i, u) in p.list("UserId")?.into_iter().enumerate() {
                out.push(account_grant(&format!("UserId.{}", i + 1), u)?);
            }
            for (i, g) in p.list(group_param)?.into_iter().enumerate() {
                out.push(group_grant(&format!("{group_param}.{}", i + 1), g)?);
            }
            if image {
                for (i, a) in p.list("OrganizationArn")?.into_iter().enumerate() {
                    out.push(org_grant(&format!("OrganizationArn.{}", i + 1), a, false)?);
                }
                for (i, a) in p.list("OrganizationalUnitArn")?.into_iter().enumerate() {
                    out.push(org_grant(
                        &format!("OrganizationalUnitArn.{}", i + 1),
                        a,
                        true,
                    )?);
                }
            }
        }
        Ok((add, remove))
    }
}

/// Condition keys of one authorization, filtered against the catalog.
struct Keys {
    action: &'static ActionDef,
    row: Option<&'static ActionResource>,
    ctx: Context,
}

impl Keys {
    fn new(action: &'static ActionDef, row: Option<&'static ActionResource>) -> Self {
        Self {
            action,
            row,
            ctx: Context::new(),
        }
    }

    /// Whether the catalog lists `key` for the action or its (action,
    /// resource type) row.
    fn allows(&self, key: &str) -> bool {
        let listed = |keys: &[&str]| keys.iter().any(|p| key_matches(p, key));
        listed(self.action.condition_keys) || self.row.is_some_and(|r| listed(r.condition_keys))
    }

    fn put(&mut self, key: &str, value: String) {
        self.put_value(key, ContextValue::One(value));
    }

    fn put_value(&mut self, key: &str, value: ContextValue) {
        if self.allows(key) {
            self.ctx.insert(key, value);
        }
    }

    /// `ec2:Region` (when listed) and the global `aws:RequestedRegion`.
    fn action_keys(&mut self, region: &str) {
        self.put(keys::EC2_REGION, region.to_owned());
        self.ctx
            .insert("aws:RequestedRegion", ContextValue::One(region.to_owned()));
    }

    /// `aws:RequestTag/K` (for tags with a value) and `aws:TagKeys`.
    fn request_tags<'t>(&mut self, tags: impl Iterator<Item = (&'t str, Option<&'t str>)>) {
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
type TagSpec = (String, Vec<(String, String)>);

/// Validated tag specifications, one per resource type.
fn tag_specs(params: &QueryParams, def: &ActionDef) -> Result<Vec<TagSpec>, MappingError> {
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
const ID_PREFIXES: [(&str, &str); 47] = [
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
fn check_lists(params: &QueryParams) -> Result<(), MappingError> {
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
fn missing_param(table: &ActionParams, wanted: impl Fn(&ExistingRef) -> bool) -> Option<String> {
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
fn recorded_association(kind: ResourceKind, id: &str) -> bool {
    let prefix = match kind {
        ResourceKind::Instance => "iip-assoc-",
        ResourceKind::Subnet => "subnet-cidr-assoc-",
        ResourceKind::NetworkInterface => "eni-attach-",
        _ => return false,
    };
    id.strip_prefix(prefix).is_some_and(|rest| !rest.is_empty())
}

/// What makes two targets the same resource: type, id, region, ARN.
type ResourceKey = (&'static str, Option<String>, Option<String>, Option<String>);

fn resource_key(t: &Target<'_>) -> ResourceKey {
    (
        t.resource_type,
        t.id.clone(),
        t.region.clone(),
        t.arn.clone(),
    )
}

/// EC2 takes a resource by one name at a time: `GroupId` or `GroupName`,
/// `KeyName` or `KeyPairId`, `LaunchTemplateId` or `LaunchTemplateName`.
fn check_combination(scalars: &[(&'static str, ExistingRef)]) -> Result<(), MappingError> {
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
fn check_region(param: &str, v: &str) -> Result<Region, MappingError> {
    Region::parse(v).map_err(|_| MappingError::InvalidParameterValue {
        name: param.to_owned(),
        reason: format!("'{v}' is not a Region name"),
    })
}

/// An account id the request gives (`PeerOwnerId`, `UserId`):
/// [`AccountId`]'s rule.
fn check_account(param: &str, v: &str) -> Result<AccountId, MappingError> {
    AccountId::parse(v).map_err(|_| MappingError::InvalidParameterValue {
        name: param.to_owned(),
        reason: format!("'{v}' is not a 12-digit account id"),
    })
}

/// A name to look up (matched exactly; never put into an ARN).
fn check_name(param: &str, v: &str) -> Result<(), MappingError> {
    if v.is_empty() || v.len() > 255 || v.chars().any(char::is_control) {
        return Err(MappingError::InvalidParameterValue {
            name: param.to_owned(),
            reason: format!("'{v}' is not a valid name"),
        });
    }
    Ok(())
}

/// An id to look up whose prefix is its own (an association id).
fn check_chars(param: &str, v: &str) -> Result<(), MappingError> {
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
fn check_arn(param: &str, v: &str) -> Result<(), MappingError> {
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
fn check_id(resource_type: &str, param: &str, id: &str) -> Result<(), MappingError> {
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
fn id_keys(resource_type: &str, id: &str) -> Vec<(&'static str, String)> {
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
fn image_type(id: &str) -> Option<&'static str> {
    match id.split_once('-')?.0 {
        "ami" => Some("machine"),
        "aki" => Some("kernel"),
        "ari" => Some("ramdisk"),
        _ => None,
    }
}

/// `ec2:Owner`: `amazon` / `aws-marketplace` for those owners, else the
/// account id.
fn owner_value(r: &Resource) -> String {
    match r.attributes.owner_alias.as_deref() {
        Some(a @ ("amazon" | "aws-marketplace")) => a.to_owned(),
        _ => r.account.clone(),
    }
}

fn opt(one: &mut impl FnMut(&str, String), key: &str, v: Option<String>) {
    if let Some(v) = v {
        one(key, v);
    }
}

fn one(v: impl Into<String>) -> ContextValue {
    ContextValue::One(v.into())
}

/// One value as `One`, several as `Many`, none as `None`.
fn many(mut v: Vec<String>) -> Option<ContextValue> {
    match v.len() {
        0 => None,
        1 => v.pop().map(ContextValue::One),
        _ => Some(ContextValue::Many(v)),
    }
}

fn parse_bool(name: &str, v: &str) -> Result<bool, MappingError> {
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

fn parse_number(name: &str, v: &str) -> Result<u64, MappingError> {
    v.parse::<u64>()
        .ok()
        .filter(|_| !v.starts_with('+'))
        .ok_or_else(|| MappingError::InvalidParameterValue {
            name: name.to_owned(),
            reason: format!("'{v}' is not a non-negative integer"),
        })
}

fn account_grant(name: &str, v: &str) -> Result<Grant, MappingError> {
    Ok(Grant::Account(check_account(name, v)?.into()))
}

fn group_grant(name: &str, v: &str) -> Result<Grant, MappingError> {
    if v == "all" {
        Ok(Grant::All)
    } else {
        Err(MappingError::InvalidParameterValue {
            name: name.to_owned(),
            reason: format!("'{v}' is not a valid group: the only group is 'all'"),
        })
    }
}

fn org_grant(name: &str, v: &str, ou: bool) -> Result<Grant, MappingError> {
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

#[cfg(test)]
#[path = "mapping_catalog_tests.rs"]
mod catalog_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::variables::ValueRef;
    use serde_json::json;

    pub(super) const ME: &str = "111111111111";
    pub(super) const OTHER: &str = "222222222222";
    pub(super) const R: &str = "us-east-1";

    pub(super) type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

    /// One resource of every kind the inventory tracks (and a few more),
    /// shared with the table-driven tests in `mapping_catalog_tests.rs`.
    pub(super) fn inventory() -> Res<Inventory> {
        let mut inv = Inventory::new();
        inv.load_cli_output(
            &json!({"Reservations": [{"OwnerId": ME, "Instances": [{
                "InstanceId": "i-0aaa", "InstanceType": "t3.micro", "ImageId": "ami-0mine",
                "Placement": {"AvailabilityZone": "us-east-1a", "Tenancy": "default"},
                "SubnetId": "subnet-0aaa", "VpcId": "vpc-0aaa", "RootDeviceType": "ebs",
                "EbsOptimized": false,
                "IamInstanceProfile": {"Arn": "arn:aws:iam::111111111111:instance-profile/web"},
                "Tags": [{"Key": "team", "Value": "blue"}],
                "SecurityGroups": [{"GroupId": "sg-0web"}]}]},
                {"OwnerId": OTHER, "Instances": [{"InstanceId": "i-0bbb", "InstanceType": "m5.large",
                "Tags": [{"Key": "team", "Value": "red"}]}]}]}),
            ME,
            R,
        )?;
        inv.load_cli_output(
            &json!({"Images": [
                {"ImageId": "ami-0mine", "OwnerId": ME, "Public": false, "RootDeviceType": "ebs"},
                {"ImageId": "ami-0shared", "OwnerId": OTHER, "Public": false, "RootDeviceType": "ebs",
                 "Tags": [{"Key": "os", "Value": "linux"}]},
                {"ImageId": "ami-0amzn", "OwnerId": "137112412989", "Public": true,
                 "ImageOwnerAlias": "amazon", "RootDeviceType": "ebs"},
                {"ImageId": "ami-0store", "OwnerId": ME, "RootDeviceType": "instance-store"}]}),
            ME,
            R,
        )?;
        inv.load_cli_output(
            &json!({"ImageId": "ami-0shared", "LaunchPermissions": [{"UserId": ME}]}),
            OTHER,
            R,
        )?;
        inv.load_cli_output(
            &json!({"Snapshots": [
                {"SnapshotId": "snap-0theirs", "OwnerId": OTHER, "VolumeSize": 20, "Encrypted": true,
                 "VolumeId": "vol-0src"},
                {"SnapshotId": "snap-0mine", "OwnerId": ME, "VolumeSize": 8, "Encrypted": false},
                {"SnapshotId": "snap-0a1b2c3d", "OwnerId": ME, "VolumeSize": 8}]}),
            ME,
            R,
        )?;
        inv.load_cli_output(
            &json!({"Volumes": [{"VolumeId": "vol-0aaa", "Size": 100, "VolumeType": "gp3", "Iops": 3000,
                "Encrypted": false, "AvailabilityZone": "us-east-1a", "SnapshotId": "snap-0mine",
                "Attachments": [{"InstanceId": "i-0aaa", "Device": "/dev/sdf"}],
                "Tags": [{"Key": "team", "Value": "blue"}]}]}),
            ME,
            R,
        )?;
        inv.load_cli_output(
            &json!({"Subnets": [{"SubnetId": "subnet-0aaa", "VpcId": "vpc-0aaa",
                "AvailabilityZone": "us-east-1a", "CidrBlock": "10.0.1.0/24", "OwnerId": ME,
                "Ipv6CidrBlockAssociationSet": [{"AssociationId": "subnet-cidr-assoc-0aaa",
                    "Ipv6CidrBlock": "2600:1f18:0:1::/64"}],
                "Tags": [{"Key": "tier", "Value": "public"}]}]}),
            ME,
            R,
        )?;
        // The default VPC: a default subnet per zone, and its default group.
        inv.load_cli_output(
            &json!({"Subnets": [
                {"SubnetId": "subnet-0dfa", "VpcId": "vpc-0dflt", "AvailabilityZone": "us-east-1a",
                 "CidrBlock": "172.31.0.0/20", "OwnerId": ME, "DefaultForAz": true},
                {"SubnetId": "subnet-0dfb", "VpcId": "vpc-0dflt", "AvailabilityZone": "us-east-1b",
                 "CidrBlock": "172.31.16.0/20", "OwnerId": ME, "DefaultForAz": true}],
                "SecurityGroups": [{"GroupId": "sg-0dflt", "GroupName": "default",
                 "VpcId": "vpc-0dflt", "OwnerId": ME}]}),
            ME,
            R,
        )?;
        inv.load_cli_output(
            &json!({"SecurityGroups": [
                {"GroupId": "sg-0web", "GroupName": "web", "VpcId": "vpc-0aaa", "OwnerId": ME,
                 "Tags": [{"Key": "team", "Value": "blue"}]},
                {"GroupId": "sg-0def", "GroupName": "default", "VpcId": "vpc-0aaa", "OwnerId": ME}]}),
            ME,
            R,
        )?;
        inv.load_cli_output(
            &json!({"NetworkInterfaces": [{"NetworkInterfaceId": "eni-0aaa", "SubnetId": "subnet-0aaa",
                "VpcId": "vpc-0aaa", "OwnerId": ME, "PrivateIpAddress": "10.0.1.9",
                "Attachment": {"AttachmentId": "eni-attach-0aaa", "InstanceId": "i-0aaa"},
                "Groups": [{"GroupId": "sg-0web"}]}]}),
            ME,
            R,
        )?;
        inv.load_cli_output(
            &json!({"PrefixLists": [{"PrefixListId": "pl-0aaa", "OwnerId": ME,
                "Entries": [{"Cidr": "192.0.2.0/24"}], "Tags": [{"Key": "team", "Value": "blue"}]}]}),
            ME,
            R,
        )?;
        inv.load_cli_output(
            &json!({"KeyPairs": [{"KeyPairId": "key-0blue", "KeyName": "blue-team",
                "KeyType": "ed25519", "Tags": [{"Key": "team", "Value": "blue"}]}]}),
            ME,
            R,
        )?;
        inv.load_cli_output(
            &json!({"LaunchTemplates": [{"LaunchTemplateId": "lt-0abc", "LaunchTemplateName": "web",
                "Tags": [{"Key": "team", "Value": "blue"}]}]}),
            ME,
            R,
        )?;
        inv.load_cli_output(
            &json!({"IamInstanceProfileAssociations": [{"AssociationId": "iip-assoc-0aaa",
                "InstanceId": "i-0aaa", "State": "associated",
                "IamInstanceProfile": {"Arn": "arn:aws:iam::111111111111:instance-profile/web",
                    "Id": "AIPA0000000000000000"}}]}),
            ME,
            R,
        )?;
        Ok(inv)
    }

    /// The caller's instance profiles: `web` (role `web-role`, path
    /// `/apps/`) and `empty` (no role).
    pub(super) fn profiles(account: &str, name: &str) -> Option<InstanceProfile> {
        let (arn, roles) = match name.to_ascii_lowercase().as_str() {
            "web" => (
                format!("arn:aws:iam::{account}:instance-profile/web"),
                vec![format!("arn:aws:iam::{account}:role/apps/web-role")],
            ),
            "empty" => (
                format!("arn:aws:iam::{account}:instance-profile/empty"),
                vec![],
            ),
            _ => return None,
        };
        (account == ME).then_some(InstanceProfile {
            arn,
            role_arns: roles,
        })
    }

    fn map(target: &str) -> Res<Ec2Call> {
        let inv = inventory()?;
        Ok(map_call_with(
            &QueryParams::parse(target, None)?,
            R,
            ME,
            &inv,
            &profiles,
        )?)
    }

    fn map_err(target: &str) -> Res<MappingError> {
        let inv = inventory()?;
        match map_call_with(&QueryParams::parse(target, None)?, R, ME, &inv, &profiles) {
            Ok(c) => Err(format!("expected an error, got {c:?}").into()),
            Err(e) => Ok(e),
        }
    }

    /// The authorizations' `(action, resource)` pairs.
    fn pairs(c: &Ec2Call) -> Vec<(&str, &str)> {
        c.authorizations
            .iter()
            .map(|a| (a.action.as_str(), a.resource.as_str()))
            .collect()
    }

    fn auth<'c>(c: &'c Ec2Call, resource: &str) -> Res<&'c Authorization> {
        c.authorizations
            .iter()
            .find(|a| a.resource == resource && a.action == format!("ec2:{}", c.action))
            .ok_or_else(|| format!("no authorization on {resource}: {:?}", pairs(c)).into())
    }

    fn val<'c>(a: &'c Authorization, key: &str) -> Option<&'c str> {
        match a.context.get(&key.to_ascii_lowercase()) {
            Some(ValueRef::One(v)) => Some(v),
            _ => None,
        }
    }

    fn vals(a: &Authorization, key: &str) -> Option<Vec<String>> {
        match a.context.get(&key.to_ascii_lowercase()) {
            Some(ValueRef::Many(v)) => Some(v.to_vec()),
            Some(ValueRef::One(v)) => Some(vec![v.to_owned()]),
            None => None,
        }
    }

    // ---- action, version, dry run ----------------------------------------

    #[test]
    fn actions_are_checked_against_the_catalog() -> Res {
        assert_eq!(
            map_err("/?Action=LaunchRockets")?,
            MappingError::InvalidAction("LaunchRockets".into())
        );
        assert_eq!(
            map_err("/?Action=describeinstances")?,
            MappingError::InvalidAction("describeinstances".into()),
            "API action names are case-sensitive"
        );
        assert_eq!(
            map_err("/?Version=2016-11-15")?,
            MappingError::MissingAction
        );
        assert_eq!(map_err("/?Action=Nope")?.code(), "InvalidAction");
        let c = map("/?Action=DescribeInstances&Version=2016-11-15")?;
        assert_eq!(c.action, "DescribeInstances");
        Ok(())
    }

    #[test]
    fn dry_run() -> Res {
        assert!(map("/?Action=DescribeInstances&DryRun=true")?.dry_run);
        assert!(map("/?Action=DescribeInstances&DryRun=TRUE")?.dry_run);
        assert!(!map("/?Action=DescribeInstances&DryRun=false")?.dry_run);
        assert!(!map("/?Action=DescribeInstances")?.dry_run);
        assert!(matches!(
            map_err("/?Action=DescribeInstances&DryRun=yes")?,
            MappingError::InvalidParameterValue { name, .. } if name == "DryRun"
        ));
        Ok(())
    }

    #[test]
    fn wildcard_only_actions() -> Res {
        let c = map("/?Action=DescribeInstances&InstanceId.1=i-0aaa")?;
        assert_eq!(pairs(&c), [("ec2:DescribeInstances", "*")]);
        let a = auth(&c, "*")?;
        assert_eq!(val(a, "ec2:Region"), Some(R));
        assert_eq!(val(a, "aws:RequestedRegion"), Some(R));
        assert_eq!(a.resource_type, "");
        assert_eq!(a.resource_account, None);
        assert!(c.permission_checks.is_empty() && c.grant_updates.is_empty());
        Ok(())
    }

    // ---- instances ----------------------------------------------------------

    #[test]
    fn instance_actions_authorize_each_instance() -> Res {
        for action in [
            "TerminateInstances",
            "StartInstances",
            "StopInstances",
            "RebootInstances",
        ] {
            let c = map(&format!(
                "/?Action={action}&InstanceId.1=i-0aaa&InstanceId.2=i-0bbb"
            ))?;
            let ec2_action = format!("ec2:{action}");
            assert_eq!(
                pairs(&c),
                [
                    (
                        ec2_action.as_str(),
                        "arn:aws:ec2:us-east-1:111111111111:instance/i-0aaa"
                    ),
                    (
                        ec2_action.as_str(),
                        "arn:aws:ec2:us-east-1:222222222222:instance/i-0bbb"
                    ),
                ],
                "{action}: owner from the inventory"
            );
            // An instance the inventory does not hold is EC2's NotFound,
            // never an authorization without its owner and tags.
            let e = map_err(&format!(
                "/?Action={action}&InstanceId.1=i-0aaa&InstanceId.2=i-0ccccccc"
            ))?;
            assert_eq!(e.code(), "InvalidInstanceID.NotFound");
            assert_eq!(e.to_string(), "The instance ID 'i-0ccccccc' does not exist");
            // One that could not be an instance id at all is malformed.
            let e = map_err(&format!("/?Action={action}&InstanceId.1=i-0CCCCCCC"))?;
            assert_eq!(e.code(), "InvalidInstanceID.Malformed");
        }
        Ok(())
    }

    #[test]
    fn existing_instance_keys() -> Res {
        let c = map("/?Action=TerminateInstances&InstanceId.1=i-0aaa")?;
        let a = auth(&c, "arn:aws:ec2:us-east-1:111111111111:instance/i-0aaa")?;
        assert_eq!(a.resource_type, "instance");
        assert_eq!(a.resource_account, None, "the ARN names the account");
        assert_eq!(val(a, "ec2:ResourceTag/team"), Some("blue"));
        assert_eq!(val(a, "aws:ResourceTag/team"), Some("blue"));
        assert_eq!(val(a, "ec2:InstanceType"), Some("t3.micro"));
        assert_eq!(val(a, "ec2:AvailabilityZone"), Some("us-east-1a"));
        assert_eq!(val(a, "ec2:Tenancy"), Some("default"));
        assert_eq!(val(a, "ec2:RootDeviceType"), Some("ebs"));
        assert_eq!(val(a, "ec2:EbsOptimized"), Some("false"));
        assert_eq!(val(a, "ec2:InstanceID"), Some("i-0aaa"));
        assert_eq!(
            val(a, "ec2:InstanceProfile"),
            Some("arn:aws:iam::111111111111:instance-profile/web")
        );
        assert_eq!(val(a, "ec2:Region"), Some(R));
        // The catalog lists no ec2:Vpc for instances, nor request tags here.
        assert_eq!(val(a, "ec2:Vpc"), None);
        assert_eq!(val(a, "aws:TagKeys"), None);
        // A type the inventory does not track: only what the request says.
        let c = map("/?Action=DeleteVpc&VpcId=vpc-0ccc")?;
        let u = auth(&c, "arn:aws:ec2:us-east-1:111111111111:vpc/vpc-0ccc")?;
        assert_eq!(val(u, "ec2:VpcID"), Some("vpc-0ccc"));
        assert_eq!(val(u, "ec2:ResourceTag/team"), None);
        Ok(())
    }

    #[test]
    fn id_prefixes() {
        for (id, rt) in [
            ("i-0aaa", Some("instance")),
            ("tgw-0aaa", Some("transit-gateway")),
            ("tgw-attach-0aaa", Some("transit-gateway-attachment")),
            ("vpce-svc-0aaa", Some("vpc-endpoint-service")),
            ("vpce-0aaa", Some("vpc-endpoint")),
            ("export-i-0aaa", Some("export-instance-task")),
            ("key-0aaa", Some("key-pair")),
            ("fleet-2f6e3a1b-6c4d-4e8f-9a0b-1c2d3e4f5a6b", Some("fleet")),
            // Prefixes not listed tell nothing (never a wrong type).
            ("ipam-res-disco-0aaa", None),
            ("tgw-mcast-domain-0aaa", None),
            ("eni-attach-0aaa", None),
            ("i-", None),
            ("-0aaa", None),
            ("i0aaa", None),
        ] {
            assert_eq!(resource_type_of_id(id), rt, "{id}");
        }
        // So an id of a type without a listed prefix is not mistaken.
        assert!(
            check_id(
                "transit-gateway-multicast-domain",
                "TransitGatewayMulticastDomainId",
                "tgw-mcast-domain-0aaa"
            )
            .is_ok()
        );
    }

    #[test]
    fn ids_are_validated() -> Res {
        for bad in ["*", "i-0aaa/*", "i-0aa:a", "vol-0aaa", "foo", "i-0a%2A"] {
            let e = map_err(&format!("/?Action=TerminateInstances&InstanceId.1={bad}"))?;
            assert!(
                matches!(e, MappingError::InvalidParameterValue { ref name, .. } if name == "InstanceId.1"),
                "{bad}: {e:?}"
            );
        }
        for gap in [
            "InstanceId.1=i-0aaa&InstanceId.3=i-0bbb",
            "InstanceId.2=i-0aaa",
        ] {
            assert!(
                matches!(
                    map_err(&format!("/?Action=TerminateInstances&{gap}"))?,
                    MappingError::Query(QueryError::ListGap { .. })
                ),
                "{gap}"
            );
        }
        assert!(matches!(
            map_err(
                "/?Action=RunInstances&ImageId=ami-0mine&NetworkInterface.2.SubnetId=subnet-0aaa"
            )?,
            MappingError::Query(QueryError::ListGap { .. })
        ));
        // A list parameter is only ever indexed.
        assert!(matches!(
            map_err("/?Action=TerminateInstances&InstanceId=i-1&InstanceId.1=i-2")?,
            MappingError::UnknownParameter(p) if p == "InstanceId"
        ));
        Ok(())
    }

    // ---- RunInstances --------------------------------------------------------

    const RUN: &str = "/?Action=RunInstances&ImageId=ami-0shared&InstanceType=t3.micro\
        &MinCount=1&MaxCount=1&SubnetId=subnet-0aaa&SecurityGroupId.1=sg-0web&KeyName=blue-team\
        &TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=team\
        &TagSpecification.1.Tag.1.Value=blue&TagSpecification.1.Tag.2.Key=Name\
        &TagSpecification.1.Tag.2.Value=web-1\
        &TagSpecification.2.ResourceType=volume&TagSpecification.2.Tag.1.Key=team\
        &TagSpecification.2.Tag.1.Value=blue\
        &BlockDeviceMapping.1.DeviceName=/dev/xvda&BlockDeviceMapping.1.Ebs.VolumeSize=30\
        &BlockDeviceMapping.1.Ebs.VolumeType=gp3&BlockDeviceMapping.1.Ebs.Encrypted=true";

    #[test]
    fn run_instances_authorizes_every_resource() -> Res {
        let c = map(RUN)?;
        let run = "ec2:RunInstances";
        assert_eq!(
            pairs(&c),
            [
                (run, "arn:aws:ec2:us-east-1:111111111111:instance/*"),
                (run, "arn:aws:ec2:us-east-1::image/ami-0shared"),
                (run, "arn:aws:ec2:us-east-1:111111111111:subnet/subnet-0aaa"),
                (
                    run,
                    "arn:aws:ec2:us-east-1:111111111111:security-group/sg-0web"
                ),
                (
                    run,
                    "arn:aws:ec2:us-east-1:111111111111:network-interface/*"
                ),
                (run, "arn:aws:ec2:us-east-1:111111111111:volume/*"),
                (run, "arn:aws:ec2:us-east-1:111111111111:key-pair/blue-team"),
                (
                    "ec2:CreateTags",
                    "arn:aws:ec2:us-east-1:111111111111:instance/*"
                ),
                (
                    "ec2:CreateTags",
                    "arn:aws:ec2:us-east-1:111111111111:volume/*"
                ),
            ]
        );
        Ok(())
    }

    #[test]
    fn run_instances_context() -> Res {
        let c = map(RUN)?;
        let i = auth(&c, "arn:aws:ec2:us-east-1:111111111111:instance/*")?;
        assert_eq!(val(i, "ec2:InstanceType"), Some("t3.micro"));
        assert_eq!(val(i, "aws:RequestTag/team"), Some("blue"));
        assert_eq!(val(i, "aws:RequestTag/Name"), Some("web-1"));
        assert_eq!(
            vals(i, "aws:TagKeys"),
            Some(vec!["team".to_owned(), "Name".to_owned()])
        );
        assert_eq!(
            val(i, "ec2:AvailabilityZone"),
            Some("us-east-1a"),
            "from the subnet"
        );
        assert_eq!(val(i, "ec2:Tenancy"), Some("default"));
        assert_eq!(val(i, "ec2:RootDeviceType"), Some("ebs"), "from the image");
        assert_eq!(val(i, "ec2:InstanceMarketType"), Some("on-demand"));
        assert_eq!(val(i, "ec2:Region"), Some(R));

        let img = auth(&c, "arn:aws:ec2:us-east-1::image/ami-0shared")?;
        assert_eq!(img.resource_account.as_deref(), Some(OTHER));
        assert_eq!(val(img, "ec2:Owner"), Some(OTHER));
        assert_eq!(val(img, "ec2:Public"), Some("false"));
        assert_eq!(val(img, "ec2:ImageID"), Some("ami-0shared"));
        assert_eq!(val(img, "ec2:ImageType"), Some("machine"));
        assert_eq!(val(img, "ec2:ResourceTag/os"), Some("linux"));
        assert_eq!(
            val(img, "aws:RequestTag/team"),
            None,
            "tags go to instances only"
        );

        let sub = auth(&c, "arn:aws:ec2:us-east-1:111111111111:subnet/subnet-0aaa")?;
        assert_eq!(
            val(sub, "ec2:Vpc"),
            Some("arn:aws:ec2:us-east-1:111111111111:vpc/vpc-0aaa")
        );
        assert_eq!(val(sub, "ec2:SubnetID"), Some("subnet-0aaa"));
        assert_eq!(val(sub, "ec2:ResourceTag/tier"), Some("public"));

        let sg = auth(
            &c,
            "arn:aws:ec2:us-east-1:111111111111:security-group/sg-0web",
        )?;
        assert_eq!(val(sg, "ec2:SecurityGroupID"), Some("sg-0web"));
        assert_eq!(
            val(sg, "ec2:Vpc"),
            Some("arn:aws:ec2:us-east-1:111111111111:vpc/vpc-0aaa")
        );

        let eni = auth(&c, "arn:aws:ec2:us-east-1:111111111111:network-interface/*")?;
        assert_eq!(
            val(eni, "ec2:Subnet"),
            Some("arn:aws:ec2:us-east-1:111111111111:subnet/subnet-0aaa")
        );

        let vol = auth(&c, "arn:aws:ec2:us-east-1:111111111111:volume/*")?;
        assert_eq!(val(vol, "ec2:VolumeSize"), Some("30"));
        assert_eq!(val(vol, "ec2:VolumeType"), Some("gp3"));
        assert_eq!(val(vol, "ec2:Encrypted"), Some("true"));
        assert_eq!(val(vol, "aws:RequestTag/team"), Some("blue"));

        let key = auth(&c, "arn:aws:ec2:us-east-1:111111111111:key-pair/blue-team")?;
        assert_eq!(val(key, "ec2:KeyPairName"), Some("blue-team"));

        let tags: Vec<&Authorization> = c
            .authorizations
            .iter()
            .filter(|a| a.action == "ec2:CreateTags")
            .collect();
        assert_eq!(tags.len(), 2);
        for t in tags {
            assert_eq!(val(t, "ec2:CreateAction"), Some("RunInstances"));
            assert_eq!(val(t, "aws:RequestTag/team"), Some("blue"));
        }
        Ok(())
    }

    #[test]
    fn run_instances_permission_checks() -> Res {
        let c = map(RUN)?;
        assert_eq!(c.permission_checks.len(), 1);
        let p = c.permission_checks.first().ok_or("no check")?;
        assert_eq!(
            (p.resource_id.as_str(), p.kind, p.owner_account.as_deref()),
            ("ami-0shared", PermissionKind::Launch, Some(OTHER))
        );
        assert!(p.permits(ME, None), "shared with the caller by account");
        assert!(!p.permits("333333333333", None));
        // Own image: no check. Unknown image: a check that never passes.
        assert!(
            map("/?Action=RunInstances&ImageId=ami-0mine")?
                .permission_checks
                .is_empty()
        );
        let unknown = map("/?Action=RunInstances&ImageId=ami-0fffffff")?;
        let p = unknown.permission_checks.first().ok_or("no check")?;
        assert_eq!(p.owner_account, None);
        assert!(!p.permits(ME, None));
        let img = auth(&unknown, "arn:aws:ec2:us-east-1::image/ami-0fffffff")?;
        assert_eq!(img.resource_account, None);
        // Public Amazon image: launchable, ec2:Owner is `amazon`.
        let amzn = map("/?Action=RunInstances&ImageId=ami-0amzn")?;
        assert!(amzn.permission_checks.iter().all(|p| p.permits(ME, None)));
        let img = auth(&amzn, "arn:aws:ec2:us-east-1::image/ami-0amzn")?;
        assert_eq!(val(img, "ec2:Owner"), Some("amazon"));
        assert_eq!(val(img, "ec2:Public"), Some("true"));
        Ok(())
    }

    #[test]
    fn run_instances_defaults() -> Res {
        // No subnet, no groups: every default subnet (EC2 picks one), the
        // default VPC's default group, one new ENI, the root volume, and
        // the default instance type; never subnet/* or security-group/*.
        let c = map("/?Action=RunInstances&ImageId=ami-0mine")?;
        let run = "ec2:RunInstances";
        assert_eq!(
            pairs(&c),
            [
                (run, "arn:aws:ec2:us-east-1:111111111111:instance/*"),
                (run, "arn:aws:ec2:us-east-1::image/ami-0mine"),
                (run, "arn:aws:ec2:us-east-1:111111111111:subnet/subnet-0dfa"),
                (run, "arn:aws:ec2:us-east-1:111111111111:subnet/subnet-0dfb"),
                (
                    run,
                    "arn:aws:ec2:us-east-1:111111111111:security-group/sg-0dflt"
                ),
                (
                    run,
                    "arn:aws:ec2:us-east-1:111111111111:network-interface/*"
                ),
                (run, "arn:aws:ec2:us-east-1:111111111111:volume/*"),
            ]
        );
        let i = auth(&c, "arn:aws:ec2:us-east-1:111111111111:instance/*")?;
        assert_eq!(val(i, "ec2:InstanceType"), Some("m1.small"));
        assert_eq!(val(i, "aws:TagKeys"), None);
        assert_eq!(val(i, "ec2:AvailabilityZone"), None, "EC2 picks the zone");
        // In a zone: that zone's default subnet.
        let c =
            map("/?Action=RunInstances&ImageId=ami-0mine&Placement.AvailabilityZone=us-east-1b")?;
        let subnets: Vec<&str> = c
            .authorizations
            .iter()
            .filter(|a| a.resource_type == "subnet")
            .map(|a| a.resource.as_str())
            .collect();
        assert_eq!(
            subnets,
            ["arn:aws:ec2:us-east-1:111111111111:subnet/subnet-0dfb"]
        );
        // No default subnet known for the caller: refused, not subnet/*.
        let inv = inventory()?;
        let params = QueryParams::parse("/?Action=RunInstances&ImageId=ami-0mine", None)?;
        assert!(matches!(
            map_call(&params, R, OTHER, &inv),
            Err(MappingError::Unsupported(_))
        ));
        let params = QueryParams::parse(
            "/?Action=RunInstances&ImageId=ami-0mine&Placement.AvailabilityZone=us-east-1c",
            None,
        )?;
        assert!(matches!(
            map_call(&params, R, ME, &inv),
            Err(MappingError::Unsupported(_))
        ));
        // A subnet without groups: the VPC's default group from the inventory.
        let c = map("/?Action=RunInstances&ImageId=ami-0mine&SubnetId=subnet-0aaa")?;
        assert!(
            auth(
                &c,
                "arn:aws:ec2:us-east-1:111111111111:security-group/sg-0def"
            )
            .is_ok()
        );
        // Instance-store image without EBS mappings: no volume.
        let c = map("/?Action=RunInstances&ImageId=ami-0store")?;
        assert!(!c.authorizations.iter().any(|a| a.resource_type == "volume"));
        Ok(())
    }

    #[test]
    fn run_instances_interfaces_groups_and_templates() -> Res {
        let c = map(
            "/?Action=RunInstances&ImageId=ami-0mine&NetworkInterface.1.NetworkInterfaceId=eni-0aaa\
             &NetworkInterface.1.DeviceIndex=0",
        )?;
        let eni = auth(
            &c,
            "arn:aws:ec2:us-east-1:111111111111:network-interface/eni-0aaa",
        )?;
        assert_eq!(val(eni, "ec2:NetworkInterfaceID"), Some("eni-0aaa"));
        assert_eq!(
            val(eni, "ec2:Subnet"),
            Some("arn:aws:ec2:us-east-1:111111111111:subnet/subnet-0aaa")
        );
        assert_eq!(val(eni, "ec2:AvailabilityZone"), Some("us-east-1a"));
        assert!(
            !c.authorizations
                .iter()
                .any(|a| a.resource.ends_with("network-interface/*")),
            "an existing interface is not a new one"
        );

        let c = map(
            "/?Action=RunInstances&ImageId=ami-0mine&NetworkInterface.1.SubnetId=subnet-0aaa\
             &NetworkInterface.1.AssociatePublicIpAddress=true\
             &NetworkInterface.1.SecurityGroupId.1=sg-0web&SecurityGroup.1=default",
        )?;
        // `default` names a group in two VPCs: EC2 reads names in the
        // default VPC.
        let eni = auth(&c, "arn:aws:ec2:us-east-1:111111111111:network-interface/*")?;
        assert_eq!(val(eni, "ec2:AssociatePublicIpAddress"), Some("true"));
        assert_eq!(
            val(eni, "ec2:Vpc"),
            Some("arn:aws:ec2:us-east-1:111111111111:vpc/vpc-0aaa")
        );
        assert!(
            auth(
                &c,
                "arn:aws:ec2:us-east-1:111111111111:security-group/sg-0web"
            )
            .is_ok()
        );
        assert!(
            auth(
                &c,
                "arn:aws:ec2:us-east-1:111111111111:security-group/sg-0dflt"
            )
            .is_ok()
        );

        assert!(matches!(
            map_err("/?Action=RunInstances&ImageId=ami-0mine&SecurityGroup.1=nope")?,
            MappingError::NotFound { .. }
        ));
        assert!(matches!(
            map_err(
                "/?Action=RunInstances&ImageId=ami-0mine&SubnetId=subnet-0aaa&NetworkInterface.1.SubnetId=subnet-0aaa"
            )?,
            MappingError::InvalidParameterCombination(_)
        ));
        assert_eq!(
            map_err("/?Action=RunInstances&MinCount=1")?,
            MappingError::MissingParameter("ImageId".into())
        );
        assert!(matches!(
            map_err("/?Action=RunInstances&LaunchTemplate.LaunchTemplateId=lt-0abc")?,
            MappingError::Unsupported(_)
        ));
        assert_eq!(
            map_err(
                "/?Action=RunInstances&ImageId=ami-0mine&LaunchTemplate.LaunchTemplateName=nope"
            )?
            .code(),
            "InvalidLaunchTemplateName.NotFoundException"
        );
        // By id or by name: the same template, with its tags.
        for by in [
            "LaunchTemplate.LaunchTemplateId=lt-0abc",
            "LaunchTemplate.LaunchTemplateName=web",
        ] {
            let c = map(&format!("/?Action=RunInstances&ImageId=ami-0mine&{by}"))?;
            let lt = auth(
                &c,
                "arn:aws:ec2:us-east-1:111111111111:launch-template/lt-0abc",
            )?;
            let lt_arn = "arn:aws:ec2:us-east-1:111111111111:launch-template/lt-0abc";
            assert_eq!(val(lt, "ec2:LaunchTemplate"), Some(lt_arn), "{by}");
            assert_eq!(val(lt, "ec2:ResourceTag/team"), Some("blue"), "{by}");
            let i = auth(&c, "arn:aws:ec2:us-east-1:111111111111:instance/*")?;
            assert_eq!(val(i, "ec2:LaunchTemplate"), Some(lt_arn), "{by}");
        }
        Ok(())
    }

    #[test]
    fn run_instances_instance_keys_from_parameters() -> Res {
        let c = map(
            "/?Action=RunInstances&ImageId=ami-0mine&Placement.AvailabilityZone=us-east-1b\
             &Placement.Tenancy=dedicated&EbsOptimized=true&MetadataOptions.HttpTokens=required\
             &IamInstanceProfile.Arn=arn:aws:iam::111111111111:instance-profile/web\
             &InstanceMarketOptions.MarketType=spot&Placement.GroupName=cluster1",
        )?;
        let i = auth(&c, "arn:aws:ec2:us-east-1:111111111111:instance/*")?;
        assert_eq!(val(i, "ec2:AvailabilityZone"), Some("us-east-1b"));
        assert_eq!(val(i, "ec2:Tenancy"), Some("dedicated"));
        assert_eq!(val(i, "ec2:EbsOptimized"), Some("true"));
        assert_eq!(val(i, "ec2:MetadataHttpTokens"), Some("required"));
        assert_eq!(val(i, "ec2:InstanceMarketType"), Some("spot"));
        assert_eq!(
            val(i, "ec2:InstanceProfile"),
            Some("arn:aws:iam::111111111111:instance-profile/web")
        );
        assert_eq!(
            val(i, "ec2:PlacementGroup"),
            Some("arn:aws:ec2:us-east-1:111111111111:placement-group/cluster1")
        );
        assert!(
            auth(
                &c,
                "arn:aws:ec2:us-east-1:111111111111:spot-instances-request/*"
            )
            .is_ok()
        );
        Ok(())
    }

    #[test]
    fn tag_specifications_are_validated() -> Res {
        let base = "/?Action=RunInstances&ImageId=ami-0mine";
        assert!(matches!(
            map_err(&format!(
                "{base}&TagSpecification.1.ResourceType=vpc&TagSpecification.1.Tag.1.Key=a"
            ))?,
            MappingError::InvalidParameterValue { .. }
        ));
        assert!(matches!(
            map_err(&format!("{base}&TagSpecification.1.Tag.1.Key=a"))?,
            MappingError::MissingParameter(_)
        ));
        assert!(matches!(
            map_err(&format!(
                "{base}&TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=a\
                 &TagSpecification.1.Tag.2.Key=a"
            ))?,
            MappingError::InvalidParameterValue { .. }
        ));
        assert!(matches!(
            map_err(&format!(
                "{base}&TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=a\
                 &TagSpecification.2.ResourceType=instance&TagSpecification.2.Tag.1.Key=b"
            ))?,
            MappingError::InvalidParameterValue { .. }
        ));
        Ok(())
    }

    // ---- volumes and snapshots -----------------------------------------------

    #[test]
    fn create_volume_from_another_accounts_snapshot() -> Res {
        let c = map(
            "/?Action=CreateVolume&AvailabilityZone=us-east-1a&SnapshotId=snap-0theirs\
             &TagSpecification.1.ResourceType=volume&TagSpecification.1.Tag.1.Key=team\
             &TagSpecification.1.Tag.1.Value=blue",
        )?;
        assert_eq!(
            pairs(&c),
            [
                (
                    "ec2:CreateVolume",
                    "arn:aws:ec2:us-east-1:111111111111:volume/*"
                ),
                (
                    "ec2:CreateVolume",
                    "arn:aws:ec2:us-east-1::snapshot/snap-0theirs"
                ),
                (
                    "ec2:CreateTags",
                    "arn:aws:ec2:us-east-1:111111111111:volume/*"
                ),
            ]
        );
        let v = auth(&c, "arn:aws:ec2:us-east-1:111111111111:volume/*")?;
        assert_eq!(val(v, "ec2:VolumeSize"), Some("20"), "from the snapshot");
        assert_eq!(val(v, "ec2:Encrypted"), Some("true"), "from the snapshot");
        assert_eq!(val(v, "ec2:VolumeType"), Some("gp2"));
        assert_eq!(val(v, "ec2:AvailabilityZone"), Some("us-east-1a"));
        assert_eq!(
            val(v, "ec2:ParentSnapshot"),
            Some("arn:aws:ec2:us-east-1::snapshot/snap-0theirs")
        );
        assert_eq!(val(v, "aws:RequestTag/team"), Some("blue"));
        let s = auth(&c, "arn:aws:ec2:us-east-1::snapshot/snap-0theirs")?;
        assert_eq!(s.resource_account.as_deref(), Some(OTHER));
        assert_eq!(val(s, "ec2:Owner"), Some(OTHER));
        assert_eq!(val(s, "ec2:VolumeSize"), Some("20"));
        assert_eq!(
            val(s, "ec2:ParentVolume"),
            Some("arn:aws:ec2:us-east-1:222222222222:volume/vol-0src")
        );
        assert_eq!(val(s, "aws:RequestTag/team"), None);
        let p = c.permission_checks.first().ok_or("no check")?;
        assert_eq!(p.kind, PermissionKind::CreateVolume);
        assert!(!p.permits(ME, None), "not shared");
        Ok(())
    }

    #[test]
    fn create_volume_plain_and_own_snapshot() -> Res {
        let c = map(
            "/?Action=CreateVolume&AvailabilityZone=us-east-1a&Size=500&VolumeType=io2&Iops=1000&Encrypted=false",
        )?;
        assert_eq!(c.authorizations.len(), 1);
        let v = auth(&c, "arn:aws:ec2:us-east-1:111111111111:volume/*")?;
        assert_eq!(val(v, "ec2:VolumeSize"), Some("500"));
        assert_eq!(val(v, "ec2:VolumeType"), Some("io2"));
        assert_eq!(val(v, "ec2:VolumeIops"), Some("1000"));
        assert_eq!(val(v, "ec2:Encrypted"), Some("false"));
        assert!(matches!(
            map_err("/?Action=CreateVolume&Size=big")?,
            MappingError::InvalidParameterValue { .. }
        ));
        let own = map("/?Action=CreateVolume&SnapshotId=snap-0mine")?;
        assert!(own.permission_checks.is_empty());
        Ok(())
    }

    #[test]
    fn attach_detach_delete_volume() -> Res {
        let c = map("/?Action=AttachVolume&VolumeId=vol-0aaa&InstanceId=i-0aaa&Device=/dev/sdf")?;
        let mut got = pairs(&c);
        got.sort_unstable();
        assert_eq!(
            got,
            [
                (
                    "ec2:AttachVolume",
                    "arn:aws:ec2:us-east-1:111111111111:instance/i-0aaa"
                ),
                (
                    "ec2:AttachVolume",
                    "arn:aws:ec2:us-east-1:111111111111:volume/vol-0aaa"
                ),
            ]
        );
        let v = auth(&c, "arn:aws:ec2:us-east-1:111111111111:volume/vol-0aaa")?;
        assert_eq!(val(v, "ec2:VolumeSize"), Some("100"));
        assert_eq!(val(v, "ec2:VolumeType"), Some("gp3"));
        assert_eq!(val(v, "ec2:ResourceTag/team"), Some("blue"));
        assert_eq!(
            val(v, "ec2:ParentSnapshot"),
            Some("arn:aws:ec2:us-east-1::snapshot/snap-0mine")
        );
        // DetachVolume without InstanceId: the instance it is attached to.
        let c = map("/?Action=DetachVolume&VolumeId=vol-0aaa")?;
        assert!(auth(&c, "arn:aws:ec2:us-east-1:111111111111:instance/i-0aaa").is_ok());
        assert!(auth(&c, "arn:aws:ec2:us-east-1:111111111111:volume/vol-0aaa").is_ok());
        let c = map("/?Action=DeleteVolume&VolumeId=vol-0aaa")?;
        assert_eq!(
            pairs(&c),
            [(
                "ec2:DeleteVolume",
                "arn:aws:ec2:us-east-1:111111111111:volume/vol-0aaa"
            )]
        );
        Ok(())
    }

    #[test]
    fn create_snapshot() -> Res {
        let c = map(
            "/?Action=CreateSnapshot&VolumeId=vol-0aaa&TagSpecification.1.ResourceType=snapshot\
             &TagSpecification.1.Tag.1.Key=team&TagSpecification.1.Tag.1.Value=blue",
        )?;
        let s = auth(&c, "arn:aws:ec2:us-east-1::snapshot/*")?;
        assert_eq!(s.resource_account.as_deref(), Some(ME));
        assert_eq!(
            val(s, "ec2:ParentVolume"),
            Some("arn:aws:ec2:us-east-1:111111111111:volume/vol-0aaa")
        );
        assert_eq!(val(s, "ec2:VolumeSize"), Some("100"));
        assert_eq!(val(s, "aws:RequestTag/team"), Some("blue"));
        assert!(auth(&c, "arn:aws:ec2:us-east-1:111111111111:volume/vol-0aaa").is_ok());
        assert!(c.authorizations.iter().any(|a| a.action == "ec2:CreateTags"
            && val(a, "ec2:CreateAction") == Some("CreateSnapshot")));
        assert_eq!(
            map_err("/?Action=CreateSnapshot")?,
            MappingError::MissingParameter("VolumeId".into())
        );
        Ok(())
    }

    // ---- tags ------------------------------------------------------------------

    #[test]
    fn create_tags_per_resource() -> Res {
        let c = map(
            "/?Action=CreateTags&ResourceId.1=i-0aaa&ResourceId.2=vol-0aaa&ResourceId.3=ami-0shared\
             &Tag.1.Key=team&Tag.1.Value=red&Tag.2.Key=note",
        )?;
        assert_eq!(
            pairs(&c),
            [
                (
                    "ec2:CreateTags",
                    "arn:aws:ec2:us-east-1:111111111111:instance/i-0aaa"
                ),
                (
                    "ec2:CreateTags",
                    "arn:aws:ec2:us-east-1:111111111111:volume/vol-0aaa"
                ),
                ("ec2:CreateTags", "arn:aws:ec2:us-east-1::image/ami-0shared"),
            ]
        );
        let i = auth(&c, "arn:aws:ec2:us-east-1:111111111111:instance/i-0aaa")?;
        assert_eq!(val(i, "aws:RequestTag/team"), Some("red"));
        assert_eq!(val(i, "aws:RequestTag/note"), Some(""));
        assert_eq!(
            vals(i, "aws:TagKeys"),
            Some(vec!["team".to_owned(), "note".to_owned()])
        );
        assert_eq!(val(i, "ec2:ResourceTag/team"), Some("blue"));
        assert_eq!(val(i, "ec2:CreateAction"), None, "not a create");
        assert!(matches!(
            map_err("/?Action=CreateTags&ResourceId.1=foo-1&Tag.1.Key=a")?,
            MappingError::InvalidParameterValue { .. }
        ));
        assert!(matches!(
            map_err("/?Action=CreateTags&ResourceId.1=i-0aaa")?,
            MappingError::MissingParameter(_)
        ));
        assert!(matches!(
            map_err("/?Action=CreateTags&Tag.1.Key=a")?,
            MappingError::MissingParameter(_)
        ));
        Ok(())
    }

    #[test]
    fn delete_tags() -> Res {
        let c = map(
            "/?Action=DeleteTags&ResourceId.1=i-0aaa&Tag.1.Key=team&Tag.2.Key=env&Tag.2.Value=prod",
        )?;
        let i = auth(&c, "arn:aws:ec2:us-east-1:111111111111:instance/i-0aaa")?;
        assert_eq!(
            vals(i, "aws:TagKeys"),
            Some(vec!["team".to_owned(), "env".to_owned()])
        );
        assert_eq!(val(i, "aws:RequestTag/team"), None, "no value given");
        assert_eq!(val(i, "aws:RequestTag/env"), Some("prod"));
        // DeleteTags without tags deletes every tag: still authorized.
        let all = map("/?Action=DeleteTags&ResourceId.1=i-0aaa")?;
        assert_eq!(all.authorizations.len(), 1);
        Ok(())
    }

    // ---- permission attributes ------------------------------------------------

    #[test]
    fn modify_image_attribute_structured() -> Res {
        let org = "arn:aws:organizations::999999999999:organization/o-aa111bb222";
        let ou = "arn:aws:organizations::999999999999:ou/o-aa111bb222/ou-ab12-cdef3456";
        let c = map(&format!(
            "/?Action=ModifyImageAttribute&ImageId=ami-0mine\
             &LaunchPermission.Add.1.UserId=333333333333&LaunchPermission.Add.2.Group=all\
             &LaunchPermission.Add.3.OrganizationArn={org}\
             &LaunchPermission.Add.4.OrganizationalUnitArn={ou}\
             &LaunchPermission.Remove.1.UserId=444444444444"
        ))?;
        let a = auth(&c, "arn:aws:ec2:us-east-1::image/ami-0mine")?;
        assert_eq!(a.resource_account.as_deref(), Some(ME));
        assert_eq!(val(a, "ec2:Attribute"), Some("launchPermission"));
        assert_eq!(
            c.grant_updates,
            [Change::Grants {
                id: "ami-0mine".into(),
                add: vec![
                    Grant::Account("333333333333".into()),
                    Grant::All,
                    Grant::Organization(org.into()),
                    Grant::OrganizationalUnit(ou.into()),
                ],
                remove: vec![Grant::Account("444444444444".into())],
            }]
        );
        Ok(())
    }

    #[test]
    fn modify_image_attribute_older_form() -> Res {
        let c = map(
            "/?Action=ModifyImageAttribute&ImageId=ami-0mine&Attribute=launchPermission\
             &OperationType=remove&UserId.1=333333333333&UserGroup.1=all",
        )?;
        assert_eq!(
            c.grant_updates,
            [Change::Grants {
                id: "ami-0mine".into(),
                add: Vec::new(),
                remove: vec![Grant::Account("333333333333".into()), Grant::All],
            }]
        );
        // Other attributes change no grants.
        let d = map("/?Action=ModifyImageAttribute&ImageId=ami-0mine&Description.Value=hello")?;
        assert!(d.grant_updates.is_empty());
        Ok(())
    }

    #[test]
    fn modify_image_attribute_refusals() -> Res {
        let base = "/?Action=ModifyImageAttribute&ImageId=ami-0mine";
        for (q, code) in [
            (
                "&LaunchPermission.Add.1.Group=everyone",
                "InvalidParameterValue",
            ),
            (
                "&LaunchPermission.Add.1.UserId=12345",
                "InvalidParameterValue",
            ),
            (
                "&LaunchPermission.Add.1.OrganizationArn=arn:aws:organizations::1:organization/*",
                "InvalidParameterValue",
            ),
            ("&LaunchPermission.Add.1.Foo=x", "UnknownParameter"),
            (
                "&LaunchPermission.Add.2.UserId=333333333333",
                "MalformedQueryString",
            ),
            ("&UserId.1=333333333333", "MissingParameter"),
            (
                "&OperationType=grant&UserId.1=333333333333",
                "InvalidParameterValue",
            ),
            (
                "&Attribute=description&OperationType=add&UserId.1=333333333333",
                "InvalidParameterCombination",
            ),
            (
                "&OperationType=add&UserId.1=333333333333&LaunchPermission.Add.1.UserId=333333333333",
                "InvalidParameterCombination",
            ),
        ] {
            assert_eq!(map_err(&format!("{base}{q}"))?.code(), code, "{q}");
        }
        assert_eq!(
            map_err("/?Action=ModifyImageAttribute&LaunchPermission.Add.1.Group=all")?,
            MappingError::MissingParameter("ImageId".into())
        );
        Ok(())
    }

    #[test]
    fn modify_snapshot_attribute() -> Res {
        let c = map("/?Action=ModifySnapshotAttribute&SnapshotId=snap-0mine\
             &CreateVolumePermission.Add.1.UserId=333333333333\
             &CreateVolumePermission.Add.2.UserId=444444444444\
             &CreateVolumePermission.Remove.1.Group=all")?;
        let a = auth(&c, "arn:aws:ec2:us-east-1::snapshot/snap-0mine")?;
        assert_eq!(val(a, "ec2:Attribute"), Some("createVolumePermission"));
        assert_eq!(
            vals(a, "ec2:Add/userId"),
            Some(vec!["333333333333".to_owned(), "444444444444".to_owned()])
        );
        assert_eq!(val(a, "ec2:Remove/group"), Some("all"));
        assert_eq!(
            c.grant_updates,
            [Change::Grants {
                id: "snap-0mine".into(),
                add: vec![
                    Grant::Account("333333333333".into()),
                    Grant::Account("444444444444".into())
                ],
                remove: vec![Grant::All],
            }]
        );
        let old = map(
            "/?Action=ModifySnapshotAttribute&SnapshotId=snap-0mine&Attribute=createVolumePermission\
             &OperationType=add&UserId.1=333333333333&UserGroup.1=all",
        )?;
        assert_eq!(
            old.grant_updates,
            [Change::Grants {
                id: "snap-0mine".into(),
                add: vec![Grant::Account("333333333333".into()), Grant::All],
                remove: Vec::new(),
            }]
        );
        let a = auth(&old, "arn:aws:ec2:us-east-1::snapshot/snap-0mine")?;
        assert_eq!(val(a, "ec2:Add/userId"), Some("333333333333"));
        assert_eq!(val(a, "ec2:Add/group"), Some("all"));
        // Snapshots have no organization grants.
        assert_eq!(
            map_err(
                "/?Action=ModifySnapshotAttribute&SnapshotId=snap-0mine\
                 &CreateVolumePermission.Add.1.OrganizationArn=arn:aws:organizations::1:organization/o-1"
            )?
            .code(),
            "UnknownParameter"
        );
        Ok(())
    }

    // ---- security groups ---------------------------------------------------------

    #[test]
    fn security_group_actions() -> Res {
        for (action, rule) in [
            (
                "AuthorizeSecurityGroupIngress",
                "&IpPermissions.1.IpProtocol=tcp",
            ),
            (
                "RevokeSecurityGroupIngress",
                "&IpPermissions.1.IpProtocol=tcp",
            ),
            ("DeleteSecurityGroup", ""),
        ] {
            for param in ["GroupId=sg-0web", "GroupName=web"] {
                let c = map(&format!("/?Action={action}&{param}{rule}"))?;
                assert_eq!(
                    pairs(&c),
                    [(
                        format!("ec2:{action}").as_str(),
                        "arn:aws:ec2:us-east-1:111111111111:security-group/sg-0web"
                    )],
                    "{action} {param}"
                );
                let a = auth(
                    &c,
                    "arn:aws:ec2:us-east-1:111111111111:security-group/sg-0web",
                )?;
                assert_eq!(val(a, "ec2:ResourceTag/team"), Some("blue"));
                assert_eq!(
                    val(a, "ec2:Vpc"),
                    Some("arn:aws:ec2:us-east-1:111111111111:vpc/vpc-0aaa")
                );
                assert_eq!(val(a, "ec2:SecurityGroupID"), Some("sg-0web"));
            }
        }
        assert_eq!(
            map_err("/?Action=DeleteSecurityGroup&GroupName=web&GroupId=sg-0web")?.code(),
            "InvalidParameterCombination"
        );
        assert_eq!(
            map_err("/?Action=DeleteSecurityGroup&GroupName=nope")?.code(),
            "InvalidGroup.NotFound"
        );
        // Tagging the new rule at creation.
        let c = map("/?Action=AuthorizeSecurityGroupIngress&GroupId=sg-0web\
             &TagSpecification.1.ResourceType=security-group-rule\
             &TagSpecification.1.Tag.1.Key=team&TagSpecification.1.Tag.1.Value=blue")?;
        let rule = auth(
            &c,
            "arn:aws:ec2:us-east-1:111111111111:security-group-rule/*",
        )?;
        assert_eq!(val(rule, "aws:RequestTag/team"), Some("blue"));
        Ok(())
    }

    // ---- generic ---------------------------------------------------------------

    #[test]
    fn generic_mapping() -> Res {
        // Conventional `<Id>` parameter.
        let c = map("/?Action=DeleteVpc&VpcId=vpc-0aaa")?;
        let a = auth(&c, "arn:aws:ec2:us-east-1:111111111111:vpc/vpc-0aaa")?;
        assert_eq!(val(a, "ec2:VpcID"), Some("vpc-0aaa"));
        // A required type nobody names: type/*.
        let c = map("/?Action=CreateVpc&CidrBlock=10.0.0.0/16")?;
        assert!(auth(&c, "arn:aws:ec2:us-east-1:111111111111:vpc/*").is_ok());
        // Key pair by name.
        let c = map("/?Action=DeleteKeyPair&KeyName=blue-team")?;
        assert!(auth(&c, "arn:aws:ec2:us-east-1:111111111111:key-pair/blue-team").is_ok());
        assert!(matches!(
            map_err("/?Action=DeleteKeyPair&KeyName=a*")?,
            MappingError::InvalidParameterValue { .. }
        ));
        // Elastic IP by allocation id.
        let c = map("/?Action=ReleaseAddress&AllocationId=eipalloc-0abc")?;
        assert!(
            auth(
                &c,
                "arn:aws:ec2:us-east-1:111111111111:elastic-ip/eipalloc-0abc"
            )
            .is_ok()
        );
        Ok(())
    }

    // ---- parameters that name resources (issue 11, item 3) -----------------

    /// The five calls reproduced in issue 11: each names the resource in a
    /// way the generic mapping used to skip. Each now resolves to the same
    /// resource (ARN, owner, tags) as naming it by id, or is refused.
    #[test]
    fn names_and_association_ids_resolve_like_ids() -> Res {
        // DeleteLaunchTemplate by name is the template by id.
        let lt = "arn:aws:ec2:us-east-1:111111111111:launch-template/lt-0abc";
        for q in ["LaunchTemplateId=lt-0abc", "LaunchTemplateName=web"] {
            let c = map(&format!("/?Action=DeleteLaunchTemplate&{q}"))?;
            assert_eq!(pairs(&c), [("ec2:DeleteLaunchTemplate", lt)], "{q}");
            assert_eq!(val(auth(&c, lt)?, "aws:ResourceTag/team"), Some("blue"));
        }
        let e = map_err("/?Action=DeleteLaunchTemplate&LaunchTemplateName=prod-web")?;
        assert_eq!(e.code(), "InvalidLaunchTemplateName.NotFoundException");
        assert_eq!(
            e.to_string(),
            "The specified launch template, with template name prod-web, does not exist."
        );
        assert_eq!(
            map_err("/?Action=DeleteLaunchTemplate&LaunchTemplateId=lt-0fffffff")?.code(),
            "InvalidLaunchTemplateId.NotFound"
        );

        // DeleteKeyPair by key-pair id is the key pair by name (its ARN).
        let key = "arn:aws:ec2:us-east-1:111111111111:key-pair/blue-team";
        for q in ["KeyName=blue-team", "KeyPairId=key-0blue"] {
            let c = map(&format!("/?Action=DeleteKeyPair&{q}"))?;
            assert_eq!(pairs(&c), [("ec2:DeleteKeyPair", key)], "{q}");
            assert_eq!(val(auth(&c, key)?, "aws:ResourceTag/team"), Some("blue"));
        }
        for q in ["KeyPairId=key-0nope", "KeyName=nope"] {
            let e = map_err(&format!("/?Action=DeleteKeyPair&{q}"))?;
            assert_eq!(e.code(), "InvalidKeyPair.NotFound", "{q}");
        }
        // CreateTags names a key pair by its key- id, like every resource.
        let c = map("/?Action=CreateTags&ResourceId.1=key-0blue&Tag.1.Key=env&Tag.1.Value=dev")?;
        assert_eq!(pairs(&c), [("ec2:CreateTags", key)]);

        // DisassociateIamInstanceProfile: the association is the instance.
        let c = map("/?Action=DisassociateIamInstanceProfile&AssociationId=iip-assoc-0aaa")?;
        let i = "arn:aws:ec2:us-east-1:111111111111:instance/i-0aaa";
        assert_eq!(pairs(&c), [("ec2:DisassociateIamInstanceProfile", i)]);
        assert_eq!(val(auth(&c, i)?, "ec2:ResourceTag/team"), Some("blue"));
        let e = map_err("/?Action=DisassociateIamInstanceProfile&AssociationId=iip-assoc-0nope")?;
        assert_eq!(e.code(), "InvalidAssociationID.NotFound");

        // DetachNetworkInterface: the attachment is the interface, and the
        // instance it is attached to.
        let c = map("/?Action=DetachNetworkInterface&AttachmentId=eni-attach-0aaa")?;
        let mut got = pairs(&c);
        got.sort_unstable();
        assert_eq!(
            got,
            [
                ("ec2:DetachNetworkInterface", i),
                (
                    "ec2:DetachNetworkInterface",
                    "arn:aws:ec2:us-east-1:111111111111:network-interface/eni-0aaa"
                ),
            ]
        );
        Ok(())
    }

    /// Copies authorize their source (in the source region, with its owner
    /// and tags, and the owner's permission) and the new resource.
    #[test]
    fn copies_authorize_their_source() -> Res {
        let c = map(
            "/?Action=CopySnapshot&SourceSnapshotId=snap-0theirs&SourceRegion=us-east-1\
             &TagSpecification.1.ResourceType=snapshot&TagSpecification.1.Tag.1.Key=team\
             &TagSpecification.1.Tag.1.Value=blue",
        )?;
        let src = auth(&c, "arn:aws:ec2:us-east-1::snapshot/snap-0theirs")?;
        assert_eq!(src.resource_account.as_deref(), Some(OTHER));
        assert_eq!(val(src, "ec2:Owner"), Some(OTHER));
        let new = auth(&c, "arn:aws:ec2:us-east-1::snapshot/*")?;
        assert_eq!(new.resource_account.as_deref(), Some(ME));
        assert_eq!(val(new, "aws:RequestTag/team"), Some("blue"));
        assert_eq!(c.permission_checks.len(), 1);
        assert!(
            c.permission_checks
                .iter()
                .all(|p| p.resource_id == "snap-0theirs"
                    && p.kind == PermissionKind::CreateVolume
                    && !p.permits(ME, None))
        );
        // A source the inventory does not hold fails its permission check
        // (EC2's InvalidSnapshot.NotFound); a source in another region than
        // SourceRegion is not that snapshot.
        for q in [
            "SourceSnapshotId=snap-0fffffff&SourceRegion=us-east-1",
            "SourceSnapshotId=snap-0a1b2c3d&SourceRegion=eu-west-1",
        ] {
            let c = map(&format!("/?Action=CopySnapshot&{q}"))?;
            assert!(!c.permission_checks.is_empty(), "{q}");
            assert!(
                c.permission_checks.iter().all(|p| !p.permits(ME, None)),
                "{q}"
            );
        }
        // Our own snapshot needs no permission.
        let own = map("/?Action=CopySnapshot&SourceSnapshotId=snap-0mine&SourceRegion=us-east-1")?;
        assert!(own.permission_checks.is_empty());
        assert!(matches!(
            map_err("/?Action=CopySnapshot&SourceSnapshotId=snap-0mine&SourceRegion=us-east-1:x")?,
            MappingError::InvalidParameterValue { name, .. } if name == "SourceRegion"
        ));

        let c =
            map("/?Action=CopyImage&SourceImageId=ami-0shared&SourceRegion=us-east-1&Name=copy")?;
        let src = auth(&c, "arn:aws:ec2:us-east-1::image/ami-0shared")?;
        assert_eq!(val(src, "ec2:Owner"), Some(OTHER));
        assert_eq!(src.resource_account.as_deref(), Some(OTHER));
        assert!(auth(&c, "arn:aws:ec2:us-east-1::image/*").is_ok());
        assert!(auth(&c, "arn:aws:ec2:us-east-1::snapshot/*").is_ok());
        assert!(
            c.permission_checks
                .iter()
                .all(|p| p.resource_id == "ami-0shared"
                    && p.kind == PermissionKind::Launch
                    && p.permits(ME, None))
        );
        let c = map("/?Action=CopyImage&SourceImageId=ami-0eeeeeee&SourceRegion=us-east-1&Name=x")?;
        assert!(c.permission_checks.iter().any(|p| !p.permits(ME, None)));
        Ok(())
    }

    /// Names given to the resource a call creates are not lookups: the new
    /// resource is `type/*` with the request's tags, whether or not a
    /// resource of that name exists.
    #[test]
    fn creates_do_not_look_up_their_names() -> Res {
        for (q, new) in [
            (
                "CreateSecurityGroup&GroupName=web&GroupDescription=d",
                "arn:aws:ec2:us-east-1:111111111111:security-group/*",
            ),
            (
                "CreateSecurityGroup&GroupName=brand-new&GroupDescription=d&VpcId=vpc-0aaa",
                "arn:aws:ec2:us-east-1:111111111111:security-group/*",
            ),
            (
                "CreateKeyPair&KeyName=blue-team",
                "arn:aws:ec2:us-east-1:111111111111:key-pair/*",
            ),
            (
                "ImportKeyPair&KeyName=fresh&PublicKeyMaterial=c3NoLWVkMjU1MTk=",
                "arn:aws:ec2:us-east-1:111111111111:key-pair/*",
            ),
            (
                "CreateLaunchTemplate&LaunchTemplateName=web&LaunchTemplateData.ImageId=ami-0mine",
                "arn:aws:ec2:us-east-1:111111111111:launch-template/*",
            ),
            (
                "CreatePlacementGroup&GroupName=cluster1&Strategy=cluster",
                "arn:aws:ec2:us-east-1:111111111111:placement-group/*",
            ),
            (
                "CreateManagedPrefixList&PrefixListName=office&MaxEntries=5&AddressFamily=IPv4",
                "arn:aws:ec2:us-east-1:111111111111:prefix-list/*",
            ),
        ] {
            let target = format!(
                "/?Action={q}&TagSpecification.1.ResourceType={}\
                 &TagSpecification.1.Tag.1.Key=team&TagSpecification.1.Tag.1.Value=blue",
                new.rsplit(':')
                    .next()
                    .and_then(|t| t.split('/').next())
                    .unwrap_or("")
            );
            let c = map(&target)?;
            let a = auth(&c, new)?;
            assert_eq!(val(a, "aws:RequestTag/team"), Some("blue"), "{q}");
            assert_eq!(
                val(a, "ec2:ResourceTag/team"),
                None,
                "{q}: not an existing one"
            );
        }
        let c = map("/?Action=CreatePlacementGroup&GroupName=cluster1&Strategy=cluster")?;
        let a = auth(&c, "arn:aws:ec2:us-east-1:111111111111:placement-group/*")?;
        assert_eq!(val(a, "ec2:PlacementGroupName"), Some("cluster1"));
        // The VPC a new security group goes into is an existing resource.
        let c = map("/?Action=CreateSecurityGroup&GroupName=w&GroupDescription=d&VpcId=vpc-0aaa")?;
        assert!(auth(&c, "arn:aws:ec2:us-east-1:111111111111:vpc/vpc-0aaa").is_ok());
        Ok(())
    }

    /// Unknown parameters, lookups the inventory cannot make, and required
    /// resource types nobody names are refused, never `type/*` or `*`.
    #[test]
    fn unresolvable_references_are_refused() -> Res {
        for (q, code) in [
            // A parameter the action does not have.
            (
                "DeleteLaunchTemplate&LaunchTemplateName=web&Name=x",
                "UnknownParameter",
            ),
            (
                "TerminateInstances&InstanceIds.1=i-0aaa",
                "UnknownParameter",
            ),
            // Lookups the inventory does not record.
            (
                "ReleaseAddress&PublicIp=203.0.113.7",
                "UnsupportedOperation",
            ),
            (
                "DisassociateRouteTable&AssociationId=rtbassoc-0abc",
                "UnsupportedOperation",
            ),
            (
                "DetachNetworkInterface&AttachmentId=eni-attach-0nope",
                "InvalidAssociationID.NotFound",
            ),
            (
                "ReplaceNetworkAclAssociation&AssociationId=aclassoc-0abc&NetworkAclId=acl-0abc",
                "UnsupportedOperation",
            ),
            // A required type that no parameter names.
            (
                "AcceptVpcPeeringConnection&VpcPeeringConnectionId=pcx-0abc",
                "UnsupportedOperation",
            ),
            ("DeleteLaunchTemplate", "MissingParameter"),
            ("DeleteKeyPair", "MissingParameter"),
            // Naming one resource two ways.
            (
                "DeleteLaunchTemplate&LaunchTemplateId=lt-0abc&LaunchTemplateName=web",
                "InvalidParameterCombination",
            ),
        ] {
            assert_eq!(map_err(&format!("/?Action={q}"))?.code(), code, "{q}");
        }
        Ok(())
    }

    /// Everyday calls, written as the AWS CLI sends them, still map (the
    /// strict parameter check refuses nothing they need).
    #[test]
    fn everyday_calls_map() -> Res {
        for q in [
            "AuthorizeSecurityGroupIngress&GroupId=sg-0web&IpPermissions.1.IpProtocol=tcp\
             &IpPermissions.1.FromPort=22&IpPermissions.1.ToPort=22\
             &IpPermissions.1.IpRanges.1.CidrIp=10.0.0.0/8&IpPermissions.1.IpRanges.1.Description=ssh\
             &IpPermissions.2.IpProtocol=tcp&IpPermissions.2.FromPort=443&IpPermissions.2.ToPort=443\
             &IpPermissions.2.Groups.1.GroupId=sg-0def",
            "RevokeSecurityGroupEgress&GroupId=sg-0web&IpPermissions.1.IpProtocol=-1\
             &IpPermissions.1.IpRanges.1.CidrIp=0.0.0.0/0",
            "ModifyInstanceAttribute&InstanceId=i-0aaa&InstanceType.Value=t3.large",
            "ModifyInstanceAttribute&InstanceId=i-0aaa&GroupId.1=sg-0web&GroupId.2=sg-0def",
            "StartInstances&InstanceId.1=i-0aaa&AdditionalInfo=x",
            "StopInstances&InstanceId.1=i-0aaa&Force=true&Hibernate=false",
            "AttachVolume&VolumeId=vol-0aaa&InstanceId=i-0aaa&Device=/dev/sdf",
            "DetachVolume&VolumeId=vol-0aaa&Force=false",
            "DeleteSnapshot&SnapshotId=snap-0mine",
            "DeregisterImage&ImageId=ami-0mine",
            "CreateImage&InstanceId=i-0aaa&Name=web&NoReboot=true",
            "CreateNetworkInterface&SubnetId=subnet-0aaa&SecurityGroupId.1=sg-0web&Description=x",
            "AttachNetworkInterface&NetworkInterfaceId=eni-0aaa&InstanceId=i-0aaa&DeviceIndex=1",
            "AssociateAddress&AllocationId=eipalloc-0abc&InstanceId=i-0aaa",
            "ReleaseAddress&AllocationId=eipalloc-0abc",
            "AllocateAddress&Domain=vpc",
            "GetConsoleOutput&InstanceId=i-0aaa&Latest=true",
            "CreateVolume&AvailabilityZone=us-east-1a&Size=10&VolumeType=gp3&Encrypted=true",
            "ModifyVolume&VolumeId=vol-0aaa&Size=200",
            "AssociateIamInstanceProfile&InstanceId=i-0aaa\
             &IamInstanceProfile.Arn=arn:aws:iam::111111111111:instance-profile/web",
            "ReplaceIamInstanceProfileAssociation&AssociationId=iip-assoc-0aaa\
             &IamInstanceProfile.Name=web",
            "CreateTags&ResourceId.1=i-0aaa&ResourceId.2=vpc-0aaa&Tag.1.Key=team&Tag.1.Value=blue",
            "DeleteLaunchTemplateVersions&LaunchTemplateName=web&LaunchTemplateVersion.1=2",
            "CreateLaunchTemplateVersion&LaunchTemplateId=lt-0abc&SourceVersion=1\
             &LaunchTemplateData.InstanceType=t3.small",
            "ModifyManagedPrefixList&PrefixListId=pl-0aaa&CurrentVersion=1\
             &AddEntry.1.Cidr=198.51.100.0/24",
            "DisassociateSubnetCidrBlock&AssociationId=subnet-cidr-assoc-0aaa",
            "DeleteVpc&VpcId=vpc-0aaa",
            "CreateSubnet&VpcId=vpc-0aaa&CidrBlock=10.0.9.0/24&AvailabilityZone=us-east-1a",
        ] {
            let c = map(&format!("/?Action={q}&DryRun=true&Version=2016-11-15"))?;
            assert!(
                c.authorizations
                    .iter()
                    .all(|a| a.resource != "*" && !a.resource.is_empty()),
                "{q}: {:?}",
                pairs(&c)
            );
        }
        Ok(())
    }

    /// Passing an instance profile's role needs `iam:PassRole` on the role,
    /// passed to EC2 (issue 13).
    #[test]
    fn instance_profiles_need_pass_role() -> Res {
        let role = "arn:aws:iam::111111111111:role/apps/web-role";
        let profile = "arn:aws:iam::111111111111:instance-profile/web";
        for q in [
            format!(
                "RunInstances&ImageId=ami-0mine&SubnetId=subnet-0aaa&IamInstanceProfile.Arn={profile}"
            ),
            "RunInstances&ImageId=ami-0mine&SubnetId=subnet-0aaa&IamInstanceProfile.Name=web"
                .into(),
            format!(
                "RunInstances&ImageId=ami-0mine&SubnetId=subnet-0aaa&IamInstanceProfile.Name=WEB&IamInstanceProfile.Arn={profile}"
            ),
            "AssociateIamInstanceProfile&InstanceId=i-0aaa&IamInstanceProfile.Name=web".into(),
            format!(
                "ReplaceIamInstanceProfileAssociation&AssociationId=iip-assoc-0aaa&IamInstanceProfile.Arn={profile}"
            ),
        ] {
            let c = map(&format!("/?Action={q}"))?;
            let passes: Vec<&Authorization> = c
                .authorizations
                .iter()
                .filter(|a| a.action == "iam:PassRole")
                .collect();
            assert_eq!(passes.len(), 1, "{q}: {:?}", pairs(&c));
            let Some(pass) = passes.first() else {
                continue;
            };
            assert_eq!(pass.resource, role, "{q}");
            assert_eq!(val(pass, "iam:PassedToService"), Some("ec2.amazonaws.com"));
            // The EC2 action itself is still authorized first.
            assert_eq!(
                c.authorizations.first().map(|a| a.action.as_str()),
                Some(format!("ec2:{}", c.action).as_str())
            );
        }
        // By name, the instance still carries the profile's ARN.
        let c = map(
            "/?Action=RunInstances&ImageId=ami-0mine&SubnetId=subnet-0aaa&IamInstanceProfile.Name=web",
        )?;
        let i = auth(&c, "arn:aws:ec2:us-east-1:111111111111:instance/*")?;
        assert_eq!(val(i, "ec2:InstanceProfile"), Some(profile));
        // A profile with no role passes nothing; no profile, nothing either.
        for q in [
            "RunInstances&ImageId=ami-0mine&SubnetId=subnet-0aaa&IamInstanceProfile.Name=empty",
            "RunInstances&ImageId=ami-0mine&SubnetId=subnet-0aaa",
            "DisassociateIamInstanceProfile&AssociationId=iip-assoc-0aaa",
        ] {
            let c = map(&format!("/?Action={q}"))?;
            assert!(
                c.authorizations.iter().all(|a| a.action != "iam:PassRole"),
                "{q}"
            );
        }
        Ok(())
    }

    /// A profile the caller's account does not have is EC2's
    /// `InvalidParameterValue`, never a role-less launch.
    #[test]
    fn unknown_instance_profiles_are_refused() -> Res {
        for (q, message) in [
            (
                "RunInstances&ImageId=ami-0mine&SubnetId=subnet-0aaa&IamInstanceProfile.Name=nope",
                "Value (nope) for parameter iamInstanceProfile.name is invalid. \
                 Invalid IAM Instance Profile name",
            ),
            (
                "AssociateIamInstanceProfile&InstanceId=i-0aaa\
                 &IamInstanceProfile.Arn=arn:aws:iam::111111111111:instance-profile/other/web",
                "Value (arn:aws:iam::111111111111:instance-profile/other/web) for parameter \
                 iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN",
            ),
            (
                "ReplaceIamInstanceProfileAssociation&AssociationId=iip-assoc-0aaa\
                 &IamInstanceProfile.Arn=arn:aws:iam::222222222222:instance-profile/web",
                "Value (arn:aws:iam::222222222222:instance-profile/web) for parameter \
                 iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN",
            ),
            (
                "RunInstances&ImageId=ami-0mine&SubnetId=subnet-0aaa\
                 &IamInstanceProfile.Arn=arn:aws:iam::111111111111:role/web",
                "Value (arn:aws:iam::111111111111:role/web) for parameter \
                 iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN",
            ),
        ] {
            let e = map_err(&format!("/?Action={q}"))?;
            assert_eq!(e.code(), "InvalidParameterValue", "{q}");
            assert_eq!(e.to_string(), message, "{q}");
        }
        let e = map_err(
            "/?Action=RunInstances&ImageId=ami-0mine&SubnetId=subnet-0aaa\
             &IamInstanceProfile.Name=empty\
             &IamInstanceProfile.Arn=arn:aws:iam::111111111111:instance-profile/web",
        )?;
        assert_eq!(e.code(), "InvalidParameterCombination");
        // Without a profile lookup, every profile is unknown.
        let inv = inventory()?;
        let params = QueryParams::parse(
            "/?Action=RunInstances&ImageId=ami-0mine&SubnetId=subnet-0aaa&IamInstanceProfile.Name=web",
            None,
        )?;
        assert!(matches!(
            map_call(&params, R, ME, &inv),
            Err(MappingError::InvalidInstanceProfile { .. })
        ));
        Ok(())
    }

    #[test]
    fn every_call_has_an_authorization() -> Res {
        let inv = inventory()?;
        for a in catalog::actions() {
            let params = QueryParams::from_pairs([("Action", a.name)])?;
            match map_call(&params, R, ME, &inv) {
                Ok(c) => assert!(!c.authorizations.is_empty(), "{}", a.name),
                Err(e) => assert!(
                    matches!(
                        e,
                        MappingError::MissingParameter(_) | MappingError::Unsupported(_)
                    ),
                    "{}: {e:?}",
                    a.name
                ),
            }
        }
        Ok(())
    }
}
