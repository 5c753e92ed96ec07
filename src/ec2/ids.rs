//! The canonical form of EC2 resource ids (`i-0123456789abcdef0`,
//! `ami-1a2b3c4d`, ...): what an id of each resource type looks like, so
//! that an id the authorizer decides on is spelled exactly as the backend
//! stores it. EC2 ids are case-sensitive text to IAM (`instance/i-0ABC` and
//! `instance/i-0abc` are different ARNs to a policy) but not to every
//! backend, so a non-canonical spelling is refused rather than decided.
//! Pure: no I/O.
//!
//! # Grammar
//! `PREFIX-BODY`, where `PREFIX` is one of the type's prefixes, in lower
//! case (`i`, `ami`/`aki`/`ari`, `snap`, `vol`, `sg`, ...), and `BODY` is
//! - 8 or 17 lowercase hexadecimal digits for most types (EC2's short and
//!   long id formats),
//! - 8 or 17 lowercase letters and digits for Spot Instance requests
//!   (`sir-`),
//! - a lowercase UUID for fleets (`fleet-`).
//!
//! Resource types whose ARN names the resource by name (key pairs,
//! placement groups) or whose id grammar is not listed here are not
//! checked by this module.

/// A resource id that is not in its type's canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid id: \"{id}\" is not a canonical {resource_type} id (expected {expected})")]
pub struct IdError {
    /// The catalog resource type (`instance`).
    pub resource_type: String,
    /// The id as given.
    pub id: String,
    /// What a canonical id of the type looks like.
    pub expected: &'static str,
    /// EC2's error code for a malformed id of this type
    /// (`InvalidInstanceID.Malformed`, ...).
    pub code: &'static str,
}

/// How the part after the prefix is spelled.
#[derive(Debug, Clone, Copy)]
enum Body {
    /// 8 or 17 lowercase hex digits.
    Hex,
    /// 8 or 17 lowercase letters and digits.
    Alnum,
    /// A lowercase UUID (`8-4-4-4-12` hex digits).
    Uuid,
}

/// One resource type's id grammar.
struct Grammar {
    resource_type: &'static str,
    prefixes: &'static [&'static str],
    body: Body,
    expected: &'static str,
    code: &'static str,
}

const fn hex(
    resource_type: &'static str,
    prefixes: &'static [&'static str],
    expected: &'static str,
    code: &'static str,
) -> Grammar {
    Grammar {
        resource_type,
        prefixes,
        body: Body::Hex,
        expected,
        code,
    }
}

const PARAM: &str = "InvalidParameterValue";

/// The id grammars, by catalog resource type.
const GRAMMARS: &[Grammar] = &[
    hex(
        "instance",
        &["i"],
        "i- and 8 or 17 lowercase hex digits",
        "InvalidInstanceID.Malformed",
    ),
    hex(
        "image",
        &["ami", "aki", "ari"],
        "ami- and 8 or 17 lowercase hex digits",
        "InvalidAMIID.Malformed",
    ),
    hex(
        "snapshot",
        &["snap"],
        "snap- and 8 or 17 lowercase hex digits",
        "InvalidSnapshotID.Malformed",
    ),
    hex(
        "volume",
        &["vol"],
        "vol- and 8 or 17 lowercase hex digits",
        "InvalidVolumeID.Malformed",
    ),
    hex(
        "security-group",
        &["sg"],
        "sg- and 8 or 17 lowercase hex digits",
        "InvalidGroupId.Malformed",
    ),
    hex(
        "security-group-rule",
        &["sgr"],
        "sgr- and 8 or 17 lowercase hex digits",
        "InvalidSecurityGroupRuleId.Malformed",
    ),
    hex(
        "network-interface",
        &["eni"],
        "eni- and 8 or 17 lowercase hex digits",
        "InvalidNetworkInterfaceID.Malformed",
    ),
    hex(
        "subnet",
        &["subnet"],
        "subnet- and 8 or 17 lowercase hex digits",
        "InvalidSubnetID.Malformed",
    ),
    hex(
        "vpc",
        &["vpc"],
        "vpc- and 8 or 17 lowercase hex digits",
        "InvalidVpcID.Malformed",
    ),
    hex(
        "elastic-ip",
        &["eipalloc"],
        "eipalloc- and 8 or 17 lowercase hex digits",
        "InvalidAllocationID.Malformed",
    ),
    hex(
        "internet-gateway",
        &["igw"],
        "igw- and 8 or 17 lowercase hex digits",
        "InvalidInternetGatewayID.Malformed",
    ),
    hex(
        "egress-only-internet-gateway",
        &["eigw"],
        "eigw- and 8 or 17 lowercase hex digits",
        PARAM,
    ),
    hex(
        "route-table",
        &["rtb"],
        "rtb- and 8 or 17 lowercase hex digits",
        "InvalidRouteTableID.Malformed",
    ),
    hex(
        "network-acl",
        &["acl"],
        "acl- and 8 or 17 lowercase hex digits",
        PARAM,
    ),
    hex(
        "launch-template",
        &["lt"],
        "lt- and 8 or 17 lowercase hex digits",
        "InvalidLaunchTemplateId.Malformed",
    ),
    hex(
        "prefix-list",
        &["pl"],
        "pl- and 8 or 17 lowercase hex digits",
        PARAM,
    ),
    hex(
        "natgateway",
        &["nat"],
        "nat- and 8 or 17 lowercase hex digits",
        "InvalidNatGatewayID.Malformed",
    ),
    hex(
        "dhcp-options",
        &["dopt"],
        "dopt- and 8 or 17 lowercase hex digits",
        "InvalidDhcpOptionsID.Malformed",
    ),
    hex(
        "vpc-peering-connection",
        &["pcx"],
        "pcx- and 8 or 17 lowercase hex digits",
        "InvalidVpcPeeringConnectionID.Malformed",
    ),
    hex(
        "vpc-endpoint",
        &["vpce"],
        "vpce- and 8 or 17 lowercase hex digits",
        "InvalidVpcEndpointId.Malformed",
    ),
    hex(
        "transit-gateway",
        &["tgw"],
        "tgw- and 8 or 17 lowercase hex digits",
        "InvalidTransitGatewayID.Malformed",
    ),
    hex(
        "transit-gateway-attachment",
        &["tgw-attach"],
        "tgw-attach- and 8 or 17 lowercase hex digits",
        "InvalidTransitGatewayAttachmentID.Malformed",
    ),
    hex(
        "vpc-flow-log",
        &["fl"],
        "fl- and 8 or 17 lowercase hex digits",
        PARAM,
    ),
    hex(
        "customer-gateway",
        &["cgw"],
        "cgw- and 8 or 17 lowercase hex digits",
        "InvalidCustomerGatewayID.Malformed",
    ),
    hex(
        "vpn-gateway",
        &["vgw"],
        "vgw- and 8 or 17 lowercase hex digits",
        "InvalidVpnGatewayID.Malformed",
    ),
    hex(
        "vpn-connection",
        &["vpn"],
        "vpn- and 8 or 17 lowercase hex digits",
        "InvalidVpnConnectionID.Malformed",
    ),
    hex(
        "dedicated-host",
        &["h"],
        "h- and 8 or 17 lowercase hex digits",
        "InvalidHostID.Malformed",
    ),
    hex(
        "capacity-reservation",
        &["cr"],
        "cr- and 8 or 17 lowercase hex digits",
        "InvalidCapacityReservationId.Malformed",
    ),
    Grammar {
        resource_type: "spot-instances-request",
        prefixes: &["sir"],
        body: Body::Alnum,
        expected: "sir- and 8 or 17 lowercase letters and digits",
        code: "InvalidSpotInstanceRequestID.Malformed",
    },
    Grammar {
        resource_type: "fleet",
        prefixes: &["fleet"],
        body: Body::Uuid,
        expected: "fleet- and a lowercase UUID",
        code: "InvalidFleetId.Malformed",
    },
];

/// Whether ids of `resource_type` have a grammar here.
pub fn has_grammar(resource_type: &str) -> bool {
    grammar(resource_type).is_some()
}

/// Checks that `id` is a canonical id of `resource_type`. Types without a
/// grammar here (names, unlisted types) pass.
pub fn check(resource_type: &str, id: &str) -> Result<(), IdError> {
    let Some(g) = grammar(resource_type) else {
        return Ok(());
    };
    let canonical = g.prefixes.iter().any(|p| {
        id.strip_prefix(p)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|body| body_ok(g.body, body))
    });
    if canonical {
        Ok(())
    } else {
        Err(IdError {
            resource_type: resource_type.to_owned(),
            id: id.to_owned(),
            expected: g.expected,
            code: g.code,
        })
    }
}

/// The id in a resource ARN of `resource_type`
/// (`arn:aws:ec2:r:a:instance/i-0abc` → `i-0abc`); `None` for `type/*`,
/// `*` and ARNs of another shape.
pub fn id_in_arn<'a>(arn: &'a str, resource_type: &str) -> Option<&'a str> {
    let resource = arn.splitn(6, ':').nth(5)?;
    let id = resource
        .strip_prefix(resource_type)?
        .strip_prefix('/')
        .filter(|id| *id != "*")?;
    Some(id)
}

fn grammar(resource_type: &str) -> Option<&'static Grammar> {
    GRAMMARS.iter().find(|g| g.resource_type == resource_type)
}

fn body_ok(body: Body, s: &str) -> bool {
    let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    match body {
        Body::Hex => matches!(s.len(), 8 | 17) && s.bytes().all(lower_hex),
        Body::Alnum => {
            matches!(s.len(), 8 | 17)
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        }
        Body::Uuid => {
            let groups: Vec<&str> = s.split('-').collect();
            groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
                && groups.iter().all(|g| g.bytes().all(lower_hex))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_ids_pass() {
        for (t, id) in [
            ("instance", "i-0123456789abcdef0"),
            ("instance", "i-1a2b3c4d"),
            ("image", "ami-0a111000000000001"),
            ("image", "aki-1a2b3c4d"),
            ("snapshot", "snap-0b222000000000001"),
            ("volume", "vol-ffffffff"),
            ("security-group", "sg-0a1b2c3d4e5f6a7b1"),
            ("transit-gateway-attachment", "tgw-attach-0123456789abcdef0"),
            ("spot-instances-request", "sir-3nri7h8n"),
            ("fleet", "fleet-12345678-1234-1234-1234-123456789abc"),
            // No grammar: names and unlisted types pass.
            ("key-pair", "My Key"),
            ("placement-group", "Cluster-A"),
            ("ipam", "whatever"),
        ] {
            assert_eq!(check(t, id), Ok(()), "{t} {id}");
        }
    }

    #[test]
    fn non_canonical_ids_are_refused() {
        for (t, id) in [
            ("instance", "I-0ABC0000"),
            ("instance", "i-0ABC0000"),
            ("instance", "i-0abc"),
            ("instance", "i-0123456789abcdef"),
            ("instance", "i-0123456789abcdef00"),
            ("instance", "i_0123456789abcdef0"),
            ("instance", "i-0123456789abcdeg0"),
            ("instance", " i-0123456789abcdef0"),
            ("instance", "ami-0123456789abcdef0"),
            ("instance", "i--0123456789abcdef"),
            ("image", "AMI-1a2b3c4d"),
            ("volume", "vol-0A1110000000000A0"),
            ("spot-instances-request", "sir-3NRI7H8N"),
            ("fleet", "fleet-12345678-1234-1234-1234-123456789ABC"),
            ("fleet", "fleet-123456781234-1234-1234-123456789abc"),
        ] {
            let e = check(t, id).unwrap_err();
            assert_eq!(e.id, id);
            assert!(e.to_string().contains("not a canonical"), "{e}");
        }
        assert_eq!(
            check("instance", "i-0ABC").unwrap_err().code,
            "InvalidInstanceID.Malformed"
        );
        assert!(has_grammar("instance") && !has_grammar("key-pair"));
    }

    #[test]
    fn ids_in_arns() {
        let arn = "arn:aws:ec2:us-east-1:111111111111:instance/i-0abc";
        assert_eq!(id_in_arn(arn, "instance"), Some("i-0abc"));
        assert_eq!(
            id_in_arn("arn:aws:ec2:us-east-1::image/ami-1", "image"),
            Some("ami-1")
        );
        assert_eq!(
            id_in_arn("arn:aws:ec2:us-east-1:1:instance/*", "instance"),
            None
        );
        assert_eq!(id_in_arn("*", "instance"), None);
        assert_eq!(id_in_arn(arn, "volume"), None);
    }
}
