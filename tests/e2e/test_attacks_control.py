"""Attacks on what iamgate believes (issue 11, items 7 and 8, and the admin
listener of its "Also" list), sent to the real binary and, where the effect
shows in decisions, through the real Envoy in front of a stub EC2 backend.

Item 7: anyone who can reach a decision port (the protected application, or
an SSRF in it, shares loopback with a sidecar) must not be able to rewrite
the inventory; only the authenticated control listener changes it.
Item 8: runtime inventory changes must not be lost or resurrected by a
reload of unrelated files or a restart, and a call that the backend refused
must change nothing.
"""

import json
import os
import pathlib
import signal
import subprocess
import time

import grpc
import pytest
import requests

from conftest import BINARY, grpc_stubs, wait_for
from control_util import control_get, control_post, start_with_control, write_token
from envoy_util import Backend, Envoy, envoy_binary
from jwt_util import PAYLOAD_KEY, Issuer
from test_ec2_envoy import (AMI_PRIVATE, AMI_SHARED, BOB, DAVE, DEV, HERE, HOST_REGIONS, PROD,
                            RED_APP, Ec2Stack, demo_bundle, error, run_instances)
from test_tls import make_ca, make_leaf

DEV_REGION_DIR = pathlib.Path("ec2") / "222222222222" / "us-east-1"
STOP_RED = {"Action": "StopInstances", "InstanceId.1": RED_APP}


@pytest.fixture(scope="session")
def envoy_bin():
    return envoy_binary()


@pytest.fixture(scope="session")
def inv_pb(tmp_path_factory):
    return grpc_stubs(tmp_path_factory, "inventory")


class Stack(Ec2Stack):
    """iamgate (demo bundle as a directory, a control listener) + a stub EC2
    backend + Envoy; `restart()` restarts iamgate with the same arguments
    (and Envoy, pointed at its new port)."""

    def __init__(self, tmp_path, envoy_bin, backend="backend.py", args=()):
        self.tmp_path, self.envoy_bin = tmp_path, envoy_bin
        self.bundle = demo_bundle(tmp_path)
        self.token = "stack-" + os.urandom(16).hex()
        hosts = [a for r in HOST_REGIONS
                 for a in ("--ec2-host-region", f"ec2.{r}.amazonaws.com={r}")]
        self.issuer = Issuer()
        self.args = ["--bundle", str(self.bundle), "--default-mapping", "ec2-query",
                     *hosts,
                     "--jwt-principal", f"{PAYLOAD_KEY}:prod=arn:aws:iam::{PROD}:user/{{claim}}",
                     "--jwt-principal", f"{PAYLOAD_KEY}:dev=arn:aws:iam::{DEV}:user/{{claim}}",
                     *args]
        self.server = self._start_server()
        self.backend = Backend(tmp_path, HERE / backend)
        self.envoy = self._start_envoy()

    def _start_server(self):
        return start_with_control(self.tmp_path, *self.args, token=self.token)

    def _start_envoy(self):
        port = int(self.server.grpc.rsplit(":", 1)[1])
        return Envoy(self.envoy_bin, self.tmp_path, HERE / "bootstrap.yaml",
                     iamgate_grpc_port=port, backend_port=self.backend.port,
                     failure_mode_allow="false", max_request_bytes=65536,
                     jwks=self.issuer.jwks)

    def restart(self):
        self.envoy.stop()
        assert self.server.stop() == 0
        self.server = self._start_server()
        self.envoy = self._start_envoy()

    def inventory_status(self):
        return requests.get(self.server.admin + "/v1/status", timeout=5).json()["inventory"]

    def grants(self, resource_id):
        r = control_get(self.server, f"/v1/inventory/{resource_id}")
        assert r.status_code == 200, r.text
        return r.json()["resource"]["attributes"].get("grants", [])


# ---- Item 7: the decision and admin listeners cannot change beliefs --------

def test_decision_ports_refuse_inventory_writes(tmp_path, envoy_bin, inv_pb):
    """issue 11, item 7: the attacker reaches iamgate's HTTP and gRPC
    decision ports (and the admin port) and tries to retag a red instance
    blue, so that bob may stop it. Every door refuses; bob's call through
    Envoy stays denied and never reaches the backend. The same change made
    by the authenticated control plane does take effect, so the refusals
    are what kept the attack out."""
    pb2, pb2_grpc = inv_pb
    stack = Stack(tmp_path, envoy_bin, args=["--no-watch"])
    try:
        assert stack.call(BOB, STOP_RED)[0] == 403
        forged = {"id": RED_APP, "account": PROD, "region": "us-east-1", "tags": {"team": "blue"}}
        change = {"changes": [{"op": "upsert", "resource": forged}]}
        before = stack.inventory_status()

        for base in (stack.server.http, stack.server.admin):
            r = requests.post(base + "/v1/inventory", json=change, timeout=10)
            assert r.status_code == 404, (base, r.status_code, r.text)
            r = requests.post(base + "/v1/inventory/cli", params={"account": PROD, "region": "us-east-1"},
                              json={"Reservations": []}, timeout=10)
            assert r.status_code == 404, (base, r.text)
            assert requests.get(f"{base}/v1/inventory/{RED_APP}", timeout=10).status_code == 404

        with grpc.insecure_channel(stack.server.grpc) as ch:
            stub = pb2_grpc.InventoryStub(ch)
            upsert = pb2.InventoryChange(upsert=pb2.InventoryResource(
                id=RED_APP, account=PROD, region="us-east-1", tags={"team": "blue"}))
            with pytest.raises(grpc.RpcError) as e:
                stub.Apply(pb2.ApplyInventoryRequest(changes=[upsert]), timeout=10)
            assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
            with pytest.raises(grpc.RpcError) as e:
                stub.Get(pb2.GetInventoryResourceRequest(id=RED_APP), timeout=10)
            assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED

        # The control listener without credentials, with a wrong token, with
        # another scheme: 401 / UNAUTHENTICATED, before anything is read.
        control = stack.server.control
        token = stack.server.token
        for headers in ({}, {"authorization": "Bearer wrong-token-0123456789abcdef"},
                        {"authorization": f"Bearer {token}x"},
                        {"authorization": f"Bearer {token[:-1]}"},
                        {"authorization": f"Basic {token}"}):
            r = requests.post(control + "/v1/inventory", json=change, headers=headers, timeout=10)
            assert r.status_code == 401, (headers, r.text)
            assert r.json()["error"]["code"] == "unauthenticated"
            assert r.headers["www-authenticate"].startswith("Bearer")
        with grpc.insecure_channel(stack.server.addrs["control"]) as ch:
            stub = pb2_grpc.InventoryStub(ch)
            for metadata in ((), (("authorization", "Bearer wrong-token-0123456789abcdef"),)):
                with pytest.raises(grpc.RpcError) as e:
                    stub.Apply(pb2.ApplyInventoryRequest(changes=[upsert]), timeout=10,
                               metadata=metadata)
                assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED

        assert stack.call(BOB, STOP_RED)[0] == 403
        assert stack.actions() == []
        after = stack.inventory_status()
        assert after["version"] == before["version"], "nothing changed the inventory"
        metrics = requests.get(stack.server.admin + "/metrics", timeout=5).text
        assert 'reason="unauthenticated"' in metrics

        # The control plane, authenticated, may make the change.
        r = control_post(stack.server, "/v1/inventory", json=change)
        assert r.status_code == 200, r.text
        status, _, body = stack.call(BOB, STOP_RED)
        assert status == 200, body
        assert stack.actions() == ["StopInstances"]
    finally:
        stack.close()


def test_admin_listener_serves_probes_and_metrics_but_nothing_privileged(tmp_path):
    """issue 11, item 7 and "Also": the admin listener (reachable by
    Prometheus in-cluster) serves probes, metrics and status, but neither
    reloads, nor decodes authorization messages, nor touches the inventory.
    Without --control-listen those are not served anywhere."""
    server = start_with_control(tmp_path)
    try:
        admin = server.admin
        assert requests.get(admin + "/healthz", timeout=5).status_code == 200
        assert requests.get(admin + "/readyz", timeout=5).status_code == 200
        assert "iamgate_decisions_total" in requests.get(admin + "/metrics", timeout=5).text
        status = requests.get(admin + "/v1/status", timeout=5).json()
        assert status["revision"].startswith("demo-1+sha256:")
        assert status["inventory"]["version"].endswith(f"-{status['inventory']['seq']}")
        assert server.token not in json.dumps(status)
        for path in ("/v1/reload", "/v1/decode-authorization-message", "/v1/inventory"):
            r = requests.post(admin + path, json={"message": "x"}, timeout=10)
            assert r.status_code == 404, (path, r.text)
        assert control_post(server, "/v1/reload").status_code == 200
        # The control listener's status is the admin's.
        assert control_get(server, "/v1/status").json()["revision"].startswith("demo-1+sha256:")
    finally:
        server.stop()

    from conftest import start_server
    plain = start_server(tmp_path)
    try:
        assert "control" not in plain.addrs
        assert requests.post(plain.admin + "/v1/reload", timeout=10).status_code == 404
        assert requests.post(plain.http + "/v1/inventory", json={"changes": []},
                             timeout=10).status_code == 404
        assert "not served" in plain.log()
    finally:
        plain.stop()


def test_control_listener_never_starts_open(tmp_path):
    """issue 11, item 7: a control listener without authentication, or with
    an unusable token, refuses to start rather than serve everyone."""
    base = [str(BINARY), "serve", "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
            "--admin-listen", "127.0.0.1:0", "--control-listen", "127.0.0.1:0"]
    p = subprocess.run(base, capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "needs authentication" in p.stderr or "control_token_file" in p.stderr, p.stderr
    weak = tmp_path / "weak.token"
    weak.write_text("short\n")
    p = subprocess.run(base + ["--control-token-file", str(weak)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "shorter than 16 characters" in p.stderr, p.stderr
    # A token file without a control listener is a mistake, not a no-op.
    token, _ = write_token(tmp_path)
    p = subprocess.run(base[:-2] + ["--control-token-file", str(token)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0


def test_control_token_rotation(tmp_path):
    """issue 11, item 7: a rotated token applies on SIGHUP (and within the
    re-read interval); the old one is refused from then on, and a token
    file that becomes unusable refuses everyone."""
    server = start_with_control(tmp_path)
    try:
        old = server.auth
        assert control_get(server, "/v1/status").status_code == 200
        new_token = "rotated-" + "0123456789abcdef"
        server.token_file.write_text(new_token + "\n")
        server.proc.send_signal(signal.SIGHUP)
        new = {"authorization": f"Bearer {new_token}"}
        assert wait_for(lambda: requests.get(server.control + "/v1/status", headers=new,
                                             timeout=5).status_code == 200)
        assert requests.get(server.control + "/v1/status", headers=old, timeout=5).status_code == 401
        server.token_file.write_text("")
        server.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: requests.get(server.control + "/v1/status", headers=new,
                                             timeout=5).status_code == 401)
    finally:
        server.stop()


def test_control_listener_with_client_certificates(tmp_path):
    """issue 11, item 7: with --control-client-ca only a client holding a
    certificate from that CA completes the handshake; others never reach a
    handler (no token configured here)."""
    make_ca(tmp_path, "ca")
    make_ca(tmp_path, "other-ca")
    make_leaf(tmp_path, "server", "ca", "IP:127.0.0.1,DNS:localhost")
    make_leaf(tmp_path, "operator", "ca", "URI:spiffe://demo/ops/operator", client=True)
    make_leaf(tmp_path, "intruder", "other-ca", "URI:spiffe://demo/app", client=True)
    from conftest import start_server
    server = start_server(tmp_path, "--control-listen", "127.0.0.1:0",
                          "--control-tls-cert", str(tmp_path / "server.pem"),
                          "--control-tls-key", str(tmp_path / "server.key"),
                          "--control-client-ca", str(tmp_path / "ca.pem"))
    url = "https://" + server.addrs["control"]
    ca = str(tmp_path / "ca.pem")
    try:
        r = requests.post(url + "/v1/reload", verify=ca, timeout=10,
                          cert=(str(tmp_path / "operator.pem"), str(tmp_path / "operator.key")))
        assert r.status_code == 200, r.text
        for cert in (None, (str(tmp_path / "intruder.pem"), str(tmp_path / "intruder.key"))):
            with pytest.raises(requests.exceptions.RequestException):
                requests.post(url + "/v1/reload", verify=ca, cert=cert, timeout=10)
        with pytest.raises(requests.exceptions.RequestException):
            requests.post("http://" + server.addrs["control"] + "/v1/reload", timeout=10)
    finally:
        server.stop()


# ---- Item 8: one source of truth for runtime changes -----------------------

def test_runtime_changes_survive_unrelated_reloads_and_restarts(tmp_path, envoy_bin):
    """issue 11, item 8: a launch permission removed at runtime (reported by
    the control plane after the backend confirmed ModifyImageAttribute)
    stays removed when an unrelated ec2 file changes and when iamgate
    restarts on the same --inventory-state directory; bob's RunInstances
    of that image through Envoy stays refused throughout. The bundle's own
    newer description of the image then wins, as documented."""
    state = tmp_path / "state"
    stack = Stack(tmp_path, envoy_bin, args=["--inventory-state", str(state)])
    try:
        assert stack.call(BOB, run_instances(image=AMI_SHARED))[0] == 200
        assert stack.grants(AMI_SHARED) == [{"account": PROD}]
        revoke = {"Action": "ModifyImageAttribute", "ImageId": AMI_SHARED,
                  "LaunchPermission.Remove.1.UserId": PROD}
        assert stack.call(DAVE, revoke)[0] == 200
        r = control_post(stack.server, "/v1/inventory", json={"changes": [
            {"op": "grants", "id": AMI_SHARED, "remove": [{"account": PROD}]}]})
        assert r.status_code == 200 and r.json()["applied"]["grants_changed"] == 1, r.text
        status, _, body = stack.call(BOB, run_instances(image=AMI_SHARED))
        assert status == 400 and error(body)[0] == "InvalidAMIID.NotFound", body
        v1 = stack.inventory_status()
        assert v1["overlay"] == {"resources": 1, "dropped_by_reseed": 0, "persistent": True,
                                 "state_error": None}

        # An unrelated ec2 file changes: the bundle reloads (its own change
        # applies), the revocation stays.
        volumes = stack.bundle / DEV_REGION_DIR / "describe-volumes.json"
        doc = json.loads(volumes.read_text())
        vol = doc["Volumes"][0]
        vol["Tags"] = [{"Key": "team", "Value": "purple"}]
        volumes.write_text(json.dumps(doc))
        assert wait_for(lambda: stack.inventory_status()["seed_hash"] != v1["seed_hash"])
        r = control_get(stack.server, f"/v1/inventory/{vol['VolumeId']}")
        assert r.json()["resource"]["tags"] == {"team": "purple"}
        assert stack.grants(AMI_SHARED) == []
        assert stack.call(BOB, run_instances(image=AMI_SHARED))[0] == 400
        v2 = stack.inventory_status()
        assert v2["seq"] > v1["seq"] and v2["version"] != v1["version"]

        # A restart on the same state directory.
        stack.restart()
        assert stack.grants(AMI_SHARED) == []
        assert stack.call(BOB, run_instances(image=AMI_SHARED))[0] == 400
        v3 = stack.inventory_status()
        assert v3["seq"] > v2["seq"] and v3["seed_hash"] == v2["seed_hash"]
        assert (state / "inventory-overlay.json").exists()
        assert oct(os.stat(state / "inventory-overlay.json").st_mode & 0o777) == "0o600"

        # The bundle now describes the image itself differently: it wins.
        perm = stack.bundle / DEV_REGION_DIR / "describe-image-attribute-launch-permission-shared.json"
        doc = json.loads(perm.read_text())
        doc["LaunchPermissions"].append({"UserId": "333333333333"})
        perm.write_text(json.dumps(doc))
        assert wait_for(lambda: stack.inventory_status()["overlay"]["resources"] == 0)
        assert stack.grants(AMI_SHARED) == [{"account": PROD}, {"account": "333333333333"}]
        assert stack.call(BOB, run_instances(image=AMI_SHARED))[0] == 200
        assert stack.inventory_status()["overlay"]["dropped_by_reseed"] == 1
    finally:
        stack.close()


def test_a_call_the_backend_refused_changes_nothing(tmp_path, envoy_bin):
    """issue 11, item 8: iamgate allows dave's ModifyImageAttribute calls,
    but the backend refuses them; what iamgate believes does not change (no
    grant is written on allow): bob still cannot launch the private image,
    and may still launch the shared one (the call reaches the backend)."""
    stack = Stack(tmp_path, envoy_bin, backend="failing_backend.py", args=["--no-watch"])
    try:
        before = stack.inventory_status()
        share = {"Action": "ModifyImageAttribute", "ImageId": AMI_PRIVATE,
                 "LaunchPermission.Add.1.UserId": PROD}
        unshare = {"Action": "ModifyImageAttribute", "ImageId": AMI_SHARED,
                   "LaunchPermission.Remove.1.UserId": PROD}
        for call in (share, unshare):
            status, _, body = stack.call(DAVE, call)
            assert status == 503 and error(body)[0] == "Unavailable", body
        assert stack.actions() == ["ModifyImageAttribute", "ModifyImageAttribute"]

        status, _, body = stack.call(BOB, run_instances(image=AMI_PRIVATE))
        assert status == 400 and error(body)[0] == "InvalidAMIID.NotFound", body
        status, _, body = stack.call(BOB, run_instances(image=AMI_SHARED))
        assert status == 503, body  # allowed by iamgate; the backend fails it
        assert stack.actions()[-1] == "RunInstances"
        assert stack.grants(AMI_PRIVATE) == []
        assert stack.grants(AMI_SHARED) == [{"account": PROD}]
        assert stack.inventory_status()["version"] == before["version"]
    finally:
        stack.close()
