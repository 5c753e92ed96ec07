//! The inventory API: runtime changes to the live EC2 inventory
//! ([`InventoryStore`]) over HTTP/JSON and gRPC (`iamgate.v1.Inventory`,
//! `proto/iamgate/v1/inventory.proto`), served only on the authenticated
//! control listener ([`super::control`]).
//!
//! - `POST /v1/inventory`: a batch of changes (`upsert`, `delete`,
//!   `grants`), applied atomically.
//! - `GET /v1/inventory/{id}`: one resource.
//! - `POST /v1/inventory/cli?account=…&region=…`: one AWS CLI `describe-*`
//!   output document, read as the bundle's `ec2/` files are.
//!
//! Who writes: the control plane, after its backend confirmed a change
//! (an instance launched, a launch permission removed, ...). ext_authz never
//! writes here, since it does not see the backend's answer. Changes are
//! runtime overlay entries over the bundle's seed (see [`InventoryStore`]
//! for what survives reloads and restarts); a write that cannot be
//! persisted is refused (500) and changes nothing, and writes before the
//! first bundle are 503.
//!
//! A thin adapter: bound the input, check every change of a batch before
//! applying any (a refused batch changes nothing), apply on a blocking
//! thread, shape the answer. Writes never block decisions: the store swaps
//! in a new copy-on-write inventory. The wire shape of a resource is
//! defined here (JSON) and in the proto (gRPC); both are converted through
//! [`ResourceJson`], so they are validated by the same code. The gRPC
//! `Resource` is a typed message mirroring [`Resource`], not a JSON string,
//! so that generated clients and reflection see the schema. Errors become
//! statuses only through [`ServeError`]. No EC2 authorization semantics
//! live here.

use std::collections::BTreeMap;
use std::net::IpAddr;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tonic::Status;

use crate::ec2::inventory::{
    Attributes, Grant, InventoryCounts, PortEnd, PortError, Ports, Protocol, Resource,
    ResourceKind, Rule,
};
use crate::ec2::inventory_store::{Applied, Change, InventoryStore, InventoryStoreError};
use crate::policy::{AccountId, Region};
use crate::server::errors::ServeError;
use crate::server::grpc_api::pb;
use crate::server::http_util::{Body, json as json_response};
use crate::server::state::AppState;
use crate::telemetry::Frontend;

use pb::inventory_server::{Inventory as InventoryApi, InventoryServer};

/// Every resource kind, for parsing kind names.
const KINDS: [ResourceKind; 8] = [
    ResourceKind::Instance,
    ResourceKind::Image,
    ResourceKind::Snapshot,
    ResourceKind::Volume,
    ResourceKind::SecurityGroup,
    ResourceKind::NetworkInterface,
    ResourceKind::Subnet,
    ResourceKind::PrefixList,
];

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
enum Op {
    Upsert,
    Delete,
    Grants,
}

/// One change as JSON: `op` says which of the other fields it takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeJson {
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
struct BatchJson {
    changes: Vec<ChangeJson>,
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

fn at(path: &str, msg: impl std::fmt::Display) -> InvalidInventory {
    InvalidInventory {
        path: path.to_owned(),
        message: msg.to_string(),
    }
}

fn check_id(id: &str, path: &str) -> Result<(), InvalidInventory> {
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

fn check_account(account: &str, path: &str) -> Result<(), InvalidInventory> {
    AccountId::parse(account).map(drop).map_err(|e| at(path, e))
}

fn check_region(region: &str, path: &str) -> Result<(), InvalidInventory> {
    Region::parse(region).map(drop).map_err(|e| at(path, e))
}

fn parse_kind(name: &str) -> Option<ResourceKind> {
    KINDS.into_iter().find(|k| k.arn_type() == name)
}

fn kind_names() -> String {
    KINDS
        .iter()
        .map(|k| format!("`{}`", k.arn_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn cidr(text: &str, path: &str) -> Result<IpNet, InvalidInventory> {
    text.parse()
        .map_err(|_| at(path, format!("`{text}` is not a CIDR block")))
}

fn cidrs(list: &[String], path: &str) -> Result<Vec<IpNet>, InvalidInventory> {
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

fn grants(list: &[Grant], path: &str) -> Result<(), InvalidInventory> {
    list.iter()
        .enumerate()
        .try_for_each(|(i, g)| grant(g, &format!("{path}[{i}]")))
}

fn rule(r: &RuleJson, path: &str) -> Result<Rule, InvalidInventory> {
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

fn attributes(a: AttributesJson, path: &str) -> Result<Attributes, InvalidInventory> {
    grants(&a.grants, &format!("{path}.grants"))?;
    ids(&a.groups, &format!("{path}.groups"))?;
    ids(&a.interfaces, &format!("{path}.interfaces"))?;
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
    Ok(Attributes {
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
        // Not writable through this API yet: a key pair or launch template
        // without its name, or an association, resolves nothing (the EC2
        // mapping then refuses calls naming it that way).
        name: None,
        associations: Vec::new(),
        default_for_az: None,
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
    Ok(Resource {
        attributes: attributes(r.attributes, &format!("{path}.attributes"))?,
        id: r.id,
        kind,
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

fn rule_to_json(r: &Rule) -> RuleJson {
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
    let a = &r.attributes;
    ResourceJson {
        id: r.id.clone(),
        kind: Some(r.kind),
        account: r.account.clone(),
        region: r.region.clone(),
        tags: r.tags.iter().cloned().collect(),
        attributes: AttributesJson {
            instance_type: a.instance_type.clone(),
            image_id: a.image_id.clone(),
            subnet_id: a.subnet_id.clone(),
            vpc_id: a.vpc_id.clone(),
            key_name: a.key_name.clone(),
            availability_zone: a.availability_zone.clone(),
            tenancy: a.tenancy.clone(),
            root_device_type: a.root_device_type.clone(),
            ebs_optimized: a.ebs_optimized,
            instance_profile: a.instance_profile.clone(),
            volume_size: a.volume_size,
            volume_type: a.volume_type.clone(),
            iops: a.iops,
            encrypted: a.encrypted,
            snapshot_id: a.snapshot_id.clone(),
            volume_id: a.volume_id.clone(),
            public: a.public,
            owner_alias: a.owner_alias.clone(),
            grants: a.grants.clone(),
            groups: a.groups.clone(),
            interfaces: a.interfaces.clone(),
            attached_to: a.attached_to.clone(),
            addresses: a.addresses.iter().map(ToString::to_string).collect(),
            group_name: a.group_name.clone(),
            ingress: a.ingress.iter().map(rule_to_json).collect(),
            egress: a.egress.iter().map(rule_to_json).collect(),
            cidrs: a.cidrs.iter().map(ToString::to_string).collect(),
            private_ip: a.private_ip.map(|ip| ip.to_string()),
            http_tokens: a.http_tokens.clone(),
        },
    }
}

/// A resource as JSON, leaving out unset attributes.
fn resource_value(r: &Resource) -> Value {
    let mut v = serde_json::to_value(resource_to_json(r)).unwrap_or(Value::Null);
    if let Some(Value::Object(attrs)) = v.get_mut("attributes") {
        attrs.retain(|_, a| !(a.is_null() || a.as_array().is_some_and(Vec::is_empty)));
    }
    v
}

impl ChangeJson {
    fn into_change(self, path: &str) -> Result<Change, InvalidInventory> {
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

// ── Applying ────────────────────────────────────────────────────────────

/// Refuses batches over the configured limit.
fn check_batch(state: &AppState, n: usize) -> Result<(), ServeError> {
    let limit = state.config.limits.max_inventory_batch;
    if n > limit {
        return Err(ServeError::BatchTooLarge { got: n, limit });
    }
    Ok(())
}

/// The status of a store refusal: no seed yet is 503 (as decisions are),
/// a document that does not read is the caller's, a state directory that
/// cannot be written is ours.
fn store_error(e: InventoryStoreError) -> ServeError {
    match e {
        InventoryStoreError::NotSeeded => ServeError::NotReady,
        InventoryStoreError::Invalid(e) => ServeError::BadRequest(e.to_string()),
        InventoryStoreError::State { .. } => {
            tracing::error!(error = %e, "inventory change refused: the state directory cannot be written");
            ServeError::Internal(e.to_string())
        }
    }
}

/// Runs a store write on a blocking thread (it may write the state
/// directory).
async fn blocking<T: Send + 'static>(
    state: &AppState,
    write: impl FnOnce(&InventoryStore) -> Result<T, InventoryStoreError> + Send + 'static,
) -> Result<T, ServeError> {
    let inventory = state.inventory.clone();
    tokio::task::spawn_blocking(move || write(&inventory))
        .await
        .map_err(|e| ServeError::Internal(format!("inventory write: {e}")))?
        .map_err(store_error)
}

/// Applies checked changes; returns what they did and the counts after.
async fn apply(
    state: &AppState,
    frontend: Frontend,
    changes: Vec<Change>,
) -> Result<(Applied, InventoryCounts), ServeError> {
    let n = changes.len();
    let applied = if changes.is_empty() {
        Applied::default()
    } else {
        blocking(state, move |inv| inv.apply(changes)).await?
    };
    tracing::info!(
        frontend = frontend.as_str(),
        changes = n,
        upserted = applied.upserted,
        deleted = applied.deleted,
        grants_changed = applied.grants_changed,
        not_found = applied.not_found,
        "inventory batch applied"
    );
    Ok((applied, state.inventory.counts()))
}

// ── HTTP ────────────────────────────────────────────────────────────────

/// Whether `path` belongs to the inventory API.
pub fn owns(path: &str) -> bool {
    path == "/v1/inventory" || path.starts_with("/v1/inventory/")
}

/// Serves one request whose path [`owns`] says is ours.
pub async fn route_http(
    state: &AppState,
    req: Request<Incoming>,
) -> Result<Response<Body>, ServeError> {
    let path = req.uri().path().to_owned();
    match path.as_str() {
        "/v1/inventory" => {
            expect_method(&req, &Method::POST)?;
            let body = read_json(state, req).await?;
            let batch: BatchJson = parse(&body)?;
            check_batch(state, batch.changes.len())?;
            let changes = batch
                .changes
                .into_iter()
                .enumerate()
                .map(|(i, c)| c.into_change(&format!("$.changes[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map_err(ServeError::from)?;
            let (applied, counts) = apply(state, Frontend::Http, changes).await?;
            ok(json!({"applied": applied, "counts": counts}))
        }
        "/v1/inventory/cli" => {
            expect_method(&req, &Method::POST)?;
            let (account, region) = cli_params(req.uri().query().unwrap_or(""))?;
            let body = read_json(state, req).await?;
            let doc: Value = parse(&body)?;
            let (acct, reg) = (account.clone(), region.clone());
            let loaded = blocking(state, move |inv| inv.apply_cli(&doc, &acct, &reg)).await?;
            tracing::info!(%account, %region, loaded, "inventory CLI document applied");
            ok(json!({"loaded": loaded, "counts": state.inventory.counts()}))
        }
        other => {
            expect_method(&req, &Method::GET)?;
            let id = other.strip_prefix("/v1/inventory/").unwrap_or_default();
            check_id(id, "id").map_err(ServeError::from)?;
            let inventory = state.inventory.load();
            let resource = inventory.get(id).ok_or(ServeError::NotFound)?;
            ok(json!({"resource": resource_value(resource)}))
        }
    }
}

fn ok(body: Value) -> Result<Response<Body>, ServeError> {
    Ok(json_response(StatusCode::OK, body.to_string().into_bytes()))
}

fn expect_method(req: &Request<Incoming>, method: &Method) -> Result<(), ServeError> {
    if req.method() == method {
        Ok(())
    } else {
        Err(ServeError::MethodNotAllowed)
    }
}

/// Reads a JSON body within the request limits.
async fn read_json(state: &AppState, req: Request<Incoming>) -> Result<bytes::Bytes, ServeError> {
    crate::server::http_util::read_json_body(req, state.config.limits).await
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ServeError> {
    crate::server::http_util::parse_json(body)
}

/// `account` and `region` of `POST /v1/inventory/cli`, both required.
fn cli_params(query: &str) -> Result<(String, String), ServeError> {
    let (mut account, mut region) = (None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_encoding::percent_decode_str(v)
            .decode_utf8()
            .map_err(|_| ServeError::BadRequest(format!("query parameter `{k}` is not UTF-8")))?
            .into_owned();
        let slot = match k {
            "account" => &mut account,
            "region" => &mut region,
            _ => {
                return Err(ServeError::BadRequest(format!(
                    "unknown query parameter `{k}` (expected `account` and `region`)"
                )));
            }
        };
        if slot.replace(v).is_some() {
            return Err(ServeError::BadRequest(format!(
                "query parameter `{k}` given twice"
            )));
        }
    }
    let missing = |k: &str| ServeError::BadRequest(format!("query parameter `{k}` is required"));
    let account = account.ok_or_else(|| missing("account"))?;
    let region = region.ok_or_else(|| missing("region"))?;
    check_account(&account, "account").map_err(ServeError::from)?;
    check_region(&region, "region").map_err(ServeError::from)?;
    Ok((account, region))
}

// ── gRPC ────────────────────────────────────────────────────────────────

/// The `iamgate.v1.Inventory` service.
#[derive(Debug, Clone)]
pub struct InventoryService {
    state: AppState,
}

impl InventoryService {
    /// The tonic server for this service, with the message size limit
    /// (`limits.max_body_bytes`) applied.
    pub fn server(state: AppState) -> InventoryServer<Self> {
        let limit = state.config.limits.max_body_bytes;
        InventoryServer::new(Self { state }).max_decoding_message_size(limit)
    }

    /// Counts an error and turns it into a status.
    fn refuse(&self, e: ServeError) -> Status {
        self.state.metrics.request_error(Frontend::Grpc, e.reason());
        e.grpc_status()
    }
}

#[tonic::async_trait]
impl InventoryApi for InventoryService {
    async fn apply(
        &self,
        request: tonic::Request<pb::ApplyInventoryRequest>,
    ) -> Result<tonic::Response<pb::ApplyInventoryResponse>, Status> {
        let req = request.into_inner();
        check_batch(&self.state, req.changes.len()).map_err(|e| self.refuse(e))?;
        let changes = req
            .changes
            .into_iter()
            .enumerate()
            .map(|(i, c)| change_from_proto(c, &format!("changes[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.refuse(ServeError::from(e)))?;
        let (applied, counts) = apply(&self.state, Frontend::Grpc, changes)
            .await
            .map_err(|e| self.refuse(e))?;
        Ok(tonic::Response::new(pb::ApplyInventoryResponse {
            applied: Some(pb::InventoryApplied {
                upserted: count(applied.upserted),
                deleted: count(applied.deleted),
                grants_changed: count(applied.grants_changed),
                not_found: count(applied.not_found),
            }),
            counts: Some(counts_to_proto(counts)),
        }))
    }

    async fn get(
        &self,
        request: tonic::Request<pb::GetInventoryResourceRequest>,
    ) -> Result<tonic::Response<pb::GetInventoryResourceResponse>, Status> {
        let id = request.into_inner().id;
        check_id(&id, "id").map_err(|e| self.refuse(ServeError::from(e)))?;
        let inventory = self.state.inventory.load();
        let resource = inventory
            .get(&id)
            .ok_or_else(|| Status::not_found(format!("no resource `{id}` in the inventory")))?;
        Ok(tonic::Response::new(pb::GetInventoryResourceResponse {
            resource: Some(resource_to_proto(resource)),
        }))
    }
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn counts_to_proto(c: InventoryCounts) -> pb::InventoryCounts {
    pb::InventoryCounts {
        instances: count(c.instances),
        images: count(c.images),
        snapshots: count(c.snapshots),
        volumes: count(c.volumes),
        security_groups: count(c.security_groups),
        network_interfaces: count(c.network_interfaces),
        subnets: count(c.subnets),
        prefix_lists: count(c.prefix_lists),
    }
}

fn change_from_proto(c: pb::InventoryChange, path: &str) -> Result<Change, InvalidInventory> {
    use pb::inventory_change::Op as P;
    match c.op {
        None => Err(at(path, "no op set (one of upsert, delete, grants)")),
        Some(P::Upsert(r)) => {
            let at_r = format!("{path}.upsert");
            let json = resource_json_from_proto(r, &at_r)?;
            Ok(Change::Upsert {
                resource: Box::new(resource_from_json(json, &at_r)?),
            })
        }
        Some(P::Delete(d)) => {
            check_id(&d.id, &format!("{path}.delete.id"))?;
            Ok(Change::Delete { id: d.id })
        }
        Some(P::Grants(g)) => {
            let at_g = format!("{path}.grants");
            check_id(&g.id, &format!("{at_g}.id"))?;
            let add = grants_from_proto(g.add, &format!("{at_g}.add"))?;
            let remove = grants_from_proto(g.remove, &format!("{at_g}.remove"))?;
            grants(&add, &format!("{at_g}.add"))?;
            grants(&remove, &format!("{at_g}.remove"))?;
            Ok(Change::Grants {
                id: g.id,
                add,
                remove,
            })
        }
    }
}

fn grants_from_proto(
    list: Vec<pb::InventoryGrant>,
    path: &str,
) -> Result<Vec<Grant>, InvalidInventory> {
    use pb::inventory_grant::Grantee as G;
    list.into_iter()
        .enumerate()
        .map(|(i, g)| match g.grantee {
            Some(G::Account(a)) => Ok(Grant::Account(a)),
            Some(G::All(true)) => Ok(Grant::All),
            Some(G::All(false)) => Err(at(&format!("{path}[{i}].all"), "must be true when set")),
            Some(G::Organization(a)) => Ok(Grant::Organization(a)),
            Some(G::OrganizationalUnit(a)) => Ok(Grant::OrganizationalUnit(a)),
            None => Err(at(
                &format!("{path}[{i}]"),
                "no grantee set (one of account, all, organization, organizational_unit)",
            )),
        })
        .collect()
}

fn grant_to_proto(g: &Grant) -> pb::InventoryGrant {
    use pb::inventory_grant::Grantee as G;
    pb::InventoryGrant {
        grantee: Some(match g {
            Grant::Account(a) => G::Account(a.clone()),
            Grant::All => G::All(true),
            Grant::Organization(a) => G::Organization(a.clone()),
            Grant::OrganizationalUnit(a) => G::OrganizationalUnit(a.clone()),
        }),
    }
}

fn rule_from_proto(r: pb::InventoryRule) -> RuleJson {
    RuleJson {
        protocol: r.protocol,
        from_port: r.from_port,
        to_port: r.to_port,
        cidrs: r.cidrs,
        groups: r.groups,
        prefix_lists: r.prefix_lists,
    }
}

fn rule_to_proto(r: &Rule) -> pb::InventoryRule {
    let j = rule_to_json(r);
    pb::InventoryRule {
        protocol: j.protocol,
        from_port: j.from_port,
        to_port: j.to_port,
        cidrs: j.cidrs,
        groups: j.groups,
        prefix_lists: j.prefix_lists,
    }
}

/// The JSON shape of a protobuf resource, so both front-ends share
/// [`resource_from_json`].
fn resource_json_from_proto(
    r: pb::InventoryResource,
    path: &str,
) -> Result<ResourceJson, InvalidInventory> {
    let kind = if r.kind.is_empty() {
        None
    } else {
        Some(parse_kind(&r.kind).ok_or_else(|| {
            at(
                &format!("{path}.kind"),
                format!("unknown kind `{}`; one of {}", r.kind, kind_names()),
            )
        })?)
    };
    let a = r.attributes.unwrap_or_default();
    Ok(ResourceJson {
        id: r.id,
        kind,
        account: r.account,
        region: r.region,
        tags: r.tags.into_iter().collect(),
        attributes: AttributesJson {
            grants: grants_from_proto(a.grants, &format!("{path}.attributes.grants"))?,
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
            groups: a.groups,
            interfaces: a.interfaces,
            attached_to: a.attached_to,
            addresses: a.addresses,
            group_name: a.group_name,
            ingress: a.ingress.into_iter().map(rule_from_proto).collect(),
            egress: a.egress.into_iter().map(rule_from_proto).collect(),
            cidrs: a.cidrs,
            private_ip: a.private_ip,
            http_tokens: a.http_tokens,
        },
    })
}

fn resource_to_proto(r: &Resource) -> pb::InventoryResource {
    let a = &r.attributes;
    pb::InventoryResource {
        id: r.id.clone(),
        kind: r.kind.arn_type().to_owned(),
        account: r.account.clone(),
        region: r.region.clone(),
        tags: r.tags.iter().cloned().collect(),
        attributes: Some(pb::InventoryAttributes {
            instance_type: a.instance_type.clone(),
            image_id: a.image_id.clone(),
            subnet_id: a.subnet_id.clone(),
            vpc_id: a.vpc_id.clone(),
            key_name: a.key_name.clone(),
            availability_zone: a.availability_zone.clone(),
            tenancy: a.tenancy.clone(),
            root_device_type: a.root_device_type.clone(),
            ebs_optimized: a.ebs_optimized,
            instance_profile: a.instance_profile.clone(),
            volume_size: a.volume_size,
            volume_type: a.volume_type.clone(),
            iops: a.iops,
            encrypted: a.encrypted,
            snapshot_id: a.snapshot_id.clone(),
            volume_id: a.volume_id.clone(),
            public: a.public,
            owner_alias: a.owner_alias.clone(),
            grants: a.grants.iter().map(grant_to_proto).collect(),
            groups: a.groups.clone(),
            interfaces: a.interfaces.clone(),
            attached_to: a.attached_to.clone(),
            addresses: a.addresses.iter().map(ToString::to_string).collect(),
            group_name: a.group_name.clone(),
            ingress: a.ingress.iter().map(rule_to_proto).collect(),
            egress: a.egress.iter().map(rule_to_proto).collect(),
            cidrs: a.cidrs.iter().map(ToString::to_string).collect(),
            private_ip: a.private_ip.map(|ip| ip.to_string()),
            http_tokens: a.http_tokens.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(v: Value) -> Result<Change, String> {
        let c: ChangeJson = serde_json::from_value(v).map_err(|e| e.to_string())?;
        c.into_change("$.changes[0]").map_err(|e| e.to_string())
    }

    fn sg() -> Value {
        json!({"op": "upsert", "resource": {
            "id": "sg-1", "account": "111122223333", "region": "us-east-1",
            "tags": {"team": "blue"},
            "attributes": {"group_name": "web", "ingress": [
                {"protocol": "tcp", "from_port": 443, "to_port": 443,
                 "cidrs": ["0.0.0.0/0", "2001:db8::/32"], "groups": ["sg-2"]}]}}})
    }

    #[test]
    fn resources_round_trip_and_kinds_follow_ids() {
        let Change::Upsert { resource } = change(sg()).expect("a valid change") else {
            panic!("not an upsert")
        };
        assert_eq!(resource.kind, ResourceKind::SecurityGroup);
        assert_eq!(resource.tag("team"), Some("blue"));
        let back = resource_from_json(resource_to_json(&resource), "$");
        assert_eq!(back.as_ref(), Ok(&*resource));
        let v = resource_value(&resource);
        assert_eq!(v["attributes"]["ingress"][0]["protocol"], "tcp");
        assert!(
            v["attributes"].get("instance_type").is_none(),
            "unset left out"
        );
        let proto = resource_json_from_proto(resource_to_proto(&resource), "p")
            .and_then(|j| resource_from_json(j, "p"));
        assert_eq!(proto.as_ref(), Ok(&*resource));
    }

    #[test]
    fn bad_changes_name_the_field() {
        let mut bad_cidr = sg();
        bad_cidr["resource"]["attributes"]["ingress"][0]["cidrs"][1] = json!("10.0.0.0/33");
        let c: ChangeJson = serde_json::from_value(bad_cidr).unwrap();
        // A typed refusal (issue 12): the path and the reason apart.
        let e = c.into_change("$.changes[0]").unwrap_err();
        assert_eq!(
            (e.path.as_str(), e.message.as_str()),
            (
                "$.changes[0].resource.attributes.ingress[0].cidrs[1]",
                "`10.0.0.0/33` is not a CIDR block"
            )
        );
        let mut wrong_kind = sg();
        wrong_kind["resource"]["kind"] = json!("instance");
        let e = change(wrong_kind).err().unwrap_or_default();
        assert!(e.contains("contradicts the id `sg-1`"), "{e}");
        let mut short_account = sg();
        short_account["resource"]["account"] = json!("1234");
        assert!(change(short_account).is_err());
        let e = change(json!({"op": "frobnicate", "id": "i-1"}))
            .err()
            .unwrap_or_default();
        assert!(e.contains("unknown variant `frobnicate`"), "{e}");
        let e = change(json!({"op": "delete", "id": "i-1", "add": []}))
            .err()
            .unwrap_or_default();
        assert!(e.contains("not a field of `delete`"), "{e}");
        assert!(change(json!({"op": "delete"})).is_err());
        let e = change(json!({"op": "upsert", "resource": {"id": "x1", "account": "111122223333", "region": "us-east-1"}}))
            .err()
            .unwrap_or_default();
        assert!(e.contains("no known prefix"), "{e}");
    }

    #[test]
    fn grants_and_rules_are_checked() {
        let ok = change(json!({"op": "grants", "id": "ami-1",
            "add": [{"account": "444455556666"}, "all",
                    {"organization": "arn:aws:organizations::111122223333:organization/o-abc"}],
            "remove": []}));
        assert!(matches!(ok, Ok(Change::Grants { ref add, .. }) if add.len() == 3));
        assert!(
            change(json!({"op": "grants", "id": "ami-1", "add": [{"account": "12"}]})).is_err()
        );
        let r = |p: &str, from: i32, to: i32| {
            rule(
                &RuleJson {
                    protocol: p.to_owned(),
                    from_port: Some(from),
                    to_port: Some(to),
                    cidrs: vec![],
                    groups: vec![],
                    prefix_lists: vec![],
                },
                "r",
            )
        };
        assert!(r("tcp", 22, 22).is_ok());
        assert!(r("-1", -1, -1).is_ok());
        assert!(r("tcp", 80, 22).is_err());
        assert!(r("tcp", 0, 70_000).is_err());
        assert!(r("icmp", 8, 300).is_err());
        assert!(r("bogus", 1, 1).is_err());
    }

    #[test]
    fn proto_grants_need_a_grantee() {
        let none = pb::InventoryGrant { grantee: None };
        assert!(grants_from_proto(vec![none], "g").is_err());
        let all_false = pb::InventoryGrant {
            grantee: Some(pb::inventory_grant::Grantee::All(false)),
        };
        assert!(grants_from_proto(vec![all_false], "g").is_err());
        let no_op = pb::InventoryChange { op: None };
        assert!(change_from_proto(no_op, "changes[0]").is_err());
    }

    /// Issue 13: the gRPC API carries an instance's primary private IPv4
    /// address and `HttpTokens` as the JSON API does (both ways), checked
    /// the same way.
    #[test]
    fn proto_instances_carry_private_ip_and_http_tokens() {
        let Change::Upsert { resource } = change(json!({"op": "upsert", "resource": {
            "id": "i-0abc", "account": "111122223333", "region": "us-east-1",
            "attributes": {"addresses": ["10.0.0.5"], "private_ip": "10.0.0.5",
                           "http_tokens": "optional"}}}))
        .expect("a valid change") else {
            panic!("not an upsert")
        };
        let proto = resource_to_proto(&resource);
        let a = proto.attributes.clone().unwrap_or_default();
        assert_eq!(a.private_ip.as_deref(), Some("10.0.0.5"));
        assert_eq!(a.http_tokens.as_deref(), Some("optional"));
        let back =
            resource_json_from_proto(proto.clone(), "p").and_then(|j| resource_from_json(j, "p"));
        assert_eq!(back.as_ref(), Ok(&*resource));
        let mut bad = proto;
        if let Some(a) = bad.attributes.as_mut() {
            a.http_tokens = Some("sometimes".into());
        }
        let e = resource_json_from_proto(bad, "changes[0].upsert")
            .and_then(|j| resource_from_json(j, "changes[0].upsert"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("http_tokens") && e.contains("`sometimes`"),
            "{e}"
        );
    }

    #[test]
    fn cli_parameters() {
        assert_eq!(
            cli_params("account=111122223333&region=eu-central-1").ok(),
            Some(("111122223333".to_owned(), "eu-central-1".to_owned()))
        );
        assert!(cli_params("account=111122223333").is_err());
        assert!(cli_params("account=111122223333&region=x&region=y").is_err());
        assert!(cli_params("account=111122223333&region=us-east-1&extra=1").is_err());
        assert!(cli_params("account=abc&region=us-east-1").is_err());
    }
}
