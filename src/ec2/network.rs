//! Security-group evaluation: may this traffic reach (ingress) or leave
//! (egress) an instance or network interface? Pure: reads an [`Inventory`],
//! no I/O.
//!
//! - **Target**: an instance id (`i-…`), a network interface id (`eni-…`),
//!   or an address, resolved to the interface (or instance) holding it with
//!   [`Inventory::holder_of`]. An interface is evaluated with its own
//!   groups; an instance with its own `SecurityGroups` and the groups of
//!   every interface it has (name an interface or an address to evaluate
//!   one interface). A target the inventory does not know is denied.
//! - **Rules**: security groups only allow. The traffic is allowed when any
//!   rule (of the asked direction) of any of the target's groups covers it:
//!   its protocol and ports or ICMP type and code, and its peer, an IPv4 or
//!   IPv6 CIDR, a managed prefix list (expanded to its CIDRs), or a
//!   referenced security group. Otherwise it is denied.
//! - **Coverage**: a rule must cover the whole asked traffic. Asking about
//!   protocol `-1` is answered yes only by an all-traffic rule; a TCP or UDP
//!   question without a port asks about every port; ICMP type or code `-1`
//!   (or absent) asks about every type or code.
//! - **Peers**: an address matches CIDRs and prefix lists that contain it,
//!   and rules referencing a group that the address's holder carries. A peer
//!   given as a security group id matches rules that reference that group
//!   (CIDR rules say nothing about a group's members).
//! - **State**: security groups are stateful. The reply traffic of an
//!   allowed connection is always allowed, so this module evaluates only the
//!   initiating direction and never return traffic.
//!
//! [`check_connection`] evaluates one connection end to end the way a VPC
//! does: the destination's ingress rules and, when the source is an address
//! held in the inventory, the source's egress rules too.

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use crate::ec2::inventory::{Attributes, Inventory, Ports, Protocol, Resource, ResourceKind, Rule};

/// Which rules apply: traffic arriving at the target, or leaving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    /// Parses `ingress` or `egress`.
    pub fn parse(s: &str) -> Result<Self, QueryError> {
        match s {
            "ingress" => Ok(Direction::Ingress),
            "egress" => Ok(Direction::Egress),
            _ => Err(QueryError::Direction(clip(s))),
        }
    }

    /// `ingress` or `egress`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }

    fn preposition(self) -> &'static str {
        match self {
            Direction::Ingress => "from",
            Direction::Egress => "to",
        }
    }
}

/// What is evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An instance (`i-…`) or network interface (`eni-…`) id.
    Id(String),
    /// An address, resolved to the interface or instance holding it.
    Address(IpAddr),
}

impl Target {
    /// Parses an instance id, an interface id or an IP address.
    pub fn parse(s: &str) -> Result<Self, QueryError> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Target::Address(ip.to_canonical()));
        }
        match ResourceKind::of_id(s) {
            Some(ResourceKind::Instance | ResourceKind::NetworkInterface)
                if s.split_once('-').is_some_and(|(_, rest)| !rest.is_empty()) =>
            {
                Ok(Target::Id(s.to_owned()))
            }
            _ => Err(QueryError::Target(clip(s))),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Id(id) => f.write_str(id),
            Target::Address(ip) => write!(f, "{ip}"),
        }
    }
}

/// The other end of the traffic: its source (ingress) or destination
/// (egress).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    Address(IpAddr),
    /// A security group id: any holder of that group.
    Group(String),
}

impl Peer {
    /// Parses an IP address or a security group id (`sg-…`).
    pub fn parse(s: &str) -> Result<Self, QueryError> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Peer::Address(ip.to_canonical()));
        }
        match s.strip_prefix("sg-") {
            Some(rest) if !rest.is_empty() => Ok(Peer::Group(s.to_owned())),
            _ => Err(QueryError::Peer(clip(s))),
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Address(ip) => write!(f, "{ip}"),
            Peer::Group(g) => write!(f, "security group {g}"),
        }
    }
}

/// The traffic asked about. Port and ICMP bounds are inclusive; `None`
/// means every ICMP type or code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    /// Protocol `-1`: every protocol and port.
    All,
    Tcp {
        from: u16,
        to: u16,
    },
    Udp {
        from: u16,
        to: u16,
    },
    Icmp {
        icmp_type: Option<u8>,
        code: Option<u8>,
    },
    Icmpv6 {
        icmp_type: Option<u8>,
        code: Option<u8>,
    },
    /// Another IP protocol number (ports do not apply).
    Number(u8),
}

impl Traffic {
    /// Builds the traffic from a protocol as EC2 spells it (`tcp`, `6`,
    /// `-1`, ...), a TCP/UDP port (absent: every port), and an ICMP type and
    /// code (`-1` or absent: any). Values that do not apply are refused.
    pub fn parse(
        protocol: &str,
        port: Option<i64>,
        icmp_type: Option<i64>,
        icmp_code: Option<i64>,
    ) -> Result<Self, QueryError> {
        let proto =
            Protocol::parse(protocol).ok_or_else(|| QueryError::Protocol(clip(protocol)))?;
        let name = protocol_name(proto);
        let no_icmp = || match (icmp_type, icmp_code) {
            (Some(_), _) => Err(QueryError::NotApplicable("icmp_type", name.clone())),
            (_, Some(_)) => Err(QueryError::NotApplicable("icmp_code", name.clone())),
            _ => Ok(()),
        };
        let no_port = || match port {
            Some(_) => Err(QueryError::NotApplicable("port", name.clone())),
            None => Ok(()),
        };
        let ports = || -> Result<(u16, u16), QueryError> {
            match port {
                None => Ok((0, u16::MAX)),
                Some(p) => u16::try_from(p)
                    .map(|p| (p, p))
                    .map_err(|_| QueryError::Port(p)),
            }
        };
        let icmp = || -> Result<(Option<u8>, Option<u8>), QueryError> {
            let t = icmp_value("icmp_type", icmp_type)?;
            let c = icmp_value("icmp_code", icmp_code)?;
            if t.is_none() && c.is_some() {
                return Err(QueryError::CodeWithoutType);
            }
            Ok((t, c))
        };
        Ok(match proto {
            Protocol::All => {
                no_port()?;
                no_icmp()?;
                Traffic::All
            }
            Protocol::Tcp => {
                no_icmp()?;
                let (from, to) = ports()?;
                Traffic::Tcp { from, to }
            }
            Protocol::Udp => {
                no_icmp()?;
                let (from, to) = ports()?;
                Traffic::Udp { from, to }
            }
            Protocol::Icmp => {
                no_port()?;
                let (icmp_type, code) = icmp()?;
                Traffic::Icmp { icmp_type, code }
            }
            Protocol::Icmpv6 => {
                no_port()?;
                let (icmp_type, code) = icmp()?;
                Traffic::Icmpv6 { icmp_type, code }
            }
            Protocol::Number(n) => {
                no_port()?;
                no_icmp()?;
                Traffic::Number(n)
            }
        })
    }
}

impl fmt::Display for Traffic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Traffic::All => f.write_str("all traffic"),
            Traffic::Tcp { from, to } => write!(f, "tcp {}", PortRange(*from, *to)),
            Traffic::Udp { from, to } => write!(f, "udp {}", PortRange(*from, *to)),
            Traffic::Icmp { icmp_type, code } => {
                write!(f, "icmp {}", IcmpSpec(*icmp_type, *code))
            }
            Traffic::Icmpv6 { icmp_type, code } => {
                write!(f, "icmpv6 {}", IcmpSpec(*icmp_type, *code))
            }
            Traffic::Number(n) => write!(f, "protocol {n}"),
        }
    }
}

struct PortRange(u16, u16);

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (0, u16::MAX) => f.write_str("every port"),
            (a, b) if a == b => write!(f, "port {a}"),
            (a, b) => write!(f, "ports {a}-{b}"),
        }
    }
}

struct IcmpSpec(Option<u8>, Option<u8>);

impl fmt::Display for IcmpSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (None, _) => f.write_str("every type"),
            (Some(t), None) => write!(f, "type {t}, every code"),
            (Some(t), Some(c)) => write!(f, "type {t} code {c}"),
        }
    }
}

/// Why a question could not be asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error(
        "`target` must be an instance id (i-…), a network interface id (eni-…) or an IP address, not `{0}`"
    )]
    Target(String),
    #[error("`direction` must be `ingress` or `egress`, not `{0}`")]
    Direction(String),
    #[error(
        "`protocol` must be tcp, udp, icmp, icmpv6, -1 (all) or a protocol number 0-255, not `{0}`"
    )]
    Protocol(String),
    #[error("`port` {0} is outside 0-65535")]
    Port(i64),
    #[error("`{field}` {value} is outside -1-255")]
    Icmp { field: &'static str, value: i64 },
    #[error("`icmp_code` needs an `icmp_type`")]
    CodeWithoutType,
    #[error("`{0}` does not apply to {1}")]
    NotApplicable(&'static str, String),
    #[error("`peer` must be an IP address or a security group id (sg-…), not `{0}`")]
    Peer(String),
}

/// The rule that allowed the traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatchedRule {
    pub group_id: String,
    pub direction: Direction,
    /// Index of the rule in the group's `IpPermissions` (ingress) or
    /// `IpPermissionsEgress` (egress).
    pub rule_index: usize,
    /// The rule and the part of it that matched the peer.
    pub reason: String,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkVerdict {
    pub allowed: bool,
    /// Set when allowed.
    pub matched: Option<MatchedRule>,
    /// One sentence saying why, for people.
    pub explanation: String,
    /// The interface or instance evaluated (`None` when unknown).
    pub target_id: Option<String>,
    /// The security groups evaluated.
    pub groups: Vec<String>,
}

/// Evaluates `traffic` in `direction` between `target` and `peer`.
pub fn check(
    inventory: &Inventory,
    target: &Target,
    direction: Direction,
    traffic: Traffic,
    peer: &Peer,
) -> NetworkVerdict {
    let holder = match resolve(inventory, target) {
        Ok(h) => h,
        Err(unresolved) => {
            return NetworkVerdict {
                allowed: false,
                matched: None,
                explanation: unresolved.to_string(),
                target_id: None,
                groups: Vec::new(),
            };
        }
    };
    let groups = groups_of(inventory, holder);
    let peer_groups = match peer {
        Peer::Address(ip) => inventory
            .holder_of(ip)
            .map(|h| (h.id.as_str(), groups_of(inventory, h))),
        Peer::Group(_) => None,
    };
    let what = format!(
        "{} {traffic} {} {peer} {} {}",
        direction.as_str(),
        direction.preposition(),
        match direction {
            Direction::Ingress => "to",
            Direction::Egress => "from",
        },
        describe_target(target, holder),
    );
    let mut missing = Vec::new();
    for group_id in &groups {
        let Some(Attributes::SecurityGroup(sg)) = inventory.get(group_id).map(|r| &r.attributes)
        else {
            missing.push(group_id.as_str());
            continue;
        };
        let rules = match direction {
            Direction::Ingress => &sg.ingress,
            Direction::Egress => &sg.egress,
        };
        for (rule_index, rule) in rules.iter().enumerate() {
            if !covers(rule, traffic) {
                continue;
            }
            let Some(why) = peer_match(inventory, rule, peer, peer_groups.as_ref()) else {
                continue;
            };
            let reason = format!("{} {} {why}", describe_rule(rule), direction.preposition());
            let explanation = format!(
                "{what} is allowed by {group_id} {direction} rule #{rule_index} ({reason})",
                direction = direction.as_str()
            );
            return NetworkVerdict {
                allowed: true,
                matched: Some(MatchedRule {
                    group_id: group_id.clone(),
                    direction,
                    rule_index,
                    reason,
                }),
                explanation,
                target_id: Some(holder.id.clone()),
                groups,
            };
        }
    }
    let mut explanation = if groups.is_empty() {
        format!("{what} is denied: {} carries no security group", holder.id)
    } else {
        format!(
            "{what} is denied: no {} rule of {} allows it (security groups only allow)",
            direction.as_str(),
            groups.join(", ")
        )
    };
    if !missing.is_empty() {
        explanation.push_str(&format!("; not in the inventory: {}", missing.join(", ")));
    }
    NetworkVerdict {
        allowed: false,
        matched: None,
        explanation,
        target_id: Some(holder.id.clone()),
        groups,
    }
}

/// Evaluates a connection from `source` to `destination` as a VPC does:
/// the destination's ingress rules must allow it from `source`, and when
/// the inventory holds `source` too, the source's egress rules must allow
/// it to `destination`. The verdict's matched rule is the destination's
/// ingress rule; a denial names the side that refused.
pub fn check_connection(
    inventory: &Inventory,
    source: IpAddr,
    destination: IpAddr,
    traffic: Traffic,
) -> NetworkVerdict {
    let (source, destination) = (source.to_canonical(), destination.to_canonical());
    let ingress = check(
        inventory,
        &Target::Address(destination),
        Direction::Ingress,
        traffic,
        &Peer::Address(source),
    );
    if !ingress.allowed || inventory.holder_of(&source).is_none() {
        return ingress;
    }
    let egress = check(
        inventory,
        &Target::Address(source),
        Direction::Egress,
        traffic,
        &Peer::Address(destination),
    );
    if egress.allowed {
        NetworkVerdict {
            explanation: format!("{}; {}", ingress.explanation, egress.explanation),
            ..ingress
        }
    } else {
        NetworkVerdict {
            allowed: false,
            matched: None,
            explanation: format!("{}; but {}", ingress.explanation, egress.explanation),
            ..ingress
        }
    }
}

/// The interface or instance a target names.
fn resolve<'i>(inventory: &'i Inventory, target: &Target) -> Result<&'i Resource, Unresolved> {
    let found = match target {
        Target::Id(id) => inventory
            .get(id)
            .ok_or_else(|| Unresolved::NotInInventory(id.clone()))?,
        Target::Address(ip) => inventory.holder_of(ip).ok_or(Unresolved::NoHolder(*ip))?,
    };
    match found.kind() {
        ResourceKind::Instance | ResourceKind::NetworkInterface => Ok(found),
        other => Err(Unresolved::NotAnInterface {
            id: found.id.clone(),
            kind: other.arn_type(),
        }),
    }
}

/// Why a target names no instance or interface; its text is the verdict's
/// explanation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum Unresolved {
    #[error("{0} is not in the inventory, so no security group allows traffic to or from it")]
    NotInInventory(String),
    #[error(
        "no instance or network interface in the inventory holds {0}, so no security group allows traffic to or from it"
    )]
    NoHolder(IpAddr),
    #[error("{id} is a {kind}, not an instance or network interface")]
    NotAnInterface { id: String, kind: &'static str },
}

/// Groups an interface carries; for an instance, its own and those of
/// every interface it has (first occurrence order, no duplicates).
fn groups_of(inventory: &Inventory, r: &Resource) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |list: &[String]| {
        for g in list {
            if !out.contains(g) {
                out.push(g.clone());
            }
        }
    };
    add(r.attributes.groups());
    if let Attributes::Instance(instance) = &r.attributes {
        for eni in &instance.interfaces {
            if let Some(e) = inventory.get(eni) {
                add(e.attributes.groups());
            }
        }
    }
    out
}

fn describe_target(target: &Target, holder: &Resource) -> String {
    match target {
        Target::Address(ip) => format!("{ip} ({})", holder.id),
        Target::Id(id) => id.clone(),
    }
}

/// Whether a rule's protocol and ports cover the whole asked traffic.
fn covers(rule: &Rule, traffic: Traffic) -> bool {
    let ports = |from: u16, to: u16| match rule.ports {
        Ports::Range { from: lo, to: hi } => lo <= from && to <= hi,
        Ports::Any => true,
        Ports::Icmp { .. } => false,
    };
    let icmp = |t: Option<u8>, c: Option<u8>| match rule.ports {
        // Any type: every code too.
        Ports::Icmp {
            icmp_type: None, ..
        }
        | Ports::Any => true,
        Ports::Icmp {
            icmp_type: Some(rt),
            code,
        } => t == Some(rt) && (code.is_none() || c == code),
        Ports::Range { .. } => false,
    };
    match (rule.protocol, traffic) {
        (Protocol::All, _) => true,
        (Protocol::Tcp, Traffic::Tcp { from, to }) | (Protocol::Udp, Traffic::Udp { from, to }) => {
            ports(from, to)
        }
        (Protocol::Icmp, Traffic::Icmp { icmp_type, code })
        | (Protocol::Icmpv6, Traffic::Icmpv6 { icmp_type, code }) => icmp(icmp_type, code),
        (Protocol::Number(n), Traffic::Number(m)) => n == m,
        _ => false,
    }
}

/// Which part of the rule matches the peer, if any.
fn peer_match(
    inventory: &Inventory,
    rule: &Rule,
    peer: &Peer,
    peer_groups: Option<&(&str, Vec<String>)>,
) -> Option<String> {
    match peer {
        Peer::Address(ip) => {
            if let Some(c) = rule.cidrs.iter().find(|c| c.contains(ip)) {
                return Some(c.to_string());
            }
            for pl in &rule.prefix_lists {
                let cidr = inventory
                    .get(pl)
                    .and_then(|p| p.attributes.cidrs().iter().find(|c| c.contains(ip)));
                if let Some(c) = cidr {
                    return Some(format!("prefix list {pl} ({c})"));
                }
            }
            let (holder, carried) = peer_groups?;
            rule.groups
                .iter()
                .find(|g| carried.contains(g))
                .map(|g| format!("security group {g} (carried by {holder}, which holds {ip})"))
        }
        Peer::Group(g) => rule
            .groups
            .contains(g)
            .then(|| format!("security group {g}")),
    }
}

fn describe_rule(rule: &Rule) -> String {
    let any = |v: Option<u8>| v.map_or_else(|| "any".to_owned(), |v| v.to_string());
    let name = protocol_name(rule.protocol);
    match (rule.protocol, rule.ports) {
        (Protocol::All, _) => "all traffic".to_owned(),
        (Protocol::Number(n), _) => format!("protocol {n}"),
        (_, Ports::Range { from, to }) if from == to => format!("{name} port {from}"),
        (_, Ports::Range { from, to }) => format!("{name} ports {from}-{to}"),
        (_, Ports::Icmp { icmp_type, code }) => {
            format!("{name} type {} code {}", any(icmp_type), any(code))
        }
        (_, Ports::Any) => format!("{name} (any port)"),
    }
}

fn protocol_name(p: Protocol) -> String {
    match p {
        Protocol::All => "-1 (all)".to_owned(),
        Protocol::Tcp => "tcp".to_owned(),
        Protocol::Udp => "udp".to_owned(),
        Protocol::Icmp => "icmp".to_owned(),
        Protocol::Icmpv6 => "icmpv6".to_owned(),
        Protocol::Number(n) => format!("protocol {n}"),
    }
}

fn icmp_value(field: &'static str, v: Option<i64>) -> Result<Option<u8>, QueryError> {
    match v {
        None | Some(-1) => Ok(None),
        Some(n) => u8::try_from(n)
            .map(Some)
            .map_err(|_| QueryError::Icmp { field, value: n }),
    }
}

/// Echoes at most 64 characters of caller input in errors.
fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(64).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ACCT: &str = "111122223333";

    /// A (eni-a, 10.0.0.5 and 2001:db8::5) carries sg-web; B (eni-b,
    /// 10.0.1.7) carries sg-admin; C (an instance without interface
    /// records, 10.0.2.9) carries sg-locked, which allows no egress.
    #[test]
    fn targets_that_name_no_interface_say_why() {
        let inv = inventory();
        let id = |s: &str| Target::Id(s.to_owned());
        assert!(resolve(&inv, &id("eni-a")).is_ok());
        assert!(resolve(&inv, &Target::Address("10.0.2.9".parse().unwrap())).is_ok());
        assert_eq!(
            resolve(&inv, &id("i-nope")).err(),
            Some(Unresolved::NotInInventory("i-nope".into()))
        );
        let ip: IpAddr = "10.200.0.1".parse().unwrap();
        assert_eq!(
            resolve(&inv, &Target::Address(ip)).err(),
            Some(Unresolved::NoHolder(ip))
        );
        assert!(matches!(
            resolve(&inv, &id("sg-web")).err(),
            Some(Unresolved::NotAnInterface {
                kind: "security-group",
                ..
            })
        ));
    }

    fn inventory() -> Inventory {
        let mut inv = Inventory::new();
        let docs = [
            json!({"Reservations": [{"OwnerId": ACCT, "Instances": [
                {"InstanceId": "i-a", "SecurityGroups": [{"GroupId": "sg-web"}],
                 "NetworkInterfaces": [{"NetworkInterfaceId": "eni-a", "PrivateIpAddress": "10.0.0.5",
                    "PrivateIpAddresses": [{"PrivateIpAddress": "10.0.0.5"}],
                    "Ipv6Addresses": [{"Ipv6Address": "2001:db8::5"}],
                    "Groups": [{"GroupId": "sg-web"}]}]},
                {"InstanceId": "i-c", "PrivateIpAddress": "10.0.2.9",
                 "SecurityGroups": [{"GroupId": "sg-locked"}]}
            ]}]}),
            json!({"NetworkInterfaces": [{"NetworkInterfaceId": "eni-b", "PrivateIpAddress": "10.0.1.7",
                "Groups": [{"GroupId": "sg-admin"}, {"GroupId": "sg-gone"}],
                "Attachment": {"InstanceId": "i-b"}}]}),
            json!({"PrefixLists": [{"PrefixListId": "pl-corp", "Entries": [{"Cidr": "198.51.100.0/24"}]}]}),
            json!({"SecurityGroups": [
                {"GroupId": "sg-web", "IpPermissions": [
                    {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                     "IpRanges": [{"CidrIp": "203.0.113.0/24"}], "Ipv6Ranges": [{"CidrIpv6": "2001:db8:1::/48"}]},
                    {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                     "UserIdGroupPairs": [{"GroupId": "sg-admin", "UserId": ACCT}]},
                    {"IpProtocol": "icmp", "FromPort": 8, "ToPort": -1, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
                    {"IpProtocol": "udp", "FromPort": 5000, "ToPort": 5100, "PrefixListIds": [{"PrefixListId": "pl-corp"}]},
                    {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "192.0.2.1/32"}]},
                    {"IpProtocol": "47", "IpRanges": [{"CidrIp": "10.9.0.0/16"}]}
                 ],
                 "IpPermissionsEgress": [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]},
                {"GroupId": "sg-admin", "IpPermissions": [],
                 "IpPermissionsEgress": [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                    "UserIdGroupPairs": [{"GroupId": "sg-web"}]}]},
                {"GroupId": "sg-locked", "IpPermissions": [], "IpPermissionsEgress": []}
            ]}),
        ];
        for d in &docs {
            inv.load_cli_output(d, ACCT, "us-east-1").unwrap();
        }
        inv
    }

    fn ask(target: &str, dir: &str, proto: &str, port: Option<i64>, peer: &str) -> NetworkVerdict {
        ask_icmp(target, dir, proto, port, None, None, peer)
    }

    fn ask_icmp(
        target: &str,
        dir: &str,
        proto: &str,
        port: Option<i64>,
        t: Option<i64>,
        c: Option<i64>,
        peer: &str,
    ) -> NetworkVerdict {
        check(
            &inventory(),
            &Target::parse(target).unwrap(),
            Direction::parse(dir).unwrap(),
            Traffic::parse(proto, port, t, c).unwrap(),
            &Peer::parse(peer).unwrap(),
        )
    }

    fn rule_of(v: &NetworkVerdict) -> Option<(String, usize)> {
        v.matched
            .as_ref()
            .map(|m| (m.group_id.clone(), m.rule_index))
    }

    #[test]
    fn cidr_rules_v4_and_v6() {
        let v = ask("10.0.0.5", "ingress", "tcp", Some(443), "203.0.113.7");
        assert!(v.allowed, "{}", v.explanation);
        assert_eq!(rule_of(&v), Some(("sg-web".into(), 0)));
        assert_eq!(v.target_id.as_deref(), Some("eni-a"));
        assert!(
            v.explanation.contains("203.0.113.0/24"),
            "{}",
            v.explanation
        );
        let v = ask("2001:db8::5", "ingress", "6", Some(443), "2001:db8:1::9");
        assert!(v.allowed, "{}", v.explanation);
        assert!(!ask("eni-a", "ingress", "tcp", Some(443), "2001:db8:2::9").allowed);
        let v = ask("i-a", "ingress", "tcp", Some(444), "203.0.113.7");
        assert!(!v.allowed);
        assert!(
            v.explanation.contains("no ingress rule of sg-web"),
            "{}",
            v.explanation
        );
        // UDP is not TCP.
        assert!(!ask("i-a", "ingress", "udp", Some(443), "203.0.113.7").allowed);
    }

    #[test]
    fn group_references_match_peers_carrying_the_group() {
        let v = ask("eni-a", "ingress", "tcp", Some(22), "10.0.1.7");
        assert!(v.allowed, "{}", v.explanation);
        assert_eq!(rule_of(&v), Some(("sg-web".into(), 1)));
        assert!(
            v.explanation.contains("carried by eni-b"),
            "{}",
            v.explanation
        );
        assert!(ask("eni-a", "ingress", "tcp", Some(22), "sg-admin").allowed);
        assert!(!ask("eni-a", "ingress", "tcp", Some(22), "sg-other").allowed);
        // 10.0.2.9 carries sg-locked, not sg-admin; 10.8.8.8 carries nothing.
        assert!(!ask("eni-a", "ingress", "tcp", Some(22), "10.0.2.9").allowed);
        assert!(!ask("eni-a", "ingress", "tcp", Some(22), "10.8.8.8").allowed);
    }

    #[test]
    fn icmp_types_and_codes() {
        let echo = ask_icmp(
            "eni-a",
            "ingress",
            "icmp",
            None,
            Some(8),
            Some(0),
            "1.2.3.4",
        );
        assert!(echo.allowed, "{}", echo.explanation);
        assert_eq!(rule_of(&echo), Some(("sg-web".into(), 2)));
        let any_code = ask_icmp(
            "eni-a",
            "ingress",
            "icmp",
            None,
            Some(8),
            Some(-1),
            "1.2.3.4",
        );
        assert!(any_code.allowed);
        let unreachable = ask_icmp(
            "eni-a",
            "ingress",
            "icmp",
            None,
            Some(3),
            Some(4),
            "1.2.3.4",
        );
        assert!(!unreachable.allowed);
        // Every type is more than the rule gives.
        assert!(!ask_icmp("eni-a", "ingress", "icmp", None, None, None, "1.2.3.4").allowed);
        // ICMPv6 is another protocol.
        assert!(
            !ask_icmp(
                "eni-a",
                "ingress",
                "icmpv6",
                None,
                Some(128),
                None,
                "1.2.3.4"
            )
            .allowed
        );
    }

    #[test]
    fn all_traffic_prefix_lists_and_numbers() {
        let v = ask("eni-a", "ingress", "-1", None, "192.0.2.1");
        assert!(v.allowed, "{}", v.explanation);
        assert_eq!(rule_of(&v), Some(("sg-web".into(), 4)));
        // An all-traffic rule covers any question.
        assert!(ask("eni-a", "ingress", "udp", Some(53), "192.0.2.1").allowed);
        // Asking about all traffic needs an all-traffic rule.
        assert!(!ask("eni-a", "ingress", "-1", None, "203.0.113.7").allowed);
        // Every TCP port is more than port 443.
        assert!(!ask("eni-a", "ingress", "tcp", None, "203.0.113.7").allowed);
        let v = ask("eni-a", "ingress", "udp", Some(5050), "198.51.100.20");
        assert!(v.allowed, "{}", v.explanation);
        assert!(
            v.matched
                .unwrap()
                .reason
                .contains("prefix list pl-corp (198.51.100.0/24)")
        );
        assert!(!ask("eni-a", "ingress", "udp", Some(5101), "198.51.100.20").allowed);
    }

    #[test]
    fn numbered_protocols() {
        let inv = inventory();
        let gre = Traffic::parse("47", None, None, None).unwrap();
        let t = Target::parse("eni-a").unwrap();
        let peer = Peer::parse("10.9.1.1").unwrap();
        assert!(check(&inv, &t, Direction::Ingress, gre, &peer).allowed);
        let other = Traffic::parse("50", None, None, None).unwrap();
        assert!(!check(&inv, &t, Direction::Ingress, other, &peer).allowed);
    }

    #[test]
    fn egress_and_instances() {
        assert!(ask("i-a", "egress", "udp", Some(53), "8.8.8.8").allowed);
        let v = ask("i-c", "egress", "tcp", Some(443), "8.8.8.8");
        assert!(!v.allowed);
        assert_eq!(v.groups, vec!["sg-locked".to_owned()]);
        // An instance is evaluated with its own and its interfaces' groups.
        let v = ask("i-a", "ingress", "tcp", Some(443), "203.0.113.7");
        assert_eq!(v.target_id.as_deref(), Some("i-a"));
        assert_eq!(v.groups, vec!["sg-web".to_owned()]);
        // Groups missing from the inventory are named.
        let v = ask("eni-b", "ingress", "tcp", Some(22), "1.2.3.4");
        assert!(
            v.explanation.contains("not in the inventory: sg-gone"),
            "{}",
            v.explanation
        );
    }

    #[test]
    fn unknown_targets_are_denied() {
        for target in ["i-nope", "eni-nope", "10.200.0.1"] {
            let v = ask(target, "ingress", "tcp", Some(443), "203.0.113.7");
            assert!(!v.allowed);
            assert!(v.target_id.is_none());
            assert!(
                v.explanation.contains("no security group allows"),
                "{}",
                v.explanation
            );
        }
    }

    #[test]
    fn connections_check_both_ends() {
        let inv = inventory();
        let ssh = Traffic::parse("tcp", Some(22), None, None).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // B → A: A's ingress (sg-admin reference) and B's egress (to sg-web).
        let v = check_connection(&inv, ip("10.0.1.7"), ip("10.0.0.5"), ssh);
        assert!(v.allowed, "{}", v.explanation);
        assert_eq!(rule_of(&v), Some(("sg-web".into(), 1)));
        // A → B: B allows no ingress.
        assert!(!check_connection(&inv, ip("10.0.0.5"), ip("10.0.1.7"), ssh).allowed);
        // C → A: A's ingress does not allow C.
        let https = Traffic::parse("tcp", Some(443), None, None).unwrap();
        assert!(!check_connection(&inv, ip("10.0.2.9"), ip("10.0.0.5"), https).allowed);
        // An outside source is checked on ingress only.
        assert!(check_connection(&inv, ip("203.0.113.7"), ip("10.0.0.5"), https).allowed);
        // IPv4-mapped IPv6 addresses are their IPv4 address.
        assert!(
            check_connection(&inv, ip("::ffff:203.0.113.7"), ip("::ffff:10.0.0.5"), https).allowed
        );
    }

    #[test]
    fn egress_of_a_known_source_can_refuse() {
        let mut inv = inventory();
        // Let A accept everything from C; C's sg-locked still allows no egress.
        inv.load_cli_output(
            &json!({"SecurityGroups": [{"GroupId": "sg-web", "IpPermissions": [
                {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "10.0.2.9/32"}]}]}]}),
            ACCT,
            "us-east-1",
        )
        .unwrap();
        let https = Traffic::parse("tcp", Some(443), None, None).unwrap();
        let v = check_connection(
            &inv,
            "10.0.2.9".parse().unwrap(),
            "10.0.0.5".parse().unwrap(),
            https,
        );
        assert!(!v.allowed);
        assert!(v.explanation.contains("but egress"), "{}", v.explanation);
    }

    #[test]
    fn bad_questions() {
        assert!(matches!(Target::parse("sg-1"), Err(QueryError::Target(_))));
        assert!(matches!(Target::parse("i-"), Err(QueryError::Target(_))));
        assert!(matches!(
            Peer::parse("10.0.0.0/8"),
            Err(QueryError::Peer(_))
        ));
        assert!(matches!(
            Direction::parse("in"),
            Err(QueryError::Direction(_))
        ));
        let p = |proto: &str, port, t, c| Traffic::parse(proto, port, t, c);
        assert!(matches!(
            p("tcpx", None, None, None),
            Err(QueryError::Protocol(_))
        ));
        assert!(matches!(
            p("256", None, None, None),
            Err(QueryError::Protocol(_))
        ));
        assert_eq!(
            p("tcp", Some(65536), None, None),
            Err(QueryError::Port(65536))
        );
        assert_eq!(p("tcp", Some(-1), None, None), Err(QueryError::Port(-1)));
        assert!(matches!(
            p("tcp", Some(1), Some(8), None),
            Err(QueryError::NotApplicable("icmp_type", _))
        ));
        assert!(matches!(
            p("icmp", Some(1), None, None),
            Err(QueryError::NotApplicable("port", _))
        ));
        assert!(matches!(
            p("-1", Some(1), None, None),
            Err(QueryError::NotApplicable("port", _))
        ));
        assert_eq!(
            p("icmp", None, None, Some(0)),
            Err(QueryError::CodeWithoutType)
        );
        assert_eq!(
            p("icmp", None, Some(300), None),
            Err(QueryError::Icmp {
                field: "icmp_type",
                value: 300
            })
        );
        assert_eq!(
            p("udp", None, None, None),
            Ok(Traffic::Udp { from: 0, to: 65535 })
        );
        let long = "x".repeat(500);
        let e = Target::parse(&long).unwrap_err().to_string();
        assert!(e.len() < 200, "{e}");
    }
}
