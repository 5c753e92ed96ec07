"""Issue 13, "Credentials and SigV4": clients nobody here wrote (the AWS
CLI and boto3/botocore, from PyPI) sign EC2 Query API calls with IAM users'
access keys; the real Envoy forwards them, body included, to iamgate's
ext_authz, which verifies the signature (`--ec2-auth sigv4`, keys from
`--credentials`) and decides as the user the signature names; `moto` in
server mode is the EC2 backend (it accepts any signature, so it sits behind
the authorizer).

Demo principals (account 111111111111): alice is an administrator; carol
(group operators) may describe but never terminate; bob's key is also
listed as Inactive.
"""

import json
import os
import pathlib
import secrets
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest
import requests

from control_util import start_with_control
from envoy_util import Envoy, envoy_binary
from jwt_util import Issuer

pytest.importorskip("boto3")
import boto3  # noqa: E402
from botocore.auth import SigV4Auth, SigV4QueryAuth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
BIN = pathlib.Path(sys.executable).parent
PROD = "111111111111"
ALICE = f"arn:aws:iam::{PROD}:user/alice"
CAROL = f"arn:aws:iam::{PROD}:user/carol"
FORM = "application/x-www-form-urlencoded; charset=utf-8"
REGION = "us-east-1"
# An instance of the demo inventory (team blue).
BLUE_WEB = "i-0a111000000000001"


def key(user, status="Active"):
    """An access key as `aws iam create-access-key` prints it."""
    return {"AccessKey": {
        "UserName": user,
        "AccessKeyId": "AKIA" + secrets.token_hex(8).upper(),
        "Status": status,
        "SecretAccessKey": secrets.token_urlsafe(30),
        "CreateDate": "2026-01-01T00:00:00Z",
    }}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Moto:
    """`moto_server` as the EC2 backend."""

    def __init__(self, tmp_path):
        self.port = free_port()
        self.log_path = tmp_path / "moto.log"
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen([str(BIN / "moto_server"), "-p", str(self.port)],
                                     stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto_server did not start")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Stack:
    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.keys = {"alice": key("alice"), "carol": key("carol"),
                     "bob": key("bob", status="Inactive")}
        self.creds_file = tmp_path / "credentials.json"
        self.write_credentials()
        self.decision_log = tmp_path / "decisions.jsonl"
        # `x-caller` is a trusted principal header on proxy-authenticated
        # routes; on a SigV4 route it must change nothing.
        self.server = start_with_control(
            tmp_path, "--no-watch", "--default-mapping", "ec2-query",
            "--ec2-auth", "sigv4", "--credentials", str(self.creds_file),
            "--principal-header", "x-caller", "--decision-log", str(self.decision_log),
            "--message-key-file", str(self.message_key()))
        self.moto = Moto(tmp_path)
        grpc_port = int(self.server.grpc.rsplit(":", 1)[1])
        try:
            self.envoy = Envoy(envoy_binary(), tmp_path, HERE / "ec2" / "bootstrap.yaml",
                               iamgate_grpc_port=grpc_port, backend_port=self.moto.port,
                               failure_mode_allow="false", max_request_bytes=65536,
                               jwks=Issuer().jwks)
        except Exception:
            self.moto.stop()
            self.server.stop()
            raise
        self.url = f"http://127.0.0.1:{self.envoy.port}"

    def message_key(self):
        path = self.tmp / "message.key"
        path.write_text(secrets.token_hex(32) + "\n")
        return path

    def write_credentials(self):
        tmp = self.creds_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(list(self.keys.values())))
        os.replace(tmp, self.creds_file)

    def secret(self, user):
        return self.keys[user]["AccessKey"]["SecretAccessKey"]

    def key_id(self, user):
        return self.keys[user]["AccessKey"]["AccessKeyId"]

    def ec2(self, user, secret=None):
        return boto3.client(
            "ec2", endpoint_url=self.url, region_name=REGION,
            aws_access_key_id=self.key_id(user),
            aws_secret_access_key=secret or self.secret(user),
            config=Config(retries={"max_attempts": 1}))

    def signed(self, user, body, secret=None):
        """Headers botocore's SigV4 signer gives a POST of `body`."""
        req = AWSRequest(method="POST", url=self.url + "/", data=body,
                         headers={"Content-Type": FORM})
        creds = Credentials(self.key_id(user), secret or self.secret(user))
        SigV4Auth(creds, "ec2", REGION).add_auth(req)
        return dict(req.headers.items())

    def stop(self):
        self.envoy.stop()
        self.moto.stop()
        self.server.stop()

    def logs(self):
        return self.server.log() + self.envoy.log()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("sigv4"))
    yield s
    s.stop()


def code_of(resp):
    root = ET.fromstring(resp.text)
    return root.findtext(".//Code")


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def launch(stack, ec2):
    """Launches one instance from moto's first image into its first subnet
    and the default security group of its VPC.
    iamgate decides on its inventory, so the control plane first reports
    moto's image, subnet and group there (the authenticated inventory API), as
    the deployment's own."""
    image = ec2.describe_images()["Images"][0]["ImageId"]
    subnet = ec2.describe_subnets()["Subnets"][0]
    group = [g for g in ec2.describe_security_groups()["SecurityGroups"]
             if g["VpcId"] == subnet["VpcId"] and g["GroupName"] == "default"][0]["GroupId"]
    subnet = subnet["SubnetId"]
    changes = [{"op": "upsert", "resource": {"id": rid, "account": PROD, "region": REGION}}
               for rid in (image, subnet, group)]
    r = requests.post(stack.server.control + "/v1/inventory", json={"changes": changes},
                      headers=stack.server.auth, timeout=10)
    assert r.status_code == 200, r.text
    started = ec2.run_instances(ImageId=image, SubnetId=subnet, SecurityGroupIds=[group],
                                MinCount=1, MaxCount=1, InstanceType="t3.micro")
    return started["Instances"][0]["InstanceId"]


def test_aws_cli_describe_instances_is_allowed(stack):
    """Issue 13, credentials and SigV4: the unmodified AWS CLI, signing
    with alice's key, through Envoy and iamgate to moto."""
    env = {**os.environ, "AWS_ACCESS_KEY_ID": stack.key_id("alice"),
           "AWS_SECRET_ACCESS_KEY": stack.secret("alice"),
           "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
           "AWS_EC2_METADATA_DISABLED": "true"}
    out = subprocess.run(
        [str(BIN / "aws"), "ec2", "describe-instances", "--endpoint-url", stack.url,
         "--region", REGION, "--output", "json"],
        env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr + stack.logs()
    assert "Reservations" in json.loads(out.stdout)


def test_run_instances_allowed_and_exists_in_moto(stack):
    """Issue 13: boto3 launches an instance the policies allow; it exists
    in moto afterwards."""
    ec2 = stack.ec2("alice")
    instance = launch(stack, ec2)
    found = ec2.describe_instances(InstanceIds=[instance])["Reservations"]
    assert [i["InstanceId"] for r in found for i in r["Instances"]] == [instance]


def test_denied_call_raises_unauthorized_operation(stack):
    """Issue 13: carol's signature is valid, her policies do not allow
    TerminateInstances: botocore raises ClientError UnauthorizedOperation
    (iamgate's answer: the call never reaches moto)."""
    with pytest.raises(ClientError) as e:
        stack.ec2("carol").terminate_instances(InstanceIds=[BLUE_WEB])
    assert error_code(e) == "UnauthorizedOperation"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_wrong_secret_is_signature_does_not_match(stack):
    """Issue 13: a wrong secret for a real key id."""
    with pytest.raises(ClientError) as e:
        stack.ec2("alice", secret="not-" + stack.secret("alice")).describe_instances()
    assert error_code(e) == "SignatureDoesNotMatch"


def test_inactive_and_unknown_keys_are_invalid_client_token_id(stack):
    """Issue 13: an Inactive key, and a key id nobody issued."""
    with pytest.raises(ClientError) as e:
        stack.ec2("bob").describe_instances()
    assert error_code(e) == "InvalidClientTokenId"
    ghost = boto3.client("ec2", endpoint_url=stack.url, region_name=REGION,
                         aws_access_key_id="AKIA" + "Z" * 16,
                         aws_secret_access_key="x" * 40)
    with pytest.raises(ClientError) as e:
        ghost.describe_instances()
    assert error_code(e) == "InvalidClientTokenId"


def test_tampered_body_is_refused(stack):
    """Issue 13: the body is signed: a changed body (other parameters) after
    signing is SignatureDoesNotMatch and never reaches moto."""
    body = "Action=DescribeInstances&Version=2016-11-15"
    headers = stack.signed("carol", body)
    tampered = "Action=TerminateInstances&Version=2016-11-15&InstanceId.1=i-0123456789abcdef0"
    r = requests.post(stack.url + "/", data=tampered, headers=headers, timeout=10)
    assert r.status_code == 403, r.text
    assert code_of(r) == "SignatureDoesNotMatch"
    ok = requests.post(stack.url + "/", data=body, headers=headers, timeout=10)
    assert ok.status_code == 200, ok.text


def test_presigned_url_works_then_expires(stack):
    """Issue 13: a presigned query-string request is accepted while valid;
    replayed after X-Amz-Expires it is RequestExpired."""
    url = stack.url + "/?Action=DescribeInstances&Version=2016-11-15"
    creds = Credentials(stack.key_id("alice"), stack.secret("alice"))
    req = AWSRequest(method="GET", url=url)
    SigV4QueryAuth(creds, "ec2", REGION, expires=2).add_auth(req)
    first = requests.get(req.url, timeout=10)
    assert code_of(first) not in ("AuthFailure", "SignatureDoesNotMatch", "RequestExpired",
                                  "IncompleteSignature", "InvalidClientTokenId"), first.text
    time.sleep(3.2)
    again = requests.get(req.url, timeout=10)
    assert again.status_code == 400, again.text
    assert code_of(again) == "RequestExpired"


def test_stale_header_signature_is_request_expired(stack, monkeypatch):
    """Issue 13: a header-signed request more than 5 minutes old (botocore
    signing with a clock 10 minutes behind)."""
    import datetime

    import botocore.auth
    stale = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) \
        - datetime.timedelta(minutes=10)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: stale)
    body = "Action=DescribeInstances&Version=2016-11-15"
    headers = stack.signed("alice", body)
    monkeypatch.undo()
    r = requests.post(stack.url + "/", data=body, headers=headers, timeout=10)
    assert r.status_code == 400, r.text
    assert code_of(r) == "RequestExpired"


def test_unsigned_request_is_refused(stack):
    """Issue 13: an unsigned request on a SigV4 route never reaches moto."""
    r = requests.post(stack.url + "/", data="Action=DescribeInstances&Version=2016-11-15",
                      headers={"Content-Type": FORM}, timeout=10)
    assert r.status_code == 401, r.text
    assert code_of(r) == "AuthFailure"


def test_identity_header_does_not_change_the_principal(stack):
    """Issue 13: on a SigV4 route the principal is the signature's alone: a
    trusted-principal header naming the administrator changes nothing."""
    body = f"Action=TerminateInstances&Version=2016-11-15&InstanceId.1={BLUE_WEB}"
    headers = stack.signed("carol", body)
    headers["x-caller"] = ALICE
    r = requests.post(stack.url + "/", data=body, headers=headers, timeout=10)
    assert r.status_code == 403, r.text
    assert code_of(r) == "UnauthorizedOperation"
    records = [json.loads(line) for line in stack.decision_log.read_text().splitlines()]
    assert any(rec["principal"] == CAROL and rec["action"] == "ec2:TerminateInstances"
               for rec in records)
    assert not any(rec["principal"] == ALICE and rec["action"] == "ec2:TerminateInstances"
                   and rec["resource"].endswith(BLUE_WEB) for rec in records)


def wait_for_code(client, code, timeout=10):
    """Calls DescribeInstances until it fails with `code` (None: succeeds)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.describe_instances()
            got = None
        except ClientError as e:
            got = e.response["Error"]["Code"]
        if got == code:
            return
        assert time.monotonic() < deadline, f"still {got}, waiting for {code}"
        time.sleep(0.2)


def test_credentials_reload_and_secrets_stay_out_of_logs(stack):
    """Issue 13: the credentials file reloads when its content changes
    (carol's key made Inactive is refused within the 2-second poll) and on
    SIGHUP (bob's key made Active works); an invalid file keeps the previous
    keys and is reported; no secret appears in the logs, the decision log,
    /v1/status or the metrics."""
    carol, bob = stack.ec2("carol"), stack.ec2("bob")
    carol.describe_instances()
    stack.keys["carol"]["AccessKey"]["Status"] = "Inactive"
    stack.write_credentials()
    wait_for_code(carol, "InvalidClientTokenId")

    stack.keys["bob"]["AccessKey"]["Status"] = "Active"
    stack.write_credentials()
    stack.server.proc.send_signal(signal.SIGHUP)
    wait_for_code(bob, None)

    # A broken file: refused, the previous keys keep working.
    stack.creds_file.write_text('[{"AccessKey": {"UserName": "alice", "SecretAccessKey": "'
                                + stack.secret("alice") + '"')
    stack.server.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "credentials file refused" not in stack.server.log():
        assert time.monotonic() < deadline, stack.server.log()
        time.sleep(0.2)
    stack.ec2("alice").describe_instances()
    bob.describe_instances()
    status = requests.get(stack.server.admin + "/v1/status", timeout=10).text
    assert json.loads(status)["credentials"] == {"keys": 3, "active": 2}
    metrics = requests.get(stack.server.admin + "/metrics", timeout=10).text
    texts = [stack.server.log(), stack.decision_log.read_text(), status, metrics]
    for user in stack.keys:
        for text in texts:
            assert stack.secret(user) not in text
