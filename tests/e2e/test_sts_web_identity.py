"""Issue 16, "Service-account roles (IRSA)": botocore's web-identity
credential provider (`AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN`,
`AWS_ROLE_SESSION_NAME`, `AWS_ENDPOINT_URL_STS`) exchanges a Kubernetes
service-account token for a role session at iamgate's STS listener
(`AssumeRoleWithWebIdentity`, `--oidc-provider ISSUER=JWKS_FILE`), then
calls EC2 with it through the real Envoy -> iamgate (ext_authz, SigV4) ->
moto stack of test_sts.py.

The tokens are signed here by test keys (RS256 and ES256, as
Kubernetes/EKS issuers sign); the issuer's JWKS is a file iamgate reads.
The role `irsa-reader` trusts the provider
`arn:aws:iam::111111111111:oidc-provider/ISSUER_HOST_PATH` for
`sts:AssumeRoleWithWebIdentity` when `ISSUER:sub` is
`system:serviceaccount:apps:reader` and `ISSUER:aud` is `sts.amazonaws.com`
(the trust policy EKS documents) and allows ec2:DescribeInstances only.
"""

import json
import pathlib
import secrets
import shutil
import time

import pytest

from control_util import start_with_control
from envoy_util import Envoy, envoy_binary
from jwt_util import Issuer
from test_sigv4_ec2 import Moto

pytest.importorskip("boto3")
jwt = pytest.importorskip("jwt")
import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402
from jwt.algorithms import ECAlgorithm, RSAAlgorithm  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PROD = "111111111111"
REGION = "us-east-1"
ISSUER = "https://oidc.eks.us-east-1.amazonaws.com/id/E2E0000000000000000000000000000A"
HOST_PATH = ISSUER.removeprefix("https://")
PROVIDER = f"arn:aws:iam::{PROD}:oidc-provider/{HOST_PATH}"
ROLE = f"arn:aws:iam::{PROD}:role/irsa-reader"
SA = "system:serviceaccount:apps:reader"


def doc(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def write_bundle(dest):
    shutil.copytree(ROOT / "src" / "bundle" / "demo", dest)
    prod = dest / "iam" / f"{PROD}.json"
    d = json.loads(prod.read_text())
    d["RoleDetailList"].append({
        "Path": "/", "RoleName": "irsa-reader", "RoleId": "AROADEMOIRSAREADER01",
        "Arn": ROLE, "CreateDate": "2026-01-01T00:00:00Z",
        "AssumeRolePolicyDocument": doc({
            "Effect": "Allow", "Principal": {"Federated": PROVIDER},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {f"{HOST_PATH}:sub": SA,
                                           f"{HOST_PATH}:aud": "sts.amazonaws.com"}}}),
        "InstanceProfileList": [],
        "RolePolicyList": [{"PolicyName": "describe", "PolicyDocument": doc(
            {"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*"})}],
        "AttachedManagedPolicies": [], "Tags": [],
    })
    prod.write_text(json.dumps(d))


class Keys:
    """The issuer's signing keys (RSA and P-256) and its JWKS file."""

    def __init__(self, path):
        self.path = path
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.write()

    def write(self):
        r = json.loads(RSAAlgorithm.to_jwk(self.rsa.public_key()))
        r.update(kid="rsa-1", alg="RS256", use="sig")
        e = json.loads(ECAlgorithm.to_jwk(self.ec.public_key()))
        e.update(kid="ec-1", alg="ES256", use="sig")
        self.path.write_text(json.dumps({"keys": [r, e]}))

    def token(self, sub=SA, alg="RS256", key=None, kid=None, **claims):
        now = int(time.time())
        body = {"iss": ISSUER, "sub": sub, "aud": ["sts.amazonaws.com"], "iat": now,
                "nbf": now, "exp": now + 3600,
                "kubernetes.io": {"namespace": sub.split(":")[2] if sub.count(":") > 2 else "",
                                  "serviceaccount": {"name": sub.rsplit(":", 1)[-1]}}}
        body.update(claims)
        signer = key or (self.rsa if alg == "RS256" else self.ec)
        return jwt.encode(body, signer, algorithm=alg,
                          headers={"kid": kid or ("rsa-1" if alg == "RS256" else "ec-1")})


class Stack:
    def __init__(self, tmp):
        self.tmp = tmp
        write_bundle(tmp / "bundle")
        self.keys = Keys(tmp / "jwks.json")
        session_key = tmp / "session.keys"
        session_key.write_text(f"k1 {secrets.token_hex(32)}\n")
        self.decision_log = tmp / "decisions.jsonl"
        self.server = start_with_control(
            tmp, "--no-watch", "--bundle", str(tmp / "bundle"),
            "--default-mapping", "ec2-query", "--ec2-auth", "sigv4",
            "--session-key", str(session_key), "--sts-listen", "127.0.0.1:0",
            "--oidc-provider", f"{ISSUER}={self.keys.path}",
            "--decision-log", str(self.decision_log))
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

    def stop(self):
        self.envoy.stop()
        self.moto.stop()
        self.server.stop()

    def logs(self):
        return self.server.log() + self.envoy.log()

    def unsigned_sts(self):
        """An STS client without credentials (AssumeRoleWithWebIdentity is
        unsigned in botocore's model)."""
        from botocore import UNSIGNED
        return boto3.client("sts", endpoint_url=self.sts_url, region_name=REGION,
                            config=Config(signature_version=UNSIGNED,
                                          retries={"max_attempts": 1}))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("irsa"))
    yield s
    s.stop()


def web_identity_session(stack, monkeypatch, token, session_name="pod-7f9c"):
    """A boto3 session whose credentials come from botocore's web-identity
    provider, configured only through the environment a pod gets."""
    token_file = stack.tmp / f"token-{secrets.token_hex(4)}"
    token_file.write_text(token)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AWS_ROLE_ARN", ROLE)
    monkeypatch.setenv("AWS_ROLE_SESSION_NAME", session_name)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", stack.sts_url)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    return boto3.Session(region_name=REGION)


def test_botocore_web_identity_provider_gets_a_role_session_and_calls_ec2(stack, monkeypatch):
    """Issue 16: botocore's AssumeRoleWithWebIdentity provider (env only)
    gets ASIA credentials for the service account's role from iamgate; the
    session is the role's (`assumed-role/irsa-reader/SESSION`) for STS and
    for EC2 through Envoy, where the role's policy allows DescribeInstances
    and nothing else."""
    token = stack.keys.token()
    session = web_identity_session(stack, monkeypatch, token)
    creds = session.get_credentials()
    assert creds.method == "assume-role-with-web-identity"
    frozen = creds.get_frozen_credentials()
    assert frozen.access_key.startswith("ASIA"), stack.logs()
    me = session.client("sts").get_caller_identity()
    assert me["Arn"] == f"arn:aws:sts::{PROD}:assumed-role/irsa-reader/pod-7f9c"
    assert me["UserId"] == "AROADEMOIRSAREADER01:pod-7f9c"
    ec2 = session.client("ec2", endpoint_url=stack.ec2_url,
                         config=Config(retries={"max_attempts": 1}))
    assert "Reservations" in ec2.describe_instances()
    with pytest.raises(ClientError) as e:
        ec2.describe_vpcs()
    assert e.value.response["Error"]["Code"] == "UnauthorizedOperation"
    # The trust decision was made for the provider and logged like any
    # other; the token and the secrets never reach a log.
    records = [json.loads(line) for line in stack.decision_log.read_text().splitlines()]
    assert any(r["principal"] == PROVIDER and r["action"] == "sts:AssumeRoleWithWebIdentity"
               and r["resource"] == ROLE and r["decision"] == "allowed" for r in records)
    for text in (stack.server.log(), stack.decision_log.read_text()):
        assert token not in text
        assert token.split(".")[2] not in text
        assert frozen.secret_key not in text
        assert frozen.token not in text


def test_answer_shape_and_es256(stack):
    """Issue 16: the AssumeRoleWithWebIdentityResult botocore parses
    (Credentials, SubjectFromWebIdentityToken, AssumedRoleUser, Provider,
    Audience), for an ES256 token, with a session policy that narrows."""
    sts = stack.unsigned_sts()
    got = sts.assume_role_with_web_identity(
        RoleArn=ROLE, RoleSessionName="es-pod", WebIdentityToken=stack.keys.token(alg="ES256"),
        DurationSeconds=900,
        Policy=json.dumps(doc({"Effect": "Allow", "Action": "ec2:DescribeVpcs", "Resource": "*"})))
    assert got["SubjectFromWebIdentityToken"] == SA
    assert got["AssumedRoleUser"] == {
        "Arn": f"arn:aws:sts::{PROD}:assumed-role/irsa-reader/es-pod",
        "AssumedRoleId": "AROADEMOIRSAREADER01:es-pod"}
    assert got["Provider"] == ISSUER
    assert got["Audience"] == "sts.amazonaws.com"
    assert 0 < got["PackedPolicySize"] <= 100
    left = got["Credentials"]["Expiration"].timestamp() - time.time()
    assert 800 < left <= 900
    c = got["Credentials"]
    ec2 = boto3.client("ec2", endpoint_url=stack.ec2_url, region_name=REGION,
                       config=Config(retries={"max_attempts": 1}),
                       aws_access_key_id=c["AccessKeyId"],
                       aws_secret_access_key=c["SecretAccessKey"],
                       aws_session_token=c["SessionToken"])
    # The session policy (DescribeVpcs) and the role (DescribeInstances)
    # intersect to nothing.
    for call in (ec2.describe_instances, ec2.describe_vpcs):
        with pytest.raises(ClientError) as e:
            call()
        assert e.value.response["Error"]["Code"] == "UnauthorizedOperation"


def test_another_service_account_is_refused_by_the_trust_policy(stack, monkeypatch):
    """Issue 16: a valid token of another service account fails the trust
    policy's `ISSUER:sub` condition: AccessDenied through botocore's
    provider, and no credentials."""
    token = stack.keys.token(sub="system:serviceaccount:apps:writer")
    session = web_identity_session(stack, monkeypatch, token)
    with pytest.raises(ClientError) as e:
        session.get_credentials().get_frozen_credentials()
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


@pytest.mark.parametrize("case, want", [
    ("wrong audience", "InvalidIdentityToken"),
    ("expired", "ExpiredTokenException"),
    ("bad signature", "InvalidIdentityToken"),
    ("unknown issuer", "InvalidIdentityToken"),
    ("alg none", "InvalidIdentityToken"),
    ("HS256 with the public key", "InvalidIdentityToken"),
    ("no sub", "IDPRejectedClaim"),
])
def test_bad_tokens_are_refused_with_sts_codes(stack, case, want):
    """Issue 16: tokens iamgate must refuse, each with STS's code and a
    client-error status (never 5xx)."""
    k = stack.keys
    now = int(time.time())
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = {
        "wrong audience": lambda: k.token(aud=["vault"]),
        "expired": lambda: k.token(iat=now - 7200, nbf=now - 7200, exp=now - 3600),
        "bad signature": lambda: k.token(key=other),
        "unknown issuer": lambda: k.token(iss="https://oidc.example.invalid/id/X"),
        "alg none": lambda: jwt.encode({"iss": ISSUER, "sub": SA, "aud": "sts.amazonaws.com",
                                        "exp": now + 600}, None, algorithm="none",
                                       headers={"kid": "rsa-1"}),
        "HS256 with the public key": lambda: hs256_with(stack.keys.path.read_bytes(), now),
        "no sub": lambda: k.token(sub=""),
    }[case]()
    with pytest.raises(ClientError) as e:
        stack.unsigned_sts().assume_role_with_web_identity(
            RoleArn=ROLE, RoleSessionName="bad", WebIdentityToken=token)
    err = e.value.response
    assert err["Error"]["Code"] == want, stack.logs()
    assert 400 <= err["ResponseMetadata"]["HTTPStatusCode"] < 500


def hs256_with(secret, now):
    """An HS256 token keyed with the JWKS text: the algorithm-confusion
    attack (PyJWT refuses PEM-looking keys, so the HMAC is made by hand)."""
    import base64
    import hashlib
    import hmac

    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "HS256", "kid": "rsa-1"}).encode())
    body = b64(json.dumps({"iss": ISSUER, "sub": SA, "aud": "sts.amazonaws.com",
                           "exp": now + 600}).encode())
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def test_rotated_jwks_file_is_reread(stack):
    """Issue 16: the JWKS file is read again when it changes: after a key
    rotation, tokens of the new key are accepted and the old key's refused."""
    old = stack.keys.token()
    stack.keys.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stack.keys.write()
    sts = stack.unsigned_sts()
    got = sts.assume_role_with_web_identity(
        RoleArn=ROLE, RoleSessionName="rotated", WebIdentityToken=stack.keys.token())
    assert got["SubjectFromWebIdentityToken"] == SA
    with pytest.raises(ClientError) as e:
        sts.assume_role_with_web_identity(
            RoleArn=ROLE, RoleSessionName="old", WebIdentityToken=old)
    assert e.value.response["Error"]["Code"] == "InvalidIdentityToken"
