"""Staying up (issue 11, items 11 and 13): callers that try to freeze the
server with expensive requests, slow or idle connections, or by exhausting
its file descriptors. Each attack runs against the real binary; while it
runs, an unrelated decision keeps answering quickly."""

import json
import statistics
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
        samples.sort()
        median, p90 = statistics.median(samples), samples[int(len(samples) * 0.9)]
        assert p90 < 0.050, f"unrelated decisions: median {median:.4f}s, p90 {p90:.4f}s"
    finally:
        assert server.stop() == 0
