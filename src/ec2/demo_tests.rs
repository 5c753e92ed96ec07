//! The demo bundle (`crate::bundle::demo`) through EC2: its inventory, its
//! organization memberships, its instance profile and cross-account
//! permissions. Here rather than beside the demo so that the bundle module
//! never imports a service.

use crate::bundle::demo::files;
use crate::bundle::{BundleError, BundleFiles, Snapshot};
use crate::ec2::inventory::{Attributes, Grant};
use crate::ec2::mapping::{Ec2Call, MappingError, map_call};
use crate::ec2::permissions::OrgMembership;
use crate::ec2::query::QueryParams;

#[test]
fn demo_bundle_compiles_and_passes_its_tests() {
    let snap = load_files(&files(), "demo");
    assert!(snap.is_ok(), "{:?}", snap.err());
}

const PROD: &str = "111111111111";
const DEV: &str = "222222222222";

/// `outcome_only` leaves out the explanation and nothing else.
#[test]
fn outcome_only_answers_without_statements() -> Result<(), Box<dyn std::error::Error>> {
    let snap = load_files(&files(), "demo")?;
    let mut req = crate::bundle::AuthzRequest {
        principal_arn: "arn:aws:iam::111111111111:user/engineering/bob".into(),
        action: "ec2:DescribeInstances".into(),
        resource: "*".into(),
        context: crate::engine::Context::new().with("aws:RequestedRegion", "us-east-1"),
        ..Default::default()
    };
    let full = snap.authorize(&req)?;
    req.outcome_only = true;
    let brief = snap.authorize(&req)?;
    assert_eq!(full.decision, crate::engine::Outcome::Allowed);
    assert!(!full.matched.is_empty());
    assert!(brief.matched.is_empty() && brief.missing_context_keys.is_empty());
    assert_eq!(
        (brief.decision, &brief.reason),
        (full.decision, &full.reason)
    );
    let again = snap.authorize_with(&req, true)?;
    assert_eq!(
        (again.matched, again.missing_context_keys),
        (full.matched, full.missing_context_keys)
    );
    Ok(())
}

fn call(snap: &Snapshot, caller: &str, target: &str) -> Result<Ec2Call, MappingError> {
    let params = QueryParams::parse(target, None)?;
    map_call(&params, "us-east-1", caller, &inventory(snap))
}

#[test]
fn demo_inventory_loads() -> Result<(), BundleError> {
    let snap = load_files(&files(), "demo")?;
    let inv = inventory(&snap);
    let c = inv.counts();
    assert_eq!((c.instances, c.images, c.snapshots), (4, 6, 6));
    assert_eq!((c.volumes, c.subnets, c.security_groups), (7, 3, 6));
    assert_eq!(c.network_interfaces, 5);
    let shared = inv.get("ami-0b222000000000001");
    assert_eq!(
        shared.map(|r| r.attributes.grants().to_vec()),
        Some(vec![Grant::Account(PROD.into())])
    );
    let web = inv.get("sg-0a111000000000002");
    assert_eq!(
        web.map(|r| match &r.attributes {
            Attributes::SecurityGroup(sg) => sg.egress.as_slice(),
            _ => &[],
        }
        .iter()
        .flat_map(|e| e.groups.clone())
        .collect::<Vec<_>>()),
        Some(vec!["sg-0a111000000000003".to_owned()])
    );
    Ok(())
}

#[test]
fn demo_org_membership() -> Result<(), BundleError> {
    let snap = load_files(&files(), "demo")?;
    let m = snap.org_membership(PROD).cloned();
    assert_eq!(
        m,
        Some(OrgMembership {
            organization_arn: "arn:aws:organizations::999999999999:organization/o-aa111bb222"
                .into(),
            ou_arns: vec![
                "arn:aws:organizations::999999999999:ou/o-aa111bb222/ou-demo-prod0001".into()
            ],
        })
    );
    let mgmt = snap.org_membership("999999999999").map(|m| m.ou_arns.len());
    assert_eq!(mgmt, Some(0));
    assert!(snap.org_membership("123456789012").is_none());
    Ok(())
}

#[test]
fn org_membership_follows_nested_ous_and_needs_an_id() -> Result<(), BundleError> {
    let org = |id: &str| {
        format!(
            r#"{{{id}"ManagementAccountId": "999999999999", "Roots": [{{"Id": "r-1"}}],
            "OrganizationalUnits": [{{"Id": "ou-1-outer", "ParentId": "r-1"}},
                                    {{"Id": "ou-1-inner", "ParentId": "ou-1-outer"}}],
            "Accounts": [{{"Id": "123456789012", "ParentId": "ou-1-inner"}}]}}"#
        )
    };
    let with_id = BundleFiles::from_pairs([("organization.json", org(r#""Id": "o-xyz", "#))]);
    let snap = load_files(&with_id, "test")?;
    let ous = snap
        .org_membership("123456789012")
        .map(|m| m.ou_arns.clone());
    assert_eq!(
        ous,
        Some(vec![
            "arn:aws:organizations::999999999999:ou/o-xyz/ou-1-outer".to_owned(),
            "arn:aws:organizations::999999999999:ou/o-xyz/ou-1-inner".to_owned(),
        ])
    );
    let without = BundleFiles::from_pairs([("organization.json", org(""))]);
    assert!(
        load_files(&without, "test")?
            .org_membership("123456789012")
            .is_none()
    );
    Ok(())
}

/// The demo's instance profile `app` (role `ops-automation`): found by
/// name in its account only, and passing it to EC2 needs iam:PassRole
/// (issue 13).
#[test]
fn demo_instance_profile_needs_pass_role() -> Result<(), Box<dyn std::error::Error>> {
    use crate::ec2::mapping::{InstanceProfile, map_call_with};
    let snap = load_files(&files(), "demo")?;
    let role = "arn:aws:iam::111111111111:role/service/ops-automation";
    let app = snap.instance_profile(PROD, "APP").cloned();
    assert_eq!(
        app.map(|p| (p.arn, p.role_arns)),
        Some((
            "arn:aws:iam::111111111111:instance-profile/app".to_owned(),
            vec![role.to_owned()]
        ))
    );
    assert!(snap.instance_profile(DEV, "app").is_none());
    let profiles = |account: &str, name: &str| {
        snap.instance_profile(account, name)
            .map(|p| InstanceProfile {
                arn: p.arn.clone(),
                role_arns: p.role_arns.clone(),
            })
    };
    let params = QueryParams::parse(
        "/?Action=RunInstances&ImageId=ami-0c0ffee0000000001&SubnetId=subnet-0a111000000000a01\
         &IamInstanceProfile.Name=app",
        None,
    )?;
    let call = map_call_with(&params, "us-east-1", PROD, &inventory(&snap), &profiles)?;
    let pass = call
        .authorizations
        .iter()
        .find(|a| a.action == "iam:PassRole")
        .ok_or("no iam:PassRole")?;
    for (who, allowed) in [
        ("arn:aws:iam::111111111111:user/engineering/bob", false),
        ("arn:aws:iam::111111111111:user/alice", true),
    ] {
        let mut context = pass.context.clone();
        context.insert(
            "aws:RequestedRegion",
            crate::engine::ContextValue::One("us-east-1".into()),
        );
        let answer = snap.authorize(&crate::bundle::AuthzRequest {
            principal_arn: who.into(),
            action: pass.action.clone(),
            resource: pass.resource.clone(),
            context,
            ..Default::default()
        })?;
        assert_eq!(
            answer.decision == crate::engine::Outcome::Allowed,
            allowed,
            "{who}"
        );
    }
    Ok(())
}

/// Launch / create-volume permission of each demo image and snapshot for
/// the production account.
#[test]
fn demo_cross_account_permissions() -> Result<(), Box<dyn std::error::Error>> {
    let snap = load_files(&files(), "demo")?;
    let membership = snap.org_membership(PROD);
    let cases = [
        (
            "/?Action=RunInstances&ImageId=ami-0b222000000000001&SubnetId=subnet-0a111000000000a01",
            true,
        ),
        (
            "/?Action=RunInstances&ImageId=ami-0b222000000000002&SubnetId=subnet-0a111000000000a01",
            false,
        ),
        (
            "/?Action=RunInstances&ImageId=ami-0b222000000000003&SubnetId=subnet-0a111000000000a01",
            true,
        ),
        (
            "/?Action=RunInstances&ImageId=ami-0b222000000000004&SubnetId=subnet-0a111000000000a01",
            true,
        ),
        (
            "/?Action=RunInstances&ImageId=ami-0c0ffee0000000001&SubnetId=subnet-0a111000000000a01",
            true,
        ),
        (
            "/?Action=RunInstances&ImageId=ami-0ffffffffffffffff&SubnetId=subnet-0a111000000000a01",
            false,
        ),
        (
            "/?Action=CreateVolume&AvailabilityZone=us-east-1a&SnapshotId=snap-0b222000000000001",
            true,
        ),
        (
            "/?Action=CreateVolume&AvailabilityZone=us-east-1a&SnapshotId=snap-0b222000000000002",
            false,
        ),
        (
            "/?Action=CreateVolume&AvailabilityZone=us-east-1a&SnapshotId=snap-0b222000000000003",
            true,
        ),
    ];
    for (target, allowed) in cases {
        let c = call(&snap, PROD, target)?;
        assert_eq!(c.permission_checks.len(), 1, "{target}");
        let ok = c
            .permission_checks
            .iter()
            .all(|p| p.permits(PROD, membership));
        assert_eq!(ok, allowed, "{target}");
    }
    // The owner needs no permission check; the OU grant does not cover
    // the development account.
    let own = call(
        &snap,
        DEV,
        "/?Action=RunInstances&ImageId=ami-0b222000000000002&SubnetId=subnet-0b222000000000a01",
    )?;
    assert!(own.permission_checks.is_empty());
    let ou = call(
        &snap,
        "333333333333",
        "/?Action=RunInstances&ImageId=ami-0b222000000000003&SubnetId=subnet-0b222000000000a01",
    )?;
    assert!(
        !ou.permission_checks
            .iter()
            .all(|p| p.permits("333333333333", None))
    );
    Ok(())
}

/// Loads a bundle as the server does, with EC2's bundle-data loader.
fn load_files(files: &BundleFiles, source: &str) -> Result<Snapshot, BundleError> {
    let loaders = crate::bundle::service_data::DataLoaders::new(vec![std::sync::Arc::new(
        crate::ec2::bundle_data::Loader,
    )]);
    crate::bundle::load_files_with(files, source, &loaders)
}

/// The snapshot's EC2 inventory (its bundle data).
fn inventory(snap: &Snapshot) -> std::sync::Arc<crate::ec2::inventory::Inventory> {
    crate::ec2::bundle_data::BundleInventory::of(snap.service_data())
        .inventory
        .clone()
}
