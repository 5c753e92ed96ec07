"""Issues 12 and 13: the hot paths answer as before.

- ext_authz `Check` is answered on the gRPC listener without tonic's router
  and unary server (issue 12): a real gRPC client (grpcio, raw bytes) gets
  the same answers: an allow, a denial for bytes that do not decode, and
  tonic's statuses for a compressed or oversized message.
- Session tokens are opened once and then served from a bounded cache
  (issue 13): through the real Envoy with botocore-signed requests, a
  session keeps working request after request, and once its token is
  cached an altered copy, or the token presented with another session's
  key, is still InvalidClientTokenId and never reaches the backend.
"""

import json
import pathlib
import secrets

import grpc
import pytest
import requests

from conftest import start_server
from envoy_util import Backend, Envoy, envoy_binary

pytest.importorskip("botocore")
import boto3  # noqa: E402
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
PROD = "111111111111"
ALICE = f"arn:aws:iam::{PROD}:user/alice"
REGION = "us-east-1"
BLUE_WEB = "i-0a111000000000001"
CHECK = "/envoy.service.auth.v3.Authorization/Check"


# ── a CheckRequest, encoded by hand (protobuf wire format) ──────────────

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number, payload):
    """A length-delimited field."""
    if isinstance(payload, str):
        payload = payload.encode()
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def entry(k, v):
    return field(1, k) + field(2, v)


def check_request(principal, action, resource):
    """envoy.service.auth.v3.CheckRequest: attributes.request.http (method,
    headers, path, host) and the route's context extensions (the demo
    bundle's SCP guards the region)."""
    http = (field(2, "POST") + field(3, entry("x-iamgate-principal", principal))
            + field(4, "/act") + field(5, "api.local"))
    attributes = (field(4, field(2, http))
                  + field(10, entry("iamgate.action", action))
                  + field(10, entry("iamgate.resource", resource))
                  + field(10, entry("iamgate.context.aws:RequestedRegion", REGION)))
    return field(1, attributes)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # The principal header is trusted: the test plays the proxy hop.
    s = start_server(tmp_path_factory.mktemp("hotpath"), "--principal-header",
                     "x-iamgate-principal")
    yield s
    s.stop()


def test_check_answers_on_the_direct_path(server):
    """Issue 12: grpcio gets an allow (status OK, the allow's dynamic
    metadata), a denial with status OK for bytes that are no CheckRequest
    (never a gRPC error, which failure_mode_allow could turn into an
    allow), and the same statuses as tonic's generic server for what it
    refuses: a gzip-compressed message is UNIMPLEMENTED, one over the size
    limit INVALID_ARGUMENT. The server keeps answering afterwards."""
    with grpc.insecure_channel(server.grpc) as channel:
        call = channel.unary_unary(CHECK)  # bytes in, bytes out
        allowed = call(check_request(ALICE, "ec2:DescribeInstances", "*"), timeout=10)
        assert b"\x1a\x07allowed" in allowed  # dynamic_metadata decision
        assert b"x-iamgate-decision-id" in allowed
        denied, c = call.with_call(b"\xff\xff\xff", timeout=10)
        assert c.code() == grpc.StatusCode.OK
        assert b"allowed" not in denied and b"decode" in denied
        with pytest.raises(grpc.RpcError) as e:
            call(check_request(ALICE, "ec2:DescribeInstances", "*"), timeout=10,
                 compression=grpc.Compression.Gzip)
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED, e.value.details()
        with pytest.raises(grpc.RpcError) as e:
            call(b"\x00" * (3 * 1024 * 1024), timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
        for _ in range(20):
            again = call(check_request(ALICE, "ec2:DescribeInstances", "*"), timeout=10)
            assert b"\x1a\x07allowed" in again
    metrics = requests.get(server.admin + "/metrics", timeout=10).text
    allows = [line for line in metrics.splitlines()
              if line.startswith('iamgate_decisions_total{decision="allowed",frontend="ext_authz"}')]
    assert allows and float(allows[0].rsplit(" ", 1)[1]) >= 21, allows


def key(user):
    return {"AccessKey": {"UserName": user, "AccessKeyId": "AKIA" + secrets.token_hex(8).upper(),
                          "Status": "Active", "SecretAccessKey": secrets.token_urlsafe(30),
                          "CreateDate": "2026-01-01T00:00:00Z"}}


def test_cached_sessions_still_refuse_altered_tokens(tmp_path):
    """Issue 13: session credentials (GetSessionToken at iamgate's STS
    listener) sign 30 requests on a generic SigV4 route through the real
    Envoy: all reach the backend as the session's user (the token is opened
    once, then cached). With the token cached, an altered token and the
    token presented with another session's key id are InvalidClientTokenId
    and never reach the backend; the session still works after them."""
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
        a = sts.get_session_token(DurationSeconds=900)["Credentials"]
        b = sts.get_session_token(DurationSeconds=900)["Credentials"]
        url = f"http://127.0.0.1:{envoy.port}"

        def send(key_id, secret, token, path):
            req = AWSRequest(method="GET", url=url + path)
            SigV4Auth(Credentials(key_id, secret, token), "widgets", REGION).add_auth(req)
            return requests.get(url + path, headers=dict(req.headers.items()), timeout=10)

        def reached(path):
            return [q for q in backend.requests() if q["path"] == path]

        for i in range(30):
            path = f"/DescribeInstances/{BLUE_WEB}?n={i}"
            r = send(a["AccessKeyId"], a["SecretAccessKey"], a["SessionToken"], path)
            assert r.status_code == 200, r.text + server.log()
        seen = reached(f"/DescribeInstances/{BLUE_WEB}?n=29")
        assert seen and seen[0]["headers"]["x-iamgate-principal"] == f"arn:aws:iam::{PROD}:user/carol"
        token = a["SessionToken"]
        altered = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
        for n, (key_id, secret, tok) in enumerate([
                (a["AccessKeyId"], a["SecretAccessKey"], altered),
                # a's cached token with b's key id (and b's secret).
                (b["AccessKeyId"], b["SecretAccessKey"], token)]):
            path = f"/DescribeInstances/{BLUE_WEB}?bad={n}"
            r = send(key_id, secret, tok, path)
            assert r.status_code in (401, 403), r.text
            assert "InvalidClientTokenId" in r.text
            assert not reached(path)
        path = f"/DescribeInstances/{BLUE_WEB}?after=1"
        r = send(a["AccessKeyId"], a["SecretAccessKey"], token, path)
        assert r.status_code == 200, r.text
        assert token not in server.log() and a["SecretAccessKey"] not in server.log()
    finally:
        envoy.stop()
        backend.stop()
        server.stop()
