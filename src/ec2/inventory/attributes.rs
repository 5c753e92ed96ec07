//! What the inventory knows of a resource beyond its id, owner, region and
//! tags: one type per resource kind ([`Attributes`]), so an instance cannot
//! carry a snapshot's size nor a volume launch permissions, and a
//! resource's kind is the variant it holds.
//!
//! Stored and sent flat ([`AttributesRepr`]: the inventory overlay file,
//! its fingerprints, the inventory API's JSON and protobuf shapes), as
//! before the kinds had types of their own, so files written then still
//! read. Reading the flat form names the fields that do not belong to the
//! kind ([`AttributesRepr::into_kind`]): the inventory API refuses them,
//! a stored file drops them.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{Grant, ResourceKind, Rule};

/// An instance's attributes (`describe-instances`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InstanceAttributes {
    pub instance_type: Option<String>,
    pub image_id: Option<String>,
    pub subnet_id: Option<String>,
    pub vpc_id: Option<String>,
    pub key_name: Option<String>,
    pub availability_zone: Option<String>,
    pub tenancy: Option<String>,
    pub root_device_type: Option<String>,
    pub ebs_optimized: Option<bool>,
    /// The ARN of its IAM instance profile.
    pub instance_profile: Option<String>,
    /// Its security groups.
    pub groups: Vec<String>,
    /// Its network interfaces.
    pub interfaces: Vec<String>,
    /// Addresses it holds itself (when no interface of its is known).
    pub addresses: Vec<IpAddr>,
    /// Its IAM instance profile association ids.
    pub associations: Vec<String>,
    /// Its primary private IPv4 address (`PrivateIpAddress`): the address
    /// its instance metadata requests come from.
    pub private_ip: Option<IpAddr>,
    /// `MetadataOptions.HttpTokens` (`required` or `optional`).
    pub http_tokens: Option<String>,
}

/// An AMI's attributes (`describe-images`, `describe-image-attribute`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageAttributes {
    /// Launchable by every account.
    pub public: Option<bool>,
    pub root_device_type: Option<String>,
    pub owner_alias: Option<String>,
    /// Its launch permissions.
    pub grants: Vec<Grant>,
}

/// A snapshot's attributes (`describe-snapshots`,
/// `describe-snapshot-attribute`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SnapshotAttributes {
    /// Size in GiB.
    pub volume_size: Option<i64>,
    pub encrypted: Option<bool>,
    /// The volume it was taken from.
    pub volume_id: Option<String>,
    /// Its create-volume permissions.
    pub grants: Vec<Grant>,
}

/// A volume's attributes (`describe-volumes`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VolumeAttributes {
    /// Size in GiB.
    pub volume_size: Option<i64>,
    pub volume_type: Option<String>,
    pub iops: Option<i64>,
    pub encrypted: Option<bool>,
    /// The snapshot it was created from.
    pub snapshot_id: Option<String>,
    pub availability_zone: Option<String>,
    /// The instance it is attached to.
    pub attached_to: Option<String>,
}

/// A security group's attributes (`describe-security-groups`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecurityGroupAttributes {
    pub vpc_id: Option<String>,
    pub group_name: Option<String>,
    pub ingress: Vec<Rule>,
    pub egress: Vec<Rule>,
}

/// A network interface's attributes (`describe-network-interfaces`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InterfaceAttributes {
    pub subnet_id: Option<String>,
    pub vpc_id: Option<String>,
    /// Its security groups.
    pub groups: Vec<String>,
    /// The instance it is attached to.
    pub attached_to: Option<String>,
    /// Its private and public addresses.
    pub addresses: Vec<IpAddr>,
    /// Its attachment id (`eni-attach-…`).
    pub associations: Vec<String>,
}

/// A subnet's attributes (`describe-subnets`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubnetAttributes {
    pub vpc_id: Option<String>,
    pub availability_zone: Option<String>,
    /// Its zone's default subnet (where RunInstances launches when no
    /// subnet is named).
    pub default_for_az: bool,
    pub cidrs: Vec<IpNet>,
    /// Its IPv6 CIDR block association ids.
    pub associations: Vec<String>,
}

/// A managed prefix list's attributes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrefixListAttributes {
    pub cidrs: Vec<IpNet>,
}

/// A key pair's or launch template's attributes: its name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NamedAttributes {
    pub name: Option<String>,
}

/// A resource's attributes; the variant is the resource's kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attributes {
    /// Boxed: an instance's attributes are several times any other kind's.
    Instance(Box<InstanceAttributes>),
    Image(ImageAttributes),
    Snapshot(SnapshotAttributes),
    Volume(VolumeAttributes),
    SecurityGroup(SecurityGroupAttributes),
    NetworkInterface(InterfaceAttributes),
    Subnet(SubnetAttributes),
    PrefixList(PrefixListAttributes),
    KeyPair(NamedAttributes),
    LaunchTemplate(NamedAttributes),
}

impl Attributes {
    /// A resource of `kind` of which nothing more is known.
    pub fn empty(kind: ResourceKind) -> Self {
        match kind {
            ResourceKind::Instance => Self::Instance(Default::default()),
            ResourceKind::Image => Self::Image(Default::default()),
            ResourceKind::Snapshot => Self::Snapshot(Default::default()),
            ResourceKind::Volume => Self::Volume(Default::default()),
            ResourceKind::SecurityGroup => Self::SecurityGroup(Default::default()),
            ResourceKind::NetworkInterface => Self::NetworkInterface(Default::default()),
            ResourceKind::Subnet => Self::Subnet(Default::default()),
            ResourceKind::PrefixList => Self::PrefixList(Default::default()),
            ResourceKind::KeyPair => Self::KeyPair(Default::default()),
            ResourceKind::LaunchTemplate => Self::LaunchTemplate(Default::default()),
        }
    }

    /// The resource's kind.
    pub fn kind(&self) -> ResourceKind {
        match self {
            Self::Instance(_) => ResourceKind::Instance,
            Self::Image(_) => ResourceKind::Image,
            Self::Snapshot(_) => ResourceKind::Snapshot,
            Self::Volume(_) => ResourceKind::Volume,
            Self::SecurityGroup(_) => ResourceKind::SecurityGroup,
            Self::NetworkInterface(_) => ResourceKind::NetworkInterface,
            Self::Subnet(_) => ResourceKind::Subnet,
            Self::PrefixList(_) => ResourceKind::PrefixList,
            Self::KeyPair(_) => ResourceKind::KeyPair,
            Self::LaunchTemplate(_) => ResourceKind::LaunchTemplate,
        }
    }

    /// An instance's attributes.
    pub fn instance(&self) -> Option<&InstanceAttributes> {
        match self {
            Self::Instance(a) => Some(a.as_ref()),
            _ => None,
        }
    }

    /// The VPC of an instance, security group, network interface or subnet.
    pub fn vpc_id(&self) -> Option<&str> {
        match self {
            Self::Instance(a) => a.vpc_id.as_deref(),
            Self::SecurityGroup(a) => a.vpc_id.as_deref(),
            Self::NetworkInterface(a) => a.vpc_id.as_deref(),
            Self::Subnet(a) => a.vpc_id.as_deref(),
            _ => None,
        }
    }

    /// The subnet of an instance or network interface.
    pub fn subnet_id(&self) -> Option<&str> {
        match self {
            Self::Instance(a) => a.subnet_id.as_deref(),
            Self::NetworkInterface(a) => a.subnet_id.as_deref(),
            _ => None,
        }
    }

    /// The zone of an instance, volume or subnet.
    pub fn availability_zone(&self) -> Option<&str> {
        match self {
            Self::Instance(a) => a.availability_zone.as_deref(),
            Self::Volume(a) => a.availability_zone.as_deref(),
            Self::Subnet(a) => a.availability_zone.as_deref(),
            _ => None,
        }
    }

    /// The instance a volume or network interface is attached to.
    pub fn attached_to(&self) -> Option<&str> {
        match self {
            Self::Volume(a) => a.attached_to.as_deref(),
            Self::NetworkInterface(a) => a.attached_to.as_deref(),
            _ => None,
        }
    }

    /// The security groups of an instance or network interface.
    pub fn groups(&self) -> &[String] {
        match self {
            Self::Instance(a) => &a.groups,
            Self::NetworkInterface(a) => &a.groups,
            _ => &[],
        }
    }

    /// The addresses an instance or network interface holds.
    pub fn addresses(&self) -> &[IpAddr] {
        match self {
            Self::Instance(a) => &a.addresses,
            Self::NetworkInterface(a) => &a.addresses,
            _ => &[],
        }
    }

    /// The association ids an instance, network interface or subnet holds.
    pub fn associations(&self) -> &[String] {
        match self {
            Self::Instance(a) => &a.associations,
            Self::NetworkInterface(a) => &a.associations,
            Self::Subnet(a) => &a.associations,
            _ => &[],
        }
    }

    /// An image's launch permissions or a snapshot's create-volume
    /// permissions.
    pub fn grants(&self) -> &[Grant] {
        match self {
            Self::Image(a) => &a.grants,
            Self::Snapshot(a) => &a.grants,
            _ => &[],
        }
    }

    /// The permissions of an image or snapshot, to change them; `None` for
    /// the kinds that have none.
    pub fn grants_mut(&mut self) -> Option<&mut Vec<Grant>> {
        match self {
            Self::Image(a) => Some(&mut a.grants),
            Self::Snapshot(a) => Some(&mut a.grants),
            _ => None,
        }
    }

    /// A subnet's or prefix list's CIDRs.
    pub fn cidrs(&self) -> &[IpNet] {
        match self {
            Self::Subnet(a) => &a.cidrs,
            Self::PrefixList(a) => &a.cidrs,
            _ => &[],
        }
    }

    /// Its name: a security group's group name, a key pair's or launch
    /// template's name.
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::SecurityGroup(a) => a.group_name.as_deref(),
            Self::KeyPair(a) | Self::LaunchTemplate(a) => a.name.as_deref(),
            _ => None,
        }
    }

    /// A snapshot's or volume's size in GiB.
    pub fn volume_size(&self) -> Option<i64> {
        match self {
            Self::Snapshot(a) => a.volume_size,
            Self::Volume(a) => a.volume_size,
            _ => None,
        }
    }

    /// Whether a snapshot or volume is encrypted.
    pub fn encrypted(&self) -> Option<bool> {
        match self {
            Self::Snapshot(a) => a.encrypted,
            Self::Volume(a) => a.encrypted,
            _ => None,
        }
    }

    /// The root device type of an instance or image.
    pub fn root_device_type(&self) -> Option<&str> {
        match self {
            Self::Instance(a) => a.root_device_type.as_deref(),
            Self::Image(a) => a.root_device_type.as_deref(),
            _ => None,
        }
    }
}

/// [`Attributes`] flat, as stored and sent: every kind's fields in one
/// object, a field unset where the kind has none. The field order and the
/// fields left out when unset are those of the files written before the
/// kinds had types, so their fingerprints do not change.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AttributesRepr {
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
    pub addresses: Vec<IpAddr>,
    pub group_name: Option<String>,
    pub ingress: Vec<Rule>,
    pub egress: Vec<Rule>,
    pub cidrs: Vec<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_for_az: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub associations: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_tokens: Option<String>,
}

/// Takes a field out of the flat form for the kind's own type.
macro_rules! take {
    ($repr:ident, $($field:ident),+ $(,)?) => {
        ($(std::mem::take(&mut $repr.$field)),+)
    };
}

impl AttributesRepr {
    /// The attributes of a resource of `kind`, and the names of the fields
    /// given that `kind` does not have (left out of the attributes).
    pub fn into_kind(mut self, kind: ResourceKind) -> (Attributes, Vec<&'static str>) {
        let r = &mut self;
        let attributes = match kind {
            ResourceKind::Instance => {
                let (instance_type, image_id, subnet_id, vpc_id, key_name) =
                    take!(r, instance_type, image_id, subnet_id, vpc_id, key_name);
                let (availability_zone, tenancy, root_device_type, ebs_optimized) = take!(
                    r,
                    availability_zone,
                    tenancy,
                    root_device_type,
                    ebs_optimized
                );
                let (instance_profile, groups, interfaces, addresses) =
                    take!(r, instance_profile, groups, interfaces, addresses);
                let (associations, private_ip, http_tokens) =
                    take!(r, associations, private_ip, http_tokens);
                Attributes::Instance(Box::new(InstanceAttributes {
                    instance_type,
                    image_id,
                    subnet_id,
                    vpc_id,
                    key_name,
                    availability_zone,
                    tenancy,
                    root_device_type,
                    ebs_optimized,
                    instance_profile,
                    groups,
                    interfaces,
                    addresses,
                    associations,
                    private_ip,
                    http_tokens,
                }))
            }
            ResourceKind::Image => {
                let (public, root_device_type, owner_alias, grants) =
                    take!(r, public, root_device_type, owner_alias, grants);
                Attributes::Image(ImageAttributes {
                    public,
                    root_device_type,
                    owner_alias,
                    grants,
                })
            }
            ResourceKind::Snapshot => {
                let (volume_size, encrypted, volume_id, grants) =
                    take!(r, volume_size, encrypted, volume_id, grants);
                Attributes::Snapshot(SnapshotAttributes {
                    volume_size,
                    encrypted,
                    volume_id,
                    grants,
                })
            }
            ResourceKind::Volume => {
                let (volume_size, volume_type, iops, encrypted) =
                    take!(r, volume_size, volume_type, iops, encrypted);
                let (snapshot_id, availability_zone, attached_to) =
                    take!(r, snapshot_id, availability_zone, attached_to);
                Attributes::Volume(VolumeAttributes {
                    volume_size,
                    volume_type,
                    iops,
                    encrypted,
                    snapshot_id,
                    availability_zone,
                    attached_to,
                })
            }
            ResourceKind::SecurityGroup => {
                let (vpc_id, group_name, ingress, egress) =
                    take!(r, vpc_id, group_name, ingress, egress);
                Attributes::SecurityGroup(SecurityGroupAttributes {
                    vpc_id,
                    group_name,
                    ingress,
                    egress,
                })
            }
            ResourceKind::NetworkInterface => {
                let (subnet_id, vpc_id, groups) = take!(r, subnet_id, vpc_id, groups);
                let (attached_to, addresses, associations) =
                    take!(r, attached_to, addresses, associations);
                Attributes::NetworkInterface(InterfaceAttributes {
                    subnet_id,
                    vpc_id,
                    groups,
                    attached_to,
                    addresses,
                    associations,
                })
            }
            ResourceKind::Subnet => {
                let (vpc_id, availability_zone, default_for_az, cidrs, associations) = take!(
                    r,
                    vpc_id,
                    availability_zone,
                    default_for_az,
                    cidrs,
                    associations
                );
                Attributes::Subnet(SubnetAttributes {
                    vpc_id,
                    availability_zone,
                    default_for_az: default_for_az == Some(true),
                    cidrs,
                    associations,
                })
            }
            ResourceKind::PrefixList => Attributes::PrefixList(PrefixListAttributes {
                cidrs: std::mem::take(&mut r.cidrs),
            }),
            ResourceKind::KeyPair => Attributes::KeyPair(NamedAttributes {
                name: r.name.take(),
            }),
            ResourceKind::LaunchTemplate => Attributes::LaunchTemplate(NamedAttributes {
                name: r.name.take(),
            }),
        };
        (attributes, self.given())
    }

    /// The names of the fields that are set (not `None`, not empty).
    fn given(&self) -> Vec<&'static str> {
        let Self {
            instance_type,
            image_id,
            subnet_id,
            vpc_id,
            key_name,
            availability_zone,
            tenancy,
            root_device_type,
            ebs_optimized,
            instance_profile,
            volume_size,
            volume_type,
            iops,
            encrypted,
            snapshot_id,
            volume_id,
            public,
            owner_alias,
            grants,
            groups,
            interfaces,
            attached_to,
            addresses,
            group_name,
            ingress,
            egress,
            cidrs,
            name,
            default_for_az,
            associations,
            private_ip,
            http_tokens,
        } = self;
        [
            ("instance_type", instance_type.is_some()),
            ("image_id", image_id.is_some()),
            ("subnet_id", subnet_id.is_some()),
            ("vpc_id", vpc_id.is_some()),
            ("key_name", key_name.is_some()),
            ("availability_zone", availability_zone.is_some()),
            ("tenancy", tenancy.is_some()),
            ("root_device_type", root_device_type.is_some()),
            ("ebs_optimized", ebs_optimized.is_some()),
            ("instance_profile", instance_profile.is_some()),
            ("volume_size", volume_size.is_some()),
            ("volume_type", volume_type.is_some()),
            ("iops", iops.is_some()),
            ("encrypted", encrypted.is_some()),
            ("snapshot_id", snapshot_id.is_some()),
            ("volume_id", volume_id.is_some()),
            ("public", public.is_some()),
            ("owner_alias", owner_alias.is_some()),
            ("grants", !grants.is_empty()),
            ("groups", !groups.is_empty()),
            ("interfaces", !interfaces.is_empty()),
            ("attached_to", attached_to.is_some()),
            ("addresses", !addresses.is_empty()),
            ("group_name", group_name.is_some()),
            ("ingress", !ingress.is_empty()),
            ("egress", !egress.is_empty()),
            ("cidrs", !cidrs.is_empty()),
            ("name", name.is_some()),
            // `false` is what a subnet that is not a default says.
            ("default_for_az", *default_for_az == Some(true)),
            ("associations", !associations.is_empty()),
            ("private_ip", private_ip.is_some()),
            ("http_tokens", http_tokens.is_some()),
        ]
        .into_iter()
        .filter_map(|(field, set)| set.then_some(field))
        .collect()
    }
}

impl From<&Attributes> for AttributesRepr {
    fn from(a: &Attributes) -> Self {
        Self::from(a.clone())
    }
}

impl From<Attributes> for AttributesRepr {
    fn from(a: Attributes) -> Self {
        match a {
            Attributes::Instance(i) => {
                let i = *i;
                Self {
                    instance_type: i.instance_type,
                    image_id: i.image_id,
                    subnet_id: i.subnet_id,
                    vpc_id: i.vpc_id,
                    key_name: i.key_name,
                    availability_zone: i.availability_zone,
                    tenancy: i.tenancy,
                    root_device_type: i.root_device_type,
                    ebs_optimized: i.ebs_optimized,
                    instance_profile: i.instance_profile,
                    groups: i.groups,
                    interfaces: i.interfaces,
                    addresses: i.addresses,
                    associations: i.associations,
                    private_ip: i.private_ip,
                    http_tokens: i.http_tokens,
                    ..Self::default()
                }
            }
            Attributes::Image(i) => Self {
                public: i.public,
                root_device_type: i.root_device_type,
                owner_alias: i.owner_alias,
                grants: i.grants,
                ..Self::default()
            },
            Attributes::Snapshot(s) => Self {
                volume_size: s.volume_size,
                encrypted: s.encrypted,
                volume_id: s.volume_id,
                grants: s.grants,
                ..Self::default()
            },
            Attributes::Volume(v) => Self {
                volume_size: v.volume_size,
                volume_type: v.volume_type,
                iops: v.iops,
                encrypted: v.encrypted,
                snapshot_id: v.snapshot_id,
                availability_zone: v.availability_zone,
                attached_to: v.attached_to,
                ..Self::default()
            },
            Attributes::SecurityGroup(g) => Self {
                vpc_id: g.vpc_id,
                group_name: g.group_name,
                ingress: g.ingress,
                egress: g.egress,
                ..Self::default()
            },
            Attributes::NetworkInterface(n) => Self {
                subnet_id: n.subnet_id,
                vpc_id: n.vpc_id,
                groups: n.groups,
                attached_to: n.attached_to,
                addresses: n.addresses,
                associations: n.associations,
                ..Self::default()
            },
            Attributes::Subnet(s) => Self {
                vpc_id: s.vpc_id,
                availability_zone: s.availability_zone,
                default_for_az: s.default_for_az.then_some(true),
                cidrs: s.cidrs,
                associations: s.associations,
                ..Self::default()
            },
            Attributes::PrefixList(p) => Self {
                cidrs: p.cidrs,
                ..Self::default()
            },
            Attributes::KeyPair(n) | Attributes::LaunchTemplate(n) => Self {
                name: n.name,
                ..Self::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repr(v: serde_json::Value) -> AttributesRepr {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn every_kind_reads_back_what_it_writes() {
        let full = repr(serde_json::json!({
            "instance_type": "t3.micro", "image_id": "ami-1", "subnet_id": "subnet-1",
            "vpc_id": "vpc-1", "key_name": "k", "availability_zone": "us-east-1a",
            "tenancy": "default", "root_device_type": "ebs", "ebs_optimized": true,
            "instance_profile": "arn:aws:iam::111122223333:instance-profile/p",
            "volume_size": 8, "volume_type": "gp3", "iops": 3000, "encrypted": true,
            "snapshot_id": "snap-1", "volume_id": "vol-1", "public": false,
            "owner_alias": "amazon", "grants": [{"account": "111122223333"}],
            "groups": ["sg-1"], "interfaces": ["eni-1"], "attached_to": "i-1",
            "addresses": ["10.0.0.5"], "group_name": "web", "ingress": [], "egress": [],
            "cidrs": ["10.0.0.0/24"], "name": "n", "default_for_az": true,
            "associations": ["a-1"], "private_ip": "10.0.0.5", "http_tokens": "required"
        }));
        let mut covered = std::collections::BTreeSet::new();
        for kind in ResourceKind::ALL {
            let (attributes, foreign) = full.clone().into_kind(kind);
            assert_eq!(attributes.kind(), kind);
            let back = AttributesRepr::from(&attributes);
            let kept = back.given();
            // What the kind keeps and what it leaves out are the whole input.
            let mut all: Vec<_> = kept.iter().chain(&foreign).copied().collect();
            all.sort_unstable();
            let mut expected = full.given();
            expected.sort_unstable();
            assert_eq!(all, expected, "{kind:?}");
            // Reading what was written gives the same attributes, nothing foreign.
            let (again, none) = back.into_kind(kind);
            assert_eq!(again, attributes);
            assert!(none.is_empty(), "{kind:?}: {none:?}");
            covered.extend(kept);
        }
        // Every field belongs to some kind.
        assert_eq!(covered.len(), full.given().len());
    }

    #[test]
    fn fields_of_another_kind_are_named() {
        let (a, foreign) = repr(serde_json::json!({
            "volume_size": 8, "instance_type": "t3.micro", "groups": ["sg-1"],
            "default_for_az": false
        }))
        .into_kind(ResourceKind::Volume);
        assert_eq!(a.volume_size(), Some(8));
        assert_eq!(foreign, ["instance_type", "groups"]);
    }

    #[test]
    fn cross_kind_readers_answer_for_their_kinds_only() {
        let (subnet, _) = repr(serde_json::json!({
            "vpc_id": "vpc-1", "availability_zone": "us-east-1a", "default_for_az": true
        }))
        .into_kind(ResourceKind::Subnet);
        assert_eq!(subnet.vpc_id(), Some("vpc-1"));
        assert_eq!(subnet.availability_zone(), Some("us-east-1a"));
        assert!(subnet.grants().is_empty());
        let mut image = Attributes::empty(ResourceKind::Image);
        image
            .grants_mut()
            .map(|g| g.push(Grant::All))
            .unwrap_or_default();
        assert_eq!(image.grants(), [Grant::All]);
        assert!(
            Attributes::empty(ResourceKind::Volume)
                .grants_mut()
                .is_none()
        );
        assert_eq!(image.vpc_id(), None);
    }
}
