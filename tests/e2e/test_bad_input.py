"""Hostile clients: slow senders, many idle connections, malformed
protocol bytes. The server keeps answering well-behaved clients quickly,
never crashes, and its memory stays bounded."""

import json
import pathlib
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from conftest import start_server
from test_envoy import Stack, envoy_bin, issuer, pki  # noqa: F401  (fixtures)

BOB = "arn:aws:iam::111111111111:user/engineering/bob"
BODY = {"principal": {"arn": BOB}, "action": "ec2:DescribeInstances", "resource": "*",
        "context": {"aws:RequestedRegion": "us-east-1"}}


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def connect(addr):
    host, port = addr.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=5)


def quick_decision(server):
    t = time.monotonic()
    r = server.authorize(BODY)
    assert r.status_code == 200 and r.json()["decision"] == "allowed"
    return time.monotonic() - t


def test_slow_and_idle_clients_do_not_starve_others(tmp_path):
    server = start_server(tmp_path, "--request-timeout-ms", "2000")
    try:
        base_rss = rss_kib(server.proc.pid)
        socks = []
        # 300 idle connections on each API port, and 100 slow-header
        # clients that send one byte at a time.
        for addr in (server.addrs["http"], server.addrs["grpc"]):
            for _ in range(300):
                socks.append(connect(addr))
        slow = [connect(server.addrs["http"]) for _ in range(100)]
        for s in slow:
            s.sendall(b"POST /v1/authorize HTTP/1.1\r\nHost: x\r\n")
        stop = threading.Event()

        def dribble():
            while not stop.is_set():
                for s in slow:
                    try:
                        s.sendall(b"X")
                    except OSError:
                        pass
                time.sleep(0.2)

        t = threading.Thread(target=dribble)
        t.start()
        try:
            worst = max(quick_decision(server) for _ in range(50))
            assert worst < 1.0, f"a decision took {worst:.3f}s under hostile load"
        finally:
            stop.set()
            t.join()
        # A body that never completes is cut off by the request timeout.
        s = connect(server.addrs["http"])
        s.sendall(b"POST /v1/authorize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n{")
        s.settimeout(10)
        reply = s.recv(4096)
        assert b"408" in reply.split(b"\r\n", 1)[0], reply[:200]
        for s in socks + slow:
            s.close()
        assert server.proc.poll() is None
        grown = rss_kib(server.proc.pid) - base_rss
        assert grown < 200 * 1024, f"RSS grew by {grown} KiB"
    finally:
        assert server.stop() == 0


def test_garbage_bytes_on_every_port(tmp_path):
    server = start_server(tmp_path)
    try:
        junk = [
            b"\x00" * 64,
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\xff" * 100,
            b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 500 + b"\r\n",
            b"\x16\x03\x01\x02\x00" + b"\x01" * 512,
            b"POST /v1/authorize HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
            b"POST /v1/authorize HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ]
        for addr in (server.addrs["http"], server.addrs["grpc"], server.addrs["admin"]):
            for payload in junk:
                s = connect(addr)
                try:
                    s.sendall(payload)
                    s.settimeout(2)
                    try:
                        s.recv(4096)
                    except (socket.timeout, OSError):
                        pass
                finally:
                    s.close()
        assert server.proc.poll() is None
        quick_decision(server)
        too_many = {"X-H%d" % i: "v" for i in range(150)}
        r = requests.post(server.http + "/v1/authorize", json=BODY, headers=too_many, timeout=10)
        assert r.status_code == 431
    finally:
        assert server.stop() == 0


# ---------------------------------------------------------------------------
# Issue 11, item 10: an empty, blank or malformed action or resource is
# refused (400 / INVALID_ARGUMENT) on every front door, never decided.

PROD = "arn:aws:ec2:us-east-1:111111111111:instance/i-0prod000000000001"
DEV = "arn:aws:ec2:us-east-1:111111111111:instance/i-0dev0000000000001"
EVE = "arn:aws:iam::111111111111:user/eve"
GUARDED = {"Version": "2012-10-17", "Statement": [
    {"Sid": "All", "Effect": "Allow", "Action": "ec2:*", "Resource": "*"},
    {"Sid": "KeepProd", "Effect": "Deny", "Action": "ec2:TerminateInstances", "Resource": PROD},
]}
BAD_ACTIONS = ["", "   ", "ec2", "ec2:", ":TerminateInstances", "ec2:*", "ec2:Terminate*",
               "ec2:Terminate Instances", "ec2:TerminateInstances ", "ec2:TerminateInstances\n",
               "*"]
BAD_RESOURCES = ["", "   ", "i-0prod000000000001", "arn:aws:ec2:us-east-1:111111111111:",
                 "arn:aws:ec2:us-east-1:111111111111:   ", PROD + " ", " " + PROD,
                 PROD.replace("arn:aws:", "arn:AWS:"), PROD.replace("111111111111", "1111"),
                 PROD + "\x00"]


def guarded_bundle(tmp_path):
    """eve (a user) and ops-automation (a role) may do anything in EC2 but
    terminate the production instance: a Deny on one specific ARN, which an
    empty or altered resource would slip past."""
    d = tmp_path / "guarded"
    (d / "iam").mkdir(parents=True)
    policy = [{"PolicyName": "Guarded", "PolicyDocument": GUARDED}]
    (d / "iam" / "111111111111.json").write_text(json.dumps({
        "UserDetailList": [{"Path": "/", "UserName": "eve", "UserId": "AIDAGUARDEDEVE000001",
                            "Arn": EVE, "UserPolicyList": policy, "GroupList": [],
                            "AttachedManagedPolicies": [], "Tags": []}],
        "RoleDetailList": [{"Path": "/service/", "RoleName": "ops-automation",
                            "RoleId": "AROAGUARDEDOPS000001",
                            "Arn": "arn:aws:iam::111111111111:role/service/ops-automation",
                            "RolePolicyList": policy, "AttachedManagedPolicies": [],
                            "Tags": []}],
        "GroupDetailList": [], "Policies": [],
    }))
    (d / "manifest.json").write_text(json.dumps({"revision": "guarded-1"}))
    return d


@pytest.fixture
def guarded_server(tmp_path):
    # The principal header is trusted here: the tests call ext_authz
    # directly, as the trusted proxy hop that sets it would.
    server = start_server(tmp_path, "--bundle", str(guarded_bundle(tmp_path)),
                          "--principal-header", "x-iamgate-principal")
    yield server
    server.stop()


def decisions_total(server):
    total = 0
    for line in requests.get(server.admin + "/metrics", timeout=10).text.splitlines():
        if line.startswith("iamgate_decisions_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_http_refuses_bad_actions_and_resources(guarded_server):
    """Issue 11, item 10: POST /v1/authorize and /v1/authorize/batch answer
    400 for every malformed action or resource; the well-formed requests
    around them are decided (the Deny on the production ARN holds)."""
    def authorize(action, resource):
        return guarded_server.authorize({"principal": {"arn": EVE}, "action": action,
                                         "resource": resource})

    assert authorize("ec2:TerminateInstances", PROD).json()["decision"] == "explicitDeny"
    assert authorize("ec2:TerminateInstances", DEV).json()["decision"] == "allowed"
    cases = [(a, PROD, "`action`") for a in BAD_ACTIONS] + \
            [("ec2:TerminateInstances", r, "`resource`") for r in BAD_RESOURCES]
    before = decisions_total(guarded_server)
    for action, resource, field in cases:
        r = authorize(action, resource)
        assert r.status_code == 400, (action, resource, r.text)
        error = r.json()["error"]
        assert error["code"] == "bad_request" and field in error["message"], error
        # A batch with one bad item fails as a whole, before any decision.
        r = requests.post(guarded_server.http + "/v1/authorize/batch", timeout=10, json={
            "principal": {"arn": EVE},
            "items": [{"action": "ec2:TerminateInstances", "resource": DEV},
                      {"action": action, "resource": resource}]})
        assert r.status_code == 400, (action, resource, r.text)
        assert "items[1]" in r.json()["error"]["message"] and field in r.text
    assert decisions_total(guarded_server) == before


def test_grpc_refuses_bad_actions_and_resources(guarded_server, tmp_path_factory):
    """Issue 11, item 10: Authorize and AuthorizeBatch answer
    INVALID_ARGUMENT for every malformed action or resource, and a bad batch
    item fails the batch before any item is decided."""
    import grpc
    from conftest import grpc_stubs

    pb2, pb2_grpc = grpc_stubs(tmp_path_factory, "authorizer")
    with grpc.insecure_channel(guarded_server.grpc) as channel:
        stub = pb2_grpc.AuthorizerStub(channel)
        principal = pb2.Principal(arn=EVE)

        def authorize(action, resource):
            return stub.Authorize(pb2.AuthorizeRequest(principal=principal, action=action,
                                                       resource=resource), timeout=10)

        assert authorize("ec2:TerminateInstances", PROD).decision == pb2.EXPLICIT_DENY
        cases = [(a, PROD, "`action`") for a in BAD_ACTIONS] + \
                [("ec2:TerminateInstances", r, "`resource`") for r in BAD_RESOURCES]
        before = decisions_total(guarded_server)
        for action, resource, field in cases:
            with pytest.raises(grpc.RpcError) as err:
                authorize(action, resource)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (action, resource)
            assert field in err.value.details()
            items = [pb2.AuthorizeBatchItem(action="ec2:TerminateInstances", resource=DEV),
                     pb2.AuthorizeBatchItem(action=action, resource=resource)]
            with pytest.raises(grpc.RpcError) as err:
                stub.AuthorizeBatch(pb2.AuthorizeBatchRequest(principal=principal, items=items),
                                    timeout=10)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (action, resource)
            assert "items[1]" in err.value.details() and field in err.value.details()
        assert decisions_total(guarded_server) == before


def grpcurl_binary():
    path = pathlib.Path(sys.executable).parent / "grpcurl"
    return path if path.exists() else None


@pytest.mark.skipif(grpcurl_binary() is None, reason="grpcurl not installed")
def test_ext_authz_refuses_bad_rendered_templates(guarded_server):
    """Issue 11, item 10: the generic ext_authz mapping checks the action and
    resource after rendering the route's templates: a client that puts `*`
    into `ec2:{header.x-verb}` (which `Allow ec2:*` would match and the Deny
    would not) or blanks into the resource's id gets a 400
    `denied_response`, never a decision and never an `error_response`.
    (Whitespace inside a placeholder's value is the mapping's to refuse.)"""
    def check(verb, instance):
        body = json.dumps({"attributes": {
            "request": {"http": {"method": "POST", "host": "api.local", "path": "/act",
                                 "headers": {"x-iamgate-principal": EVE, "x-verb": verb,
                                             "x-id": instance}}},
            "contextExtensions": {
                "iamgate.action": "ec2:{header.x-verb}",
                "iamgate.resource": "arn:aws:ec2:us-east-1:111111111111:instance/{header.x-id}",
            }}})
        out = subprocess.run([str(grpcurl_binary()), "-plaintext", "-d", body, guarded_server.grpc,
                              "envoy.service.auth.v3.Authorization/Check"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
        return json.loads(out)

    assert check("TerminateInstances", "i-0prod000000000001")["status"]["code"] == 7
    assert check("TerminateInstances", "i-0dev0000000000001")["status"].get("code", 0) == 0
    for verb, instance in [("*", "i-0prod000000000001"), ("Terminate*", "i-0prod000000000001"),
                           ("TerminateInstances", "i-0prod000000000001 ")]:
        answer = check(verb, instance)
        assert answer["status"]["code"] == 3, (verb, instance, answer)  # INVALID_ARGUMENT
        denied = answer["deniedResponse"]
        assert denied["status"]["code"] == "BadRequest", answer
        assert json.loads(denied["body"])["error"]["code"] == "bad_request"


def test_envoy_refuses_a_wildcard_action_from_the_path(tmp_path, envoy_bin, pki, issuer):
    """Issue 11, item 10, through the real Envoy: the route maps
    `/instances/{id}/{Verb}` to `ec2:{path.2}Instances`; a client that sends
    `*` as the verb made `ec2:*Instances`, which `Allow ec2:*` matched and
    the Deny on the production instance did not: it was forwarded. It is a
    400 now, and the backend never sees it."""
    stack = Stack(tmp_path, envoy_bin, pki, issuer,
                  server_args=("--bundle", str(guarded_bundle(tmp_path))))
    try:
        status, _, body = stack.envoy.call("POST", "/blue/instances/i-0prod000000000001/Terminate",
                                           {}, client_cert="client")
        assert status == 403, body
        status, _, body = stack.envoy.call("POST", "/blue/instances/i-0prod000000000001/*", {},
                                           client_cert="client")
        assert status == 400, body
        # Refused by the template rule (a value filling the action holds only
        # letters, digits and `-`) before the action grammar would be.
        message = json.loads(body)["error"]["message"]
        assert "`action`" in message or "fills the action" in message, message
        assert stack.backend.requests() == []
    finally:
        stack.close()


def test_network_api_refuses_blank_targets_and_peers(guarded_server):
    """Issue 11, item 10, on the network door (`/v1/network/check`): it
    names no action or resource, but a blank or malformed target or peer is
    a 400 as well, never evaluated."""
    good = {"target": "127.0.0.2", "direction": "ingress", "protocol": "tcp", "port": 443,
            "peer": "127.0.0.1"}
    r = requests.post(guarded_server.http + "/v1/network/check", json=good, timeout=10)
    assert r.status_code == 200, r.text
    for field, value in [("target", ""), ("target", "   "), ("target", "i-"), ("peer", ""),
                         ("peer", " "), ("peer", "sg-")]:
        r = requests.post(guarded_server.http + "/v1/network/check", json={**good, field: value},
                          timeout=10)
        assert r.status_code == 400, (field, value, r.text)
        assert r.json()["error"]["code"] == "bad_request"
