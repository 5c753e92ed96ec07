"""Issue 13, MFA: virtual MFA devices (`--mfa-devices`, the shape of
`aws iam list-virtual-mfa-devices` plus each device's `Base32StringSeed`)
verify the `SerialNumber` / `TokenCode` of `aws sts get-session-token` and
`assume-role` (TOTP, RFC 6238: computed here by a small independent
function); sessions made with a verified code carry
`aws:MultiFactorAuthPresent` = true and `aws:MultiFactorAuthAge`, as the
IAM User Guide's global condition keys page says, and EC2 calls through
the real Envoy -> iamgate -> moto are decided on them.

carol (demo operators group) may CreateKeyPair only with MFA
(`Bool aws:MultiFactorAuthPresent true` and `NumericLessThan
aws:MultiFactorAuthAge 3600`); the role `mfa-admin` trusts alice only with
MFA.
"""

import base64
import hashlib
import hmac
import json
import os
import pathlib
import secrets
import struct
import subprocess
import sys
import time

import pytest

from conftest import start_server
from envoy_util import Envoy, envoy_binary
from jwt_util import Issuer
from test_sigv4_ec2 import Moto, key
from test_sts import PROD, REGION, doc, write_bundle

pytest.importorskip("boto3")
import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
BIN = pathlib.Path(sys.executable).parent
MFA_ADMIN = f"arn:aws:iam::{PROD}:role/mfa-admin"
SERIAL = {u: f"arn:aws:iam::{PROD}:mfa/{u}" for u in ("alice", "carol")}


def totp(seed_b32, at, step_offset=0):
    """RFC 6238 (HMAC-SHA1, 30 s, 6 digits) at time `at`."""
    key_bytes = base64.b32decode(seed_b32)
    counter = struct.pack(">Q", int(at) // 30 + step_offset)
    mac = hmac.new(key_bytes, counter, hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def bundle(dest):
    write_bundle(dest)
    prod = dest / "iam" / f"{PROD}.json"
    d = json.loads(prod.read_text())
    for u in d["UserDetailList"]:
        if u["UserName"] == "carol":
            u["UserPolicyList"].append({"PolicyName": "keys-with-mfa", "PolicyDocument": doc({
                "Effect": "Allow", "Action": "ec2:CreateKeyPair", "Resource": "*",
                "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"},
                              "NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}}})})
    d["RoleDetailList"].append({
        "Path": "/", "RoleName": "mfa-admin", "RoleId": "AROADEMOMFAADMIN0001",
        "Arn": MFA_ADMIN, "CreateDate": "2026-01-01T00:00:00Z",
        "AssumeRolePolicyDocument": doc({
            "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{PROD}:user/alice"},
            "Action": "sts:AssumeRole",
            "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}}),
        "InstanceProfileList": [],
        "RolePolicyList": [{"PolicyName": "keys", "PolicyDocument": doc(
            {"Effect": "Allow", "Action": "ec2:DescribeKeyPairs", "Resource": "*"},
            {"Effect": "Allow", "Action": "ec2:CreateKeyPair", "Resource": "*",
             "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}})}],
        "AttachedManagedPolicies": [], "Tags": [],
    })
    prod.write_text(json.dumps(d))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sts-mfa")
    bundle(tmp / "bundle")
    keys = {u: key(u)["AccessKey"] for u in ("alice", "carol")}
    (tmp / "credentials.json").write_text(json.dumps([{"AccessKey": k} for k in keys.values()]))
    (tmp / "session.keys").write_text(f"k1 {secrets.token_hex(32)}\n")
    seeds = {u: base64.b32encode(secrets.token_bytes(20)).decode() for u in SERIAL}
    (tmp / "mfa.json").write_text(json.dumps({"VirtualMFADevices": [
        {"SerialNumber": SERIAL[u], "Base32StringSeed": seeds[u],
         "User": {"UserName": u, "Arn": f"arn:aws:iam::{PROD}:user/{u}"},
         "EnableDate": "2026-01-01T00:00:00Z"} for u in SERIAL]}))
    server = start_server(tmp, "--no-watch", "--bundle", str(tmp / "bundle"),
                          "--default-mapping", "ec2-query", "--ec2-auth", "sigv4",
                          "--credentials", str(tmp / "credentials.json"),
                          "--session-key", str(tmp / "session.keys"),
                          "--sts-listen", "127.0.0.1:0", "--mfa-devices", str(tmp / "mfa.json"))
    moto = None
    try:
        moto = Moto(tmp)
        envoy = Envoy(envoy_binary(), tmp, HERE / "ec2" / "bootstrap.yaml",
                      iamgate_grpc_port=int(server.grpc.rsplit(":", 1)[1]),
                      backend_port=moto.port, failure_mode_allow="false",
                      max_request_bytes=65536, jwks=Issuer().jwks)
    except Exception:
        if moto:
            moto.stop()
        server.stop()
        raise
    yield {"server": server, "keys": keys, "seeds": seeds, "tmp": tmp,
           "sts": "http://" + server.addrs["sts"], "ec2": f"http://127.0.0.1:{envoy.port}"}
    envoy.stop()
    moto.stop()
    server.stop()


def client(stack, service, creds):
    return boto3.client(service, endpoint_url=stack[service], region_name=REGION,
                        config=Config(retries={"max_attempts": 1}), **creds)


def user(stack, name):
    k = stack["keys"][name]
    return {"aws_access_key_id": k["AccessKeyId"], "aws_secret_access_key": k["SecretAccessKey"]}


def session(answer):
    c = answer["Credentials"]
    return {"aws_access_key_id": c["AccessKeyId"], "aws_secret_access_key": c["SecretAccessKey"],
            "aws_session_token": c["SessionToken"]}


def code_of(excinfo):
    return excinfo.value.response["Error"]["Code"]


def test_cli_get_session_token_with_mfa(stack):
    """Issue 13: `aws sts get-session-token --serial-number --token-code`
    with carol's device gives a session that may CreateKeyPair (MFA
    present, age under an hour; moto creates it); her long-term key and a
    session without MFA may not; the same code again, a wrong code and
    another user's device are AccessDenied."""
    name = f"mfa-{secrets.token_hex(4)}"
    with pytest.raises(ClientError) as e:
        client(stack, "ec2", user(stack, "carol")).create_key_pair(KeyName=name)
    assert code_of(e) == "UnauthorizedOperation"
    plain = session(client(stack, "sts", user(stack, "carol")).get_session_token(
        DurationSeconds=900))
    with pytest.raises(ClientError) as e:
        client(stack, "ec2", plain).create_key_pair(KeyName=name)
    assert code_of(e) == "UnauthorizedOperation"

    token = totp(stack["seeds"]["carol"], time.time())
    k = stack["keys"]["carol"]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": k["AccessKeyId"],
           "AWS_SECRET_ACCESS_KEY": k["SecretAccessKey"], "AWS_CONFIG_FILE": "/dev/null",
           "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_EC2_METADATA_DISABLED": "true"}
    env.pop("AWS_SESSION_TOKEN", None)
    cmd = [str(BIN / "aws"), "sts", "get-session-token", "--endpoint-url", stack["sts"],
           "--serial-number", SERIAL["carol"], "--token-code", token,
           "--duration-seconds", "900", "--region", REGION, "--output", "json"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr + stack["server"].log()
    mfa = session(json.loads(out.stdout))
    ec2 = client(stack, "ec2", mfa)
    ec2.create_key_pair(KeyName=name)
    names = [p["KeyName"] for p in ec2.describe_key_pairs()["KeyPairs"]]
    assert name in names

    # The same code again (replay), in the CLI as well.
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "(AccessDenied)" in out.stderr, out.stderr
    sts = client(stack, "sts", user(stack, "carol"))
    wrong = f"{(int(token) + 1) % 1_000_000:06d}"
    with pytest.raises(ClientError) as e:
        sts.get_session_token(SerialNumber=SERIAL["carol"], TokenCode=wrong)
    assert code_of(e) == "AccessDenied"
    assert "MFA" in e.value.response["Error"]["Message"]
    # carol presenting alice's device with alice's valid code.
    with pytest.raises(ClientError) as e:
        sts.get_session_token(SerialNumber=SERIAL["alice"],
                              TokenCode=totp(stack["seeds"]["alice"], time.time(), 1))
    assert code_of(e) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        sts.get_session_token(SerialNumber=SERIAL["carol"])
    assert code_of(e) == "AccessDenied"
    # The seeds never reach the log.
    log = stack["server"].log()
    assert stack["seeds"]["carol"] not in log and token not in log


def test_trust_policy_requires_mfa_for_assume_role(stack):
    """Issue 13: `mfa-admin` trusts alice only with
    aws:MultiFactorAuthPresent true: AssumeRole without a code is
    AccessDenied; with her device's code it succeeds, and the role session
    carries MFA (its CreateKeyPair needs it)."""
    sts = client(stack, "sts", user(stack, "alice"))
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=MFA_ADMIN, RoleSessionName="no-mfa")
    assert code_of(e) == "AccessDenied"
    answer = sts.assume_role(RoleArn=MFA_ADMIN, RoleSessionName="with-mfa",
                             SerialNumber=SERIAL["alice"],
                             TokenCode=totp(stack["seeds"]["alice"], time.time()))
    ec2 = client(stack, "ec2", session(answer))
    ec2.create_key_pair(KeyName=f"role-{secrets.token_hex(4)}")
    ec2.describe_key_pairs()
