"""Security groups end to end: TCP connections through the real Envoy's
network ext_authz filter (`envoy.filters.network.ext_authz`, then
`tcp_proxy` to an echo backend), and the `CheckNetworkAccess` API over HTTP
and gRPC, on one bundle (tests/e2e/network/bundle/, AWS CLI output):

- instance A: interface with 127.0.0.2 (and 2001:db8:10::2), group sg-web:
  tcp WEB_PORT from 127.0.0.1/32 and 2001:db8:99::/48; tcp SSH_PORT from
  group sg-admin; icmp echo request (type 8) from anywhere; icmpv6 type 128
  code 0 from 2001:db8::/32; udp 5000-5100 from prefix list corp-offices
  (198.51.100.0/24); all traffic from 192.0.2.10/32;
- instance B: 127.0.0.3, group sg-admin; instance C: 127.0.0.4, group
  sg-other (both allow all egress).

Envoy listens on A's address (127.0.0.2), so the destination it reports is
A's; clients bind their socket to the source address they play (the whole
127.0.0.0/8 is loopback on Linux).
"""

import json
import pathlib
import re
import socket
import socketserver
import threading
import time

import grpc
import pytest
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conftest import grpc_stubs, start_server
from envoy_util import Envoy, envoy_binary

HERE = pathlib.Path(__file__).resolve().parent / "network"
BUNDLE = HERE / "bundle"
INVENTORY = BUNDLE / "ec2" / "111122223333" / "us-east-1"


def _load(name, key):
    return json.loads((INVENTORY / f"{name}.json").read_text())[key]


_GROUPS = {g["GroupName"]: g for g in _load("describe-security-groups", "SecurityGroups")}
SG_WEB = _GROUPS["web"]["GroupId"]
SG_ADMIN = _GROUPS["admin"]["GroupId"]
SG_OTHER = _GROUPS["other"]["GroupId"]
WEB_PORT = _GROUPS["web"]["IpPermissions"][0]["FromPort"]
SSH_PORT = _GROUPS["web"]["IpPermissions"][1]["FromPort"]
_INSTANCES = [i for r in _load("describe-instances", "Reservations") for i in r["Instances"]]
INSTANCE_A = _INSTANCES[0]["InstanceId"]
INSTANCE_B = _INSTANCES[1]["InstanceId"]
ENI_B = _INSTANCES[1]["NetworkInterfaces"][0]["NetworkInterfaceId"]
ENI_A = _INSTANCES[0]["NetworkInterfaces"][0]["NetworkInterfaceId"]
PREFIX_LIST = _load("describe-managed-prefix-lists", "PrefixLists")[0]["PrefixListId"]

A, B, C = "127.0.0.2", "127.0.0.3", "127.0.0.4"
LOAD_BALANCER = "127.0.0.1"  # sg-web's CIDR rule on WEB_PORT
STRANGER = "127.0.0.5"  # held by nothing in the inventory


class Echo:
    """A TCP echo server on 127.0.0.1 that counts the connections it
    accepts."""

    def __init__(self):
        self.accepted = 0
        lock = threading.Lock()
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                with lock:
                    outer.accepted += 1
                while True:
                    data = self.request.recv(4096)
                    if not data:
                        return
                    self.request.sendall(data)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def connect(source, port, payload=b"hello, instance A\n"):
    """Connects from `source` to A:`port` through Envoy, sends `payload`
    and returns what comes back before the connection closes: the payload
    when allowed, b"" when Envoy refuses (it closes without data)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.bind((source, 0))
        s.connect((A, port))
        got = b""
        try:
            s.sendall(payload)
            while len(got) < len(payload):
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
        except (ConnectionResetError, BrokenPipeError):
            pass
        return got


class Stack:
    """iamgate (the network bundle) + echo backend + Envoy."""

    def __init__(self, tmp_path, envoy_bin, failure_mode_allow=False, server_args=None,
                 wait_ready=True, ports=(WEB_PORT, SSH_PORT)):
        # The bundle holds an EC2 inventory and no principals: network
        # checks need none, and serving it takes the explicit flag.
        args = server_args if server_args is not None else (
            "--bundle", str(BUNDLE), "--allow-empty-bundle")
        self.server = start_server(tmp_path, *args, wait_ready=wait_ready)
        self.echo = Echo()
        try:
            self.envoy = Envoy(
                envoy_bin, tmp_path, HERE / "bootstrap.yaml",
                iamgate_grpc_port=int(self.server.grpc.rsplit(":", 1)[1]),
                echo_port=self.echo.port,
                web_port=ports[0],
                ssh_port=ports[1],
                failure_mode_allow="true" if failure_mode_allow else "false",
            )
        except Exception:
            self.echo.stop()
            self.server.stop()
            raise
        self.web_port, self.ssh_port = self.envoy.ports["web"], self.envoy.ports["ssh"]

    def access_records(self):
        if not self.envoy.access_log.exists():
            return []
        return [json.loads(l) for l in self.envoy.access_log.read_text().splitlines()
                if l.strip()]

    def new_access_records(self, since, n):
        """The `n` access-log records (one per closed connection) after the
        first `since`; the file is flushed periodically, so wait."""
        deadline = time.monotonic() + 10
        records = self.access_records()
        while time.monotonic() < deadline and len(records) < since + n:
            time.sleep(0.1)
            records = self.access_records()
        return records[since:since + n]

    def envoy_stat(self, name):
        status, body = self.envoy._get(f"/stats?format=json&filter=^{re.escape(name)}$")
        assert status == 200
        stats = json.loads(body)["stats"]
        return stats[0]["value"] if stats else 0

    def close(self):
        self.envoy.stop()
        self.echo.stop()
        self.server.stop()
        print("---- envoy log (tail) ----\n" + self.envoy.log()[-8000:])
        print("---- iamgate log (tail) ----\n" + self.server.log()[-8000:])


@pytest.fixture(scope="module")
def envoy_bin():
    return envoy_binary()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, envoy_bin):
    s = Stack(tmp_path_factory.mktemp("network"), envoy_bin)
    yield s
    s.close()


def metric(server, frontend, decision):
    """iamgate_decisions_total for one front-end and decision."""
    text = requests.get(server.admin + "/metrics", timeout=5).text
    for line in text.splitlines():
        m = re.match(r"^iamgate_decisions_total\{(.*)\} (\d+)$", line)
        if m and set(m.group(1).split(",")) == {f'frontend="{frontend}"',
                                                 f'decision="{decision}"'}:
            return int(m.group(2))
    return 0


# ---- TCP through Envoy's network ext_authz filter --------------------------

def test_allowed_connection_reaches_the_backend(stack):
    before, logged = stack.echo.accepted, len(stack.access_records())
    payload = b"GET / HTTP/1.0\r\n\r\n"
    assert connect(LOAD_BALANCER, WEB_PORT, payload) == payload
    assert stack.echo.accepted == before + 1
    (record,) = stack.new_access_records(logged, 1)
    assert record["source"] == LOAD_BALANCER
    assert record["destination"] == f"{A}:{WEB_PORT}"
    assert record["decision"] == "allowed"
    assert (record["group_id"], record["rule_index"]) == (SG_WEB, "0")
    assert record["decision_id"]


def test_refused_connection_is_closed_without_data(stack):
    before, logged = stack.echo.accepted, len(stack.access_records())
    # B carries sg-admin, which opens SSH_PORT only; 127.0.0.1 may use
    # WEB_PORT only.
    assert connect(B, WEB_PORT) == b""
    assert connect(LOAD_BALANCER, SSH_PORT) == b""
    # The upstream connection waits for an allowed first byte: none came.
    assert stack.echo.accepted == before
    records = stack.new_access_records(logged, 2)
    assert [r["decision"] for r in records] == ["denied", "denied"], records
    assert all(r["group_id"] in ("-", None, "") for r in records), records


def test_group_reference_allows_only_peers_carrying_the_group(stack):
    """sg-web opens SSH_PORT to members of sg-admin: B (127.0.0.3) carries
    it; C (sg-other) and an address nobody holds do not."""
    before, logged = stack.echo.accepted, len(stack.access_records())
    assert connect(B, SSH_PORT, b"ssh from B\n") == b"ssh from B\n"
    (record,) = stack.new_access_records(logged, 1)
    assert (record["source"], record["decision"]) == (B, "allowed")
    assert (record["group_id"], record["rule_index"]) == (SG_WEB, "1")
    assert connect(C, SSH_PORT) == b""
    assert connect(STRANGER, SSH_PORT) == b""
    assert stack.echo.accepted == before + 1


def test_decisions_are_counted(stack):
    m = stack.server
    allowed = metric(m, "ext_authz_network", "allowed")
    denied = metric(m, "ext_authz_network", "implicitDeny")
    envoy_ok, envoy_denied = stack.envoy_stat("ext_authz.sg.ok"), stack.envoy_stat(
        "ext_authz.sg.denied")
    assert connect(B, SSH_PORT) != b""
    assert connect(C, SSH_PORT) == b""
    assert metric(m, "ext_authz_network", "allowed") == allowed + 1
    assert metric(m, "ext_authz_network", "implicitDeny") == denied + 1
    # Envoy agrees: one connection let through, one refused.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and stack.envoy_stat("ext_authz.sg.denied") == envoy_denied:
        time.sleep(0.1)
    assert stack.envoy_stat("ext_authz.sg.ok") == envoy_ok + 1
    assert stack.envoy_stat("ext_authz.sg.denied") == envoy_denied + 1


@pytest.mark.parametrize("failure_mode_allow,expect_echo", [(False, False), (True, True)])
def test_iamgate_unavailable(tmp_path, envoy_bin, failure_mode_allow, expect_echo):
    """iamgate down, or up without a bundle yet (UNAVAILABLE): Envoy's
    failure_mode_allow decides."""
    # Free ports: the module's stack holds WEB_PORT and SSH_PORT.
    s = Stack(tmp_path, envoy_bin, failure_mode_allow=failure_mode_allow,
              server_args=("--bundle", str(tmp_path / "missing"), "--wait-for-bundle"),
              wait_ready=False, ports=(0, 0))
    try:
        payload = b"early\n"
        assert connect(B, s.web_port, payload) == (payload if expect_echo else b"")
        s.server.stop()
        assert connect(B, s.web_port, payload) == (payload if expect_echo else b"")
        assert s.envoy_stat("ext_authz.sg.error") >= 1
        if expect_echo:
            assert s.envoy_stat("ext_authz.sg.failure_mode_allowed") >= 2
    finally:
        s.close()


# ---- CheckNetworkAccess over HTTP and gRPC ---------------------------------

# (question, allowed, (group, rule index) of the matching rule or None)
CASES = [
    pytest.param(dict(target=ENI_A, direction="ingress", protocol="tcp", port=WEB_PORT,
                      peer=LOAD_BALANCER), True, (SG_WEB, 0), id="cidr-v4"),
    pytest.param(dict(target=INSTANCE_A, direction="ingress", protocol="6", port=WEB_PORT,
                      peer=LOAD_BALANCER), True, (SG_WEB, 0), id="instance-protocol-number"),
    pytest.param(dict(target=A, direction="ingress", protocol="tcp", port=WEB_PORT + 1,
                      peer=LOAD_BALANCER), False, None, id="other-port"),
    pytest.param(dict(target=A, direction="ingress", protocol="udp", port=WEB_PORT,
                      peer=LOAD_BALANCER), False, None, id="udp-is-not-tcp"),
    pytest.param(dict(target="2001:db8:10::2", direction="ingress", protocol="tcp",
                      port=WEB_PORT, peer="2001:db8:99::7"), True, (SG_WEB, 0), id="cidr-v6"),
    pytest.param(dict(target=ENI_A, direction="ingress", protocol="tcp", port=WEB_PORT,
                      peer="2001:db8:98::7"), False, None, id="outside-v6"),
    pytest.param(dict(target=ENI_A, direction="ingress", protocol="tcp", port=SSH_PORT,
                      peer=B), True, (SG_WEB, 1), id="group-reference-by-address"),
    pytest.param(dict(target=ENI_A, direction="ingress", protocol="tcp", port=SSH_PORT,
                      peer=SG_ADMIN), True, (SG_WEB, 1), id="group-reference-by-group"),
    pytest.param(dict(target=ENI_A, direction="ingress", protocol="tcp", port=SSH_PORT,
                      peer=C), False, None, id="peer-without-the-group"),
    pytest.param(dict(target=ENI_A, direction="ingress", protocol="tcp", port=SSH_PORT,
                      peer=SG_OTHER), False, None, id="other-group"),
    pytest.param(dict(target=ENI_A, direction="ingress", protocol="icmp", icmp_type=8,
                      icmp_code=0, peer="203.0.113.9"), True, (SG_WEB, 2), id="icmp-echo"),
    pytest.param(dict(target=ENI_A, direction="ingress", protocol="icmp", icmp_type=13,
                      icmp_code=0, peer="203.0.113.9"), False, None, id="icmp-timestamp"),
    pytest.param(dict(target=ENI_A, direction="ingress", protocol="icmp", icmp_type=-1,
                      peer="203.0.113.9"), False, None, id="icmp-every-type"),
    pytest.param(dict(target=ENI_A, direction="ingress", protocol="icmpv6", icmp_type=128,
                      icmp_code=0, peer="2001:db8::1"), True, (SG_WEB, 3), id="icmpv6-echo"),
    pytest.param(dict(target=ENI_A, direction="ingress", protocol="icmpv6", icmp_type=128,
                      icmp_code=1, peer="2001:db8::1"), False, None, id="icmpv6-other-code"),
    pytest.param(dict(target=ENI_A, direction="ingress", protocol="udp", port=5050,
                      peer="198.51.100.20"), True, (SG_WEB, 4), id="prefix-list"),
    pytest.param(dict(target=ENI_A, direction="ingress", protocol="udp", port=5050,
                      peer="198.51.101.20"), False, None, id="outside-prefix-list"),
    pytest.param(dict(target=ENI_A, direction="ingress", protocol="-1",
                      peer="192.0.2.10"), True, (SG_WEB, 5), id="all-traffic"),
    pytest.param(dict(target=ENI_A, direction="ingress", protocol="tcp", port=9999,
                      peer="192.0.2.10"), True, (SG_WEB, 5), id="all-traffic-covers-tcp"),
    pytest.param(dict(target=ENI_A, direction="ingress", protocol="-1",
                      peer=LOAD_BALANCER), False, None, id="all-traffic-needs-an-all-rule"),
    pytest.param(dict(target=INSTANCE_B, direction="egress", protocol="tcp", port=443,
                      peer="8.8.8.8"), True, (SG_ADMIN, 0), id="egress"),
    pytest.param(dict(target="eni-0000000000000dead", direction="ingress", protocol="tcp",
                      port=WEB_PORT, peer=LOAD_BALANCER), False, None, id="unknown-interface"),
    pytest.param(dict(target="10.99.0.1", direction="ingress", protocol="tcp",
                      port=WEB_PORT, peer=LOAD_BALANCER), False, None, id="unknown-address"),
]


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    """(network_pb2, network_pb2_grpc), generated from the repo's proto."""
    return grpc_stubs(tmp_path_factory, "network")


@pytest.fixture(scope="module")
def channel(stack):
    with grpc.insecure_channel(stack.server.grpc) as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        yield ch


def http_check(server, body, **kw):
    return requests.post(server.http + "/v1/network/check", json=body, timeout=10, **kw)


def grpc_check(pb, channel, q):
    pb2, pb2_grpc = pb
    q = {**q, "protocol": str(q["protocol"])}
    return pb2_grpc.NetworkStub(channel).CheckNetworkAccess(
        pb2.CheckNetworkAccessRequest(**q), timeout=10)


@pytest.mark.parametrize("question,allowed,rule", CASES)
def test_http_api(stack, question, allowed, rule):
    r = http_check(stack.server, question)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert set(answer) == {"allowed", "matched_rule", "explanation", "target_id",
                           "security_groups"}
    assert answer["allowed"] is allowed, answer["explanation"]
    assert answer["explanation"]
    if rule is None:
        assert answer["matched_rule"] is None
    else:
        m = answer["matched_rule"]
        assert (m["group_id"], m["rule_index"]) == rule, answer
        assert m["direction"] == question["direction"]
        assert m["reason"]


@pytest.mark.parametrize("question,allowed,rule", CASES)
def test_grpc_api(stack, pb, channel, question, allowed, rule):
    answer = grpc_check(pb, channel, question)
    assert answer.allowed is allowed, answer.explanation
    if rule is None:
        assert not answer.HasField("matched_rule")
    else:
        m = answer.matched_rule
        assert (m.group_id, m.rule_index) == rule
        assert m.direction == question["direction"]


def test_answers_explain(stack):
    answer = http_check(stack.server, dict(target=A, direction="ingress", protocol="udp",
                                           port=5050, peer="198.51.100.20")).json()
    assert answer["target_id"] == ENI_A
    assert answer["security_groups"] == [SG_WEB]
    assert f"prefix list {PREFIX_LIST} (198.51.100.0/24)" in answer["matched_rule"]["reason"]
    answer = http_check(stack.server, dict(target=ENI_A, direction="ingress", protocol="tcp",
                                           port=SSH_PORT, peer=B)).json()
    assert f"security group {SG_ADMIN}" in answer["matched_rule"]["reason"]
    assert f"carried by {ENI_B}, which holds {B}" in answer["explanation"]
    answer = http_check(stack.server, dict(target=ENI_A, direction="ingress", protocol="tcp",
                                           port=22, peer=C)).json()
    assert f"no ingress rule of {SG_WEB}" in answer["explanation"]
    answer = http_check(stack.server, dict(target="10.99.0.1", direction="ingress",
                                           protocol="tcp", port=22, peer=C)).json()
    assert "no instance or network interface in the inventory holds 10.99.0.1" in \
        answer["explanation"]
    assert answer["target_id"] is None and answer["security_groups"] == []
    # JSON may give the protocol as a number.
    answer = http_check(stack.server, dict(target=ENI_A, direction="ingress", protocol=6,
                                           port=WEB_PORT, peer=LOAD_BALANCER)).json()
    assert answer["allowed"] is True


BAD = [
    pytest.param(dict(target="sg-1", direction="ingress", protocol="tcp", port=1, peer=B),
                 "`target` must be", id="target"),
    pytest.param(dict(target=A, direction="sideways", protocol="tcp", port=1, peer=B),
                 "`direction` must be", id="direction"),
    pytest.param(dict(target=A, direction="ingress", protocol="tcpx", port=1, peer=B),
                 "`protocol` must be", id="protocol"),
    pytest.param(dict(target=A, direction="ingress", protocol="tcp", port=70000, peer=B),
                 "`port` 70000", id="port"),
    pytest.param(dict(target=A, direction="ingress", protocol="icmp", port=8, peer=B),
                 "`port` does not apply to icmp", id="port-with-icmp"),
    pytest.param(dict(target=A, direction="ingress", protocol="icmp", icmp_code=0, peer=B),
                 "needs an `icmp_type`", id="code-without-type"),
    pytest.param(dict(target=A, direction="ingress", protocol="tcp", port=1,
                      peer="10.0.0.0/8"), "`peer` must be", id="peer"),
]


@pytest.mark.parametrize("question,why", BAD)
def test_bad_questions_are_invalid(stack, pb, channel, question, why):
    r = http_check(stack.server, question)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "bad_request" and why in err["message"], err
    with pytest.raises(grpc.RpcError) as e:
        grpc_check(pb, channel, question)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert why in e.value.details()


def test_http_input_is_strict(stack):
    r = http_check(stack.server, {"target": A, "direction": "ingress", "protocol": "tcp",
                                  "peer": B, "ports": [1, 2]})
    assert r.status_code == 400 and "unknown field `ports`" in r.text, r.text
    r = http_check(stack.server, {"target": A, "protocol": "tcp", "peer": B})
    assert r.status_code == 400 and "direction" in r.text, r.text
    r = requests.get(stack.server.http + "/v1/network/check", timeout=10)
    assert r.status_code == 405
    r = requests.post(stack.server.http + "/v1/network/check", data="x",
                      headers={"content-type": "text/plain"}, timeout=10)
    assert r.status_code == 415


def test_grpc_service_is_healthy(stack, channel):
    stub = health_pb2_grpc.HealthStub(channel)
    resp = stub.Check(health_pb2.HealthCheckRequest(service="iamgate.v1.Network"), timeout=10)
    assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_not_ready_is_unavailable(tmp_path, pb):
    server = start_server(tmp_path, "--bundle", str(tmp_path / "missing"),
                          "--wait-for-bundle", wait_ready=False)
    try:
        q = dict(target=A, direction="ingress", protocol="tcp", port=WEB_PORT,
                 peer=LOAD_BALANCER)
        assert http_check(server, q).status_code == 503
        with grpc.insecure_channel(server.grpc) as ch:
            with pytest.raises(grpc.RpcError) as e:
                grpc_check(pb, ch, q)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        metrics = requests.get(server.admin + "/metrics", timeout=5).text
        for frontend in ("http", "grpc"):
            assert f'iamgate_request_errors_total{{frontend="{frontend}",reason="not_ready"}} 1' \
                in metrics, metrics
    finally:
        server.stop()
