"""Issue 13, "STS: role sessions and temporary credentials": the unmodified
AWS CLI and boto3 call iamgate's STS Query API (`--sts-listen`,
`--endpoint-url`), then use the temporary credentials it issues against
EC2 through the real Envoy -> iamgate (ext_authz, `--ec2-auth sigv4`) ->
`moto` in server mode (the stack of test_sigv4_ec2.py).

The bundle is the demo bundle plus roles (written here):
- 111111111111 `operator` (path /ops/, tag team=red, MaxSessionDuration
  7200 from iam-roles/111111111111.json): trusts alice and carol for
  sts:AssumeRole, sts:TagSession and sts:SetSourceIdentity (and its own
  sessions, for role chaining: it may assume itself); may describe
  instances, VPCs, images, subnets and security groups, and key pairs only
  when aws:PrincipalTag/team is `blue`;
- 222222222222 `partner`: trusts account 111111111111 with sts:ExternalId
  `ext-7f3a`; may describe instances.
alice is an administrator (her policies allow sts:AssumeRole); carol's do
not (the IAM User Guide's evaluation logic decides when that matters).
`ops-automation` trusts only ec2.amazonaws.com.
"""

import json
import os
import pathlib
import secrets
import shutil
import subprocess
import sys

import pytest
import requests

from control_util import start_with_control
from envoy_util import Envoy, envoy_binary
from jwt_util import Issuer
from test_sigv4_ec2 import Moto, key

pytest.importorskip("boto3")
import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BIN = pathlib.Path(sys.executable).parent
PROD, DEV = "111111111111", "222222222222"
REGION = "us-east-1"
OPERATOR = f"arn:aws:iam::{PROD}:role/ops/operator"
PARTNER = f"arn:aws:iam::{DEV}:role/partner"
NO_TRUST = f"arn:aws:iam::{PROD}:role/ops-automation"
BLUE_WEB = "i-0a111000000000001"


def doc(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def write_bundle(dest):
    """The demo bundle with the roles above."""
    shutil.copytree(ROOT / "src" / "bundle" / "demo", dest)
    prod = dest / "iam" / f"{PROD}.json"
    d = json.loads(prod.read_text())
    d["RoleDetailList"].append({
        "Path": "/ops/", "RoleName": "operator", "RoleId": "AROADEMOOPERATOR0001",
        "Arn": OPERATOR, "CreateDate": "2026-01-01T00:00:00Z",
        "AssumeRolePolicyDocument": doc({
            "Effect": "Allow",
            "Principal": {"AWS": [f"arn:aws:iam::{PROD}:user/alice",
                                  f"arn:aws:iam::{PROD}:user/carol", OPERATOR]},
            "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"]}),
        "InstanceProfileList": [],
        "RolePolicyList": [{"PolicyName": "describe", "PolicyDocument": doc(
            {"Effect": "Allow", "Action": [
                "ec2:DescribeInstances", "ec2:DescribeVpcs", "ec2:DescribeImages",
                "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups"], "Resource": "*"},
            {"Effect": "Allow", "Action": "ec2:DescribeKeyPairs", "Resource": "*",
             "Condition": {"StringEquals": {"aws:PrincipalTag/team": "blue"}}},
            {"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"],
             "Resource": OPERATOR})}],
        "AttachedManagedPolicies": [],
        "Tags": [{"Key": "team", "Value": "red"}],
    })
    prod.write_text(json.dumps(d))
    dev = dest / "iam" / f"{DEV}.json"
    d = json.loads(dev.read_text())
    d["RoleDetailList"].append({
        "Path": "/", "RoleName": "partner", "RoleId": "AROADEMOPARTNER00001",
        "Arn": PARTNER, "CreateDate": "2026-01-01T00:00:00Z",
        "AssumeRolePolicyDocument": doc({
            "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{PROD}:root"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": "ext-7f3a"}}}),
        "InstanceProfileList": [],
        "RolePolicyList": [{"PolicyName": "describe", "PolicyDocument": doc(
            {"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*"})}],
        "AttachedManagedPolicies": [], "Tags": [],
    })
    dev.write_text(json.dumps(d))
    (dest / "iam-roles").mkdir()
    (dest / "iam-roles" / f"{PROD}.json").write_text(json.dumps({"Roles": [
        {"Path": "/ops/", "RoleName": "operator", "RoleId": "AROADEMOOPERATOR0001",
         "Arn": OPERATOR, "CreateDate": "2026-01-01T00:00:00Z", "MaxSessionDuration": 7200}]}))


class Stack:
    def __init__(self, tmp):
        self.tmp = tmp
        write_bundle(tmp / "bundle")
        self.keys = {"alice": key("alice"), "carol": key("carol")}
        creds = tmp / "credentials.json"
        creds.write_text(json.dumps(list(self.keys.values())))
        session_key = tmp / "session.keys"
        session_key.write_text(f"# newest first\nk2 {secrets.token_hex(32)}\n"
                               f"k1 {secrets.token_hex(32)}\n")
        message_key = tmp / "message.key"
        message_key.write_text(secrets.token_hex(32) + "\n")
        self.decision_log = tmp / "decisions.jsonl"
        self.server = start_with_control(
            tmp, "--no-watch", "--bundle", str(tmp / "bundle"),
            "--default-mapping", "ec2-query", "--ec2-auth", "sigv4",
            "--credentials", str(creds), "--session-key", str(session_key),
            "--sts-listen", "127.0.0.1:0", "--decision-log", str(self.decision_log),
            "--message-key-file", str(message_key))
        self.sts_url = "http://" + self.server.addrs["sts"]
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

    def user_creds(self, user):
        k = self.keys[user]["AccessKey"]
        return {"aws_access_key_id": k["AccessKeyId"],
                "aws_secret_access_key": k["SecretAccessKey"]}

    def sts(self, user=None, creds=None):
        return boto3.client("sts", endpoint_url=self.sts_url, region_name=REGION,
                            config=Config(retries={"max_attempts": 1}),
                            **(creds or self.user_creds(user)))

    def ec2(self, creds):
        return boto3.client("ec2", endpoint_url=self.ec2_url, region_name=REGION,
                            config=Config(retries={"max_attempts": 1}), **creds)

    def cli(self, user, *args, creds=None):
        c = creds or self.user_creds(user)
        env = {**os.environ, "AWS_ACCESS_KEY_ID": c["aws_access_key_id"],
               "AWS_SECRET_ACCESS_KEY": c["aws_secret_access_key"],
               "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
               "AWS_EC2_METADATA_DISABLED": "true"}
        env.pop("AWS_SESSION_TOKEN", None)
        if c.get("aws_session_token"):
            env["AWS_SESSION_TOKEN"] = c["aws_session_token"]
        return subprocess.run([str(BIN / "aws"), *args, "--region", REGION, "--output", "json"],
                              env=env, capture_output=True, text=True, timeout=60)

    def stop(self):
        self.envoy.stop()
        self.moto.stop()
        self.server.stop()

    def logs(self):
        return self.server.log() + self.envoy.log()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("sts"))
    yield s
    s.stop()


def session_creds(answer):
    c = answer["Credentials"]
    return {"aws_access_key_id": c["AccessKeyId"], "aws_secret_access_key": c["SecretAccessKey"],
            "aws_session_token": c["SessionToken"]}


def code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def test_cli_get_caller_identity(stack):
    """Issue 13: `aws sts get-caller-identity --endpoint-url` names the
    signing user (ARN, UserId, Account), verified by SigV4 for service sts."""
    out = stack.cli("alice", "sts", "get-caller-identity", "--endpoint-url", stack.sts_url)
    assert out.returncode == 0, out.stderr + stack.logs()
    got = json.loads(out.stdout)
    assert got == {"UserId": "AIDADEMOALICE0000001", "Account": PROD,
                   "Arn": f"arn:aws:iam::{PROD}:user/alice"}
    bad = {"aws_access_key_id": stack.user_creds("alice")["aws_access_key_id"],
           "aws_secret_access_key": "x" * 40}
    with pytest.raises(ClientError) as e:
        stack.sts(creds=bad).get_caller_identity()
    assert code(e) == "SignatureDoesNotMatch"


def test_cli_assume_role_then_ec2_as_the_role(stack):
    """Issue 13: `aws sts assume-role` (CLI) issues ASIA credentials; the
    session calls EC2 through Envoy as the role (allowed by the role's
    policy; moto answers), and STS reports the assumed-role ARN."""
    out = stack.cli("alice", "sts", "assume-role", "--endpoint-url", stack.sts_url,
                    "--role-arn", OPERATOR, "--role-session-name", "alice-ops",
                    "--duration-seconds", "7200")
    assert out.returncode == 0, out.stderr + stack.logs()
    answer = json.loads(out.stdout)
    assert answer["AssumedRoleUser"] == {
        "Arn": f"arn:aws:sts::{PROD}:assumed-role/operator/alice-ops",
        "AssumedRoleId": "AROADEMOOPERATOR0001:alice-ops"}
    creds = session_creds(answer)
    assert creds["aws_access_key_id"].startswith("ASIA")
    me = stack.sts(creds=creds).get_caller_identity()
    assert me["Arn"] == f"arn:aws:sts::{PROD}:assumed-role/operator/alice-ops"
    assert me["UserId"] == "AROADEMOOPERATOR0001:alice-ops"
    out = stack.cli(None, "ec2", "describe-instances", "--endpoint-url", stack.ec2_url,
                    creds=creds)
    assert out.returncode == 0, out.stderr + stack.logs()
    # Not in the role's policies (AdministratorAccess was alice's, not the role's).
    with pytest.raises(ClientError) as e:
        stack.ec2(creds).terminate_instances(InstanceIds=[BLUE_WEB])
    assert code(e) == "UnauthorizedOperation"
    records = [json.loads(line) for line in stack.decision_log.read_text().splitlines()]
    assert any(r["principal"] == f"arn:aws:sts::{PROD}:assumed-role/operator/alice-ops"
               and r["action"] == "ec2:DescribeInstances" for r in records)
    assert any(r["action"] == "sts:AssumeRole" and r["resource"] == OPERATOR for r in records)


def test_session_policy_narrows(stack):
    """Issue 13: a session policy (`Policy`) narrows the role's permissions:
    DescribeInstances stays allowed, DescribeVpcs (allowed by the role)
    is refused."""
    policy = json.dumps(doc({"Effect": "Allow", "Action": "ec2:DescribeInstances",
                             "Resource": "*"}))
    answer = stack.sts("alice").assume_role(RoleArn=OPERATOR, RoleSessionName="narrow",
                                            Policy=policy)
    assert answer["PackedPolicySize"] > 0
    ec2 = stack.ec2(session_creds(answer))
    ec2.describe_instances()
    with pytest.raises(ClientError) as e:
        ec2.describe_vpcs()
    assert code(e) == "UnauthorizedOperation"
    wide = stack.ec2(session_creds(
        stack.sts("alice").assume_role(RoleArn=OPERATOR, RoleSessionName="wide")))
    wide.describe_vpcs()


def test_trust_policy_and_identity_policy_must_both_allow(stack):
    """Issue 13, as the IAM User Guide's policy evaluation logic describes
    role trust policies: alice's administrator policy allows sts:AssumeRole,
    but a trust policy that does not name her refuses (within one account
    too). A trust policy naming the account (`partner` trusts
    111111111111's root) leaves the decision to the caller's identity
    policies, which for carol do not allow sts:AssumeRole; one naming the
    user's ARN (`operator` names carol) grants on its own within the
    account."""
    with pytest.raises(ClientError) as e:
        stack.sts("alice").assume_role(RoleArn=NO_TRUST, RoleSessionName="x1")
    assert code(e) == "AccessDenied"
    assert "sts:AssumeRole" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        stack.sts("carol").assume_role(RoleArn=PARTNER, RoleSessionName="x2",
                                       ExternalId="ext-7f3a")
    assert code(e) == "AccessDenied"
    carol = stack.sts("carol").assume_role(RoleArn=OPERATOR, RoleSessionName="x3")
    assert carol["AssumedRoleUser"]["Arn"].endswith(":assumed-role/operator/x3")
    with pytest.raises(ClientError) as e:
        stack.sts("alice").assume_role(RoleArn=f"arn:aws:iam::{PROD}:role/nobody",
                                       RoleSessionName="x4")
    assert code(e) == "AccessDenied"


def test_cross_account_with_external_id(stack):
    """Issue 13: a role in account 222222222222 trusts account
    111111111111 with an ExternalId condition: refused without it or with a
    wrong one, allowed with it; the session acts in the role's account."""
    sts = stack.sts("alice")
    for extra in ({}, {"ExternalId": "ext-wrong"}):
        with pytest.raises(ClientError) as e:
            sts.assume_role(RoleArn=PARTNER, RoleSessionName="cross", **extra)
        assert code(e) == "AccessDenied"
    answer = sts.assume_role(RoleArn=PARTNER, RoleSessionName="cross", ExternalId="ext-7f3a")
    creds = session_creds(answer)
    assert stack.sts(creds=creds).get_caller_identity()["Account"] == DEV
    stack.ec2(creds).describe_instances()


def test_session_tags_feed_principal_tag_conditions(stack):
    """Issue 13: session tags (`Tags`, which need sts:TagSession) override
    the role's tag: DescribeKeyPairs needs aws:PrincipalTag/team = blue;
    the role is tagged red."""
    plain = stack.ec2(session_creds(
        stack.sts("alice").assume_role(RoleArn=OPERATOR, RoleSessionName="red")))
    with pytest.raises(ClientError) as e:
        plain.describe_key_pairs()
    assert code(e) == "UnauthorizedOperation"
    tagged = stack.ec2(session_creds(stack.sts("alice").assume_role(
        RoleArn=OPERATOR, RoleSessionName="blue",
        Tags=[{"Key": "team", "Value": "blue"}], TransitiveTagKeys=["team"])))
    tagged.describe_key_pairs()


def test_tampered_and_foreign_tokens_are_refused(stack):
    """Issue 13: an altered session token, or another session's token with
    this key id, is InvalidClientTokenId at EC2 (through Envoy) and STS."""
    a = session_creds(stack.sts("alice").assume_role(RoleArn=OPERATOR, RoleSessionName="t1"))
    b = session_creds(stack.sts("alice").assume_role(RoleArn=OPERATOR, RoleSessionName="t2"))
    token = a["aws_session_token"]
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    for bad in (dict(a, aws_session_token=flipped), dict(a, aws_session_token=b["aws_session_token"])):
        with pytest.raises(ClientError) as e:
            stack.ec2(bad).describe_instances()
        assert code(e) == "InvalidClientTokenId", stack.logs()
        with pytest.raises(ClientError) as e:
            stack.sts(creds=bad).get_caller_identity()
        assert code(e) == "InvalidClientTokenId"
    no_token = {k: v for k, v in a.items() if k != "aws_session_token"}
    with pytest.raises(ClientError) as e:
        stack.ec2(no_token).describe_instances()
    assert code(e) == "InvalidClientTokenId"


def test_duration_limits(stack):
    """Issue 13: DurationSeconds is bounded by the role's MaxSessionDuration
    (7200, from `list-roles` output in the bundle) and, for role chaining,
    by one hour."""
    with pytest.raises(ClientError) as e:
        stack.sts("alice").assume_role(RoleArn=OPERATOR, RoleSessionName="long",
                                       DurationSeconds=7201)
    assert code(e) == "ValidationError"
    session = session_creds(stack.sts("alice").assume_role(RoleArn=OPERATOR,
                                                           RoleSessionName="first"))
    with pytest.raises(ClientError) as e:
        stack.sts(creds=session).assume_role(RoleArn=OPERATOR, RoleSessionName="chained",
                                             DurationSeconds=3601)
    assert code(e) == "ValidationError"
    assert "1 hour" in e.value.response["Error"]["Message"]


def test_get_session_token(stack):
    """Issue 13: GetSessionToken gives a user temporary credentials that act
    as the user; MFA fields are accepted; session credentials cannot call
    GetSessionToken again."""
    answer = stack.sts("alice").get_session_token(DurationSeconds=900,
                                                  SerialNumber="arn:aws:iam::111111111111:mfa/alice",
                                                  TokenCode="123456")
    creds = session_creds(answer)
    me = stack.sts(creds=creds).get_caller_identity()
    assert me["Arn"] == f"arn:aws:iam::{PROD}:user/alice"
    stack.ec2(creds).describe_vpcs()
    with pytest.raises(ClientError) as e:
        stack.sts(creds=creds).get_session_token()
    assert code(e) == "AccessDenied"


def test_decode_authorization_message(stack):
    """Issue 13: carol's TerminateInstances is UnauthorizedOperation with an
    encoded message; `aws sts decode-authorization-message` (alice, who may
    call sts:DecodeAuthorizationMessage) decodes it; carol may not."""
    with pytest.raises(ClientError) as e:
        stack.ec2(stack.user_creds("carol")).terminate_instances(InstanceIds=[BLUE_WEB])
    assert code(e) == "UnauthorizedOperation"
    message = e.value.response["Error"]["Message"]
    encoded = message.rsplit("Encoded authorization failure message: ", 1)[1].strip()
    out = stack.cli("alice", "sts", "decode-authorization-message", "--endpoint-url",
                    stack.sts_url, "--encoded-message", encoded)
    assert out.returncode == 0, out.stderr + stack.logs()
    decoded = json.loads(json.loads(out.stdout)["DecodedMessage"])
    assert decoded["allowed"] is False
    assert decoded["context"]["action"] == "ec2:TerminateInstances"
    assert decoded["context"]["principal"]["arn"] == f"arn:aws:iam::{PROD}:user/carol"
    with pytest.raises(ClientError) as e:
        stack.sts("carol").decode_authorization_message(EncodedMessage=encoded)
    assert code(e) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        stack.sts("alice").decode_authorization_message(EncodedMessage=encoded[:-4] + "AAAA")
    assert code(e) == "InvalidAuthorizationMessageException"


def test_secrets_stay_out_of_logs(stack):
    """Issue 13: issued secrets and tokens never appear in the server log,
    the decision log or metrics."""
    answer = stack.sts("alice").assume_role(RoleArn=OPERATOR, RoleSessionName="quiet")
    c = answer["Credentials"]
    stack.ec2(session_creds(answer)).describe_instances()
    metrics = requests.get(stack.server.admin + "/metrics", timeout=10).text
    assert 'frontend="sts"' in metrics
    for text in (stack.server.log(), stack.decision_log.read_text(), metrics):
        assert c["SecretAccessKey"] not in text
        assert c["SessionToken"] not in text


def test_sts_over_tls(tmp_path):
    """Issue 13: with --tls-cert/--tls-key the STS listener serves TLS like
    the API listeners; botocore verifies the certificate and the signature
    is checked as over plain HTTP."""
    from conftest import start_server
    from test_tls import make_ca, make_leaf
    make_ca(tmp_path, "ca")
    make_leaf(tmp_path, "server", "ca", "IP:127.0.0.1,DNS:localhost")
    alice = key("alice")
    creds = tmp_path / "credentials.json"
    creds.write_text(json.dumps([alice]))
    session_key = tmp_path / "session.keys"
    session_key.write_text(f"k1 {secrets.token_hex(32)}\n")
    server = start_server(tmp_path, "--no-watch", "--tls-cert", str(tmp_path / "server.pem"),
                          "--tls-key", str(tmp_path / "server.key"),
                          "--credentials", str(creds), "--session-key", str(session_key),
                          "--sts-listen", "127.0.0.1:0")
    try:
        k = alice["AccessKey"]
        sts = boto3.client("sts", endpoint_url="https://" + server.addrs["sts"],
                           region_name=REGION, verify=str(tmp_path / "ca.pem"),
                           aws_access_key_id=k["AccessKeyId"],
                           aws_secret_access_key=k["SecretAccessKey"],
                           config=Config(retries={"max_attempts": 1}))
        assert sts.get_caller_identity()["Arn"] == f"arn:aws:iam::{PROD}:user/alice"
    finally:
        server.stop()


def test_sts_listen_needs_a_session_key(tmp_path):
    """Issue 13: --sts-listen without --session-key refuses to start (it
    could not issue credentials)."""
    from conftest import start_server
    with pytest.raises(RuntimeError) as e:
        start_server(tmp_path, "--no-watch", "--sts-listen", "127.0.0.1:0", timeout=10)
    assert "--session-key" in str(e.value)


def test_session_credentials_on_a_generic_sigv4_route(tmp_path):
    """Issue 13: temporary credentials from GetSessionToken sign a request
    on a GENERIC SigV4 route (the stack of test_sigv4_generic.py: real
    Envoy, a recording backend): it reaches the backend as the session's
    user; an altered token is InvalidClientTokenId and never reaches it."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from conftest import start_server
    from envoy_util import Backend
    carol = key("carol")
    creds = tmp_path / "credentials.json"
    creds.write_text(json.dumps([carol]))
    session_key = tmp_path / "session.keys"
    session_key.write_text(f"k1 {secrets.token_hex(32)}\n")
    server = start_server(tmp_path, "--no-watch", "--credentials", str(creds),
                          "--session-key", str(session_key), "--sts-listen", "127.0.0.1:0")
    backend = Backend(tmp_path, HERE / "envoy" / "backend.py")
    try:
        envoy = Envoy(envoy_binary(), tmp_path, HERE / "sigv4_generic" / "bootstrap.yaml",
                      iamgate_grpc_port=int(server.grpc.rsplit(":", 1)[1]),
                      backend_port=backend.port)
    except Exception:
        backend.stop()
        server.stop()
        raise
    try:
        k = carol["AccessKey"]
        sts = boto3.client("sts", endpoint_url="http://" + server.addrs["sts"],
                           region_name=REGION, aws_access_key_id=k["AccessKeyId"],
                           aws_secret_access_key=k["SecretAccessKey"],
                           config=Config(retries={"max_attempts": 1}))
        c = sts.get_session_token(DurationSeconds=900)["Credentials"]
        url = f"http://127.0.0.1:{envoy.port}"

        def send(token, path):
            req = AWSRequest(method="GET", url=url + path)
            SigV4Auth(Credentials(c["AccessKeyId"], c["SecretAccessKey"], token),
                      "widgets", REGION).add_auth(req)
            return requests.get(url + path, headers=dict(req.headers.items()), timeout=10)

        ok_path = f"/DescribeInstances/{BLUE_WEB}"
        r = send(c["SessionToken"], ok_path)
        assert r.status_code == 200, r.text + server.log()
        seen = [q for q in backend.requests() if q["path"] == ok_path]
        assert seen and seen[0]["headers"]["x-iamgate-principal"] == f"arn:aws:iam::{PROD}:user/carol"
        token = c["SessionToken"]
        bad = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
        bad_path = f"/DescribeInstances/{BLUE_WEB}-x"
        r = send(bad, bad_path)
        assert r.status_code in (401, 403), r.text
        assert "InvalidClientTokenId" in r.text
        assert not [q for q in backend.requests() if q["path"] == bad_path]
    finally:
        envoy.stop()
        backend.stop()
        server.stop()


def test_presigned_get_caller_identity(stack):
    """Issue 13: a presigned GetCallerIdentity URL (botocore's
    generate_presigned_url with HttpMethod GET, as `aws eks get-token`
    makes them) answers for its
    signer while valid; with session credentials the token travels in the
    query and is checked the same way."""
    url = stack.sts("alice").generate_presigned_url("get_caller_identity", ExpiresIn=60,
                                                    HttpMethod="GET")
    r = requests.get(url, timeout=10)
    assert r.status_code == 200, r.text
    assert f"<Arn>arn:aws:iam::{PROD}:user/alice</Arn>" in r.text
    creds = session_creds(stack.sts("alice").assume_role(RoleArn=OPERATOR,
                                                         RoleSessionName="presign"))
    url = stack.sts(creds=creds).generate_presigned_url("get_caller_identity", ExpiresIn=60,
                                                        HttpMethod="GET")
    assert "X-Amz-Security-Token=" in url
    r = requests.get(url, timeout=10)
    assert r.status_code == 200, r.text
    assert "assumed-role/operator/presign" in r.text
    r = requests.get(url.replace("X-Amz-Signature=", "X-Amz-Signature=0"), timeout=10)
    assert r.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in r.text or "<Code>IncompleteSignature</Code>" in r.text


def test_role_chaining_keeps_transitive_tags(stack):
    """Issue 13 (IAM User Guide, "Chaining roles with session tags"): a
    session tagged team=blue with `team` transitive assumes a role again;
    the chained session keeps the tag (DescribeKeyPairs needs it), may not
    override it, lasts at most an hour, and reports the chained session."""
    first = session_creds(stack.sts("alice").assume_role(
        RoleArn=OPERATOR, RoleSessionName="hop1",
        Tags=[{"Key": "team", "Value": "blue"}], TransitiveTagKeys=["team"]))
    chained = stack.sts(creds=first).assume_role(RoleArn=OPERATOR, RoleSessionName="hop2")
    assert chained["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{PROD}:assumed-role/operator/hop2"
    stack.ec2(session_creds(chained)).describe_key_pairs()
    with pytest.raises(ClientError) as e:
        stack.sts(creds=first).assume_role(RoleArn=OPERATOR, RoleSessionName="hop3",
                                           Tags=[{"Key": "team", "Value": "red"}])
    assert code(e) == "InvalidParameterValue"
    untagged = session_creds(stack.sts("alice").assume_role(RoleArn=OPERATOR,
                                                            RoleSessionName="plain1"))
    plain = stack.sts(creds=untagged).assume_role(RoleArn=OPERATOR, RoleSessionName="plain2")
    with pytest.raises(ClientError) as e:
        stack.ec2(session_creds(plain)).describe_key_pairs()
    assert code(e) == "UnauthorizedOperation"
