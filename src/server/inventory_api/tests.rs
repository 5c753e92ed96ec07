//! The inventory API's unit tests: validation, conversion both ways, the
//! HTTP parameters.

use super::grpc::*;
use super::wire::*;
use super::*;
use crate::ec2::inventory::ResourceKind;
use crate::server::grpc_api::pb;

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
    assert_eq!(resource.kind(), ResourceKind::SecurityGroup);
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
    assert!(change(json!({"op": "grants", "id": "ami-1", "add": [{"account": "12"}]})).is_err());
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

#[test]
fn attributes_of_another_kind_are_refused_at_their_path() {
    // A security group has no instance type: the client's mistake, named
    // where it is, and nothing stored.
    let mut foreign = sg();
    foreign["resource"]["attributes"]["instance_type"] = json!("t3.micro");
    let c: ChangeJson = serde_json::from_value(foreign).unwrap();
    let e = c.into_change("$.changes[0]").unwrap_err();
    assert_eq!(
        (e.path.as_str(), e.message.as_str()),
        (
            "$.changes[0].resource.attributes.instance_type",
            "a `security-group` has no `instance_type`"
        )
    );
    // An instance's own attributes are taken as they are.
    let instance = json!({"op": "upsert", "resource": {
        "id": "i-1", "account": "111122223333", "region": "us-east-1",
        "attributes": {"instance_type": "t3.micro", "groups": ["sg-1"],
                       "private_ip": "10.0.0.5", "http_tokens": "required"}}});
    let Ok(Change::Upsert { resource }) = change(instance) else {
        panic!("an instance's attributes are refused")
    };
    let a = resource.attributes.instance().cloned().unwrap_or_default();
    assert_eq!(a.instance_type.as_deref(), Some("t3.micro"));
    assert_eq!(resource.attributes.groups(), ["sg-1"]);
}

#[test]
fn key_pairs_launch_templates_and_associations_are_writable() {
    let key_pair = json!({"op": "upsert", "resource": {
        "id": "key-0123456789abcdef0", "account": "111122223333", "region": "us-east-1",
        "attributes": {"name": "deploy"}}});
    let Ok(Change::Upsert { resource }) = change(key_pair) else {
        panic!("a named key pair is refused")
    };
    assert_eq!(resource.kind(), ResourceKind::KeyPair);
    assert_eq!(resource.name(), Some("deploy"));
    // A key pair's ARN ends in its name.
    assert_eq!(
        resource.arn("aws"),
        "arn:aws:ec2:us-east-1:111122223333:key-pair/deploy"
    );
    let subnet = json!({"op": "upsert", "resource": {
        "id": "subnet-1", "account": "111122223333", "region": "us-east-1",
        "attributes": {"vpc_id": "vpc-1", "availability_zone": "us-east-1a",
                       "default_for_az": true, "cidrs": ["10.0.0.0/24"],
                       "associations": ["subnet-cidr-assoc-1"]}}});
    let Ok(Change::Upsert { resource: subnet }) = change(subnet) else {
        panic!("a default subnet is refused")
    };
    assert_eq!(subnet.attributes.associations(), ["subnet-cidr-assoc-1"]);
    // Both wire shapes carry them back.
    for r in [&resource, &subnet] {
        assert_eq!(
            resource_from_json(resource_to_json(r), "$").as_ref(),
            Ok(&**r)
        );
        let proto = resource_json_from_proto(resource_to_proto(r), "p")
            .and_then(|j| resource_from_json(j, "p"));
        assert_eq!(proto.as_ref(), Ok(&**r));
    }
    // Each where its kind has it.
    let named_instance = json!({"op": "upsert", "resource": {
        "id": "i-1", "account": "111122223333", "region": "us-east-1",
        "attributes": {"name": "web"}}});
    let e = change(named_instance).err().unwrap_or_default();
    assert!(
        e.contains("attributes.name") && e.contains("no `name`"),
        "{e}"
    );
    let bad_name = json!({"op": "upsert", "resource": {
        "id": "lt-1", "account": "111122223333", "region": "us-east-1",
        "attributes": {"name": ""}}});
    let e = change(bad_name).err().unwrap_or_default();
    assert!(e.contains("attributes.name"), "{e}");
}
