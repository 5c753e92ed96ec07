"""Staying up (issue 11, items 11 and 13): callers that try to freeze the
server with expensive requests, slow or idle connections, or by exhausting
its file descriptors. Each attack runs against the real binary; while it
runs, an unrelated decision keeps answering quickly."""

import functools
import json
import os
import re
import resource
import socket
import statistics
import subprocess
import threading
import time

import grpc
import requests

from conftest import grpc_stubs, start_server

BOB = "arn:aws:iam::111111111111:user/engineering/bob"
ROLE_SESSION = "arn:aws:sts::111111111111:assumed-role/ops-automation/mesh"
BLUE = "arn:aws:ec2:us-east-1:111111111111:instance/i-0blue0000000000001"
PLAIN = {"principal": {"arn": BOB}, "action": "ec2:DescribeInstances", "resource": "*",
         "context": {"aws:RequestedRegion": "us-east-1"}}
LIMIT = 2048  # AWS STS: session policy characters, whitespace excluded


def hostile_session_policy(statements=4000):
    """The shape that made compiling quadratic: exact actions beside
    `ec2:*` statements of the same service (about 300 KB)."""
    st = []
    for i in range(statements):
        action = f"ec2:Action{i}" if i % 2 == 0 else "ec2:*"
        st.append({"Effect": "Allow", "Action": action, "Resource": f"arn:aws:ec2:::x/{i}"})
    return {"Version": "2012-10-17", "Statement": st}


def legal_session_policy():
    """A session policy just under the limit: as many actions as fit."""
    actions = []
    while True:
        doc = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": actions + [f"ec2:Describe{len(actions)}"],
             "Resource": "*"},
            {"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}]}
        if len(json.dumps(doc, separators=(",", ":"))) > LIMIT - 8:
            break
        actions.append(f"ec2:Describe{len(actions)}")
    doc["Statement"][0]["Action"] = actions
    return doc


def compact(doc):
    return json.dumps(doc, separators=(",", ":"))


def timed_decision(session, url):
    t = time.monotonic()
    r = session.post(url, json=PLAIN, timeout=10)
    elapsed = time.monotonic() - t
    assert r.status_code == 200 and r.json()["decision"] == "allowed", r.text
    return elapsed


def test_oversized_session_policy_is_refused_fast(tmp_path, tmp_path_factory):
    """Issue 11, item 11: a 300 KB session policy (it took 48 s to compile,
    on an async worker) is refused at once with AWS's PackedPolicyTooLarge,
    over HTTP/JSON and gRPC; the limit is AWS's, 2,048 characters without
    whitespace, so a policy at the limit padded with whitespace is decided."""
    server = start_server(tmp_path)
    try:
        hostile = hostile_session_policy()
        assert len(compact(hostile)) > 250_000
        t = time.monotonic()
        r = server.authorize({**PLAIN, "principal": {"arn": ROLE_SESSION,
                                                     "session_policy": hostile}})
        assert time.monotonic() - t < 1.0
        assert r.status_code == 400, r.text
        assert "PackedPolicyTooLarge" in r.json()["error"]["message"]

        pb2, pb2_grpc = grpc_stubs(tmp_path_factory, "authorizer")
        with grpc.insecure_channel(server.grpc) as channel:
            stub = pb2_grpc.AuthorizerStub(channel)
            principal = pb2.Principal(arn=ROLE_SESSION, session_policy_json=compact(hostile))
            t = time.monotonic()
            try:
                stub.Authorize(pb2.AuthorizeRequest(principal=principal, action="ec2:RunInstances",
                                                    resource="*"), timeout=10)
                raise AssertionError("an oversized session policy was decided")
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
                assert "PackedPolicyTooLarge" in e.details()
            assert time.monotonic() - t < 1.0

        # At the limit, with any amount of whitespace: decided.
        legal = legal_session_policy()
        text = compact(legal)
        assert LIMIT - 60 < len(text) <= LIMIT
        padded = text.replace(",", ",\n    ")
        r = server.authorize({**PLAIN, "principal": {"arn": ROLE_SESSION,
                                                     "session_policy": padded}})
        assert r.status_code == 200, r.text
        # One character over: refused.
        over = dict(legal, Id="x" * (LIMIT - len(text) + 1 - len(',"Id":""')))
        assert len(compact(over)) == LIMIT + 1
        r = server.authorize({**PLAIN, "principal": {"arn": ROLE_SESSION,
                                                     "session_policy": over}})
        assert r.status_code == 400 and "PackedPolicyTooLarge" in r.text, r.text
    finally:
        assert server.stop() == 0


def test_session_policies_do_not_starve_other_decisions(tmp_path):
    """Issue 11, item 11: while clients keep the server busy with batches of
    legal session-policy requests (each item compiles the 2 KB policy), an
    unrelated decision on its own connection still answers within 50 ms:
    session policies are compiled off the async workers."""
    server = start_server(tmp_path)
    try:
        policy = legal_session_policy()
        batch = {"principal": {"arn": ROLE_SESSION, "session_policy": policy},
                 "items": [{"action": f"ec2:Describe{i}", "resource": "*",
                            "context": {"aws:RequestedRegion": "us-east-1"}}
                           for i in range(100)]}
        stop = threading.Event()
        done = []

        def hammer():
            with requests.Session() as s:
                while not stop.is_set():
                    r = s.post(server.http + "/v1/authorize/batch", json=batch, timeout=30)
                    assert r.status_code == 200, r.text
                    done.append(len(r.json()["results"]))

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.5)
            with requests.Session() as s:
                url = server.http + "/v1/authorize"
                timed_decision(s, url)
                samples = []
                for _ in range(40):
                    samples.append(timed_decision(s, url))
                    time.sleep(0.02)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert sum(done) >= 400, f"the hostile load only got {sum(done)} decisions"
        # Compiled on the async workers, the median was 0.3 s. The median
        # is what is asserted: other processes on a shared machine can
        # delay a few samples.
        samples.sort()
        median = statistics.median(samples)
        assert median < 0.050, f"unrelated decisions: median {median:.4f}s, {samples}"
        assert p90(samples) < 0.250, f"unrelated decisions: {samples}"
    finally:
        assert server.stop() == 0


# ---------------------------------------------------------------------------
# Issue 11, item 13: slow, silent and too many connections.

def connect(addr):
    host, port = addr.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=5)


def closed_by_server(sock, deadline):
    """Whether the server closes `sock` (EOF or reset) before `deadline`
    (time.monotonic()); bytes it sends first (an error answer) are read."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return True
        except socket.timeout:
            return False
        except OSError:
            return True


def fresh_latencies(server, rounds=20, pause=0.03):
    """Latency of /readyz on the admin listener and of a decision, each on
    a new connection (requests opens one per call without a session)."""
    ready, decided = [], []
    for _ in range(rounds):
        t = time.monotonic()
        assert requests.get(server.admin + "/readyz", timeout=5).status_code == 200
        ready.append(time.monotonic() - t)
        t = time.monotonic()
        r = requests.post(server.http + "/v1/authorize", json=PLAIN, timeout=5)
        assert r.status_code == 200 and r.json()["decision"] == "allowed", r.text
        decided.append(time.monotonic() - t)
        time.sleep(pause)
    return ready, decided


def p90(samples):
    return sorted(samples)[int(len(samples) * 0.9)]


def cpu_seconds(pid):
    """User plus system CPU time of a process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 (1-based); fields[0] is field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def start_limited(tmp_path, nofile, *args):
    """start_server with RLIMIT_NOFILE set to `nofile` in the child
    (preexec_fn), as `ulimit -n` would."""
    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    real = subprocess.Popen
    subprocess.Popen = functools.partial(real, preexec_fn=limit)
    try:
        return start_server(tmp_path, *args)
    finally:
        subprocess.Popen = real


def test_slowloris_is_cut_by_the_header_timeout(tmp_path):
    """Issue 11, item 13: clients that send their headers a byte at a time,
    that connect and send nothing, or that send half an HTTP/2 preface to
    the gRPC port are closed when the header timeout passes (2 s here;
    hyper alone waited forever before choosing HTTP/1.1 or HTTP/2). While
    they hold their connections, /readyz on the admin listener and a
    decision on a fresh connection answer within 50 ms (median: a shared
    machine can delay a sample)."""
    server = start_server(tmp_path, "--header-read-timeout-ms", "2000")
    attack = []
    stop = threading.Event()
    try:
        started = time.monotonic()
        slow = [connect(server.addrs["http"]) for _ in range(150)]
        for s in slow:
            s.sendall(b"POST /v1/authorize HTTP/1.1\r\nHost: x\r\n")
        silent = [connect(server.addrs[port]) for port in ("http", "grpc") for _ in range(50)]
        half_preface = [connect(server.addrs["grpc"]) for _ in range(50)]
        for s in half_preface:
            s.sendall(b"PRI * HTTP/2.0\r\n")
        attack = slow + silent + half_preface

        def dribble():
            while not stop.is_set():
                for s in slow:
                    try:
                        s.send(b"X")
                    except OSError:
                        pass
                time.sleep(0.1)

        t = threading.Thread(target=dribble, daemon=True)
        t.start()
        ready, decided = fresh_latencies(server, rounds=10, pause=0.02)
        assert time.monotonic() - started < 2.0, "the samples must fall in the attack"
        stop.set()
        t.join()
        assert statistics.median(ready) < 0.050, f"/readyz under attack: {sorted(ready)}"
        assert statistics.median(decided) < 0.050, f"decisions under attack: {sorted(decided)}"
        deadline = started + 4.5
        still_open = [s for s in attack if not closed_by_server(s, deadline)]
        assert not still_open, f"{len(still_open)} of {len(attack)} slow connections still open"
        assert server.proc.poll() is None
        fresh_latencies(server, rounds=2)
    finally:
        stop.set()
        for s in attack:
            s.close()
        assert server.stop() == 0


def test_idle_connections_are_closed(tmp_path):
    """Issue 11, item 13: a connection that made a request and then stays
    idle is closed after the idle timeout (gracefully: HTTP/1.1 closes,
    HTTP/2 says GOAWAY first)."""
    server = start_server(tmp_path, "--idle-timeout-ms", "800", "--header-read-timeout-ms", "5000")
    try:
        s = connect(server.addrs["http"])
        body = json.dumps(PLAIN).encode()
        s.sendall(b"POST /v1/authorize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        s.settimeout(5)
        assert b"200 OK" in s.recv(65536)
        t = time.monotonic()
        assert closed_by_server(s, t + 3.0)
        assert 0.5 < time.monotonic() - t < 2.0
        s.close()
        # gRPC: a channel that made a call and went quiet is told to go away,
        # and the next call opens a new connection transparently.
        with grpc.insecure_channel(server.grpc) as channel:
            health = channel.unary_unary("/grpc.health.v1.Health/Check",
                                         request_serializer=lambda b: b,
                                         response_deserializer=lambda b: b)
            health(b"", timeout=5)
            time.sleep(1.5)
            health(b"", timeout=5)
    finally:
        assert server.stop() == 0


def test_a_flooded_listener_leaves_admin_and_grpc_answerable(tmp_path):
    """Issue 11, item 13: with 256 descriptors, each API listener admits a
    share that leaves the admin listener (and the other API listener) its
    own: 400 idle connections to the HTTP listener are admitted up to the
    limit and the rest closed at once; /readyz and gRPC decisions keep
    answering within 50 ms (median), the process stays below its descriptor limit,
    and the HTTP listener answers again once the flood ends."""
    server = start_limited(tmp_path, 256, "--header-read-timeout-ms", "5000")
    flood = []
    try:
        log = re.sub(r"\x1b\[[0-9;]*m", "", server.log())
        limits = [l for l in log.splitlines() if "connection limits" in l]
        assert limits and "api_max_connections=80" in limits[0], limits
        flood = [connect(server.addrs["http"]) for _ in range(400)]
        t = time.monotonic()
        refused = sum(closed_by_server(s, t + 1.0) for s in flood[80:])
        assert refused == 320, f"{refused} of the 320 connections over the limit were closed"
        assert open_fds(server.proc.pid) < 256
        import grpc as grpc_mod
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        ready = []
        grpc_times = []
        with grpc_mod.insecure_channel(server.grpc) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
            for _ in range(15):
                t = time.monotonic()
                assert requests.get(server.admin + "/readyz", timeout=5).status_code == 200
                ready.append(time.monotonic() - t)
                t = time.monotonic()
                stub.Check(health_pb2.HealthCheckRequest(service="iamgate.v1.Authorizer"),
                           timeout=5)
                grpc_times.append(time.monotonic() - t)
        assert statistics.median(ready) < 0.050, f"/readyz under a flood: {sorted(ready)}"
        assert statistics.median(grpc_times) < 0.050, f"gRPC under a flood: {sorted(grpc_times)}"
        for s in flood:
            s.close()
        flood = []
        deadline = time.monotonic() + 5
        while True:
            try:
                fresh_latencies(server, rounds=1)
                break
            except (requests.RequestException, AssertionError):
                assert time.monotonic() < deadline, "the HTTP listener did not recover"
                time.sleep(0.1)
        _, decided = fresh_latencies(server, rounds=5)
        assert statistics.median(decided) < 0.050, decided
    finally:
        for s in flood:
            s.close()
        assert server.stop() == 0


def test_descriptor_exhaustion_does_not_spin(tmp_path):
    """Issue 11, item 13: a server whose connection limit (set too high on
    purpose) exceeds its 128 descriptors is flooded past the limit: accept
    fails with EMFILE, and the loop backs off instead of spinning (it took
    80-93% of a CPU): the process uses little CPU while flooded, and
    answers again once the flood ends."""
    server = start_limited(tmp_path, 128, "--max-connections", "1000",
                           "--header-read-timeout-ms", "10000")
    flood = []
    try:
        # 200 connections: about 100 accepted until EMFILE, the rest in the
        # listen backlog (which holds about 128 more).
        flood = [connect(server.addrs["http"]) for _ in range(200)]
        deadline = time.monotonic() + 5
        while open_fds(server.proc.pid) < 120:
            assert time.monotonic() < deadline, open_fds(server.proc.pid)
            time.sleep(0.05)
        time.sleep(0.3)
        before, t = cpu_seconds(server.proc.pid), time.monotonic()
        time.sleep(2.0)
        used = cpu_seconds(server.proc.pid) - before
        wall = time.monotonic() - t
        assert used < 0.2 * wall, f"{used:.2f} s of CPU in {wall:.2f} s while out of descriptors"
        assert server.proc.poll() is None
        for s in flood:
            s.close()
        flood = []
        deadline = time.monotonic() + 10
        while True:
            try:
                fresh_latencies(server, rounds=1)
                break
            except (requests.RequestException, AssertionError):
                assert time.monotonic() < deadline, "the server did not recover"
                time.sleep(0.1)
        _, decided = fresh_latencies(server, rounds=5)
        assert statistics.median(decided) < 0.050, decided
        assert "accept failed; backing off" in server.log()
    finally:
        for s in flood:
            s.close()
        assert server.stop() == 0
