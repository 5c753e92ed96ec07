"""Issue 11, item 3: EC2 Query calls that name a resource by a parameter
the mapping did not resolve (a name, an alternate id, an association id, the
source of a copy) were authorized against `type/*` or `*`, without the
resource's ARN, owner or tags, so a Deny on the resource did not apply.

Each attack goes through the real Envoy in front of the stub EC2 backend
(the stack of test_ec2_envoy.py) with a bundle where erin has `ec2:*` and
Denies on specific production resources. Naming a protected resource any
way is denied exactly like naming it by id, and the backend never sees the
call; the same calls on unprotected resources go through (the denial is
the resource's, not the form's); names the inventory does not hold are
EC2's NotFound errors; names of resources a call creates are not looked up;
and parameters the action does not have are refused.
"""

import json

import pytest

import test_ec2_envoy as ec2
from envoy_util import envoy_binary

PROD = ec2.PROD
ERIN = f"arn:aws:iam::{PROD}:user/erin"
REGION = "us-east-1"

PROD_TEMPLATE, STAGING_TEMPLATE = "lt-0a111000000000001", "lt-0a111000000000002"
PROD_KEY, DEV_KEY = ("key-0a111000000000001", "prod-key"), ("key-0a111000000000002", "dev-key")
PROD_SNAPSHOT, OTHER_SNAPSHOT = "snap-0a111000000000001", "snap-0a1110000000000a0"
PROD_ASSOC, RED_ASSOC = "iip-assoc-0a111000000000001", "iip-assoc-0a111000000000002"

PROTECTED = [
    f"arn:aws:ec2:{REGION}:{PROD}:launch-template/{PROD_TEMPLATE}",
    f"arn:aws:ec2:{REGION}:{PROD}:key-pair/{PROD_KEY[1]}",
    f"arn:aws:ec2:{REGION}::snapshot/{PROD_SNAPSHOT}",
    f"arn:aws:ec2:{REGION}::image/{ec2.PROD_AMI}",
    f"arn:aws:ec2:{REGION}:{PROD}:instance/{ec2.BLUE_WEB}",
]


def attack_bundle(tmp_path, _base=ec2.demo_bundle):
    """The demo bundle, plus erin (ec2:* with a Deny on each protected
    resource) and the key pairs, launch templates and IAM instance profile
    associations of production in the inventory."""
    bundle = _base(tmp_path)
    iam = bundle / "iam" / f"{PROD}.json"
    doc = json.loads(iam.read_text())
    doc["UserDetailList"].append({
        "Path": "/", "UserName": "erin", "UserId": "AIDADEMOERIN00000001", "Arn": ERIN,
        "GroupList": [], "AttachedManagedPolicies": [], "Tags": [],
        "UserPolicyList": [{"PolicyName": "Ec2ExceptProduction", "PolicyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "Ec2", "Effect": "Allow", "Action": "ec2:*", "Resource": "*"},
                {"Sid": "NotProduction", "Effect": "Deny", "Action": "ec2:*",
                 "Resource": PROTECTED},
            ]}}],
    })
    iam.write_text(json.dumps(doc))
    inv = bundle / "ec2" / PROD / REGION
    (inv / "describe-key-pairs.json").write_text(json.dumps({"KeyPairs": [
        {"KeyPairId": PROD_KEY[0], "KeyName": PROD_KEY[1], "KeyType": "ed25519",
         "Tags": [{"Key": "env", "Value": "prod"}]},
        {"KeyPairId": DEV_KEY[0], "KeyName": DEV_KEY[1], "KeyType": "ed25519"},
    ]}))
    (inv / "describe-launch-templates.json").write_text(json.dumps({"LaunchTemplates": [
        {"LaunchTemplateId": PROD_TEMPLATE, "LaunchTemplateName": "prod-web",
         "DefaultVersionNumber": 1, "LatestVersionNumber": 1},
        {"LaunchTemplateId": STAGING_TEMPLATE, "LaunchTemplateName": "staging-web",
         "DefaultVersionNumber": 1, "LatestVersionNumber": 1},
    ]}))
    (inv / "describe-iam-instance-profile-associations.json").write_text(json.dumps(
        {"IamInstanceProfileAssociations": [
            {"AssociationId": PROD_ASSOC, "InstanceId": ec2.BLUE_WEB, "State": "associated",
             "IamInstanceProfile": {"Arn": f"arn:aws:iam::{PROD}:instance-profile/web",
                                    "Id": "AIPADEMOWEB000000001"}},
            {"AssociationId": RED_ASSOC, "InstanceId": ec2.RED_APP, "State": "associated",
             "IamInstanceProfile": {"Arn": f"arn:aws:iam::{PROD}:instance-profile/app",
                                    "Id": "AIPADEMOAPP000000001"}},
        ]}))
    return bundle


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ec2, "demo_bundle", attack_bundle)
        s = ec2.Ec2Stack(tmp_path_factory.mktemp("ec2-resources"), envoy_binary())
    yield s
    s.close()


@pytest.fixture
def fresh(stack):
    stack.backend.record.write_text("")
    return stack


def denied_on(fresh, params, resource):
    """The call is a 403 that names `resource` with erin's explicit deny,
    and the backend never saw it."""
    status, _, body = fresh.call(ERIN, params)
    assert status == 403, body
    code, message, _ = ec2.error(body)
    assert code == "UnauthorizedOperation"
    assert (f"perform: ec2:{params['Action']} on resource: {resource} with an explicit deny "
            "in an identity-based policy") in message, message
    assert fresh.actions() == []


def refused(fresh, params, code):
    """The call is a 400 with EC2's error `code`; the backend never saw it."""
    status, _, body = fresh.call(ERIN, params)
    assert status == 400, body
    got, message, _ = ec2.error(body)
    assert got == code, message
    assert fresh.actions() == []
    return message


def allowed(fresh, params):
    status, _, body = fresh.call(ERIN, params)
    assert status == 200, body
    assert fresh.actions() == [params["Action"]]


# ---- the five reproduced calls ------------------------------------------------

@pytest.mark.parametrize("params", [
    {"LaunchTemplateId": PROD_TEMPLATE},
    {"LaunchTemplateName": "prod-web"},
])
def test_delete_launch_template_by_name_is_the_template(fresh, params):
    """issue 11, item 3: DeleteLaunchTemplate&LaunchTemplateName= is denied
    like the template's id."""
    denied_on(fresh, {"Action": "DeleteLaunchTemplate", **params}, PROTECTED[0])


@pytest.mark.parametrize("params", [
    {"KeyName": PROD_KEY[1]},
    {"KeyPairId": PROD_KEY[0]},
])
def test_delete_key_pair_by_id_is_the_key_pair(fresh, params):
    """issue 11, item 3: DeleteKeyPair&KeyPairId= is denied like its name."""
    denied_on(fresh, {"Action": "DeleteKeyPair", **params}, PROTECTED[1])


def test_copy_snapshot_authorizes_its_source(fresh):
    """issue 11, item 3: CopySnapshot&SourceSnapshotId= is the source."""
    denied_on(fresh, {"Action": "CopySnapshot", "SourceSnapshotId": PROD_SNAPSHOT,
                      "SourceRegion": REGION}, PROTECTED[2])


def test_copy_image_authorizes_its_source(fresh):
    """issue 11, item 3: CopyImage&SourceImageId= is the source."""
    denied_on(fresh, {"Action": "CopyImage", "SourceImageId": ec2.PROD_AMI,
                      "SourceRegion": REGION, "Name": "copy"}, PROTECTED[3])


def test_disassociate_iam_instance_profile_is_the_instance(fresh):
    """issue 11, item 3: DisassociateIamInstanceProfile&AssociationId= is
    the instance that holds the association."""
    denied_on(fresh, {"Action": "DisassociateIamInstanceProfile",
                      "AssociationId": PROD_ASSOC}, PROTECTED[4])


@pytest.mark.parametrize("params", [
    {"Action": "DeleteLaunchTemplate", "LaunchTemplateName": "staging-web"},
    {"Action": "DeleteKeyPair", "KeyPairId": DEV_KEY[0]},
    {"Action": "CopySnapshot", "SourceSnapshotId": OTHER_SNAPSHOT, "SourceRegion": REGION},
    {"Action": "CopyImage", "SourceImageId": ec2.AMI_SHARED, "SourceRegion": REGION,
     "Name": "copy"},
    {"Action": "DisassociateIamInstanceProfile", "AssociationId": RED_ASSOC},
])
def test_the_same_forms_on_unprotected_resources_reach_the_backend(fresh, params):
    """issue 11, item 3: the denials above are the resources', not the
    forms': the same calls on other resources go through."""
    allowed(fresh, params)


# ---- names the inventory does not hold ----------------------------------------

@pytest.mark.parametrize("params,code", [
    ({"Action": "DeleteLaunchTemplate", "LaunchTemplateName": "nope"},
     "InvalidLaunchTemplateName.NotFoundException"),
    ({"Action": "DeleteKeyPair", "KeyPairId": "key-0fffffffffffffff1"}, "InvalidKeyPair.NotFound"),
    ({"Action": "DisassociateIamInstanceProfile", "AssociationId": "iip-assoc-0fffffffffffffff1"},
     "InvalidAssociationID.NotFound"),
    ({"Action": "TerminateInstances", "InstanceId.1": "i-0fffffffffffffff1"},
     "InvalidInstanceID.NotFound"),
    ({"Action": "CopySnapshot", "SourceSnapshotId": "snap-0fffffffffffffff1",
      "SourceRegion": REGION}, "InvalidSnapshot.NotFound"),
])
def test_unknown_resources_are_ec2s_not_found(fresh, params, code):
    """issue 11, item 3: a name or id the inventory cannot resolve is
    refused with EC2's error, never authorized against `type/*`."""
    refused(fresh, params, code)


def test_lookups_the_inventory_cannot_make_are_refused(fresh):
    """issue 11, item 3: an Elastic IP by public address (the inventory
    holds no addresses) is refused rather than authorized as `elastic-ip/*`."""
    refused(fresh, {"Action": "ReleaseAddress", "PublicIp": "203.0.113.7"},
            "UnsupportedOperation")


def test_parameters_the_action_does_not_have_are_refused(fresh):
    """issue 11, item 3: a parameter the action does not have (here a
    would-be alias of KeyName) might be read by a backend as a resource:
    refused with EC2's UnknownParameter."""
    message = refused(fresh, {"Action": "DeleteKeyPair", "KeyName": DEV_KEY[1],
                              "KeyNames.1": PROD_KEY[1]}, "UnknownParameter")
    assert "KeyNames.1" in message


# ---- creates ----------------------------------------------------------------------

@pytest.mark.parametrize("params", [
    {"Action": "CreateSecurityGroup", "GroupName": "web", "GroupDescription": "web tier",
     "VpcId": "vpc-0a111000000000001"},
    {"Action": "CreateSecurityGroup", "GroupName": "brand-new", "GroupDescription": "new"},
    {"Action": "CreateKeyPair", "KeyName": PROD_KEY[1]},
    {"Action": "CreateLaunchTemplate", "LaunchTemplateName": "prod-web",
     "LaunchTemplateData.InstanceType": "t3.micro"},
    {"Action": "CreatePlacementGroup", "GroupName": "cluster-a", "Strategy": "cluster"},
])
def test_names_of_created_resources_are_not_lookups(fresh, params):
    """issue 11, item 3: the name a create call gives its new resource is
    not looked up (CreateSecurityGroup&GroupName=web used to answer
    InvalidGroup.NotFound); the call is authorized on the new `type/*`."""
    allowed(fresh, params)
