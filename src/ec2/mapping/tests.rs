//! The EC2 mapping's tests: actions, resources and condition keys of each
//! kind of call, against a small inventory.

use super::*;
use crate::policy::variables::ValueRef;
use serde_json::json;

pub(super) const ME: &str = "111111111111";
pub(super) const OTHER: &str = "222222222222";
pub(super) const R: &str = "us-east-1";

pub(super) type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// One resource of every kind the inventory tracks (and a few more),
/// shared with the table-driven tests in `catalog_tests.rs`.
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
        map_err("/?Action=RunInstances&ImageId=ami-0mine&NetworkInterface.2.SubnetId=subnet-0aaa")?,
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
    let c = map("/?Action=RunInstances&ImageId=ami-0mine&Placement.AvailabilityZone=us-east-1b")?;
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
        map_err("/?Action=RunInstances&ImageId=ami-0mine&LaunchTemplate.LaunchTemplateName=nope")?
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
    assert!(
        c.authorizations.iter().any(|a| a.action == "ec2:CreateTags"
            && val(a, "ec2:CreateAction") == Some("CreateSnapshot"))
    );
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

    let c = map("/?Action=CopyImage&SourceImageId=ami-0shared&SourceRegion=us-east-1&Name=copy")?;
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
        "RunInstances&ImageId=ami-0mine&SubnetId=subnet-0aaa&IamInstanceProfile.Name=web".into(),
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
