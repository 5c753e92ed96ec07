"""Issue 13, "Credentials and SigV4" on the GENERIC ext_authz mapping: a
route with `iamgate.auth: sigv4` (region and service named by the route)
takes its caller from the request's Signature Version 4 alone. Requests are
signed by botocore (`SigV4Auth` / `SigV4QueryAuth` on an `AWSRequest`,
code nobody here wrote) and sent through the real Envoy (ext_authz with the
body forwarded) to a recording backend; iamgate verifies the signature
against `--credentials` and decides as the signing IAM user.

Demo principals (account 111111111111): alice is an administrator; carol
(group operators) may describe instances but not terminate them; bob's key
is Inactive.
"""

import json
import pathlib
import secrets
import time
import xml.etree.ElementTree as ET

import pytest
import requests

from conftest import start_server
from envoy_util import Backend, Envoy, envoy_binary

pytest.importorskip("botocore")
from botocore.auth import SigV4Auth, SigV4QueryAuth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
PROD = "111111111111"
ALICE = f"arn:aws:iam::{PROD}:user/alice"
CAROL = f"arn:aws:iam::{PROD}:user/carol"
REGION = "us-east-1"
SERVICE = "widgets"
INSTANCE = "i-0a111000000000001"


def key(user, status="Active"):
    """An access key as `aws iam create-access-key` prints it."""
    return {"AccessKey": {
        "UserName": user,
        "AccessKeyId": "AKIA" + secrets.token_hex(8).upper(),
        "Status": status,
        "SecretAccessKey": secrets.token_urlsafe(30),
        "CreateDate": "2026-01-01T00:00:00Z",
    }}


class Stack:
    def __init__(self, tmp_path):
        self.keys = {"alice": key("alice"), "carol": key("carol"),
                     "bob": key("bob", status="Inactive")}
        creds = tmp_path / "credentials.json"
        creds.write_text(json.dumps(list(self.keys.values())))
        self.decision_log = tmp_path / "decisions.jsonl"
        # `x-caller` is a trusted principal header for proxy routes; on the
        # SigV4 route it must change nothing.
        self.server = start_server(
            tmp_path, "--no-watch", "--credentials", str(creds),
            "--principal-header", "x-caller", "--decision-log", str(self.decision_log))
        self.backend = Backend(tmp_path, HERE / "envoy" / "backend.py")
        grpc_port = int(self.server.grpc.rsplit(":", 1)[1])
        try:
            self.envoy = Envoy(envoy_binary(), tmp_path, HERE / "sigv4_generic" / "bootstrap.yaml",
                               iamgate_grpc_port=grpc_port, backend_port=self.backend.port)
        except Exception:
            self.backend.stop()
            self.server.stop()
            raise
        self.url = f"http://127.0.0.1:{self.envoy.port}"

    def creds(self, user, secret=None):
        k = self.keys[user]["AccessKey"]
        return Credentials(k["AccessKeyId"], secret or k["SecretAccessKey"])

    def signed(self, user, method, path, body=None, secret=None, service=SERVICE):
        """The headers botocore's SigV4 signer gives the request."""
        req = AWSRequest(method=method, url=self.url + path, data=body,
                         headers={"Content-Type": "application/json"} if body else {})
        SigV4Auth(self.creds(user, secret), service, REGION).add_auth(req)
        return dict(req.headers.items())

    def send(self, method, path, headers, body=None):
        return requests.request(method, self.url + path, data=body, headers=headers, timeout=10)

    def backend_saw(self, path):
        return [r for r in self.backend.requests() if r["path"] == path]

    def stop(self):
        self.envoy.stop()
        self.backend.stop()
        self.server.stop()

    def logs(self):
        return self.server.log() + self.envoy.log()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("sigv4-generic"))
    yield s
    s.stop()


def aws_error(resp):
    """The code of AWS's Query-protocol error document."""
    root = ET.fromstring(resp.text)
    assert root.tag == "ErrorResponse", resp.text
    return root.findtext("./Error/Code")


def test_signed_request_is_allowed_as_the_signer(stack):
    """Issue 13: a botocore-signed GET on the generic SigV4 route reaches
    the backend as the signing user (x-iamgate-principal set by iamgate)."""
    path = f"/DescribeInstances/{INSTANCE}"
    r = stack.send("GET", path, stack.signed("carol", "GET", path))
    assert r.status_code == 200, r.text + stack.logs()
    seen = stack.backend_saw(path)
    assert seen and seen[-1]["headers"]["x-iamgate-principal"] == CAROL


def test_signed_body_is_allowed_and_tampered_body_is_refused(stack):
    """Issue 13: the payload hash covers the body Envoy forwards: the body
    botocore signed passes, a changed one is SignatureDoesNotMatch and never
    reaches the backend."""
    path = f"/DescribeInstances/{INSTANCE}?view=full"
    body = json.dumps({"filter": "team=blue"})
    headers = stack.signed("carol", "POST", path, body=body)
    tampered = json.dumps({"filter": "team=red"})
    r = stack.send("POST", path, headers, body=tampered)
    assert r.status_code == 403, r.text
    assert aws_error(r) == "SignatureDoesNotMatch"
    assert not any(s["body"] == tampered for s in stack.backend_saw(path))
    ok = stack.send("POST", path, headers, body=body)
    assert ok.status_code == 200, ok.text + stack.logs()
    assert stack.backend_saw(path)[-1]["body"] == body


def test_wrong_secret_is_signature_does_not_match(stack):
    """Issue 13: a real key id signed with a wrong secret."""
    path = f"/DescribeInstances/{INSTANCE}"
    headers = stack.signed("alice", "GET", path, secret="not-the-secret")
    r = stack.send("GET", path, headers)
    assert r.status_code == 403, r.text
    assert aws_error(r) == "SignatureDoesNotMatch"
    assert r.headers["content-type"].startswith("text/xml")


def test_presigned_url_works_then_expires(stack):
    """Issue 13: a presigned URL (SigV4QueryAuth) is accepted while valid;
    replayed after X-Amz-Expires it is RequestExpired."""
    path = f"/DescribeInstances/{INSTANCE}"
    req = AWSRequest(method="GET", url=stack.url + path)
    SigV4QueryAuth(stack.creds("carol"), SERVICE, REGION, expires=1).add_auth(req)
    first = requests.get(req.url, timeout=10)
    assert first.status_code == 200, first.text + stack.logs()
    time.sleep(2.2)
    again = requests.get(req.url, timeout=10)
    assert again.status_code == 400, again.text
    assert aws_error(again) == "RequestExpired"


def test_inactive_key_is_invalid_client_token_id(stack):
    """Issue 13: bob's key is listed as Inactive."""
    path = f"/DescribeInstances/{INSTANCE}"
    r = stack.send("GET", path, stack.signed("bob", "GET", path))
    assert r.status_code == 401, r.text
    assert aws_error(r) == "InvalidClientTokenId"


def test_scope_and_unsigned_requests_are_refused(stack):
    """Issue 13: the credential scope must name the route's service; an
    unsigned request (even with a trusted-principal header) is refused."""
    path = f"/DescribeInstances/{INSTANCE}"
    r = stack.send("GET", path, stack.signed("alice", "GET", path, service="ec2"))
    assert r.status_code == 401, r.text
    assert aws_error(r) == "AuthFailure"
    r = stack.send("GET", path, {"x-caller": ALICE})
    assert r.status_code == 401, r.text
    assert aws_error(r) == "AuthFailure"


def test_headers_cannot_change_the_principal(stack):
    """Issue 13: on a SigV4 route the principal is the signer's alone: a
    trusted-principal header and an `x-iamgate-principal` naming the
    administrator change nothing (carol is denied TerminateInstances; her
    allowed call reaches the backend as carol)."""
    path = f"/TerminateInstances/{INSTANCE}"
    headers = stack.signed("carol", "POST", path, body="{}")
    headers.update({"x-caller": ALICE, "x-iamgate-principal": ALICE})
    r = stack.send("POST", path, headers, body="{}")
    assert r.status_code == 403, r.text
    assert not stack.backend_saw(path)
    records = [json.loads(line) for line in stack.decision_log.read_text().splitlines()]
    assert any(rec["principal"] == CAROL and rec["action"] == "ec2:TerminateInstances"
               for rec in records)
    assert not any(rec["principal"] == ALICE for rec in records)

    path = f"/DescribeInstances/{INSTANCE}"
    headers = stack.signed("carol", "GET", path)
    headers.update({"x-caller": ALICE, "x-iamgate-principal": ALICE})
    r = stack.send("GET", path, headers)
    assert r.status_code == 200, r.text
    assert stack.backend_saw(path)[-1]["headers"]["x-iamgate-principal"] == CAROL
