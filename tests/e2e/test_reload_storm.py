"""A reload storm: thousands of concurrent decisions while bundles are
swapped every few milliseconds, invalid ones included. Every request must
succeed, every revision must be one of the valid bundles, and no answer may
mix two snapshots (each batch's decisions must agree with its revision).

A served revision is the manifest's revision and a hash of the content
(`good-3+sha256:0123456789abcdef`); these tests name bundles by the
manifest's part."""

import io
import json
import os
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from conftest import start_server
from control_util import start_with_control

ACCOUNT = "111111111111"
USER = f"arn:aws:iam::{ACCOUNT}:user/storm"
ACTIONS = ["ec2:StartInstances", "ec2:StopInstances"]


def bundle_bytes(revision, allowed_action, valid=True):
    """A .tar.gz bundle whose user may do `allowed_action` only."""
    statement = {"Effect": "Allow", "Action": allowed_action, "Resource": "*"}
    if not valid:
        statement["Effect"] = "allow"  # refused: wrong-case Effect
    iam = {
        "UserDetailList": [{
            "UserName": "storm", "Arn": USER, "Path": "/",
            "UserPolicyList": [{"PolicyName": "p", "PolicyDocument": {
                "Version": "2012-10-17", "Statement": [statement]}}],
        }],
        "GroupDetailList": [], "RoleDetailList": [], "Policies": [],
    }
    files = {
        "manifest.json": json.dumps({"revision": revision}),
        f"iam/{ACCOUNT}.json": json.dumps(iam),
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def write_atomically(path, data):
    tmp = f"{path}.tmp-{threading.get_ident()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def manifest_part(revision):
    """`good-3` of `good-3+sha256:<16 hex digits>`."""
    name, sep, digest = revision.partition("+sha256:")
    assert sep and len(digest) == 16 and int(digest, 16) >= 0, revision
    return name


def expected(revision):
    """good-<n>: even n allows StartInstances, odd n allows StopInstances."""
    n = int(manifest_part(revision).split("-")[1])
    allowed = ACTIONS[n % 2]
    return ["allowed" if a == allowed else "implicitDeny" for a in ACTIONS]


def test_reload_storm(tmp_path):
    bundle = tmp_path / "bundle.tar.gz"
    write_atomically(bundle, bundle_bytes("good-0", ACTIONS[0]))
    # Reloads are driven explicitly, every few milliseconds (the watcher's
    # debounce would coalesce them); test_bundle_watch covers the watcher.
    server = start_with_control(tmp_path, "--bundle", str(bundle), "--no-watch")
    valid = {"good-0"}
    stop = threading.Event()
    swaps = {"valid": 0, "invalid": 0, "refused": 0}

    def swapper():
        n = 0
        session = requests.Session()
        while not stop.is_set():
            n += 1
            if n % 3 == 0:
                write_atomically(bundle, bundle_bytes(f"bad-{n}", ACTIONS[0], valid=False))
                r = session.post(server.control + "/v1/reload", headers=server.auth, timeout=30)
                assert r.status_code == 422, r.text
                swaps["invalid"] += 1
                swaps["refused"] += 1
            else:
                rev = f"good-{n}"
                valid.add(rev)
                write_atomically(bundle, bundle_bytes(rev, ACTIONS[n % 2]))
                r = session.post(server.control + "/v1/reload", headers=server.auth, timeout=30)
                assert r.status_code == 200, r.text
                swaps["valid"] += 1
            time.sleep(0.003)

    def client(k):
        session = requests.Session()
        results = []
        for _ in range(250):
            r = session.post(server.http + "/v1/authorize/batch", json={
                "principal": {"arn": USER},
                "items": [{"action": a, "resource": "*"} for a in ACTIONS],
            }, timeout=30)
            assert r.status_code == 200, r.text
            results.append(r.json())
        return results

    t = threading.Thread(target=swapper)
    t.start()
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            batches = [b for rs in pool.map(client, range(16)) for b in rs]
    finally:
        stop.set()
        t.join()
    status = requests.get(server.admin + "/v1/status", timeout=5).json()
    assert server.stop() == 0

    assert len(batches) == 16 * 250
    assert swaps["valid"] > 20 and swaps["invalid"] > 10, swaps
    seen = set()
    for b in batches:
        rev = b["revision"]
        assert manifest_part(rev) in valid, f"revision {rev} was never a valid bundle"
        assert all(r["revision"] == rev for r in b["results"])
        assert [r["decision"] for r in b["results"]] == expected(rev), b
        seen.add(rev)
    assert len(seen) > 3, f"decisions saw only {seen}"
    assert manifest_part(status["revision"]) in valid


def test_bundle_watch_reloads_on_change_and_keeps_good_state(tmp_path):
    bundle = tmp_path / "bundle.tar.gz"
    write_atomically(bundle, bundle_bytes("good-0", ACTIONS[0]))
    server = start_server(tmp_path, "--bundle", str(bundle))

    def revision():
        return manifest_part(
            requests.get(server.admin + "/readyz", timeout=5).json()["revision"])

    def wait_for(pred, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return True
            time.sleep(0.05)
        return False

    try:
        write_atomically(bundle, bundle_bytes("good-1", ACTIONS[1]))
        assert wait_for(lambda: revision() == "good-1")
        write_atomically(bundle, bundle_bytes("bad-2", ACTIONS[0], valid=False))
        assert wait_for(lambda: requests.get(server.admin + "/v1/status", timeout=5)
                        .json()["last_reload"]["ok"] is False)
        status = requests.get(server.admin + "/v1/status", timeout=5).json()
        assert manifest_part(status["revision"]) == "good-1"
        assert "Effect" in status["last_reload"]["error"]
        metrics = requests.get(server.admin + "/metrics", timeout=5).text
        assert 'iamgate_reloads_total{result="failure"} 1' in metrics
        r = server.authorize({"principal": {"arn": USER}, "action": ACTIONS[1], "resource": "*"})
        assert r.json()["decision"] == "allowed"
    finally:
        assert server.stop() == 0


def test_invalid_bundle_at_start_exits_nonzero_or_waits(tmp_path):
    import subprocess
    from conftest import BINARY
    bundle = tmp_path / "bundle.tar.gz"
    write_atomically(bundle, bundle_bytes("bad-0", ACTIONS[0], valid=False))
    p = subprocess.run([str(BINARY), "serve", "--bundle", str(bundle),
                        "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
                        "--admin-listen", "127.0.0.1:0"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "iam/111111111111.json" in p.stderr and "Effect" in p.stderr

    server = start_server(tmp_path, "--bundle", str(bundle), "--wait-for-bundle",
                          wait_ready=False)
    try:
        assert requests.get(server.admin + "/readyz", timeout=5).status_code == 503
        r = server.authorize({"principal": {"arn": USER}, "action": ACTIONS[0], "resource": "*"})
        assert r.status_code == 503
        write_atomically(bundle, bundle_bytes("good-1", ACTIONS[1]))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if requests.get(server.admin + "/readyz", timeout=5).status_code == 200:
                break
            time.sleep(0.1)
        ready = requests.get(server.admin + "/readyz", timeout=5).json()
        assert manifest_part(ready["revision"]) == "good-1"
    finally:
        assert server.stop() == 0
