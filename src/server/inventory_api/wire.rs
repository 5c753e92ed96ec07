//! The inventory API's wire shape (JSON) and its validation into the
//! inventory model ([`Resource`], [`Change`]) and back. Both front-ends
//! convert through here, so a change is checked by the same code whether
//! it came as JSON or as protobuf. No I/O, no routing, no store.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ec2::inventory::{
    AttributesRepr, Grant, PortEnd, PortError, Ports, Protocol, Resource, ResourceKind, Rule,
};
use crate::ec2::inventory_store::Change;
use crate::policy::{AccountId, Region};
use crate::server::errors::ServeError;

// ── Wire shape (JSON) ───────────────────────────────────────────────────

/// A resource as the JSON API reads and writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceJson {
    pub id: String,
    /// Absent: taken from the id's prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ResourceKind>,
    pub account: String,
    pub region: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub attributes: AttributesJson,
}

/// [`Attributes`] with addresses and CIDR blocks as text; every field is
/// optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttributesJson {
    pub instance_type: Option<String>,
    pub image_id: Option<String>,
    pub subnet_id: Option<String>,
    pub vpc_id: Option<String>,
    pub key_name: Option<String>,
    pub availability_zone: Option<String>,
    pub tenancy: Option<String>,
    pub root_device_type: Option<String>,
    pub ebs_optimized: Option<bool>,
    pub instance_profile: Option<String>,
    pub volume_size: Option<i64>,
    pub volume_type: Option<String>,
    pub iops: Option<i64>,
    pub encrypted: Option<bool>,
    pub snapshot_id: Option<String>,
    pub volume_id: Option<String>,
    pub public: Option<bool>,
    pub owner_alias: Option<String>,
    pub grants: Vec<Grant>,
    pub groups: Vec<String>,
    pub interfaces: Vec<String>,
    pub attached_to: Option<String>,
    pub addresses: Vec<String>,
    pub group_name: Option<String>,
    pub ingress: Vec<RuleJson>,
    pub egress: Vec<RuleJson>,
    pub cidrs: Vec<String>,
    /// An instance's primary private IPv4 address (instance metadata
    /// credentials recognise the instance by it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_ip: Option<String>,
    /// An instance's `MetadataOptions.HttpTokens`: `required` or `optional`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_tokens: Option<String>,
    /// A key pair's or launch template's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A subnet that is its zone's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_for_az: Option<bool>,
    /// Association ids the resource holds (instance profile associations,
    /// IPv6 CIDR block associations, an interface's attachment).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub associations: Vec<String>,
}

/// A security-group rule as the JSON API reads and writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleJson {
    /// `tcp`, `udp`, `icmp`, `icmpv6`, `-1`, or a protocol number.
    pub protocol: String,
    #[serde(default)]
    pub from_port: Option<i32>,
    #[serde(default)]
    pub to_port: Option<i32>,
    #[serde(default)]
    pub cidrs: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub prefix_lists: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Op {
    Upsert,
    Delete,
    Grants,
}

/// One change as JSON: `op` says which of the other fields it takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ChangeJson {
    op: Op,
    #[serde(default)]
    resource: Option<ResourceJson>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    add: Option<Vec<Grant>>,
    #[serde(default)]
    remove: Option<Vec<Grant>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BatchJson {
    pub(super) changes: Vec<ChangeJson>,
}

// ── Validation: wire shape → model ──────────────────────────────────────

/// An inventory resource or change the API refuses: where in the request
/// (a JSON path such as `changes[0].resource.region`) and why. Both the
/// HTTP and the gRPC door answer with its text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at `{path}`: {message}")]
pub struct InvalidInventory {
    /// Where in the request.
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

/// A refused input is the client's doing: a 400 with the path and reason.
impl From<InvalidInventory> for ServeError {
    fn from(e: InvalidInventory) -> Self {
        ServeError::BadRequest(e.to_string())
    }
}

pub(super) fn at(path: &str, msg: impl std::fmt::Display) -> InvalidInventory {
    InvalidInventory {
        path: path.to_owned(),
        message: msg.to_string(),
    }
}

pub(super) fn check_id(id: &str, path: &str) -> Result<(), InvalidInventory> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(at(
            path,
            format!("`{id}` is not an EC2 id (such as `i-0123456789abcdef0`)"),
        ))
    }
}

pub(super) fn check_account(account: &str, path: &str) -> Result<(), InvalidInventory> {
    AccountId::parse(account).map(drop).map_err(|e| at(path, e))
}

pub(super) fn check_region(region: &str, path: &str) -> Result<(), InvalidInventory> {
    Region::parse(region).map(drop).map_err(|e| at(path, e))
}

pub(super) fn parse_kind(name: &str) -> Option<ResourceKind> {
    ResourceKind::of_type(name)
}

pub(super) fn kind_names() -> String {
    ResourceKind::ALL
        .iter()
        .map(|k| format!("`{}`", k.arn_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn cidr(text: &str, path: &str) -> Result<IpNet, InvalidInventory> {
    text.parse()
        .map_err(|_| at(path, format!("`{text}` is not a CIDR block")))
}

pub(super) fn cidrs(list: &[String], path: &str) -> Result<Vec<IpNet>, InvalidInventory> {
    list.iter()
        .enumerate()
        .map(|(i, c)| cidr(c, &format!("{path}[{i}]")))
        .collect()
}

fn ids(list: &[String], path: &str) -> Result<(), InvalidInventory> {
    list.iter()
        .enumerate()
        .try_for_each(|(i, id)| check_id(id, &format!("{path}[{i}]")))
}

fn grant(g: &Grant, path: &str) -> Result<(), InvalidInventory> {
    match g {
        Grant::Account(a) => check_account(a, &format!("{path}.account")),
        Grant::All => Ok(()),
        Grant::Organization(arn) | Grant::OrganizationalUnit(arn) => {
            if arn.starts_with("arn:") {
                Ok(())
            } else {
                Err(at(path, format!("`{arn}` is not an ARN")))
            }
        }
    }
}

pub(super) fn grants(list: &[Grant], path: &str) -> Result<(), InvalidInventory> {
    list.iter()
        .enumerate()
        .try_for_each(|(i, g)| grant(g, &format!("{path}[{i}]")))
}

pub(super) fn rule(r: &RuleJson, path: &str) -> Result<Rule, InvalidInventory> {
    let protocol = Protocol::parse(&r.protocol).ok_or_else(|| {
        at(
            &format!("{path}.protocol"),
            format!(
                "unknown protocol `{}` (tcp, udp, icmp, icmpv6, -1, or a number 0-255)",
                r.protocol
            ),
        )
    })?;
    let ports = Ports::from_ec2(
        protocol,
        r.from_port.map(i64::from),
        r.to_port.map(i64::from),
    )
    .map_err(|e| match e {
        PortError::OutOfRange {
            end: PortEnd::From, ..
        } => at(&format!("{path}.from_port"), e),
        PortError::OutOfRange {
            end: PortEnd::To, ..
        } => at(&format!("{path}.to_port"), e),
        PortError::Reversed { from, to } => {
            at(path, format!("`from_port` {from} is above `to_port` {to}"))
        }
    })?;
    ids(&r.groups, &format!("{path}.groups"))?;
    ids(&r.prefix_lists, &format!("{path}.prefix_lists"))?;
    Ok(Rule {
        protocol,
        ports,
        cidrs: cidrs(&r.cidrs, &format!("{path}.cidrs"))?,
        groups: r.groups.clone(),
        prefix_lists: r.prefix_lists.clone(),
    })
}

fn rules(list: &[RuleJson], path: &str) -> Result<Vec<Rule>, InvalidInventory> {
    list.iter()
        .enumerate()
        .map(|(i, r)| rule(r, &format!("{path}[{i}]")))
        .collect()
}

/// Checks attributes and reads them flat (which of them the resource's kind
/// has is [`resource_from_json`]'s to check).
pub(super) fn attributes(
    a: AttributesJson,
    path: &str,
) -> Result<AttributesRepr, InvalidInventory> {
    grants(&a.grants, &format!("{path}.grants"))?;
    ids(&a.groups, &format!("{path}.groups"))?;
    ids(&a.interfaces, &format!("{path}.interfaces"))?;
    ids(&a.associations, &format!("{path}.associations"))?;
    if let Some(name) = &a.name
        && (name.is_empty() || name.len() > 255 || name.chars().any(char::is_control))
    {
        return Err(at(
            &format!("{path}.name"),
            "a name is 1 to 255 characters, none of them control characters",
        ));
    }
    let addresses = a
        .addresses
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.parse::<IpAddr>().map_err(|_| {
                at(
                    &format!("{path}.addresses[{i}]"),
                    format!("`{s}` is not an IP address"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let private_ip = match &a.private_ip {
        Some(s) => Some(s.parse::<std::net::IpAddr>().map_err(|_| {
            at(
                &format!("{path}.private_ip"),
                format!("`{s}` is not an IP address"),
            )
        })?),
        None => None,
    };
    let http_tokens = match a.http_tokens.as_deref() {
        None => None,
        Some(t @ ("required" | "optional")) => Some(t.to_owned()),
        Some(t) => {
            return Err(at(
                &format!("{path}.http_tokens"),
                format!("`{t}` is not `required` or `optional`"),
            ));
        }
    };
    Ok(AttributesRepr {
        ingress: rules(&a.ingress, &format!("{path}.ingress"))?,
        egress: rules(&a.egress, &format!("{path}.egress"))?,
        cidrs: cidrs(&a.cidrs, &format!("{path}.cidrs"))?,
        addresses,
        instance_type: a.instance_type,
        image_id: a.image_id,
        subnet_id: a.subnet_id,
        vpc_id: a.vpc_id,
        key_name: a.key_name,
        availability_zone: a.availability_zone,
        tenancy: a.tenancy,
        root_device_type: a.root_device_type,
        ebs_optimized: a.ebs_optimized,
        instance_profile: a.instance_profile,
        volume_size: a.volume_size,
        volume_type: a.volume_type,
        iops: a.iops,
        encrypted: a.encrypted,
        snapshot_id: a.snapshot_id,
        volume_id: a.volume_id,
        public: a.public,
        owner_alias: a.owner_alias,
        grants: a.grants,
        groups: a.groups,
        interfaces: a.interfaces,
        attached_to: a.attached_to,
        group_name: a.group_name,
        name: a.name,
        associations: a.associations,
        default_for_az: a.default_for_az,
        private_ip,
        http_tokens,
    })
}

/// Checks a resource and builds the model's [`Resource`]; `path` names it
/// in messages.
pub fn resource_from_json(r: ResourceJson, path: &str) -> Result<Resource, InvalidInventory> {
    check_id(&r.id, &format!("{path}.id"))?;
    let by_prefix = ResourceKind::of_id(&r.id);
    let kind = match (r.kind, by_prefix) {
        (Some(k), Some(p)) if k != p => {
            return Err(at(
                &format!("{path}.kind"),
                format!(
                    "`{}` contradicts the id `{}`, which names a `{}`",
                    k.arn_type(),
                    r.id,
                    p.arn_type()
                ),
            ));
        }
        (Some(k), _) | (None, Some(k)) => k,
        (None, None) => {
            return Err(at(
                &format!("{path}.kind"),
                format!(
                    "missing, and the id `{}` has no known prefix; one of {}",
                    r.id,
                    kind_names()
                ),
            ));
        }
    };
    check_account(&r.account, &format!("{path}.account"))?;
    check_region(&r.region, &format!("{path}.region"))?;
    if r.tags.keys().any(String::is_empty) {
        return Err(at(&format!("{path}.tags"), "a tag key is empty"));
    }
    let flat = attributes(r.attributes, &format!("{path}.attributes"))?;
    let (attributes, foreign) = flat.into_kind(kind);
    if let Some(field) = foreign.first() {
        return Err(at(
            &format!("{path}.attributes.{field}"),
            format!("a `{}` has no `{field}`", kind.arn_type()),
        ));
    }
    Ok(Resource {
        attributes,
        id: r.id,
        account: r.account,
        region: r.region,
        tags: r.tags.into_iter().collect(),
    })
}

fn protocol_name(p: Protocol) -> String {
    match p {
        Protocol::All => "-1".to_owned(),
        Protocol::Tcp => "tcp".to_owned(),
        Protocol::Udp => "udp".to_owned(),
        Protocol::Icmp => "icmp".to_owned(),
        Protocol::Icmpv6 => "icmpv6".to_owned(),
        Protocol::Number(n) => n.to_string(),
    }
}

pub(super) fn rule_to_json(r: &Rule) -> RuleJson {
    let (from_port, to_port) = r.ports.to_ec2();
    RuleJson {
        protocol: protocol_name(r.protocol),
        from_port,
        to_port,
        cidrs: r.cidrs.iter().map(ToString::to_string).collect(),
        groups: r.groups.clone(),
        prefix_lists: r.prefix_lists.clone(),
    }
}

/// The wire shape of a stored resource (the inverse of
/// [`resource_from_json`]).
pub fn resource_to_json(r: &Resource) -> ResourceJson {
    let a = AttributesRepr::from(&r.attributes);
    ResourceJson {
        id: r.id.clone(),
        kind: Some(r.kind()),
        account: r.account.clone(),
        region: r.region.clone(),
        tags: r.tags.iter().cloned().collect(),
        attributes: AttributesJson {
            instance_type: a.instance_type,
            image_id: a.image_id,
            subnet_id: a.subnet_id,
            vpc_id: a.vpc_id,
            key_name: a.key_name,
            availability_zone: a.availability_zone,
            tenancy: a.tenancy,
            root_device_type: a.root_device_type,
            ebs_optimized: a.ebs_optimized,
            instance_profile: a.instance_profile,
            volume_size: a.volume_size,
            volume_type: a.volume_type,
            iops: a.iops,
            encrypted: a.encrypted,
            snapshot_id: a.snapshot_id,
            volume_id: a.volume_id,
            public: a.public,
            owner_alias: a.owner_alias,
            grants: a.grants,
            groups: a.groups,
            interfaces: a.interfaces,
            attached_to: a.attached_to,
            addresses: a.addresses.iter().map(ToString::to_string).collect(),
            group_name: a.group_name,
            ingress: a.ingress.iter().map(rule_to_json).collect(),
            egress: a.egress.iter().map(rule_to_json).collect(),
            cidrs: a.cidrs.iter().map(ToString::to_string).collect(),
            private_ip: a.private_ip.map(|ip| ip.to_string()),
            http_tokens: a.http_tokens,
            name: a.name,
            default_for_az: a.default_for_az,
            associations: a.associations,
        },
    }
}

/// A resource as JSON, leaving out unset attributes.
pub(super) fn resource_value(r: &Resource) -> Value {
    let mut v = serde_json::to_value(resource_to_json(r)).unwrap_or(Value::Null);
    if let Some(Value::Object(attrs)) = v.get_mut("attributes") {
        attrs.retain(|_, a| !(a.is_null() || a.as_array().is_some_and(Vec::is_empty)));
    }
    v
}

impl ChangeJson {
    pub(super) fn into_change(self, path: &str) -> Result<Change, InvalidInventory> {
        let extra = |name: &str, given: bool| {
            if given {
                Err(at(
                    &format!("{path}.{name}"),
                    format!("not a field of `{}`", op_name(self.op)),
                ))
            } else {
                Ok(())
            }
        };
        let id = |id: Option<String>| -> Result<String, InvalidInventory> {
            let id = id.ok_or_else(|| at(path, "missing field `id`"))?;
            check_id(&id, &format!("{path}.id"))?;
            Ok(id)
        };
        match self.op {
            Op::Upsert => {
                extra("id", self.id.is_some())?;
                extra("add", self.add.is_some())?;
                extra("remove", self.remove.is_some())?;
                let r = self
                    .resource
                    .ok_or_else(|| at(path, "missing field `resource`"))?;
                let resource = resource_from_json(r, &format!("{path}.resource"))?;
                Ok(Change::Upsert {
                    resource: Box::new(resource),
                })
            }
            Op::Delete => {
                extra("resource", self.resource.is_some())?;
                extra("add", self.add.is_some())?;
                extra("remove", self.remove.is_some())?;
                Ok(Change::Delete { id: id(self.id)? })
            }
            Op::Grants => {
                extra("resource", self.resource.is_some())?;
                let add = self.add.unwrap_or_default();
                let remove = self.remove.unwrap_or_default();
                grants(&add, &format!("{path}.add"))?;
                grants(&remove, &format!("{path}.remove"))?;
                Ok(Change::Grants {
                    id: id(self.id)?,
                    add,
                    remove,
                })
            }
        }
    }
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Upsert => "upsert",
        Op::Delete => "delete",
        Op::Grants => "grants",
    }
}
