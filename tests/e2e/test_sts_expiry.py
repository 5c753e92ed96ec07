"""Issue 13, "an expired ... token is ExpiredToken": a session issued now is
refused once it has expired, shown end to end with real clients and a
shifted clock instead of a Rust-only test (sessions last at least 900 s).

One iamgate (real clock) issues a 900 s role session to the AWS CLI. A
second iamgate holding the same session key and credentials runs under
libfaketime two hours ahead (`LD_PRELOAD` + `FAKETIME`, the Debian
`faketime` package), behind the real Envoy with `moto` as EC2. The AWS CLI
and boto3 run under the same shifted clock, so their signatures are fresh
for that iamgate: a long-term key still works (which shows the Rust
binary's `SystemTime` really moved: a +2 h signature would otherwise be
RequestExpired), while the session answers `ExpiredToken` at STS and
`RequestExpired` at EC2, as AWS does. No mock: libfaketime only moves the
clock the real processes read.
"""

import datetime
import json
import os
import pathlib
import secrets
import subprocess
import sys

import pytest

from conftest import start_server
from envoy_util import Envoy, envoy_binary
from jwt_util import Issuer
from test_sigv4_ec2 import Moto, key
from test_sts import OPERATOR, PROD, REGION, write_bundle

pytest.importorskip("boto3")
import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
BIN = pathlib.Path(sys.executable).parent
LIBFAKETIME = next((p for p in (
    pathlib.Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"),
    pathlib.Path("/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"),
    pathlib.Path("/usr/lib/faketime/libfaketime.so.1")) if p.exists()), None)
SHIFT = datetime.timedelta(hours=2)


def shifted_env():
    """The environment that runs a process two hours ahead."""
    return {"LD_PRELOAD": str(LIBFAKETIME), "FAKETIME": "+2h",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


@pytest.fixture(scope="module")
def stacks(tmp_path_factory):
    if LIBFAKETIME is None:
        pytest.skip("libfaketime is not installed (Debian package faketime)")
    tmp = tmp_path_factory.mktemp("sts-expiry")
    write_bundle(tmp / "bundle")
    keys = {"alice": key("alice")}
    creds = tmp / "credentials.json"
    creds.write_text(json.dumps(list(keys.values())))
    session_key = tmp / "session.keys"
    session_key.write_text(f"k1 {secrets.token_hex(32)}\n")
    common = ("--no-watch", "--bundle", str(tmp / "bundle"), "--default-mapping", "ec2-query",
              "--ec2-auth", "sigv4", "--credentials", str(creds),
              "--session-key", str(session_key), "--sts-listen", "127.0.0.1:0")
    now = start_server(tmp, *common)
    later = moto = None
    try:
        later = start_server(tmp, *common, env=shifted_env())
        moto = Moto(tmp)
        envoy = Envoy(envoy_binary(), tmp, HERE / "ec2" / "bootstrap.yaml",
                      iamgate_grpc_port=int(later.grpc.rsplit(":", 1)[1]),
                      backend_port=moto.port, failure_mode_allow="false",
                      max_request_bytes=65536, jwks=Issuer().jwks)
    except Exception:
        for p in (moto, later, now):
            if p is not None:
                p.stop()
        raise
    yield {"now": now, "later": later, "envoy": envoy, "keys": keys}
    envoy.stop()
    moto.stop()
    later.stop()
    now.stop()


def cli(creds, *args, shifted=False):
    """The AWS CLI with these credentials, on the real or the shifted clock."""
    env = {**os.environ, "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
           "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
           "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
           "AWS_EC2_METADATA_DISABLED": "true", "AWS_MAX_ATTEMPTS": "1"}
    env.pop("AWS_SESSION_TOKEN", None)
    if creds.get("SessionToken"):
        env["AWS_SESSION_TOKEN"] = creds["SessionToken"]
    if shifted:
        env.update(shifted_env())
    return subprocess.run([str(BIN / "aws"), *args, "--region", REGION, "--output", "json"],
                          env=env, capture_output=True, text=True, timeout=60)


def alice(stacks):
    return stacks["keys"]["alice"]["AccessKey"]


def issue_session(stacks):
    """A 900 s role session from the real-clock iamgate (AWS CLI)."""
    url = "http://" + stacks["now"].addrs["sts"]
    out = cli(alice(stacks), "sts", "assume-role", "--endpoint-url", url,
              "--role-arn", OPERATOR, "--role-session-name", "short",
              "--duration-seconds", "900")
    assert out.returncode == 0, out.stderr + stacks["now"].log()
    return json.loads(out.stdout)["Credentials"]


def test_libfaketime_moves_the_binary_clock(stacks):
    """Issue 13: under libfaketime the Rust binary's wall clock (SystemTime,
    clock_gettime) is two hours ahead: a session it issues expires two
    hours after the real one would, and a long-term key signing on the
    shifted clock is accepted there (fresh within five minutes) while a
    real-clock signature is RequestExpired."""
    later_sts = "http://" + stacks["later"].addrs["sts"]
    out = cli(alice(stacks), "sts", "assume-role", "--endpoint-url", later_sts,
              "--role-arn", OPERATOR, "--role-session-name", "ahead",
              "--duration-seconds", "900", shifted=True)
    assert out.returncode == 0, out.stderr + stacks["later"].log()
    expiration = datetime.datetime.fromisoformat(
        json.loads(out.stdout)["Credentials"]["Expiration"].replace("Z", "+00:00"))
    real_now = datetime.datetime.now(datetime.timezone.utc)
    ahead = expiration - real_now - datetime.timedelta(seconds=900)
    assert SHIFT - datetime.timedelta(minutes=1) < ahead < SHIFT + datetime.timedelta(minutes=1)
    k = alice(stacks)
    sts = boto3.client("sts", endpoint_url=later_sts, region_name=REGION,
                       aws_access_key_id=k["AccessKeyId"],
                       aws_secret_access_key=k["SecretAccessKey"],
                       config=Config(retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as e:
        sts.get_caller_identity()
    assert e.value.response["Error"]["Code"] == "RequestExpired"


def test_expired_session_is_expired_token_at_sts(stacks):
    """Issue 13: a 900 s session works on the real clock and, two hours
    later (another iamgate with the same session key), `aws sts
    get-caller-identity` answers ExpiredToken."""
    session = issue_session(stacks)
    now_sts = "http://" + stacks["now"].addrs["sts"]
    out = cli(session, "sts", "get-caller-identity", "--endpoint-url", now_sts)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["Arn"] == f"arn:aws:sts::{PROD}:assumed-role/operator/short"
    later_sts = "http://" + stacks["later"].addrs["sts"]
    out = cli(session, "sts", "get-caller-identity", "--endpoint-url", later_sts, shifted=True)
    assert out.returncode != 0
    assert "(ExpiredToken)" in out.stderr, out.stderr + stacks["later"].log()
    # The user's own key, signed on the same shifted clock, still answers.
    out = cli(alice(stacks), "sts", "get-caller-identity", "--endpoint-url", later_sts,
              shifted=True)
    assert out.returncode == 0, out.stderr + stacks["later"].log()


def test_expired_session_is_request_expired_at_ec2(stacks):
    """Issue 13: through the real Envoy to the shifted iamgate, EC2 calls
    with the expired session are RequestExpired ("The security token
    included in the request is expired") and never reach moto; alice's
    long-term key on the same clock is allowed and moto answers."""
    session = issue_session(stacks)
    ec2_url = f"http://127.0.0.1:{stacks['envoy'].port}"
    out = cli(session, "ec2", "describe-instances", "--endpoint-url", ec2_url, shifted=True)
    assert out.returncode != 0
    assert "(RequestExpired)" in out.stderr, out.stderr + stacks["later"].log()
    assert "security token included in the request is expired" in out.stderr
    out = cli(alice(stacks), "ec2", "describe-vpcs", "--endpoint-url", ec2_url, shifted=True)
    assert out.returncode == 0, out.stderr + stacks["later"].log()
    assert "Vpcs" in json.loads(out.stdout)
