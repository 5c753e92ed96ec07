"""The HTTP/JSON API and the admin listener, against the demo bundle."""

import requests

BOB = "arn:aws:iam::111111111111:user/engineering/bob"


def test_authorize_allows_and_explains(demo_server):
    r = demo_server.authorize({
        "principal": {"arn": BOB},
        "action": "ec2:StartInstances",
        "resource": "arn:aws:ec2:us-east-1:111111111111:instance/i-0abc",
        "context": {"aws:RequestedRegion": "us-east-1", "ec2:ResourceTag/team": "blue"},
    })
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["decision"] == "allowed"
    assert body["revision"].startswith("demo-1+sha256:")
    assert body["decision_id"]
    kinds = {m["policy_type"] for m in body["matched"]}
    assert {"identity", "boundary", "scp"} <= kinds


def test_explicit_and_implicit_deny(demo_server):
    r = demo_server.authorize({
        "principal": {"arn": BOB},
        "action": "ec2:TerminateInstances",
        "resource": "*",
        "context": {"aws:RequestedRegion": "us-east-1"},
    })
    assert r.json()["decision"] == "explicitDeny"
    r = demo_server.authorize({
        "principal": {"arn": BOB},
        "action": "ec2:StartInstances",
        "resource": "arn:aws:ec2:us-east-1:111111111111:instance/i-0abc",
        "context": {"aws:RequestedRegion": "us-east-1", "ec2:ResourceTag/team": "red"},
    })
    assert r.json()["decision"] == "implicitDeny"


def test_unknown_principal_is_an_implicit_deny(demo_server):
    r = demo_server.authorize({
        "principal": {"arn": "arn:aws:iam::111111111111:user/mallory"},
        "action": "ec2:DescribeInstances",
        "resource": "*",
    })
    assert r.status_code == 200
    body = r.json()
    assert body["decision"] == "implicitDeny"
    assert "unknown principal" in body["reason"]


def test_batch_uses_one_snapshot(demo_server):
    r = requests.post(demo_server.http + "/v1/authorize/batch", json={
        "principal": {"arn": BOB},
        "items": [
            {"action": "ec2:DescribeInstances", "resource": "*",
             "context": {"aws:RequestedRegion": "us-east-1"}},
            {"action": "ec2:DeleteVpc", "resource": "*",
             "context": {"aws:RequestedRegion": "us-east-1"}},
        ],
    }, timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["decision"] for x in body["results"]] == ["allowed", "explicitDeny"]
    assert {x["revision"] for x in body["results"]} == {body["revision"]}


def test_bad_input_is_a_clear_4xx(demo_server):
    url = demo_server.http + "/v1/authorize"
    h = {"content-type": "application/json"}
    r = requests.post(url, data=b"{not json", headers=h, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
    r = requests.post(url, data=b"[" * 10000, headers=h, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "too_deep"
    r = requests.post(url, data=b"x" * (2 * 1024 * 1024), headers=h, timeout=10)
    assert r.status_code == 413
    r = requests.post(url, json={"principal": {"arn": BOB}, "action": "a:b",
                                 "resource": "*", "typo": 1}, timeout=10)
    assert r.status_code == 400 and "typo" in r.json()["error"]["message"]
    r = requests.get(url, timeout=10)
    assert r.status_code == 405
    items = [{"action": "ec2:DescribeInstances", "resource": "*"}] * 101
    r = requests.post(demo_server.http + "/v1/authorize/batch",
                      json={"principal": {"arn": BOB}, "items": items}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "batch_too_large"


def test_admin_endpoints(tmp_path):
    from control_util import control_post, start_with_control
    server = start_with_control(tmp_path)
    try:
        assert requests.get(server.admin + "/healthz", timeout=5).status_code == 200
        ready = requests.get(server.admin + "/readyz", timeout=5).json()
        assert ready["revision"].startswith("demo-1+sha256:")
        status = requests.get(server.admin + "/v1/status", timeout=5).json()
        assert status["revision"] == ready["revision"]
        assert status["manifest_revision"] == "demo-1"
        assert status["counts"]["principals"] == 5
        assert status["last_reload"]["ok"] is True
        # Reloads are on the authenticated control listener only.
        assert requests.post(server.admin + "/v1/reload", timeout=30).status_code == 404
        r = control_post(server, "/v1/reload")
        assert r.status_code == 200 and r.json()["revision"] == ready["revision"]
        metrics = requests.get(server.admin + "/metrics", timeout=5).text
        assert f'iamgate_snapshot_info{{revision="{ready["revision"]}"}} 1' in metrics
    finally:
        server.stop()


def test_sigterm_exits_cleanly(tmp_path):
    from conftest import start_server
    server = start_server(tmp_path)
    assert server.stop() == 0


def test_config_file_with_flag_override(tmp_path):
    import json
    from conftest import start_server
    cfg = tmp_path / "iamgate.json"
    cfg.write_text(json.dumps({"max_batch": 2, "no_watch": True}))
    server = start_server(tmp_path, "--config", str(cfg))
    try:
        items = [{"action": "ec2:DescribeInstances", "resource": "*"}] * 3
        r = requests.post(server.http + "/v1/authorize/batch",
                          json={"principal": {"arn": BOB}, "items": items}, timeout=10)
        assert r.status_code == 400 and "limit of 2" in r.text
    finally:
        server.stop()
    server = start_server(tmp_path, "--config", str(cfg), "--max-batch", "3")
    try:
        r = requests.post(server.http + "/v1/authorize/batch",
                          json={"principal": {"arn": BOB}, "items": items}, timeout=10)
        assert r.status_code == 200
    finally:
        server.stop()
