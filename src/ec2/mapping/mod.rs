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
//!
//! # Files
//! This file holds the call's types, the entry points, parameter
//! resolution and the generic mapping every action with resource types
//! goes through; `launch.rs` (`RunInstances`), `volumes.rs` (volumes,
//! snapshots and create-volume permissions) and `attributes.rs` (tags and
//! the image and snapshot permission attributes) add the calls EC2
//! authorizes in its own way; `checks.rs` holds the value checks and
//! helpers they share.

use std::collections::HashSet;
use std::sync::Arc;

use super::catalog::keys;
use super::catalog::{
    self, ActionDef, ActionParams, ActionResource, ExistingRef, IdentifiedBy, ParamRole,
};
use super::ids;
use super::inventory::{Attributes, Grant, Inventory, Resource, ResourceKind};
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
            .filter(|r| r.kind() == kind && r.region == region)
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
                        .filter(|x| x.kind() == kind && x.region == in_region),
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
            .find_map(|s| s.attributes.vpc_id());
        let in_default = || {
            found
                .iter()
                .copied()
                .filter(|r| r.attributes.vpc_id() == default_vpc && default_vpc.is_some())
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
        let vpc = r
            .attributes
            .vpc_id()
            .map(|v| self.arn_of("vpc", &r.account, v));
        let flag = |b: Option<bool>| b.map(|b| b.to_string());
        match &r.attributes {
            Attributes::Instance(a) => {
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
                opt(&mut one, keys::EC2_EBS_OPTIMIZED, flag(a.ebs_optimized));
                opt(
                    &mut one,
                    keys::EC2_INSTANCE_PROFILE,
                    a.instance_profile.clone(),
                );
                opt(&mut one, keys::EC2_VPC, vpc);
            }
            Attributes::Image(a) => {
                one(keys::EC2_OWNER, owner_value(r));
                opt(&mut one, keys::EC2_PUBLIC, flag(a.public));
                opt(
                    &mut one,
                    keys::EC2_ROOT_DEVICE_TYPE,
                    a.root_device_type.clone(),
                );
                if let Some(t) = image_type(&r.id) {
                    one(keys::EC2_IMAGE_TYPE, t.to_owned());
                }
            }
            Attributes::Snapshot(a) => {
                one(keys::EC2_OWNER, owner_value(r));
                opt(&mut one, keys::EC2_ENCRYPTED, flag(a.encrypted));
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
            Attributes::Volume(a) => {
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
                opt(&mut one, keys::EC2_ENCRYPTED, flag(a.encrypted));
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
            Attributes::SecurityGroup(_) => opt(&mut one, keys::EC2_VPC, vpc),
            Attributes::NetworkInterface(a) => {
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
                    .and_then(|s| s.attributes.availability_zone())
                    .map(str::to_owned);
                opt(&mut one, keys::EC2_AVAILABILITY_ZONE, az);
            }
            Attributes::Subnet(a) => {
                opt(&mut one, keys::EC2_VPC, vpc);
                opt(
                    &mut one,
                    keys::EC2_AVAILABILITY_ZONE,
                    a.availability_zone.clone(),
                );
            }
            Attributes::PrefixList(_) | Attributes::KeyPair(_) | Attributes::LaunchTemplate(_) => {}
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
                .and_then(|r| r.attributes.attached_to())
                .map(str::to_owned)
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
}

mod attributes;
mod checks;
mod launch;
mod volumes;

pub use checks::resource_type_of_id;
use checks::*;

#[cfg(test)]
mod catalog_tests;

#[cfg(test)]
mod tests;
