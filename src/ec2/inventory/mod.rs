//! The EC2 inventory: resources with their owner, region, tags and the
//! attributes that condition keys, permission attributes (launch and
//! create-volume permissions) and security-group evaluation need.
//!
//! Read from the AWS CLI's own output (`describe-instances`,
//! `describe-images`, `describe-image-attribute --attribute
//! launchPermission`, `describe-snapshots`, `describe-snapshot-attribute
//! --attribute createVolumePermission`, `describe-volumes`,
//! `describe-security-groups`, `describe-network-interfaces`,
//! `describe-subnets`, `describe-key-pairs`, `describe-launch-templates`,
//! `describe-iam-instance-profile-associations`, and managed prefix lists),
//! recognised by their top-level key, not their file name.
//!
//! What the inventory knows of a resource beyond its id, owner, region and
//! tags is one type per kind ([`Attributes`], in `attributes.rs`): the
//! kind is the variant, so no instance carries a snapshot's size.
//!
//! Resources are keyed by id. Key pairs are keyed by their `key-` id (their
//! names are free text and could collide with any id) and carry their name,
//! which their ARN uses; launch templates carry theirs. Names (per kind,
//! owner and region) and association ids are indexed too
//! ([`Inventory::named`], [`Inventory::holding_association`]), so a call
//! that names a resource that way costs a lookup, not a scan. An [`Inventory`] is immutable and
//! cheap to clone (persistent maps), so runtime updates build a new one
//! and swap it in without blocking readers. Pure: no I/O here.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod attributes;

pub use attributes::{
    Attributes, AttributesRepr, ImageAttributes, InstanceAttributes, InterfaceAttributes,
    NamedAttributes, PrefixListAttributes, SecurityGroupAttributes, SnapshotAttributes,
    SubnetAttributes, VolumeAttributes,
};

/// The kinds of resources the inventory tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResourceKind {
    Instance,
    Image,
    Snapshot,
    Volume,
    SecurityGroup,
    NetworkInterface,
    Subnet,
    PrefixList,
    KeyPair,
    LaunchTemplate,
}

impl ResourceKind {
    /// Every kind.
    pub const ALL: [ResourceKind; 10] = [
        ResourceKind::Instance,
        ResourceKind::Image,
        ResourceKind::Snapshot,
        ResourceKind::Volume,
        ResourceKind::SecurityGroup,
        ResourceKind::NetworkInterface,
        ResourceKind::Subnet,
        ResourceKind::PrefixList,
        ResourceKind::KeyPair,
        ResourceKind::LaunchTemplate,
    ];

    /// The kind whose ARN resource type is `name` (`"instance"`), if the
    /// inventory tracks that type.
    pub fn of_type(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.arn_type() == name)
    }

    /// The ARN resource-type segment (`instance`, `image`, ...).
    pub fn arn_type(self) -> &'static str {
        match self {
            ResourceKind::Instance => "instance",
            ResourceKind::Image => "image",
            ResourceKind::Snapshot => "snapshot",
            ResourceKind::Volume => "volume",
            ResourceKind::SecurityGroup => "security-group",
            ResourceKind::NetworkInterface => "network-interface",
            ResourceKind::Subnet => "subnet",
            ResourceKind::PrefixList => "prefix-list",
            ResourceKind::KeyPair => "key-pair",
            ResourceKind::LaunchTemplate => "launch-template",
        }
    }

    /// The kind an EC2 id belongs to, from its prefix (`i-`, `ami-`, ...).
    pub fn of_id(id: &str) -> Option<Self> {
        let prefix = id.split_once('-')?.0;
        Some(match prefix {
            "i" => ResourceKind::Instance,
            "ami" => ResourceKind::Image,
            "snap" => ResourceKind::Snapshot,
            "vol" => ResourceKind::Volume,
            "sg" => ResourceKind::SecurityGroup,
            "eni" => ResourceKind::NetworkInterface,
            "subnet" => ResourceKind::Subnet,
            "pl" => ResourceKind::PrefixList,
            "key" => ResourceKind::KeyPair,
            "lt" => ResourceKind::LaunchTemplate,
            _ => return None,
        })
    }
}

/// Who may launch an AMI or create a volume from a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    /// `{"UserId": "111122223333"}`
    Account(String),
    /// `{"Group": "all"}`: every account.
    All,
    /// `{"OrganizationArn": ...}`
    Organization(String),
    /// `{"OrganizationalUnitArn": ...}`
    OrganizationalUnit(String),
}

/// An IP protocol of a security-group rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// `-1`: every protocol and port.
    All,
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
    /// Any other protocol number (ports do not apply).
    Number(u8),
}

impl Protocol {
    /// Parses `IpProtocol` as EC2 prints it (`tcp`, `6`, `-1`, ...).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "-1" | "all" => Protocol::All,
            "tcp" | "6" => Protocol::Tcp,
            "udp" | "17" => Protocol::Udp,
            "icmp" | "1" => Protocol::Icmp,
            "icmpv6" | "58" => Protocol::Icmpv6,
            other => Protocol::Number(other.parse().ok()?),
        })
    }
}

/// What a security-group rule admits beyond its protocol: EC2's
/// `FromPort`/`ToPort` pair, read once. EC2 writes "any" as `-1` (or leaves
/// the field out); here it is a variant, so no caller compares with `-1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ports {
    /// No port or type restriction: protocol `-1`, or a protocol number
    /// other than TCP, UDP, ICMP and ICMPv6 (ports do not apply).
    Any,
    /// TCP or UDP: the ports `from..=to` (an end EC2 leaves out or writes
    /// as `-1` is open: `0` or `65535`).
    Range { from: u16, to: u16 },
    /// ICMP or ICMPv6: a type (`FromPort`) and a code (`ToPort`), `None`
    /// meaning any. Any type admits every code.
    Icmp {
        icmp_type: Option<u8>,
        code: Option<u8>,
    },
}

/// Which end of EC2's port pair a [`PortError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortEnd {
    /// `FromPort` (ICMP: the type).
    From,
    /// `ToPort` (ICMP: the code).
    To,
}

/// A `FromPort`/`ToPort` pair that is not a rule EC2 could hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// Below `-1` or above the protocol's maximum (65535; 255 for ICMP).
    #[error("{value} is out of range (-1 to {max})")]
    OutOfRange { end: PortEnd, value: i64, max: u16 },
    /// A TCP/UDP range whose start is above its end.
    #[error("the port range starts at {from}, above its end {to}")]
    Reversed { from: u16, to: u16 },
}

impl Ports {
    /// Reads EC2's `FromPort`/`ToPort` for `protocol` (`None` or `-1`:
    /// any). The one place that knows EC2's encoding.
    pub fn from_ec2(
        protocol: Protocol,
        from: Option<i64>,
        to: Option<i64>,
    ) -> Result<Self, PortError> {
        fn end<T: TryFrom<i64>>(
            v: Option<i64>,
            which: PortEnd,
            max: u16,
        ) -> Result<Option<T>, PortError> {
            match v {
                None | Some(-1) => Ok(None),
                Some(value) => T::try_from(value)
                    .ok()
                    .filter(|_| (0..=i64::from(max)).contains(&value))
                    .map(Some)
                    .ok_or(PortError::OutOfRange {
                        end: which,
                        value,
                        max,
                    }),
            }
        }
        match protocol {
            Protocol::All | Protocol::Number(_) => Ok(Self::Any),
            Protocol::Tcp | Protocol::Udp => {
                let from = end::<u16>(from, PortEnd::From, u16::MAX)?.unwrap_or(0);
                let to = end::<u16>(to, PortEnd::To, u16::MAX)?.unwrap_or(u16::MAX);
                if from > to {
                    return Err(PortError::Reversed { from, to });
                }
                Ok(Self::Range { from, to })
            }
            Protocol::Icmp | Protocol::Icmpv6 => Ok(Self::Icmp {
                icmp_type: end::<u8>(from, PortEnd::From, 255)?,
                code: end::<u8>(to, PortEnd::To, 255)?,
            }),
        }
    }

    /// EC2's `FromPort`/`ToPort` for these ports (`-1` for an ICMP "any";
    /// `None` where EC2 prints no port).
    pub fn to_ec2(self) -> (Option<i32>, Option<i32>) {
        let any = |v: Option<u8>| v.map_or(-1, i32::from);
        match self {
            Self::Any => (None, None),
            Self::Range { from, to } => (Some(i32::from(from)), Some(i32::from(to))),
            Self::Icmp { icmp_type, code } => (Some(any(icmp_type)), Some(any(code))),
        }
    }
}

/// One security-group rule (an `IpPermissions` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RuleRepr", into = "RuleRepr")]
pub struct Rule {
    pub protocol: Protocol,
    /// The ports (TCP/UDP) or type and code (ICMP) the rule admits.
    pub ports: Ports,
    pub cidrs: Vec<IpNet>,
    /// Referenced security groups (peers that carry them match).
    pub groups: Vec<String>,
    pub prefix_lists: Vec<String>,
}

/// A [`Rule`] as stored (the inventory overlay file, fingerprints): EC2's
/// port pair, so files written before [`Ports`] existed still read.
#[derive(Serialize, Deserialize)]
struct RuleRepr {
    protocol: Protocol,
    from_port: Option<i32>,
    to_port: Option<i32>,
    cidrs: Vec<IpNet>,
    groups: Vec<String>,
    prefix_lists: Vec<String>,
}

impl TryFrom<RuleRepr> for Rule {
    type Error = PortError;
    fn try_from(r: RuleRepr) -> Result<Self, PortError> {
        Ok(Rule {
            ports: Ports::from_ec2(
                r.protocol,
                r.from_port.map(i64::from),
                r.to_port.map(i64::from),
            )?,
            protocol: r.protocol,
            cidrs: r.cidrs,
            groups: r.groups,
            prefix_lists: r.prefix_lists,
        })
    }
}

impl From<Rule> for RuleRepr {
    fn from(r: Rule) -> Self {
        let (from_port, to_port) = r.ports.to_ec2();
        RuleRepr {
            protocol: r.protocol,
            from_port,
            to_port,
            cidrs: r.cidrs,
            groups: r.groups,
            prefix_lists: r.prefix_lists,
        }
    }
}

/// One resource; its kind is its attributes' variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "ResourceRepr", from = "ResourceRepr")]
pub struct Resource {
    pub id: String,
    /// Owner account.
    pub account: String,
    pub region: String,
    pub tags: Vec<(String, String)>,
    pub attributes: Attributes,
}

/// A [`Resource`] as stored (the inventory overlay file, fingerprints): its
/// kind beside flat attributes, as written before the kinds had types.
/// Fields a stored record gives that its kind does not have are dropped.
#[derive(Serialize, Deserialize)]
struct ResourceRepr {
    id: String,
    kind: ResourceKind,
    account: String,
    region: String,
    #[serde(default)]
    tags: Vec<(String, String)>,
    #[serde(default)]
    attributes: AttributesRepr,
}

impl From<Resource> for ResourceRepr {
    fn from(r: Resource) -> Self {
        Self {
            kind: r.kind(),
            attributes: AttributesRepr::from(r.attributes),
            id: r.id,
            account: r.account,
            region: r.region,
            tags: r.tags,
        }
    }
}

impl From<ResourceRepr> for Resource {
    fn from(r: ResourceRepr) -> Self {
        Self {
            id: r.id,
            account: r.account,
            region: r.region,
            tags: r.tags,
            attributes: r.attributes.into_kind(r.kind).0,
        }
    }
}

impl Resource {
    /// The resource's kind.
    pub fn kind(&self) -> ResourceKind {
        self.attributes.kind()
    }

    /// The resource's ARN (images and snapshots carry no account, as in
    /// EC2's ARN formats; a key pair's ARN ends in its name).
    pub fn arn(&self, partition: &str) -> String {
        let account = match self.kind() {
            ResourceKind::Image | ResourceKind::Snapshot => "",
            _ => self.account.as_str(),
        };
        format!(
            "arn:{partition}:ec2:{}:{account}:{}/{}",
            self.region,
            self.kind().arn_type(),
            self.arn_id().unwrap_or(&self.id)
        )
    }

    /// The id its ARN ends in: the id, except for a key pair, whose ARN
    /// uses its name (`None` when the inventory does not know it).
    pub fn arn_id(&self) -> Option<&str> {
        match &self.attributes {
            Attributes::KeyPair(a) => a.name.as_deref(),
            _ => Some(&self.id),
        }
    }

    /// Its name: a security group's group name, a key pair's or launch
    /// template's name.
    pub fn name(&self) -> Option<&str> {
        self.attributes.name()
    }

    /// A tag's value; keys compare case-sensitively as EC2 stores them.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Counts by kind, for `/v1/status`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct InventoryCounts {
    pub instances: usize,
    pub images: usize,
    pub snapshots: usize,
    pub volumes: usize,
    pub security_groups: usize,
    pub network_interfaces: usize,
    pub subnets: usize,
    pub prefix_lists: usize,
    pub key_pairs: usize,
    pub launch_templates: usize,
}

/// An immutable inventory; clones share structure.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    by_id: imbl::HashMap<String, Arc<Resource>>,
    /// Address → the network interface (or instance) holding it.
    by_address: imbl::HashMap<IpAddr, String>,
    /// (kind, owner, region, name) → ids of the resources with that name
    /// (security group names are unique per VPC, so several may share one).
    by_name: imbl::HashMap<NameKey, Vec<String>>,
    /// Association id → id of the resource that holds it.
    by_association: imbl::HashMap<String, String>,
    /// (owner, region) → ids of its default subnets.
    default_subnets: imbl::HashMap<(String, String), Vec<String>>,
}

/// What a name is unique within.
type NameKey = (ResourceKind, String, String, String);

/// The (owner, region) whose default subnet `r` is.
fn default_subnet_key(r: &Resource) -> Option<(String, String)> {
    matches!(&r.attributes, Attributes::Subnet(s) if s.default_for_az)
        .then(|| (r.account.clone(), r.region.clone()))
}

fn name_key(r: &Resource) -> Option<NameKey> {
    Some((
        r.kind(),
        r.account.clone(),
        r.region.clone(),
        r.name()?.to_owned(),
    ))
}

/// A problem in an inventory file, with its JSON path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at `{path}`: {message}")]
pub struct InventoryError {
    pub path: String,
    pub message: String,
}

impl Inventory {
    /// An empty inventory.
    pub fn new() -> Self {
        Self::default()
    }

    /// A resource by id.
    pub fn get(&self, id: &str) -> Option<&Arc<Resource>> {
        self.by_id.get(id)
    }

    /// The network interface or instance that holds an address.
    pub fn holder_of(&self, addr: &IpAddr) -> Option<&Arc<Resource>> {
        self.by_address.get(addr).and_then(|id| self.by_id.get(id))
    }

    /// Every resource.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Resource>> {
        self.by_id.values()
    }

    /// The resources of `kind` named `name` ([`Resource::name`]) that
    /// `account` owns in `region` (names are unique per account and region,
    /// a security group's per VPC).
    pub fn named<'s, 'q>(
        &'s self,
        kind: ResourceKind,
        account: &'q str,
        region: &'q str,
        name: &'q str,
    ) -> impl Iterator<Item = &'s Arc<Resource>> + 'q
    where
        's: 'q,
    {
        let key = (kind, account.to_owned(), region.to_owned(), name.to_owned());
        self.by_name
            .get(&key)
            .into_iter()
            .flatten()
            .filter_map(|id| self.by_id.get(id))
    }

    /// The default subnets `account` has in `region` (one per zone).
    pub fn default_subnets<'s>(
        &'s self,
        account: &str,
        region: &str,
    ) -> impl Iterator<Item = &'s Arc<Resource>> + 's {
        self.default_subnets
            .get(&(account.to_owned(), region.to_owned()))
            .into_iter()
            .flatten()
            .filter_map(|id| self.by_id.get(id))
    }

    /// The resource of `kind` that holds association `id`.
    pub fn holding_association(&self, kind: ResourceKind, id: &str) -> Option<&Arc<Resource>> {
        self.by_association
            .get(id)
            .and_then(|holder| self.by_id.get(holder))
            .filter(|r| r.kind() == kind)
    }

    /// Counts by kind.
    pub fn counts(&self) -> InventoryCounts {
        let mut c = InventoryCounts::default();
        for r in self.by_id.values() {
            match r.kind() {
                ResourceKind::Instance => c.instances += 1,
                ResourceKind::Image => c.images += 1,
                ResourceKind::Snapshot => c.snapshots += 1,
                ResourceKind::Volume => c.volumes += 1,
                ResourceKind::SecurityGroup => c.security_groups += 1,
                ResourceKind::NetworkInterface => c.network_interfaces += 1,
                ResourceKind::Subnet => c.subnets += 1,
                ResourceKind::PrefixList => c.prefix_lists += 1,
                ResourceKind::KeyPair => c.key_pairs += 1,
                ResourceKind::LaunchTemplate => c.launch_templates += 1,
            }
        }
        c
    }

    /// Inserts or replaces a resource (by id). Addresses it held before are
    /// released; attributes not given keep nothing from the old record.
    pub fn upsert(&mut self, resource: Resource) {
        self.delete(&resource.id);
        // Instances index their addresses only when no interface of theirs
        // is known, so the interface (with its own groups) wins.
        for a in resource.attributes.addresses() {
            self.by_address.insert(*a, resource.id.clone());
        }
        if let Some(key) = name_key(&resource) {
            let mut ids = self.by_name.get(&key).cloned().unwrap_or_default();
            ids.push(resource.id.clone());
            self.by_name.insert(key, ids);
        }
        for a in resource.attributes.associations() {
            self.by_association.insert(a.clone(), resource.id.clone());
        }
        if let Some(key) = default_subnet_key(&resource) {
            let mut ids = self.default_subnets.get(&key).cloned().unwrap_or_default();
            ids.push(resource.id.clone());
            self.default_subnets.insert(key, ids);
        }
        self.by_id.insert(resource.id.clone(), Arc::new(resource));
    }

    /// Removes a resource; returns whether it existed.
    pub fn delete(&mut self, id: &str) -> bool {
        match self.by_id.remove(id) {
            Some(old) => {
                for a in old.attributes.addresses() {
                    if self.by_address.get(a).is_some_and(|h| h == id) {
                        self.by_address.remove(a);
                    }
                }
                if let Some(key) = name_key(&old) {
                    let mut ids = self.by_name.get(&key).cloned().unwrap_or_default();
                    ids.retain(|i| i != id);
                    if ids.is_empty() {
                        self.by_name.remove(&key);
                    } else {
                        self.by_name.insert(key, ids);
                    }
                }
                for a in old.attributes.associations() {
                    if self.by_association.get(a).is_some_and(|h| h == id) {
                        self.by_association.remove(a);
                    }
                }
                if let Some(key) = default_subnet_key(&old) {
                    let mut ids = self.default_subnets.get(&key).cloned().unwrap_or_default();
                    ids.retain(|i| i != id);
                    if ids.is_empty() {
                        self.default_subnets.remove(&key);
                    } else {
                        self.default_subnets.insert(key, ids);
                    }
                }
                true
            }
            None => false,
        }
    }

    /// Replaces an image's launch permissions or a snapshot's create-volume
    /// permissions (`ModifyImageAttribute` / `ModifySnapshotAttribute`).
    pub fn set_grants(&mut self, id: &str, add: &[Grant], remove: &[Grant]) -> bool {
        let Some(r) = self.by_id.get(id) else {
            return false;
        };
        let mut r = Resource::clone(r);
        let Some(grants) = r.attributes.grants_mut() else {
            return false;
        };
        grants.retain(|g| !remove.contains(g));
        for g in add {
            if !grants.contains(g) {
                grants.push(g.clone());
            }
        }
        self.upsert(r);
        true
    }

    /// The grants an image or snapshot already holds (loaded from its
    /// `describe-*-attribute` document before its description).
    fn grants_of(&self, id: &str) -> Vec<Grant> {
        self.by_id
            .get(id)
            .map(|old| old.attributes.grants().to_vec())
            .unwrap_or_default()
    }

    /// Reads one AWS CLI output document into the inventory. `account` and
    /// `region` come from the file's place in the bundle
    /// (`ec2/<account>/<region>/`); owners given in the document win.
    pub fn load_cli_output(
        &mut self,
        doc: &Value,
        account: &str,
        region: &str,
    ) -> Result<usize, InventoryError> {
        let obj = doc
            .as_object()
            .ok_or_else(|| err("$", "expected a JSON object"))?;
        let mut n = 0;
        for (key, v) in obj {
            let path = format!("$.{key}");
            match key.as_str() {
                "Reservations" => {
                    for (ri, res) in array(v, &path)?.iter().enumerate() {
                        let res: cli::Reservation = cli::read(res, &format!("{path}[{ri}]"))?;
                        let owner = res.owner_id.as_deref().unwrap_or(account);
                        for inst in res.instances {
                            self.load_instance(inst, owner, region)?;
                            n += 1;
                        }
                    }
                }
                "Images" => {
                    for (i, img) in array(v, &path)?.iter().enumerate() {
                        let img: cli::Image = cli::read(img, &format!("{path}[{i}]"))?;
                        // Keep grants already loaded from describe-image-attribute.
                        let grants = self.grants_of(&img.image_id);
                        self.upsert(Resource {
                            id: img.image_id,
                            account: img.owner_id.unwrap_or_else(|| account.to_owned()),
                            region: region.to_owned(),
                            tags: cli::pairs(img.tags),
                            attributes: Attributes::Image(ImageAttributes {
                                public: img.public,
                                root_device_type: img.root_device_type,
                                owner_alias: img.image_owner_alias,
                                grants,
                            }),
                        });
                        n += 1;
                    }
                }
                "LaunchPermissions" | "CreateVolumePermissions" => {
                    let (id_key, kind) = if key == "LaunchPermissions" {
                        ("ImageId", ResourceKind::Image)
                    } else {
                        ("SnapshotId", ResourceKind::Snapshot)
                    };
                    let id = req_str(doc, id_key, "$")?;
                    let grants = array(v, &path)?
                        .iter()
                        .enumerate()
                        .map(|(i, g)| grant(g, &format!("{path}[{i}]")))
                        .collect::<Result<Vec<_>, _>>()?;
                    // An id of another kind (or a record of another kind
                    // under it) is not an image or snapshot to grant on.
                    let mut r = match self.by_id.get(id) {
                        Some(old) if old.kind() == kind => Resource::clone(old),
                        Some(_) => {
                            return Err(err(
                                format!("$.{id_key}"),
                                format!("`{id}` is not {}", kind.arn_type()),
                            ));
                        }
                        None => Resource {
                            id: id.to_owned(),
                            account: account.to_owned(),
                            region: region.to_owned(),
                            tags: Vec::new(),
                            attributes: Attributes::empty(kind),
                        },
                    };
                    if let Some(g) = r.attributes.grants_mut() {
                        *g = grants;
                    }
                    self.upsert(r);
                    n += 1;
                }
                "ImageId" | "SnapshotId" => {}
                "KeyPairs" | "LaunchTemplates" => {
                    let (kind, id_key, name_key) = if key == "KeyPairs" {
                        (ResourceKind::KeyPair, "KeyPairId", "KeyName")
                    } else {
                        (
                            ResourceKind::LaunchTemplate,
                            "LaunchTemplateId",
                            "LaunchTemplateName",
                        )
                    };
                    for (i, item) in array(v, &path)?.iter().enumerate() {
                        let at = format!("{path}[{i}]");
                        let id = req_str(item, id_key, &at)?;
                        let name = req_str(item, name_key, &at)?;
                        let tagged: cli::Tagged = cli::read(item, &at)?;
                        let named = NamedAttributes {
                            name: Some(name.to_owned()),
                        };
                        self.upsert(Resource {
                            id: id.to_owned(),
                            account: account.to_owned(),
                            region: region.to_owned(),
                            tags: cli::pairs(tagged.tags),
                            attributes: match kind {
                                ResourceKind::KeyPair => Attributes::KeyPair(named),
                                _ => Attributes::LaunchTemplate(named),
                            },
                        });
                        n += 1;
                    }
                }
                "IamInstanceProfileAssociations" => {
                    for (i, a) in array(v, &path)?.iter().enumerate() {
                        let a: cli::ProfileAssociation = cli::read(a, &format!("{path}[{i}]"))?;
                        let (assoc, instance) = (a.association_id.as_str(), a.instance_id.as_str());
                        // A disassociated profile no longer names the instance.
                        if matches!(a.state.as_deref(), Some("disassociating" | "disassociated")) {
                            continue;
                        }
                        let profile = a.iam_instance_profile.and_then(|p| p.arn);
                        let mut r = match self.by_id.get(instance) {
                            Some(old) => Resource::clone(old),
                            None => Resource {
                                id: instance.to_owned(),
                                account: account.to_owned(),
                                region: region.to_owned(),
                                tags: Vec::new(),
                                attributes: Attributes::empty(ResourceKind::Instance),
                            },
                        };
                        let Attributes::Instance(attrs) = &mut r.attributes else {
                            return Err(err(
                                format!("{path}[{i}].InstanceId"),
                                format!("`{instance}` is not an instance"),
                            ));
                        };
                        if !attrs.associations.iter().any(|x| x == assoc) {
                            attrs.associations.push(assoc.to_owned());
                        }
                        if profile.is_some() {
                            attrs.instance_profile = profile;
                        }
                        self.upsert(r);
                        n += 1;
                    }
                }
                "Snapshots" => {
                    for (i, s) in array(v, &path)?.iter().enumerate() {
                        let s: cli::Snapshot = cli::read(s, &format!("{path}[{i}]"))?;
                        // Keep grants already loaded from describe-snapshot-attribute.
                        let grants = self.grants_of(&s.snapshot_id);
                        self.upsert(Resource {
                            id: s.snapshot_id,
                            account: s.owner_id.unwrap_or_else(|| account.to_owned()),
                            region: region.to_owned(),
                            tags: cli::pairs(s.tags),
                            attributes: Attributes::Snapshot(SnapshotAttributes {
                                volume_size: s.volume_size,
                                encrypted: s.encrypted,
                                volume_id: s.volume_id,
                                grants,
                            }),
                        });
                        n += 1;
                    }
                }
                "Volumes" => {
                    for (i, vol) in array(v, &path)?.iter().enumerate() {
                        let vol: cli::Volume = cli::read(vol, &format!("{path}[{i}]"))?;
                        let attached = vol
                            .attachments
                            .into_iter()
                            .next()
                            .and_then(|a| a.instance_id);
                        self.upsert(Resource {
                            id: vol.volume_id,
                            account: account.to_owned(),
                            region: region.to_owned(),
                            tags: cli::pairs(vol.tags),
                            attributes: Attributes::Volume(VolumeAttributes {
                                volume_size: vol.size,
                                volume_type: vol.volume_type,
                                iops: vol.iops,
                                encrypted: vol.encrypted,
                                snapshot_id: vol.snapshot_id.filter(|s| !s.is_empty()),
                                availability_zone: vol.availability_zone,
                                attached_to: attached,
                            }),
                        });
                        n += 1;
                    }
                }
                "SecurityGroups" => {
                    for (i, sg) in array(v, &path)?.iter().enumerate() {
                        let at = format!("{path}[{i}]");
                        let sg: cli::SecurityGroup = cli::read(sg, &at)?;
                        let rules = |k: &str, list: Vec<cli::Permission>| {
                            list.into_iter()
                                .enumerate()
                                .map(|(ri, r)| permission(r, &format!("{at}.{k}[{ri}]")))
                                .collect::<Result<Vec<Rule>, InventoryError>>()
                        };
                        let ingress = rules("IpPermissions", sg.ip_permissions)?;
                        let egress = rules("IpPermissionsEgress", sg.ip_permissions_egress)?;
                        self.upsert(Resource {
                            id: sg.group_id,
                            account: sg.owner_id.unwrap_or_else(|| account.to_owned()),
                            region: region.to_owned(),
                            tags: cli::pairs(sg.tags),
                            attributes: Attributes::SecurityGroup(SecurityGroupAttributes {
                                vpc_id: sg.vpc_id,
                                group_name: sg.group_name,
                                ingress,
                                egress,
                            }),
                        });
                        n += 1;
                    }
                }
                "NetworkInterfaces" => {
                    for (i, eni) in array(v, &path)?.iter().enumerate() {
                        let eni: cli::Interface = cli::read(eni, &format!("{path}[{i}]"))?;
                        self.load_interface(eni, account, region, None);
                        n += 1;
                    }
                }
                "Subnets" => {
                    for (i, s) in array(v, &path)?.iter().enumerate() {
                        let at = format!("{path}[{i}]");
                        let s: cli::Subnet = cli::read(s, &at)?;
                        let cidrs = match &s.cidr_block {
                            Some(c) => vec![parse_net(c, &format!("{at}.CidrBlock"))?],
                            None => Vec::new(),
                        };
                        let associations = s
                            .ipv6_cidr_block_association_set
                            .into_iter()
                            .filter_map(|a| a.association_id)
                            .collect();
                        self.upsert(Resource {
                            id: s.subnet_id,
                            account: s.owner_id.unwrap_or_else(|| account.to_owned()),
                            region: region.to_owned(),
                            tags: cli::pairs(s.tags),
                            attributes: Attributes::Subnet(SubnetAttributes {
                                vpc_id: s.vpc_id,
                                availability_zone: s.availability_zone,
                                default_for_az: s.default_for_az == Some(true),
                                cidrs,
                                associations,
                            }),
                        });
                        n += 1;
                    }
                }
                "PrefixLists" => {
                    for (i, pl) in array(v, &path)?.iter().enumerate() {
                        let at = format!("{path}[{i}]");
                        let pl: cli::PrefixList = cli::read(pl, &at)?;
                        let cidrs = pl
                            .entries
                            .iter()
                            .enumerate()
                            .map(|(ei, e)| parse_net(&e.cidr, &format!("{at}.Entries[{ei}].Cidr")))
                            .collect::<Result<Vec<_>, _>>()?;
                        self.upsert(Resource {
                            id: pl.prefix_list_id,
                            account: pl.owner_id.unwrap_or_else(|| account.to_owned()),
                            region: region.to_owned(),
                            tags: cli::pairs(pl.tags),
                            attributes: Attributes::PrefixList(PrefixListAttributes { cidrs }),
                        });
                        n += 1;
                    }
                }
                _ => {}
            }
        }
        Ok(n)
    }

    fn load_instance(
        &mut self,
        inst: cli::Instance,
        account: &str,
        region: &str,
    ) -> Result<(), InventoryError> {
        let id = inst.instance_id;
        let interfaces: Vec<String> = inst
            .network_interfaces
            .into_iter()
            .map(|eni| self.load_interface(eni, account, region, Some(&id)))
            .collect();
        // Without interface records the instance itself holds its addresses.
        let addresses = if interfaces.is_empty() {
            [inst.private_ip_address, inst.public_ip_address]
                .into_iter()
                .flatten()
                .collect()
        } else {
            Vec::new()
        };
        let placement = inst.placement.unwrap_or_default();
        // Associations loaded from describe-iam-instance-profile-associations.
        let associations = self
            .by_id
            .get(&id)
            .and_then(|old| old.attributes.instance())
            .map(|old| old.associations.clone())
            .unwrap_or_default();
        self.upsert(Resource {
            id,
            account: account.to_owned(),
            region: region.to_owned(),
            tags: cli::pairs(inst.tags),
            attributes: Attributes::Instance(Box::new(InstanceAttributes {
                instance_type: inst.instance_type,
                image_id: inst.image_id,
                subnet_id: inst.subnet_id,
                vpc_id: inst.vpc_id,
                key_name: inst.key_name,
                availability_zone: placement.availability_zone,
                tenancy: placement.tenancy,
                root_device_type: inst.root_device_type,
                ebs_optimized: inst.ebs_optimized,
                instance_profile: inst.iam_instance_profile.and_then(|p| p.arn),
                groups: cli::group_ids(inst.security_groups),
                interfaces,
                addresses,
                associations,
                private_ip: inst.private_ip_address,
                http_tokens: inst.metadata_options.and_then(|m| m.http_tokens),
            })),
        });
        Ok(())
    }

    /// Stores one network interface and returns its id.
    fn load_interface(
        &mut self,
        eni: cli::Interface,
        account: &str,
        region: &str,
        instance: Option<&str>,
    ) -> String {
        let mut addresses: Vec<IpAddr> = Vec::new();
        for p in eni.private_ip_addresses {
            addresses.extend(p.private_ip_address);
            addresses.extend(p.association.and_then(|x| x.public_ip));
        }
        let more = [
            eni.private_ip_address,
            eni.association.and_then(|x| x.public_ip),
        ];
        for a in more.into_iter().flatten() {
            if !addresses.contains(&a) {
                addresses.push(a);
            }
        }
        addresses.extend(
            eni.ipv6_addresses
                .into_iter()
                .filter_map(|p| p.ipv6_address),
        );
        let attachment = eni.attachment.unwrap_or_default();
        let attached = instance.map(str::to_owned).or(attachment.instance_id);
        // Its attachment id (`eni-attach-…`), which DetachNetworkInterface names.
        let associations = attachment.attachment_id.into_iter().collect();
        // describe-network-interfaces prints `TagSet`; elsewhere it is `Tags`.
        let tag_list = cli::pairs(eni.tag_set.unwrap_or(eni.tags));
        let id = eni.network_interface_id;
        self.upsert(Resource {
            id: id.clone(),
            account: eni.owner_id.unwrap_or_else(|| account.to_owned()),
            region: region.to_owned(),
            tags: tag_list,
            attributes: Attributes::NetworkInterface(InterfaceAttributes {
                subnet_id: eni.subnet_id,
                vpc_id: eni.vpc_id,
                groups: cli::group_ids(eni.groups),
                attached_to: attached,
                addresses,
                associations,
            }),
        });
        id
    }
}

fn err(path: impl Into<String>, message: impl Into<String>) -> InventoryError {
    InventoryError {
        path: path.into(),
        message: message.into(),
    }
}

fn array<'v>(v: &'v Value, path: &str) -> Result<&'v Vec<Value>, InventoryError> {
    v.as_array().ok_or_else(|| err(path, "expected an array"))
}

fn str_of<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

fn req_str<'v>(v: &'v Value, key: &str, at: &str) -> Result<&'v str, InventoryError> {
    str_of(v, key).ok_or_else(|| err(format!("{at}.{key}"), "missing or not a string"))
}

fn parse_net(s: &str, at: &str) -> Result<IpNet, InventoryError> {
    s.parse::<IpNet>()
        .map_err(|_| err(at, format!("`{s}` is not a CIDR block")))
}

fn grant(g: &Value, at: &str) -> Result<Grant, InventoryError> {
    if let Some(id) = str_of(g, "UserId") {
        Ok(Grant::Account(id.to_owned()))
    } else if str_of(g, "Group") == Some("all") {
        Ok(Grant::All)
    } else if let Some(a) = str_of(g, "OrganizationArn") {
        Ok(Grant::Organization(a.to_owned()))
    } else if let Some(a) = str_of(g, "OrganizationalUnitArn") {
        Ok(Grant::OrganizationalUnit(a.to_owned()))
    } else {
        Err(err(
            at,
            "expected UserId, Group `all`, OrganizationArn or OrganizationalUnitArn",
        ))
    }
}

/// One `IpPermissions` entry (found at `at`) as a rule.
fn permission(r: cli::Permission, at: &str) -> Result<Rule, InventoryError> {
    let proto = match r.ip_protocol {
        cli::TextOrNumber::Text(s) => s,
        cli::TextOrNumber::Number(n) => n.to_string(),
    };
    let protocol = Protocol::parse(&proto).ok_or_else(|| {
        err(
            format!("{at}.IpProtocol"),
            format!("unknown protocol `{proto}`"),
        )
    })?;
    let ports = Ports::from_ec2(protocol, r.from_port, r.to_port).map_err(|e| {
        let at = match e {
            PortError::OutOfRange {
                end: PortEnd::From, ..
            } => format!("{at}.FromPort"),
            PortError::OutOfRange {
                end: PortEnd::To, ..
            } => format!("{at}.ToPort"),
            PortError::Reversed { .. } => at.to_owned(),
        };
        err(at, e.to_string())
    })?;
    let mut cidrs = Vec::new();
    for (i, range) in r.ip_ranges.iter().enumerate() {
        cidrs.push(parse_net(
            &range.cidr_ip,
            &format!("{at}.IpRanges[{i}].CidrIp"),
        )?);
    }
    for (i, range) in r.ipv6_ranges.iter().enumerate() {
        cidrs.push(parse_net(
            &range.cidr_ipv6,
            &format!("{at}.Ipv6Ranges[{i}].CidrIpv6"),
        )?);
    }
    Ok(Rule {
        protocol,
        ports,
        cidrs,
        groups: cli::group_ids(r.user_id_group_pairs),
        prefix_lists: r
            .prefix_list_ids
            .into_iter()
            .filter_map(|p| p.prefix_list_id)
            .collect(),
    })
}

/// The AWS CLI's `describe-*` output items, typed: a field of the wrong
/// JSON type is refused at its path instead of read as absent (an
/// `"Encrypted": "yes"` would otherwise leave `ec2:Encrypted` unset).
/// Fields the CLI prints that iamgate does not use are ignored.
mod cli {
    use std::net::IpAddr;

    use serde::Deserialize;
    use serde::de::DeserializeOwned;
    use serde_json::Value;

    use super::{InventoryError, err};

    /// Reads `v` (found at `at`) as `T`; an error names the JSON path of
    /// the offending field under `at`.
    pub(super) fn read<T: DeserializeOwned>(v: &Value, at: &str) -> Result<T, InventoryError> {
        serde_path_to_error::deserialize(v).map_err(|e| {
            let inner = e.path().to_string();
            let path = if inner == "." {
                at.to_owned()
            } else {
                format!("{at}.{inner}")
            };
            err(path, e.into_inner().to_string())
        })
    }

    /// `Tags` as (key, value) pairs.
    pub(super) fn pairs(tags: Vec<Tag>) -> Vec<(String, String)> {
        tags.into_iter().map(|t| (t.key, t.value)).collect()
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct Tag {
        pub key: String,
        pub value: String,
    }

    /// An item of which only the tags are typed here.
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct Tagged {
        #[serde(default)]
        pub tags: Vec<Tag>,
    }

    /// `describe-images` `Images[]`.
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct Image {
        pub image_id: String,
        pub owner_id: Option<String>,
        pub public: Option<bool>,
        pub root_device_type: Option<String>,
        pub image_owner_alias: Option<String>,
        #[serde(default)]
        pub tags: Vec<Tag>,
    }

    /// `describe-snapshots` `Snapshots[]`.
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct Snapshot {
        pub snapshot_id: String,
        pub owner_id: Option<String>,
        pub volume_size: Option<i64>,
        pub encrypted: Option<bool>,
        pub volume_id: Option<String>,
        #[serde(default)]
        pub tags: Vec<Tag>,
    }

    /// `describe-volumes` `Volumes[]`.
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct Volume {
        pub volume_id: String,
        pub size: Option<i64>,
        pub volume_type: Option<String>,
        pub iops: Option<i64>,
        pub encrypted: Option<bool>,
        pub snapshot_id: Option<String>,
        pub availability_zone: Option<String>,
        #[serde(default)]
        pub attachments: Vec<Attachment>,
        #[serde(default)]
        pub tags: Vec<Tag>,
    }

    /// `Volumes[].Attachments[]`.
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct Attachment {
        pub instance_id: Option<String>,
    }

    /// A `{"GroupId": ...}` reference (`SecurityGroups`, `Groups`,
    /// `UserIdGroupPairs`).
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct GroupRef {
        pub group_id: Option<String>,
    }

    /// The group ids of a list of references.
    pub(super) fn group_ids(list: Vec<GroupRef>) -> Vec<String> {
        list.into_iter().filter_map(|g| g.group_id).collect()
    }

    /// An `{"Arn": ...}` reference (`IamInstanceProfile`).
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct ArnRef {
        pub arn: Option<String>,
    }

    /// `describe-security-groups` `SecurityGroups[]`.
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct SecurityGroup {
        pub group_id: String,
        pub owner_id: Option<String>,
        pub vpc_id: Option<String>,
        pub group_name: Option<String>,
        #[serde(default)]
        pub ip_permissions: Vec<Permission>,
        #[serde(default)]
        pub ip_permissions_egress: Vec<Permission>,
        #[serde(default)]
        pub tags: Vec<Tag>,
    }

    /// `IpProtocol`: the CLI prints text (`tcp`, `-1`); a number is taken
    /// too.
    #[derive(Deserialize)]
    #[serde(untagged)]
    pub(super) enum TextOrNumber {
        Text(String),
        Number(i64),
    }

    /// An `IpPermissions` entry.
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct Permission {
        pub ip_protocol: TextOrNumber,
        pub from_port: Option<i64>,
        pub to_port: Option<i64>,
        #[serde(default)]
        pub ip_ranges: Vec<IpRange>,
        #[serde(default)]
        pub ipv6_ranges: Vec<Ipv6Range>,
        #[serde(default)]
        pub user_id_group_pairs: Vec<GroupRef>,
        #[serde(default)]
        pub prefix_list_ids: Vec<PrefixListRef>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct IpRange {
        pub cidr_ip: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct Ipv6Range {
        pub cidr_ipv6: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct PrefixListRef {
        pub prefix_list_id: Option<String>,
    }

    /// `describe-subnets` `Subnets[]`.
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct Subnet {
        pub subnet_id: String,
        pub owner_id: Option<String>,
        pub vpc_id: Option<String>,
        pub availability_zone: Option<String>,
        pub default_for_az: Option<bool>,
        pub cidr_block: Option<String>,
        #[serde(default)]
        pub ipv6_cidr_block_association_set: Vec<AssociationRef>,
        #[serde(default)]
        pub tags: Vec<Tag>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct AssociationRef {
        pub association_id: Option<String>,
    }

    /// `get-managed-prefix-list-entries`/`describe-managed-prefix-lists`
    /// `PrefixLists[]`.
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct PrefixList {
        pub prefix_list_id: String,
        pub owner_id: Option<String>,
        #[serde(default)]
        pub entries: Vec<PrefixListEntry>,
        #[serde(default)]
        pub tags: Vec<Tag>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct PrefixListEntry {
        pub cidr: String,
    }

    /// `describe-iam-instance-profile-associations`
    /// `IamInstanceProfileAssociations[]`.
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct ProfileAssociation {
        pub association_id: String,
        pub instance_id: String,
        pub state: Option<String>,
        pub iam_instance_profile: Option<ArnRef>,
    }

    /// `describe-instances` `Reservations[]`.
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct Reservation {
        pub owner_id: Option<String>,
        #[serde(default)]
        pub instances: Vec<Instance>,
    }

    /// `Reservations[].Instances[]`.
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct Instance {
        pub instance_id: String,
        pub instance_type: Option<String>,
        pub image_id: Option<String>,
        pub subnet_id: Option<String>,
        pub vpc_id: Option<String>,
        pub key_name: Option<String>,
        pub root_device_type: Option<String>,
        pub ebs_optimized: Option<bool>,
        pub private_ip_address: Option<IpAddr>,
        pub public_ip_address: Option<IpAddr>,
        pub placement: Option<Placement>,
        pub iam_instance_profile: Option<ArnRef>,
        pub metadata_options: Option<MetadataOptions>,
        #[serde(default)]
        pub security_groups: Vec<GroupRef>,
        #[serde(default)]
        pub network_interfaces: Vec<Interface>,
        #[serde(default)]
        pub tags: Vec<Tag>,
    }

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct Placement {
        pub availability_zone: Option<String>,
        pub tenancy: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct MetadataOptions {
        pub http_tokens: Option<String>,
    }

    /// `describe-network-interfaces` `NetworkInterfaces[]`, or an
    /// instance's `NetworkInterfaces[]`.
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct Interface {
        pub network_interface_id: String,
        pub owner_id: Option<String>,
        pub subnet_id: Option<String>,
        pub vpc_id: Option<String>,
        pub private_ip_address: Option<IpAddr>,
        pub association: Option<PublicIp>,
        #[serde(default)]
        pub private_ip_addresses: Vec<PrivateIp>,
        #[serde(default)]
        pub ipv6_addresses: Vec<Ipv6>,
        pub attachment: Option<InterfaceAttachment>,
        #[serde(default)]
        pub groups: Vec<GroupRef>,
        pub tag_set: Option<Vec<Tag>>,
        #[serde(default)]
        pub tags: Vec<Tag>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct PublicIp {
        pub public_ip: Option<IpAddr>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct PrivateIp {
        pub private_ip_address: Option<IpAddr>,
        pub association: Option<PublicIp>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct Ipv6 {
        pub ipv6_address: Option<IpAddr>,
    }

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct InterfaceAttachment {
        pub instance_id: Option<String>,
        pub attachment_id: Option<String>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The stored form (overlay file, fingerprints) is the flat one written
    /// before the kinds had types, byte for byte.
    #[test]
    fn resources_are_stored_as_before_the_kinds_had_types() {
        let stored = concat!(
            r#"{"id":"vol-1","kind":"volume","account":"111122223333","region":"us-east-1","#,
            r#""tags":[["team","a"]],"attributes":{"instance_type":null,"image_id":null,"#,
            r#""subnet_id":null,"vpc_id":null,"key_name":null,"availability_zone":"us-east-1a","#,
            r#""tenancy":null,"root_device_type":null,"ebs_optimized":null,"#,
            r#""instance_profile":null,"volume_size":8,"volume_type":"gp3","iops":null,"#,
            r#""encrypted":true,"snapshot_id":null,"volume_id":null,"public":null,"#,
            r#""owner_alias":null,"grants":[],"groups":[],"interfaces":[],"#,
            r#""attached_to":"i-1","addresses":[],"group_name":null,"ingress":[],"#,
            r#""egress":[],"cidrs":[]}}"#
        );
        let volume = Resource {
            id: "vol-1".into(),
            account: "111122223333".into(),
            region: "us-east-1".into(),
            tags: vec![("team".into(), "a".into())],
            attributes: Attributes::Volume(VolumeAttributes {
                volume_size: Some(8),
                volume_type: Some("gp3".into()),
                encrypted: Some(true),
                availability_zone: Some("us-east-1a".into()),
                attached_to: Some("i-1".into()),
                ..VolumeAttributes::default()
            }),
        };
        assert_eq!(serde_json::to_string(&volume).unwrap(), stored);
        let read: Resource = serde_json::from_str(stored).unwrap();
        assert_eq!(read, volume);
        // A stored field the kind does not have (the inventory API once
        // took any) is dropped on reading, not an error.
        let foreign = stored.replace(r#""instance_type":null"#, r#""instance_type":"t3.micro""#);
        let read: Resource = serde_json::from_str(&foreign).unwrap();
        assert_eq!(read, volume);
    }

    #[test]
    fn ports_read_ec2s_encoding_once() {
        use Protocol::{All, Icmp, Icmpv6, Number, Tcp, Udp};
        let any_icmp = Ports::Icmp {
            icmp_type: None,
            code: None,
        };
        for (proto, from, to, want) in [
            (
                Tcp,
                Some(443),
                Some(443),
                Ports::Range { from: 443, to: 443 },
            ),
            (
                Udp,
                Some(0),
                Some(65_535),
                Ports::Range {
                    from: 0,
                    to: 65_535,
                },
            ),
            (
                Tcp,
                None,
                None,
                Ports::Range {
                    from: 0,
                    to: 65_535,
                },
            ),
            (
                Tcp,
                Some(-1),
                Some(-1),
                Ports::Range {
                    from: 0,
                    to: 65_535,
                },
            ),
            (
                Tcp,
                Some(1024),
                None,
                Ports::Range {
                    from: 1024,
                    to: 65_535,
                },
            ),
            (Icmp, Some(-1), Some(-1), any_icmp),
            (Icmpv6, None, None, any_icmp),
            (
                Icmp,
                Some(8),
                Some(0),
                Ports::Icmp {
                    icmp_type: Some(8),
                    code: Some(0),
                },
            ),
            (All, None, None, Ports::Any),
            (All, Some(-1), Some(-1), Ports::Any),
            (Number(47), None, None, Ports::Any),
        ] {
            assert_eq!(
                Ports::from_ec2(proto, from, to),
                Ok(want),
                "{proto:?} {from:?} {to:?}"
            );
        }
        for (proto, from, to, want) in [
            (
                Tcp,
                Some(0),
                Some(70_000),
                PortError::OutOfRange {
                    end: PortEnd::To,
                    value: 70_000,
                    max: 65_535,
                },
            ),
            (
                Udp,
                Some(-2),
                Some(1),
                PortError::OutOfRange {
                    end: PortEnd::From,
                    value: -2,
                    max: 65_535,
                },
            ),
            (
                Tcp,
                Some(80),
                Some(22),
                PortError::Reversed { from: 80, to: 22 },
            ),
            (
                Icmp,
                Some(8),
                Some(256),
                PortError::OutOfRange {
                    end: PortEnd::To,
                    value: 256,
                    max: 255,
                },
            ),
        ] {
            assert_eq!(
                Ports::from_ec2(proto, from, to),
                Err(want),
                "{proto:?} {from:?} {to:?}"
            );
        }
        // Written back as EC2 prints it; the stored form reads back the same.
        assert_eq!(any_icmp.to_ec2(), (Some(-1), Some(-1)));
        assert_eq!(
            Ports::Range { from: 22, to: 22 }.to_ec2(),
            (Some(22), Some(22))
        );
        let rule = Rule {
            protocol: Icmp,
            ports: Ports::Icmp {
                icmp_type: Some(3),
                code: None,
            },
            cidrs: vec![],
            groups: vec![],
            prefix_lists: vec![],
        };
        let stored = serde_json::to_value(&rule).unwrap();
        assert_eq!(
            (stored["from_port"].clone(), stored["to_port"].clone()),
            (json!(3), json!(-1))
        );
        assert_eq!(serde_json::from_value::<Rule>(stored).unwrap(), rule);
        let bad = json!({"protocol": "tcp", "from_port": 9, "to_port": 1,
                         "cidrs": [], "groups": [], "prefix_lists": []});
        assert!(serde_json::from_value::<Rule>(bad).is_err());
    }

    /// Issue 12: typed CLI items refuse a field of the wrong type at its
    /// path rather than reading it as absent.
    #[test]
    fn cli_items_of_the_wrong_type_are_refused_at_their_path() {
        let load = |doc: Value| {
            let mut inv = Inventory::default();
            inv.load_cli_output(&doc, "111122223333", "us-east-1")
                .map(|_| inv)
        };
        for (doc, path, says) in [
            (
                json!({"Volumes": [{"VolumeId": "vol-1", "Encrypted": "yes"}]}),
                "$.Volumes[0].Encrypted",
                "expected a boolean",
            ),
            (
                json!({"Snapshots": [{"SnapshotId": "snap-1", "VolumeSize": "8"}]}),
                "$.Snapshots[0].VolumeSize",
                "expected i64",
            ),
            (
                json!({"Images": [{"Public": true}]}),
                "$.Images[0]",
                "missing field `ImageId`",
            ),
            (
                json!({"Images": [{"ImageId": "ami-1", "Tags": [{"Key": "team"}]}]}),
                "$.Images[0].Tags[0]",
                "missing field `Value`",
            ),
            (
                json!({"KeyPairs": [{"KeyPairId": "key-1", "KeyName": "k", "Tags": 3}]}),
                "$.KeyPairs[0].Tags",
                "expected a sequence",
            ),
        ] {
            let e = load(doc).unwrap_err();
            assert_eq!(e.path, path);
            assert!(e.message.contains(says), "{path}: {}", e.message);
        }
        let inv = load(
            json!({"Volumes": [{"VolumeId": "vol-1", "Size": 8, "Encrypted": true,
            "SnapshotId": "", "Attachments": [{"InstanceId": "i-1"}],
            "Tags": [{"Key": "team", "Value": "a"}]}]}),
        )
        .unwrap();
        let vol = inv.get("vol-1").unwrap();
        assert_eq!(
            (vol.attributes.volume_size(), vol.attributes.encrypted()),
            (Some(8), Some(true))
        );
        let Attributes::Volume(v) = &vol.attributes else {
            panic!("not a volume")
        };
        assert_eq!(v.snapshot_id, None);
        assert_eq!(vol.attributes.attached_to(), Some("i-1"));
        assert_eq!(vol.tags, [("team".to_owned(), "a".to_owned())]);
    }

    #[test]
    fn cli_rules_with_bad_ports_name_the_field() {
        let load = |perm: Value| {
            let doc = json!({"SecurityGroups": [{"GroupId": "sg-1", "IpPermissions": [perm]}]});
            Inventory::default()
                .load_cli_output(&doc, "111122223333", "us-east-1")
                .unwrap_err()
        };
        let e = load(json!({"IpProtocol": "tcp", "FromPort": 22, "ToPort": "x"}));
        assert_eq!(e.path, "$.SecurityGroups[0].IpPermissions[0].ToPort");
        let e = load(json!({"IpProtocol": "udp", "FromPort": 70000, "ToPort": 70000}));
        assert_eq!(
            (e.path.as_str(), e.message.as_str()),
            (
                "$.SecurityGroups[0].IpPermissions[0].FromPort",
                "70000 is out of range (-1 to 65535)"
            )
        );
        let e = load(json!({"IpProtocol": "tcp", "FromPort": 1, "ToPort": 2,
                            "IpRanges": [{"CidrIp": "10.0.0.0/33"}]}));
        assert_eq!(
            e.path,
            "$.SecurityGroups[0].IpPermissions[0].IpRanges[0].CidrIp"
        );
        // An address that does not parse is refused, not dropped.
        let doc = json!({"NetworkInterfaces": [{"NetworkInterfaceId": "eni-1",
            "PrivateIpAddresses": [{"PrivateIpAddress": "10.0.0.300"}]}]});
        let e = Inventory::default()
            .load_cli_output(&doc, "111122223333", "us-east-1")
            .unwrap_err();
        assert_eq!(
            e.path,
            "$.NetworkInterfaces[0].PrivateIpAddresses[0].PrivateIpAddress"
        );
    }

    #[test]
    fn reads_cli_output() {
        let mut inv = Inventory::new();
        let instances = json!({"Reservations": [{"OwnerId": "111122223333", "Instances": [{
            "InstanceId": "i-0abc", "InstanceType": "t3.micro", "ImageId": "ami-1",
            "Placement": {"AvailabilityZone": "us-east-1a", "Tenancy": "default"},
            "SubnetId": "subnet-1", "VpcId": "vpc-1",
            "Tags": [{"Key": "team", "Value": "blue"}],
            "SecurityGroups": [{"GroupId": "sg-1", "GroupName": "web"}],
            "NetworkInterfaces": [{"NetworkInterfaceId": "eni-1", "PrivateIpAddress": "10.0.0.5",
                "PrivateIpAddresses": [{"PrivateIpAddress": "10.0.0.5"}],
                "Groups": [{"GroupId": "sg-1"}]}]
        }]}]});
        assert_eq!(
            inv.load_cli_output(&instances, "111122223333", "us-east-1"),
            Ok(1)
        );
        let i = inv
            .get("i-0abc")
            .and_then(|r| r.attributes.instance())
            .map(|a| a.instance_type.clone());
        assert_eq!(i, Some(Some("t3.micro".to_owned())));
        let holder = inv.holder_of(&"10.0.0.5".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])));
        assert_eq!(holder.map(|r| r.id.as_str()), Some("eni-1"));

        let perms = json!({"ImageId": "ami-1", "LaunchPermissions": [{"UserId": "444455556666"}, {"Group": "all"}]});
        assert_eq!(
            inv.load_cli_output(&perms, "111122223333", "us-east-1"),
            Ok(1)
        );
        let images =
            json!({"Images": [{"ImageId": "ami-1", "OwnerId": "111122223333", "Public": false}]});
        assert_eq!(
            inv.load_cli_output(&images, "111122223333", "us-east-1"),
            Ok(1)
        );
        let grants = inv.get("ami-1").map(|r| r.attributes.grants().len());
        assert_eq!(grants, Some(2));
        let arn = inv.get("ami-1").map(|r| r.arn("aws"));
        assert_eq!(arn.as_deref(), Some("arn:aws:ec2:us-east-1::image/ami-1"));

        let sgs = json!({"SecurityGroups": [{"GroupId": "sg-1", "GroupName": "web", "OwnerId": "111122223333",
            "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                "IpRanges": [{"CidrIp": "0.0.0.0/0"}], "UserIdGroupPairs": [{"GroupId": "sg-2"}]}],
            "IpPermissionsEgress": [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]}]});
        assert_eq!(
            inv.load_cli_output(&sgs, "111122223333", "us-east-1"),
            Ok(1)
        );
        let rules = inv
            .get("sg-1")
            .map(|r| match &r.attributes {
                Attributes::SecurityGroup(sg) => sg.ingress.clone(),
                _ => Vec::new(),
            })
            .unwrap_or_default();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules.first().map(|r| r.protocol), Some(Protocol::Tcp));

        let before = inv.clone();
        assert!(inv.delete("i-0abc"));
        assert!(before.get("i-0abc").is_some() && inv.get("i-0abc").is_none());
    }

    #[test]
    fn names_and_associations_are_indexed() -> Result<(), InventoryError> {
        let mut inv = Inventory::new();
        let (me, r) = ("111122223333", "us-east-1");
        inv.load_cli_output(
            &json!({"IamInstanceProfileAssociations": [
                {"AssociationId": "iip-assoc-1", "InstanceId": "i-1", "State": "associated",
                 "IamInstanceProfile": {"Arn": "arn:aws:iam::111122223333:instance-profile/web"}},
                {"AssociationId": "iip-assoc-old", "InstanceId": "i-1", "State": "disassociated"}]}),
            me,
            r,
        )?;
        // describe-instances after the associations keeps them.
        inv.load_cli_output(
            &json!({"Reservations": [{"Instances": [{"InstanceId": "i-1", "InstanceType": "t3.micro"}]}]}),
            me,
            r,
        )?;
        inv.load_cli_output(
            &json!({"KeyPairs": [{"KeyPairId": "key-1", "KeyName": "i-1"}],
                    "LaunchTemplates": [{"LaunchTemplateId": "lt-1", "LaunchTemplateName": "web"}]}),
            me,
            r,
        )?;
        let by_assoc = |inv: &Inventory, a: &str| {
            inv.holding_association(ResourceKind::Instance, a)
                .map(|x| x.id.clone())
        };
        assert_eq!(by_assoc(&inv, "iip-assoc-1").as_deref(), Some("i-1"));
        assert_eq!(by_assoc(&inv, "iip-assoc-old"), None, "disassociated");
        assert_eq!(
            inv.holding_association(ResourceKind::Subnet, "iip-assoc-1"),
            None,
            "another kind"
        );
        let i = inv
            .get("i-1")
            .and_then(|x| x.attributes.instance())
            .map(|a| a.instance_type.clone());
        assert_eq!(i, Some(Some("t3.micro".to_owned())));
        // A key named like an instance id is a key pair, not the instance.
        let key = |inv: &Inventory, name: &str, region: &str| {
            inv.named(ResourceKind::KeyPair, me, region, name)
                .map(|x| x.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(key(&inv, "i-1", r), ["key-1"]);
        assert!(
            key(&inv, "i-1", "eu-west-1").is_empty(),
            "names are regional"
        );
        assert_eq!(
            inv.get("key-1").map(|k| k.arn("aws")).as_deref(),
            Some("arn:aws:ec2:us-east-1:111122223333:key-pair/i-1")
        );
        let lt = inv
            .named(ResourceKind::LaunchTemplate, me, r, "web")
            .next()
            .map(|x| x.id.clone());
        assert_eq!(lt.as_deref(), Some("lt-1"));
        // Renaming and deleting keep the indexes exact.
        inv.load_cli_output(
            &json!({"KeyPairs": [{"KeyPairId": "key-1", "KeyName": "renamed"}]}),
            me,
            r,
        )?;
        assert!(key(&inv, "i-1", r).is_empty());
        assert_eq!(key(&inv, "renamed", r), ["key-1"]);
        assert!(inv.delete("key-1") && inv.delete("i-1"));
        assert!(key(&inv, "renamed", r).is_empty());
        assert_eq!(by_assoc(&inv, "iip-assoc-1"), None);
        let c = inv.counts();
        assert_eq!((c.key_pairs, c.launch_templates, c.instances), (0, 1, 0));
        Ok(())
    }

    #[test]
    fn bad_rules_name_their_path() {
        let mut inv = Inventory::new();
        let sgs = json!({"SecurityGroups": [{"GroupId": "sg-1", "IpPermissions": [
            {"IpProtocol": "tcp", "IpRanges": [{"CidrIp": "10.0.0.0/33"}]}]}]});
        let e = inv.load_cli_output(&sgs, "1", "r");
        assert_eq!(
            e.map_err(|e| e.path),
            Err("$.SecurityGroups[0].IpPermissions[0].IpRanges[0].CidrIp".to_owned())
        );
    }
}
