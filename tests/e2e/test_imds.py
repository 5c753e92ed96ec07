"""Issue 13, "IAM roles for EC2 instances": iamgate's instance metadata
credentials listener (`--imds-listen`, IMDSv2-compatible) hands an
instance of the inventory the temporary credentials of its instance
profile's role; botocore's own instance-metadata credential provider
(`AWS_EC2_METADATA_SERVICE_ENDPOINT`, no other credentials anywhere)
fetches them and calls EC2 as the role through the real Envoy -> iamgate
(ext_authz, `--ec2-auth sigv4`) -> `moto` in server mode.

The bundle is the demo bundle plus (written here), in 111111111111:
- role `imds-web` (trusts the service principal ec2.amazonaws.com) with
  instance profile `imds-web`; it may describe instances and VPCs, describe
  subnets only from its own instance (ec2:SourceInstanceARN,
  aws:EC2InstanceSourceVPC, aws:EC2InstanceSourcePrivateIPv4), and describe
  images only from another instance;
- role `imds-untrusted` (trusts only the account) with profile
  `imds-untrusted`;
- instance i-0dd1000000000000a at 127.0.0.1 (profile imds-web,
  HttpTokens required) and i-0dd1000000000000b at 127.0.0.2 (profile
  imds-untrusted, HttpTokens optional).
The instance is the TCP peer address: requests from 127.0.0.2 bind that
source address (all of 127/8 is local on Linux).
"""

import http.client
import json
import pathlib
import secrets
import shutil
import time

import pytest
import requests

from control_util import start_with_control
from envoy_util import Envoy, envoy_binary
from jwt_util import Issuer
from test_sigv4_ec2 import Moto

pytest.importorskip("boto3")
import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PROD = "111111111111"
REGION = "us-east-1"
WEB_ROLE = f"arn:aws:iam::{PROD}:role/imds-web"
UNTRUSTED_ROLE = f"arn:aws:iam::{PROD}:role/imds-untrusted"
WEB_PROFILE = f"arn:aws:iam::{PROD}:instance-profile/imds-web"
UNTRUSTED_PROFILE = f"arn:aws:iam::{PROD}:instance-profile/imds-untrusted"
WEB_ID, OTHER_ID = "i-0dd1000000000000a", "i-0dd1000000000000b"
WEB_ARN = f"arn:aws:ec2:{REGION}:{PROD}:instance/{WEB_ID}"
OTHER_ARN = f"arn:aws:ec2:{REGION}:{PROD}:instance/{OTHER_ID}"
VPC = "vpc-0dd10000000000001"


def doc(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def role(name, trust, policy, profile_arn, profile_id):
    arn = f"arn:aws:iam::{PROD}:role/{name}"
    return {
        "Path": "/", "RoleName": name, "RoleId": f"AROA{name.upper().replace('-', '')}",
        "Arn": arn, "CreateDate": "2026-01-01T00:00:00Z",
        "AssumeRolePolicyDocument": trust,
        "InstanceProfileList": [{
            "Path": "/", "InstanceProfileName": name, "InstanceProfileId": profile_id,
            "Arn": profile_arn, "CreateDate": "2026-01-01T00:00:00Z",
            "Roles": [{"Path": "/", "RoleName": name, "Arn": arn}]}],
        "RolePolicyList": [{"PolicyName": "p", "PolicyDocument": policy}],
        "AttachedManagedPolicies": [], "Tags": [],
    }


def instance(iid, ip, profile, tokens):
    return {
        "InstanceId": iid, "InstanceType": "t3.micro", "ImageId": "ami-0dd10000000000001",
        "PrivateIpAddress": ip, "VpcId": VPC, "SubnetId": "subnet-0dd10000000000001",
        "Placement": {"AvailabilityZone": "us-east-1a", "Tenancy": "default"},
        "IamInstanceProfile": {"Arn": profile, "Id": "AIPAX"},
        "MetadataOptions": {"HttpTokens": tokens, "HttpEndpoint": "enabled"},
        "State": {"Name": "running"}, "Tags": [],
    }


def write_bundle(dest):
    shutil.copytree(ROOT / "src" / "bundle" / "demo", dest)
    prod = dest / "iam" / f"{PROD}.json"
    d = json.loads(prod.read_text())
    ec2_trust = doc({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                     "Action": "sts:AssumeRole"})
    web_policy = doc(
        {"Effect": "Allow", "Action": ["ec2:DescribeInstances", "ec2:DescribeVpcs"],
         "Resource": "*"},
        {"Effect": "Allow", "Action": "ec2:DescribeSubnets", "Resource": "*",
         "Condition": {"StringEquals": {"ec2:SourceInstanceARN": WEB_ARN,
                                        "aws:EC2InstanceSourceVPC": VPC,
                                        "aws:EC2InstanceSourcePrivateIPv4": "127.0.0.1"}}},
        {"Effect": "Allow", "Action": "ec2:DescribeImages", "Resource": "*",
         "Condition": {"StringEquals": {"ec2:SourceInstanceARN": OTHER_ARN}}})
    d["RoleDetailList"].append(role("imds-web", ec2_trust, web_policy, WEB_PROFILE,
                                    "AIPAIMDSWEB000000001"))
    account_trust = doc({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{PROD}:root"},
                         "Action": "sts:AssumeRole"})
    d["RoleDetailList"].append(role("imds-untrusted", account_trust, web_policy,
                                    UNTRUSTED_PROFILE, "AIPAIMDSUNTRUSTED001"))
    prod.write_text(json.dumps(d))
    (dest / "ec2" / PROD / REGION / "describe-instances-imds.json").write_text(json.dumps(
        {"Reservations": [{"OwnerId": PROD, "ReservationId": "r-0dd10000000000001",
                           "Groups": [], "Instances": [
                               instance(WEB_ID, "127.0.0.1", WEB_PROFILE, "required"),
                               instance(OTHER_ID, "127.0.0.2", UNTRUSTED_PROFILE, "optional")]}]}))


class Stack:
    def __init__(self, tmp):
        write_bundle(tmp / "bundle")
        session_key = tmp / "session.keys"
        session_key.write_text(f"k1 {secrets.token_hex(32)}\n")
        self.server = start_with_control(
            tmp, "--no-watch", "--bundle", str(tmp / "bundle"),
            "--default-mapping", "ec2-query", "--ec2-auth", "sigv4",
            "--session-key", str(session_key), "--imds-listen", "127.0.0.1:0",
            "--decision-log", str(tmp / "decisions.jsonl"))
        self.decision_log = tmp / "decisions.jsonl"
        self.imds_port = int(self.server.addrs["imds"].rsplit(":", 1)[1])
        self.moto = Moto(tmp)
        grpc_port = int(self.server.grpc.rsplit(":", 1)[1])
        try:
            self.envoy = Envoy(envoy_binary(), tmp, HERE / "ec2" / "bootstrap.yaml",
                               iamgate_grpc_port=grpc_port, backend_port=self.moto.port,
                               failure_mode_allow="false", max_request_bytes=65536,
                               jwks=Issuer().jwks)
        except Exception:
            self.moto.stop()
            self.server.stop()
            raise
        self.ec2_url = f"http://127.0.0.1:{self.envoy.port}"

    def imds(self, method, path, headers=None, source="127.0.0.1"):
        """One request to the metadata listener from `source`."""
        c = http.client.HTTPConnection("127.0.0.1", self.imds_port, timeout=5,
                                       source_address=(source, 0))
        try:
            c.request(method, path, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read().decode()
        finally:
            c.close()

    def token(self, source="127.0.0.1", ttl="60"):
        status, body = self.imds("PUT", "/latest/api/token",
                                 {"X-aws-ec2-metadata-token-ttl-seconds": ttl}, source)
        assert status == 200, body
        return body

    def stop(self):
        self.envoy.stop()
        self.moto.stop()
        self.server.stop()

    def logs(self):
        return self.server.log() + self.envoy.log()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("imds"))
    yield s
    s.stop()


@pytest.fixture
def instance_env(stack, monkeypatch, tmp_path):
    """Only the instance metadata endpoint as a credential source."""
    import os
    for k in list(os.environ):
        if k.startswith("AWS_"):
            monkeypatch.delenv(k)
    empty = tmp_path / "empty"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT",
                       f"http://127.0.0.1:{stack.imds_port}")
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv4")


def code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def test_botocore_instance_provider_calls_ec2_as_the_role(stack, instance_env):
    """Issue 13: botocore's instance-metadata provider gets the role's
    credentials over IMDSv2; EC2 calls through Envoy are decided for
    `assumed-role/imds-web/<instance id>`: allowed by the role's policy,
    refused with UnauthorizedOperation otherwise, and the
    ec2:SourceInstanceARN / aws:EC2InstanceSource* keys hold the instance's
    values."""
    session = boto3.Session(region_name=REGION)
    creds = session.get_credentials()
    assert creds is not None, stack.logs()
    assert creds.method == "iam-role"
    frozen = creds.get_frozen_credentials()
    assert frozen.access_key.startswith("ASIA") and frozen.token
    ec2 = session.client("ec2", endpoint_url=stack.ec2_url,
                         config=Config(retries={"max_attempts": 1}))
    ec2.describe_instances()
    ec2.describe_vpcs()
    # Allowed only from this very instance, VPC and address.
    ec2.describe_subnets()
    with pytest.raises(ClientError) as e:
        ec2.describe_images(Owners=["self"])  # allowed only from another instance
    assert code(e) == "UnauthorizedOperation"
    with pytest.raises(ClientError) as e:
        ec2.describe_key_pairs()  # not in the role's policy
    assert code(e) == "UnauthorizedOperation"
    principal = f"arn:aws:sts::{PROD}:assumed-role/imds-web/{WEB_ID}"
    want = {("ec2:DescribeSubnets", "allowed"), ("ec2:DescribeImages", "implicitDeny"),
            ("ec2:DescribeKeyPairs", "implicitDeny")}
    deadline = time.monotonic() + 5  # the decision log is written asynchronously
    while True:
        text = stack.decision_log.read_text()
        # Only whole lines: the last one may be being written.
        decisions = [json.loads(line) for line in text[:text.rfind("\n") + 1].splitlines()]
        got = {(d["action"], d["decision"]) for d in decisions
               if d.get("principal") == principal}
        if want <= got or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert want <= got, decisions[-5:]


def test_token_protocol_and_http_tokens(stack):
    """Issue 13: IMDSv2 tokens (TTL 1..21600, bound to the address that got
    them) are required when the instance's HttpTokens is `required`;
    IMDSv1 works only where it is `optional`; unknown addresses get 404."""
    status, _ = stack.imds("GET", "/latest/meta-data/iam/security-credentials/")
    assert status == 401
    status, _ = stack.imds("GET", "/latest/meta-data/iam/info",
                           {"X-aws-ec2-metadata-token": "1.99999999999.AAAA"})
    assert status == 401
    for ttl in ["0", "21601", "x"]:
        status, _ = stack.imds("PUT", "/latest/api/token",
                               {"X-aws-ec2-metadata-token-ttl-seconds": ttl})
        assert status == 400, ttl
    status, _ = stack.imds("PUT", "/latest/api/token")
    assert status == 400
    token = stack.token()
    status, body = stack.imds("GET", "/latest/meta-data/iam/security-credentials/",
                              {"X-aws-ec2-metadata-token": token})
    assert (status, body) == (200, "imds-web")
    status, body = stack.imds("GET", "/latest/meta-data/iam/info",
                              {"X-aws-ec2-metadata-token": token})
    assert status == 200
    info = json.loads(body)
    assert info["InstanceProfileArn"] == WEB_PROFILE
    assert info["InstanceProfileId"] == "AIPAIMDSWEB000000001"
    status, body = stack.imds("GET", "/latest/meta-data/iam/security-credentials/imds-web",
                              {"X-aws-ec2-metadata-token": token})
    assert status == 200
    c = json.loads(body)
    assert c["Code"] == "Success" and c["Type"] == "AWS-HMAC"
    assert set(c) >= {"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "LastUpdated"}
    status, _ = stack.imds("GET", "/latest/meta-data/iam/security-credentials/other",
                           {"X-aws-ec2-metadata-token": token})
    assert status == 404
    # A token is bound to its address: the other instance cannot use it.
    status, _ = stack.imds("GET", "/latest/meta-data/iam/info",
                           {"X-aws-ec2-metadata-token": token}, source="127.0.0.2")
    assert status == 401
    # HttpTokens optional: IMDSv1 (no token) answers.
    status, body = stack.imds("GET", "/latest/meta-data/iam/security-credentials/",
                              source="127.0.0.2")
    assert (status, body) == (200, "imds-untrusted")
    status, _ = stack.imds("PUT", "/latest/api/token",
                           {"X-aws-ec2-metadata-token-ttl-seconds": "60"}, source="127.0.0.3")
    assert status == 404


def test_role_that_does_not_trust_ec2_gets_no_credentials(stack):
    """Issue 13: an instance profile whose role's trust policy does not allow
    ec2.amazonaws.com gets no credentials (IAM User Guide: a role trust
    policy must allow the service principal explicitly)."""
    token = stack.token(source="127.0.0.2")
    status, body = stack.imds("GET",
                              "/latest/meta-data/iam/security-credentials/imds-untrusted",
                              {"X-aws-ec2-metadata-token": token}, source="127.0.0.2")
    assert status == 200
    answer = json.loads(body)
    assert answer["Code"] == "AssumeRoleUnauthorizedAccess"
    assert "AccessKeyId" not in answer and "Token" not in answer


def test_instance_added_at_runtime_through_the_inventory_api(stack):
    """Issue 13: an instance the control plane adds at runtime (JSON
    inventory API: its `addresses`, of which `private_ip` is the primary
    private one, and `http_tokens`) is recognised at once; an
    `http_tokens` other than required/optional is refused with its path."""
    def change(iid, tokens):
        return {"changes": [{"op": "upsert", "resource": {
            "id": iid, "account": PROD, "region": REGION,
            "attributes": {"instance_profile": WEB_PROFILE, "vpc_id": VPC,
                           "addresses": ["127.0.0.3"], "private_ip": "127.0.0.3",
                           "http_tokens": tokens}}}]}
    r = requests.post(stack.server.control + "/v1/inventory",
                      json=change("i-0dd1000000000000c", "always"),
                      headers=stack.server.auth, timeout=10)
    assert r.status_code == 400 and "http_tokens" in r.text, r.text
    status, _ = stack.imds("GET", "/latest/meta-data/iam/security-credentials/",
                           source="127.0.0.3")
    assert status == 404
    r = requests.post(stack.server.control + "/v1/inventory",
                      json=change("i-0dd1000000000000c", "optional"),
                      headers=stack.server.auth, timeout=10)
    assert r.status_code == 200, r.text
    status, body = stack.imds("GET", "/latest/meta-data/iam/security-credentials/imds-web",
                              source="127.0.0.3")
    assert status == 200 and json.loads(body)["Code"] == "Success", body


def test_instance_metadata_categories_and_metrics(stack):
    """Issue 13: the common metadata categories come from the inventory
    (`instance-id`, `local-ipv4`, `instance-type`, `ami-id`,
    `placement/availability-zone`, `placement/region`, the listings of
    `/latest/meta-data/` and `placement/`), under the same token rules;
    botocore's own IMDS region fetcher reads the zone; requests are
    counted in `iamgate_imds_requests_total` by path kind and status."""
    from botocore.utils import InstanceMetadataRegionFetcher
    fetcher = InstanceMetadataRegionFetcher(
        timeout=5, num_attempts=1,
        config={"ec2_metadata_service_endpoint": f"http://127.0.0.1:{stack.imds_port}"})
    assert fetcher.retrieve_region() == REGION
    token = {"X-aws-ec2-metadata-token": stack.token()}
    status, body = stack.imds("GET", "/latest/meta-data/", token)
    assert status == 200
    assert body.split("\n") == ["ami-id", "iam/", "instance-id", "instance-type",
                                "local-ipv4", "placement/"]
    for path, want in [("instance-id", WEB_ID), ("local-ipv4", "127.0.0.1"),
                       ("instance-type", "t3.micro"), ("ami-id", "ami-0dd10000000000001"),
                       ("placement/availability-zone", "us-east-1a"),
                       ("placement/region", REGION),
                       ("placement", "availability-zone\nregion"),
                       ("placement/", "availability-zone\nregion")]:
        assert stack.imds("GET", f"/latest/meta-data/{path}", token) == (200, want), path
    assert stack.imds("GET", "/latest/meta-data/no-such-thing", token)[0] == 404
    # Token rules as for credentials: required here, IMDSv1 on the other.
    assert stack.imds("GET", "/latest/meta-data/instance-id")[0] == 401
    assert stack.imds("GET", "/latest/meta-data/instance-id", source="127.0.0.2") == (200, OTHER_ID)
    metrics = requests.get(stack.server.admin + "/metrics", timeout=10).text
    counts = {}
    for line in metrics.splitlines():
        if line.startswith("iamgate_imds_requests_total{"):
            labels, value = line.rsplit(" ", 1)
            counts[labels] = float(value)
    assert counts.get('iamgate_imds_requests_total{path="metadata",status="200"}', 0) >= 9
    assert counts.get('iamgate_imds_requests_total{path="metadata",status="404"}', 0) >= 1
    assert counts.get('iamgate_imds_requests_total{path="metadata",status="401"}', 0) >= 1
    assert counts.get('iamgate_imds_requests_total{path="token",status="200"}', 0) >= 2


def test_instance_added_through_the_grpc_inventory_api(stack, tmp_path_factory):
    """Issue 13: the gRPC inventory API (stubs generated from the shipped
    proto with grpcio-tools) carries `private_ip` and `http_tokens` as the
    JSON API does: an instance upserted over gRPC is recognised by its
    private address, IMDSv1 follows its `http_tokens`, `Get` returns both,
    and a bad `http_tokens` is INVALID_ARGUMENT naming the field."""
    import grpc

    from conftest import grpc_stubs
    pb2, pb2_grpc = grpc_stubs(tmp_path_factory, "inventory")
    iid = "i-0dd1000000000000d"

    def upsert(tokens):
        return pb2.ApplyInventoryRequest(changes=[pb2.InventoryChange(upsert=pb2.InventoryResource(
            id=iid, account=PROD, region=REGION,
            attributes=pb2.InventoryAttributes(
                instance_profile=WEB_PROFILE, vpc_id=VPC, addresses=["127.0.0.4"],
                private_ip="127.0.0.4", http_tokens=tokens)))])

    md = stack.server.grpc_auth
    with grpc.insecure_channel(stack.server.addrs["control"]) as ch:
        stub = pb2_grpc.InventoryStub(ch)
        with pytest.raises(grpc.RpcError) as e:
            stub.Apply(upsert("always"), timeout=10, metadata=md)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "http_tokens" in e.value.details()
        stub.Apply(upsert("optional"), timeout=10, metadata=md)
        got = stub.Get(pb2.GetInventoryResourceRequest(id=iid), timeout=10, metadata=md).resource
        assert got.attributes.private_ip == "127.0.0.4"
        assert got.attributes.http_tokens == "optional"
    status, body = stack.imds("GET", "/latest/meta-data/instance-id", source="127.0.0.4")
    assert (status, body) == (200, iid)
    with grpc.insecure_channel(stack.server.addrs["control"]) as ch:
        pb2_grpc.InventoryStub(ch).Apply(upsert("required"), timeout=10, metadata=md)
    assert stack.imds("GET", "/latest/meta-data/instance-id", source="127.0.0.4")[0] == 401
