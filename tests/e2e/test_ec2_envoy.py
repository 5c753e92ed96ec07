"""The EC2 Query API behind the real Envoy: the HTTP ext_authz filter
forwards the request body (`with_request_body`) to iamgate, which maps each
call (`iamgate.mapping: ec2-query`, or `--default-mapping ec2-query` on the
regional `ec2.REGION.amazonaws.com` hosts), decides every authorization it
needs against the built-in demo bundle and its EC2 inventory, and answers
as EC2 does. A stub EC2 backend (tests/e2e/ec2/backend.py) records the
calls that reach it.

Demo principals: bob (111111111111, team blue) may launch with team tags
and t3 instance types, start/stop blue instances, describe, and never
terminate; alice is an administrator of 111111111111; dave has ec2:* in the
development account 222222222222, whose images and snapshots are shared
with production by account id, OU, organization, publicly, or not at all.
An SCP allows production only us-east-1 and eu-west-1.
"""

import copy
import json
import pathlib
import secrets
import shutil
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import pytest
import requests

from conftest import BINARY, ROOT, start_server
from control_util import control_post, start_with_control
from envoy_util import Backend, Envoy, envoy_binary
from jwt_util import PAYLOAD_KEY, Issuer

HERE = pathlib.Path(__file__).resolve().parent / "ec2"
DEMO = ROOT / "src" / "bundle" / "demo"
PROD, DEV = "111111111111", "222222222222"
BOB = f"arn:aws:iam::{PROD}:user/engineering/bob"
ALICE = f"arn:aws:iam::{PROD}:user/alice"
DAVE = f"arn:aws:iam::{DEV}:user/dave"
FORM = "application/x-www-form-urlencoded; charset=utf-8"

BLUE_WEB, RED_APP, BLUE_DB = "i-0a111000000000001", "i-0a111000000000002", "i-0a111000000000003"
PROD_AMI = "ami-0a111000000000001"
AMI_SHARED, AMI_PRIVATE = "ami-0b222000000000001", "ami-0b222000000000002"
SNAP_SHARED, SNAP_PRIVATE = "snap-0b222000000000001", "snap-0b222000000000002"
SUBNET = "subnet-0a111000000000a01"


@pytest.fixture(scope="session")
def envoy_bin():
    return envoy_binary()


def demo_bundle(tmp_path):
    """The built-in demo bundle as a directory, with bob's LaunchWithTeamTags
    split per resource type. The demo's single statement conditions
    `volume/*` on `ec2:InstanceType`, a key RunInstances does not give for
    volumes, so (in AWS as in iamgate) bob could never launch; the EC2 user
    guide's examples put the instance-type condition on `instance/*` only."""
    bundle = tmp_path / "bundle"
    shutil.copytree(DEMO, bundle)
    iam = bundle / "iam" / f"{PROD}.json"
    doc = json.loads(iam.read_text())
    (policy,) = [p for p in doc["Policies"] if p["PolicyName"] == "LaunchWithTeamTags"]
    (version,) = [v for v in policy["PolicyVersionList"] if v["IsDefaultVersion"]]
    statements = version["Document"]["Statement"]
    (tagged,) = [s for s in statements if s.get("Sid") == "NewInstancesCarryTheTeamTag"]
    tagged["Resource"] = "arn:aws:ec2:*:111111111111:instance/*"
    volumes = copy.deepcopy(tagged)
    volumes["Sid"] = "NewVolumesCarryTheTeamTag"
    volumes["Resource"] = "arn:aws:ec2:*:111111111111:volume/*"
    del volumes["Condition"]["StringLike"]
    statements.append(volumes)
    iam.write_text(json.dumps(doc))
    return bundle


# The regional endpoints iamgate serves (`--ec2-host-region`).
HOST_REGIONS = ("us-east-1", "eu-west-1", "us-west-2")


class Ec2Stack:
    """iamgate (the demo bundle, a message key, one trusted XFF hop, the
    regional hosts of `host_regions`) + stub EC2 backend + Envoy, torn down
    together; logs shown on failure. `failure_mode_allow` and
    `max_request_bytes` set Envoy's ext_authz filter; `args` go to iamgate;
    `bundle_edit` changes the production account's IAM file."""

    def __init__(self, tmp_path, envoy_bin, failure_mode_allow=False,
                 max_request_bytes=65536, args=(), host_regions=HOST_REGIONS,
                 bundle_edit=None):
        self.key_file = tmp_path / "message.key"
        self.key_file.write_text(secrets.token_hex(32) + "\n")
        hosts = [a for r in host_regions
                 for a in ("--ec2-host-region", f"ec2.{r}.amazonaws.com={r}")]
        # Callers are identified as a deployment does: a JWT that Envoy's
        # jwt_authn verifies, whose `prod` or `dev` claim names the user.
        self.issuer = Issuer()
        bundle = demo_bundle(tmp_path)
        if bundle_edit:
            iam = bundle / "iam" / f"{PROD}.json"
            doc = json.loads(iam.read_text())
            bundle_edit(doc)
            iam.write_text(json.dumps(doc))
        self.server = start_with_control(
            tmp_path, "--bundle", str(bundle), "--no-watch",
            "--default-mapping", "ec2-query", *hosts,
            "--message-key-file", str(self.key_file), "--xff-trusted-hops", "1",
            "--jwt-principal", f"{PAYLOAD_KEY}:prod=arn:aws:iam::{PROD}:user/{{claim}}",
            "--jwt-principal", f"{PAYLOAD_KEY}:dev=arn:aws:iam::{DEV}:user/{{claim}}",
            *args)
        self.backend = Backend(tmp_path, HERE / "backend.py")
        grpc_port = int(self.server.grpc.rsplit(":", 1)[1])
        try:
            self.envoy = Envoy(envoy_bin, tmp_path, HERE / "bootstrap.yaml",
                               iamgate_grpc_port=grpc_port, backend_port=self.backend.port,
                               failure_mode_allow=str(failure_mode_allow).lower(),
                               max_request_bytes=max_request_bytes, jwks=self.issuer.jwks)
        except Exception:
            self.backend.stop()
            self.server.stop()
            raise

    def identify(self, principal):
        """The `authorization` header of a verified JWT naming `principal`
        (a user of the production or development account)."""
        account, user = principal.split(":")[4], principal.split(":user/", 1)[1]
        claim = "prod" if account == PROD else "dev"
        return self.issuer.bearer(claim, **{claim: user})

    def call(self, principal, params, method="POST", host=None, headers=None, raw=None):
        """One EC2 Query API call through Envoy: the parameters form-encoded
        in the body (POST) or the query string (GET); `raw` sends a body or
        path verbatim. Returns (status, headers, body text)."""
        h = self.identify(principal) if principal else {}
        if host:
            h["host"] = host
        h.update(headers or {})
        if method == "POST":
            h.setdefault("content-type", FORM)
            body = raw if raw is not None else urlencode(params)
            status, hdrs, data = self.envoy.call("POST", "/", h, body=body)
        else:
            path = raw if raw is not None else "/?" + urlencode(params)
            status, hdrs, data = self.envoy.call("GET", path, h)
        return status, hdrs, data.decode()

    def actions(self):
        """The actions that reached the backend, in order."""
        return [r["action"] for r in self.backend.requests()]

    def close(self):
        self.envoy.stop()
        self.backend.stop()
        self.server.stop()
        print("---- envoy log (tail) ----\n" + self.envoy.log()[-8000:])
        print("---- iamgate log (tail) ----\n" + self.server.log()[-8000:])


@pytest.fixture(scope="module")
def stack(tmp_path_factory, envoy_bin):
    s = Ec2Stack(tmp_path_factory.mktemp("ec2"), envoy_bin)
    yield s
    s.close()


@pytest.fixture
def fresh(stack):
    """The module's stack, with the backend's record cleared."""
    stack.backend.record.write_text("")
    return stack


def error(body):
    """(Code, Message, RequestID) of an EC2 XML error document."""
    root = ET.fromstring(body)
    assert root.tag == "Response", body
    (err,) = root.findall("./Errors/Error")
    return err.findtext("Code"), err.findtext("Message"), root.findtext("RequestID")


def encoded_message(message):
    marker = "Encoded authorization failure message: "
    assert marker in message, message
    return message.split(marker, 1)[1]


def run_instances(image=PROD_AMI, tags=(("team", "blue"),), instance_type="t3.micro", **extra):
    p = {"Action": "RunInstances", "Version": "2016-11-15", "ImageId": image,
         "InstanceType": instance_type, "MinCount": "1", "MaxCount": "1", "SubnetId": SUBNET}
    for n, rtype in enumerate(("instance", "volume"), start=1):
        if tags:
            p[f"TagSpecification.{n}.ResourceType"] = rtype
            for m, (k, v) in enumerate(tags, start=1):
                p[f"TagSpecification.{n}.Tag.{m}.Key"] = k
                p[f"TagSpecification.{n}.Tag.{m}.Value"] = v
    p.update(extra)
    return p


# ---- RunInstances ------------------------------------------------------------

def test_run_instances_with_required_tags_reaches_the_backend(fresh):
    status, _, body = fresh.call(BOB, run_instances())
    assert status == 200, body
    assert "<RunInstancesResponse" in body
    (seen,) = fresh.backend.requests()
    assert seen["action"] == "RunInstances"
    assert seen["params"]["TagSpecification.1.Tag.1.Value"] == "blue"
    assert seen["headers"]["x-iamgate-principal"] == BOB
    assert seen["headers"]["x-iamgate-decision-id"]


def test_run_instances_without_required_tags_is_unauthorized(fresh):
    status, headers, body = fresh.call(BOB, run_instances(tags=()))
    assert status == 403, body
    assert headers["content-type"].startswith("text/xml")
    code, message, request_id = error(body)
    assert code == "UnauthorizedOperation"
    assert message.startswith(
        "You are not authorized to perform this operation. User: "
        f"{BOB} is not authorized to perform: ec2:RunInstances on resource: "
        f"arn:aws:ec2:us-east-1:{PROD}:instance/* because no identity-based policy allows "
        "the ec2:RunInstances action. Encoded authorization failure message: "), message
    assert request_id == headers["x-iamgate-decision-id"]
    assert fresh.actions() == []


def test_run_instances_with_a_large_instance_type_is_unauthorized(fresh):
    status, _, body = fresh.call(BOB, run_instances(instance_type="m5.24xlarge"))
    assert status == 403, body
    assert "instance/* because no identity-based policy allows" in error(body)[1]
    assert fresh.actions() == []


@pytest.mark.parametrize("image,status,code", [
    (AMI_SHARED, 200, None),                          # launch permission: our account
    ("ami-0b222000000000003", 200, None),             # shared with our OU
    ("ami-0b222000000000004", 200, None),             # shared with our organization
    (AMI_PRIVATE, 400, "InvalidAMIID.NotFound"),      # not shared: invisible to us
])
def test_run_instances_with_another_accounts_ami(fresh, image, status, code):
    got, _, body = fresh.call(BOB, run_instances(image=image))
    assert got == status, body
    if code:
        assert error(body)[:2] == (code, f"The image id '[{image}]' does not exist")
        assert fresh.actions() == []
    else:
        assert fresh.actions() == ["RunInstances"]


# ---- CreateVolume ------------------------------------------------------------

@pytest.mark.parametrize("snapshot,status", [
    (SNAP_SHARED, 200),
    ("snap-0b222000000000003", 200),  # public
    (SNAP_PRIVATE, 400),
])
def test_create_volume_from_another_accounts_snapshot(fresh, snapshot, status):
    params = {"Action": "CreateVolume", "AvailabilityZone": "us-east-1a", "SnapshotId": snapshot}
    got, _, body = fresh.call(ALICE, params)
    assert got == status, body
    if status == 400:
        assert error(body)[:2] == ("InvalidSnapshot.NotFound",
                                   f"The snapshot '{snapshot}' does not exist.")
        assert fresh.actions() == []
    else:
        assert fresh.actions() == ["CreateVolume"]


def test_create_volume_needs_the_iam_allow_too(fresh):
    """A shared snapshot still needs the caller's own allow: bob has none."""
    params = {"Action": "CreateVolume", "AvailabilityZone": "us-east-1a",
              "SnapshotId": SNAP_SHARED}
    status, _, body = fresh.call(BOB, params)
    assert status == 403, body
    assert (f"ec2:CreateVolume on resource: arn:aws:ec2:us-east-1:{PROD}:volume/* because no "
            "identity-based policy allows the ec2:CreateVolume action") in error(body)[1]
    assert fresh.actions() == []


# ---- Instances by tag --------------------------------------------------------

def test_terminate_instances_explicit_deny_names_the_instance(fresh):
    params = {"Action": "TerminateInstances", "InstanceId.1": BLUE_WEB}
    status, _, body = fresh.call(BOB, params)
    assert status == 403, body
    code, message, _ = error(body)
    assert code == "UnauthorizedOperation"
    assert (f"perform: ec2:TerminateInstances on resource: "
            f"arn:aws:ec2:us-east-1:{PROD}:instance/{BLUE_WEB} with an explicit deny in an "
            "identity-based policy. Encoded") in message, message
    # The administrator may terminate both tagged instances.
    params = {"Action": "TerminateInstances", "InstanceId.1": BLUE_WEB, "InstanceId.2": RED_APP}
    status, _, body = fresh.call(ALICE, params)
    assert status == 200, body
    (seen,) = fresh.backend.requests()
    assert seen["params"]["InstanceId.2"] == RED_APP


def test_stop_instances_follows_the_team_tag(fresh):
    status, _, body = fresh.call(BOB, {"Action": "StopInstances", "InstanceId.1": BLUE_WEB,
                                       "InstanceId.2": BLUE_DB})
    assert status == 200, body
    # One red instance among blue ones: the call fails and names it.
    status, _, body = fresh.call(BOB, {"Action": "StopInstances", "InstanceId.1": BLUE_WEB,
                                       "InstanceId.2": RED_APP})
    assert status == 403, body
    assert f"instance/{RED_APP} because no identity-based policy allows" in error(body)[1]
    assert fresh.actions() == ["StopInstances"]


def test_permissions_boundary_wording(fresh):
    """bob's team policy allows RebootInstances; his boundary does not."""
    status, _, body = fresh.call(BOB, {"Action": "RebootInstances", "InstanceId.1": BLUE_WEB})
    assert status == 403, body
    assert (f"instance/{BLUE_WEB} because no permissions boundary allows the "
            "ec2:RebootInstances action.") in error(body)[1]


def test_describe_instances_over_get_and_post(fresh):
    assert fresh.call(BOB, {"Action": "DescribeInstances"}, method="GET")[0] == 200
    status, _, body = fresh.call(BOB, {"Action": "DescribeInstances",
                                       "Filter.1.Name": "tag:team", "Filter.1.Value.1": "blue"})
    assert status == 200, body
    assert fresh.actions() == ["DescribeInstances", "DescribeInstances"]
    # An unknown principal is not authorized (no resource for Describe*).
    status, _, body = fresh.call(f"arn:aws:iam::{PROD}:user/mallory", {"Action": "DescribeInstances"})
    assert status == 403, body
    assert "perform: ec2:DescribeInstances because no identity-based policy" in error(body)[1]


def test_region_from_the_host_and_the_scp(fresh):
    """Regional hosts use the default mapping, each with the region the
    operator mapped it to; production may use only us-east-1 and eu-west-1
    (an SCP)."""
    status, _, body = fresh.call(BOB, {"Action": "DescribeInstances"},
                                 host="ec2.eu-west-1.amazonaws.com")
    assert status == 200, body
    status, _, body = fresh.call(BOB, {"Action": "DescribeInstances"},
                                 host="ec2.us-west-2.amazonaws.com")
    assert status == 403, body
    assert ("ec2:DescribeInstances with an explicit deny in a service control policy."
            in error(body)[1])
    # A host the operator did not map is refused, whatever region it names.
    status, _, body = fresh.call(BOB, {"Action": "DescribeInstances"},
                                 host="ec2.eu-west-9.amazonaws.com")
    assert status == 400, body
    assert error(body)[0] == "InvalidRequest"
    assert fresh.actions() == ["DescribeInstances"]


# ---- DryRun -------------------------------------------------------------------

@pytest.mark.parametrize("principal,params,status,code", [
    (BOB, run_instances(DryRun="true"), 412, "DryRunOperation"),
    (BOB, run_instances(tags=(), DryRun="true"), 403, "UnauthorizedOperation"),
    (BOB, {"Action": "TerminateInstances", "InstanceId.1": BLUE_WEB, "DryRun": "true"},
     403, "UnauthorizedOperation"),
    (ALICE, {"Action": "TerminateInstances", "InstanceId.1": BLUE_WEB, "DryRun": "true"},
     412, "DryRunOperation"),
    (BOB, {"Action": "DescribeInstances", "DryRun": "true"}, 412, "DryRunOperation"),
])
def test_dry_run_never_reaches_the_backend(fresh, principal, params, status, code):
    got, _, body = fresh.call(principal, params)
    assert got == status, body
    got_code, message, _ = error(body)
    assert got_code == code
    if code == "DryRunOperation":
        assert message == "Request would have succeeded, but DryRun flag is set."
    assert fresh.actions() == []


# ---- Malformed and unknown --------------------------------------------------

@pytest.mark.parametrize("method,raw,code,why", [
    ("GET", "/?Action=DescribeInstances&InstanceId.1=i-1%zz", "MalformedQueryString",
     "invalid percent-encoding"),
    ("GET", "/?Action=DescribeInstances&Action=RunInstances", "MalformedQueryString",
     "more than once"),
    ("POST", "Action=DescribeInstances&InstanceId.01=i-1", "MalformedQueryString",
     "no leading zeros"),
    ("POST", "Action=DescribeInstances&InstanceId..1=i-1", "MalformedQueryString",
     "empty segment"),
    ("POST", f"Action=StopInstances&InstanceId.1={BLUE_WEB}&InstanceId.3={BLUE_DB}",
     "MalformedQueryString", "skips index 2"),
    ("GET", "/?Version=2016-11-15", "MissingAction", "Action"),
    ("POST", "Action=DescribeInstances&DryRun=maybe", "InvalidParameterValue", "DryRun"),
])
def test_malformed_queries_are_400s_that_say_why(fresh, method, raw, code, why):
    status, _, body = fresh.call(BOB, {}, method=method, raw=raw)
    assert status == 400, body
    got, message, request_id = error(body)
    assert got == code, body
    assert why in message, message
    uuid.UUID(request_id)
    assert fresh.actions() == []


def test_query_and_body_together_and_duplicates_across_them(fresh):
    status, _, body = fresh.envoy.call(
        "POST", "/?Action=DescribeInstances",
        {**fresh.identify(BOB), "content-type": FORM}, body="MaxResults=5")[0:3]
    assert status == 200, body
    status, _, body = fresh.envoy.call(
        "POST", "/?Action=DescribeInstances",
        {**fresh.identify(BOB), "content-type": FORM}, body="Action=TerminateInstances")
    assert status == 400, body
    assert "more than once" in error(body.decode())[1]
    assert fresh.actions() == ["DescribeInstances"]


def test_unknown_action_is_invalid_action(fresh):
    status, _, body = fresh.call(BOB, {"Action": "LaunchRockets"})
    assert status == 400, body
    assert error(body)[:2] == ("InvalidAction",
                               "The action LaunchRockets is not valid for this web service.")
    assert fresh.actions() == []


def test_no_principal_is_auth_failure(fresh):
    status, _, body = fresh.call(None, {"Action": "DescribeInstances"})
    assert status == 401, body
    assert error(body)[0] == "AuthFailure"
    assert fresh.actions() == []


# ---- Sharing an AMI at runtime ----------------------------------------------

def report_grants(stack, resource_id, add=(), remove=()):
    """What the control plane does once the backend confirmed a permission
    change: report it through the authenticated inventory API."""
    r = control_post(stack.server, "/v1/inventory", json={"changes": [
        {"op": "grants", "id": resource_id, "add": list(add), "remove": list(remove)}]})
    assert r.status_code == 200, r.text
    assert r.json()["applied"]["grants_changed"] == 1


def test_modify_image_attribute_shares_an_ami_then_run_instances_succeeds(fresh):
    share = {"Action": "ModifyImageAttribute", "ImageId": AMI_PRIVATE,
             "LaunchPermission.Add.1.UserId": PROD}
    # bob cannot share dev's image ...
    status, _, body = fresh.call(BOB, {**share, "LaunchPermission.Add.1.UserId": PROD})
    assert status == 403, body
    # ... nor launch it yet.
    assert fresh.call(BOB, run_instances(image=AMI_PRIVATE))[0] == 400
    # A DryRun share changes nothing.
    assert fresh.call(DAVE, {**share, "DryRun": "true"})[0] == 412
    assert fresh.call(BOB, run_instances(image=AMI_PRIVATE))[0] == 400
    # The owner shares it with production; the backend sees the call.
    status, _, body = fresh.call(DAVE, share)
    assert status == 200, body
    # iamgate does not see the backend's answer, so the share takes effect
    # once the control plane reports the confirmed change.
    assert fresh.call(BOB, run_instances(image=AMI_PRIVATE))[0] == 400
    report_grants(fresh, AMI_PRIVATE, add=[{"account": PROD}])
    status, _, body = fresh.call(BOB, run_instances(image=AMI_PRIVATE))
    assert status == 200, body
    assert fresh.actions() == ["ModifyImageAttribute", "RunInstances"]
    # Taking it back.
    unshare = {"Action": "ModifyImageAttribute", "ImageId": AMI_PRIVATE,
               "LaunchPermission.Remove.1.UserId": PROD}
    assert fresh.call(DAVE, unshare)[0] == 200
    report_grants(fresh, AMI_PRIVATE, remove=[{"account": PROD}])
    assert fresh.call(BOB, run_instances(image=AMI_PRIVATE))[0] == 400


def test_modify_snapshot_attribute_shares_a_snapshot(fresh):
    create = {"Action": "CreateVolume", "AvailabilityZone": "us-east-1a",
              "SnapshotId": SNAP_PRIVATE}
    assert fresh.call(ALICE, create)[0] == 400
    share = {"Action": "ModifySnapshotAttribute", "SnapshotId": SNAP_PRIVATE,
             "Attribute": "createVolumePermission", "OperationType": "add",
             "UserId.1": PROD}
    status, _, body = fresh.call(DAVE, share)
    assert status == 200, body
    report_grants(fresh, SNAP_PRIVATE, add=[{"account": PROD}])
    status, _, body = fresh.call(ALICE, create)
    assert status == 200, body
    assert fresh.actions() == ["ModifySnapshotAttribute", "CreateVolume"]


# ---- Encoded authorization failure messages ---------------------------------

def test_failure_message_decodes_with_the_cli_and_the_control_endpoint(fresh):
    status, headers, body = fresh.call(
        BOB, {"Action": "TerminateInstances", "InstanceId.1": BLUE_DB},
        headers={"x-forwarded-for": "203.0.113.7"})
    assert status == 403, body
    encoded = encoded_message(error(body)[1])

    out = subprocess.run([str(BINARY), "decode-message", "--key-file", str(fresh.key_file),
                          encoded], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["allowed"] is False and doc["explicitDeny"] is True
    (stmt,) = doc["matchedStatements"]["items"]
    assert stmt["statementId"] == "NoTerminate" and stmt["effect"] == "DENY"
    ctx = doc["context"]
    assert ctx["principal"]["arn"] == BOB
    assert ctx["action"] == "ec2:TerminateInstances"
    assert ctx["resource"] == f"arn:aws:ec2:us-east-1:{PROD}:instance/{BLUE_DB}"
    conditions = {c["key"]: [v["value"] for v in c["values"]["items"]]
                  for c in ctx["conditions"]["items"]}
    assert conditions["aws:SourceIp"] == ["203.0.113.7"]  # one trusted hop
    assert conditions["ec2:ResourceTag/team"] == ["blue"]
    assert conditions["aws:RequestedRegion"] == ["us-east-1"]
    assert conditions["ec2:Region"] == ["us-east-1"]
    assert conditions["aws:SecureTransport"] == ["false"]
    assert doc["iamgate"]["decisionId"] == headers["x-iamgate-decision-id"]

    r = control_post(fresh.server, "/v1/decode-authorization-message", json={"message": encoded})
    assert r.status_code == 200, r.text
    assert r.json() == doc

    # Another key cannot read it, nor can a tampered message be read.
    other = fresh.key_file.parent / "other.key"
    other.write_text(secrets.token_hex(32))
    out = subprocess.run([str(BINARY), "decode-message", "--key-file", str(other), encoded],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and out.stdout == ""
    assert "does not authenticate" in out.stderr
    tampered = encoded[:-2] + ("AA" if encoded[-2:] != "AA" else "BA")
    r = control_post(fresh.server, "/v1/decode-authorization-message",
                     json={"message": tampered})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "bad_request"


def test_decision_log_and_metrics_count_every_authorization(fresh):
    before = requests.get(fresh.server.admin + "/metrics", timeout=5).text
    assert fresh.call(BOB, run_instances())[0] == 200
    after = requests.get(fresh.server.admin + "/metrics", timeout=5).text

    def allowed(text):
        for line in text.splitlines():
            if line.startswith("iamgate_decisions_total{") and 'frontend="ext_authz"' in line \
                    and 'decision="allowed"' in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0
    # Instance, image, subnet, security group, volume, and tag-on-create.
    assert allowed(after) - allowed(before) >= 4


def test_ephemeral_key_without_a_key_file(tmp_path):
    server = start_server(tmp_path)
    try:
        deadline = time.monotonic() + 5
        while "ephemeral" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "cannot be decoded after a restart" in server.log()
    finally:
        server.stop()


# ---- Instance profiles: iam:PassRole -------------------------------------------

APP_ROLE = f"arn:aws:iam::{PROD}:role/service/ops-automation"
ERIN = f"arn:aws:iam::{PROD}:user/engineering/erin"


def add_erin(doc):
    """erin: bob's policies without his boundary, plus iam:PassRole of the
    ops-automation role to EC2 (the `app` instance profile's role)."""
    (bob,) = [u for u in doc["UserDetailList"] if u["UserName"] == "bob"]
    erin = copy.deepcopy(bob)
    erin.update(UserName="erin", UserId="AIDADEMOERIN00000001", Arn=ERIN)
    del erin["PermissionsBoundary"]
    erin["UserPolicyList"].append({"PolicyName": "PassAppRole", "PolicyDocument": {
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "iam:PassRole", "Resource": APP_ROLE,
            "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}}]}})
    doc["UserDetailList"].append(erin)


@pytest.fixture(scope="module")
def passrole_stack(tmp_path_factory, envoy_bin):
    s = Ec2Stack(tmp_path_factory.mktemp("ec2-passrole"), envoy_bin, bundle_edit=add_erin)
    yield s
    s.close()


@pytest.fixture
def passrole(passrole_stack):
    passrole_stack.backend.record.write_text("")
    return passrole_stack


def test_run_instances_with_a_profile_needs_pass_role(passrole):
    """issue 13: launching with an instance profile passes its role to EC2,
    so the caller also needs iam:PassRole on it (iam:PassedToService =
    ec2.amazonaws.com); RunInstances alone is not enough."""
    for profile in ({"IamInstanceProfile.Name": "app"},
                    {"IamInstanceProfile.Arn": f"arn:aws:iam::{PROD}:instance-profile/app"}):
        status, _, body = passrole.call(BOB, run_instances(**profile))
        assert status == 403, body
        code, message, _ = error(body)
        assert code == "UnauthorizedOperation"
        assert message.startswith(
            "You are not authorized to perform this operation. User: "
            f"{BOB} is not authorized to perform: iam:PassRole on resource: {APP_ROLE} "
            "because no identity-based policy allows the iam:PassRole action."), message
        assert passrole.actions() == []

        # The same launch by a user who may pass the role reaches EC2.
        status, _, body = passrole.call(ERIN, run_instances(**profile))
        assert status == 200, body
        (seen,) = passrole.backend.requests()
        assert seen["action"] == "RunInstances"
        assert seen["headers"]["x-iamgate-principal"] == ERIN
        passrole.backend.record.write_text("")


def test_unknown_instance_profile_is_invalid_parameter_value(passrole):
    """issue 13: a profile the account does not have is refused as EC2
    refuses it, before any decision, and never reaches the backend."""
    status, _, body = passrole.call(ERIN, run_instances(**{"IamInstanceProfile.Name": "nope"}))
    assert status == 400, body
    code, message, _ = error(body)
    assert code == "InvalidParameterValue"
    assert message == ("Value (nope) for parameter iamInstanceProfile.name is invalid. "
                       "Invalid IAM Instance Profile name")
    other = f"arn:aws:iam::{DEV}:instance-profile/app"
    status, _, body = passrole.call(ALICE, {
        "Action": "AssociateIamInstanceProfile", "Version": "2016-11-15",
        "InstanceId": BLUE_WEB, "IamInstanceProfile.Arn": other})
    assert status == 400, body
    assert error(body)[:2] == ("InvalidParameterValue", (
        f"Value ({other}) for parameter iamInstanceProfile.arn is invalid. "
        "Invalid IAM Instance Profile ARN"))
    assert passrole.actions() == []
