"""Issue 15: decision diffs between bundles (`iamgate bundle diff`) and
reloads gated on the decisions they change, through the real binary."""

import json
import subprocess
import tarfile

import requests

from conftest import BINARY, start_server, wait_for
from control_util import control_post, start_with_control
from decision_util import allow, arn, authorize, deny, metric, status, write_bundle

OLD = {
    "alice": [allow("ec2:Describe*", "ec2:StartInstances")],
    "bob": [allow("ec2:Describe*")],
}
NEW = {
    # alice loses StartInstances, is denied DescribeImages; bob gains StopInstances.
    "alice": [allow("ec2:Describe*"), deny("ec2:DescribeImages")],
    "bob": [allow("ec2:Describe*", "ec2:StopInstances")],
}
REQUESTS = [
    ("alice", "ec2:DescribeInstances"),
    ("alice", "ec2:DescribeImages"),
    ("alice", "ec2:StartInstances"),
    ("bob", "ec2:DescribeInstances"),
    ("bob", "ec2:StopInstances"),
    ("bob", "ec2:TerminateInstances"),
]


def diff(*args):
    p = subprocess.run([str(BINARY), "bundle", "diff", *map(str, args)],
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout


def test_bundle_diff_reports_changes_from_a_decision_log_and_test_files(tmp_path):
    """issue 15: requests from the decision log a real server wrote, and from
    a policy test file, decided on two bundles; grouped by principal and
    action, text and JSON, exit code 1 on change and 0 without."""
    old = write_bundle(tmp_path / "old", OLD, "old")
    new = write_bundle(tmp_path / "new", NEW, "new")
    log = tmp_path / "decisions.jsonl"
    server = start_server(tmp_path, "--bundle", str(old), "--decision-log", str(log), "--no-watch")
    try:
        for user, action in REQUESTS:
            authorize(server, user, action)
        assert wait_for(lambda: log.exists() and len(log.read_text().splitlines()) == len(REQUESTS))
    finally:
        server.stop()

    code, out = diff(old, new, "--requests", log, "--json")
    assert code == 1, out
    report = json.loads(out)
    assert report["compared"] == len(REQUESTS)
    assert report["changed"] == 3
    assert report["by_change"] == {"allowed -> explicitDeny": 1, "allowed -> implicitDeny": 1,
                                   "implicitDeny -> allowed": 1}
    groups = {(g["principal"], g["action"]): g["changes"] for g in report["groups"]}
    assert groups == {
        (arn("alice"), "ec2:DescribeImages"): [{"resource": "*", "from": "allowed", "to": "explicitDeny"}],
        (arn("alice"), "ec2:StartInstances"): [{"resource": "*", "from": "allowed", "to": "implicitDeny"}],
        (arn("bob"), "ec2:StopInstances"): [{"resource": "*", "from": "implicitDeny", "to": "allowed"}],
    }
    assert report["old_revision"].startswith("old+sha256:")

    code, text = diff(old, new, "--requests", log)
    assert code == 1
    assert f"{arn('alice')} ec2:DescribeImages\n  *: allowed -> explicitDeny\n" in text
    assert text.strip().splitlines()[-1].startswith("3 of 6 requests change decision")

    # A policy test file's requests (its expectations are not used).
    tf = tmp_path / "bob.json"
    tf.write_text(json.dumps({"principal": {"arn": arn("bob")}, "tests": [
        {"name": "stop", "action": "ec2:StopInstances", "resource": "*", "expect": "allowed"},
        {"name": "describe", "action": "ec2:DescribeVolumes", "resource": "*", "expect": "allowed"},
    ]}))
    code, out = diff(old, new, "--requests", tf, "--json")
    assert code == 1 and json.loads(out)["changed"] == 1, out

    # Bundles as .tar.gz decide the same.
    archive = tmp_path / "new.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for f in sorted(new.rglob("*")):
            tar.add(f, arcname=str(f.relative_to(new)), recursive=False)
    code, out = diff(old, archive, "--requests", log, "--json")
    assert code == 1 and json.loads(out)["changed"] == 3, out

    # The same bundle on both sides changes nothing.
    code, out = diff(old, old, "--requests", log, "--requests", tf)
    assert code == 0, out
    assert out.startswith("0 of 8 requests change decision"), out

    # A request file that cannot be read is exit 2 with the line.
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"principal": "x"}\n')
    code, out = diff(old, new, "--requests", bad)
    assert code == 2 and "line 1" in out, out


def reload(server):
    return control_post(server, "/v1/reload")


def test_a_reload_changing_too_many_sampled_decisions_is_refused(tmp_path):
    """issue 15: the candidate is run on the sample of recent requests; past
    --max-changed-decisions (or a lower manifest.json max_changed_decisions)
    it is refused like a failing test: the old snapshot keeps serving, the
    reason and counts are in /v1/status and the metrics."""
    bundle = write_bundle(tmp_path / "b", OLD, "one")
    server = start_with_control(tmp_path, "--bundle", str(bundle), "--no-watch",
                                "--max-changed-decisions", "2", "--decision-sample-every", "1")
    try:
        for _ in range(3):  # duplicates are kept once
            for user, action in REQUESTS:
                authorize(server, user, action)
        before = status(server)["revision"]

        write_bundle(bundle, NEW, "two")
        r = reload(server)
        assert r.status_code == 422, r.text
        assert "changes 3 of 6 sampled decisions; at most 2 allowed (--max-changed-decisions)" in r.json()["error"]
        st = status(server)
        assert st["revision"] == before
        assert st["last_reload"]["ok"] is False
        d = st["decision_diff"]
        assert (d["sampled"], d["changed"], d["limit"], d["refused"]) == (6, 3, 2, True)
        assert d["by_change"]["implicitDeny -> allowed"] == 1
        assert metric(server, "iamgate_reload_diff_refusals_total") == 1
        assert metric(server, "iamgate_reload_diff_changed_decisions") == 3
        # Still the old answers.
        assert authorize(server, "alice", "ec2:StartInstances") == "allowed"

        # One change is within the limit: activated, counts published.
        write_bundle(bundle, {**OLD, "bob": NEW["bob"]}, "three")
        r = reload(server)
        assert r.status_code == 200, r.text
        assert r.json()["revision"].startswith("three+")
        d = status(server)["decision_diff"]
        assert (d["changed"], d["refused"]) == (1, False)
        assert authorize(server, "bob", "ec2:StopInstances") == "allowed"

        # The bundle's own expectation is lower: it refuses one change.
        write_bundle(bundle, OLD, "four", {"max_changed_decisions": 0})
        r = reload(server)
        assert r.status_code == 422, r.text
        assert "at most 0 allowed (manifest.json max_changed_decisions)" in r.json()["error"]
        assert authorize(server, "bob", "ec2:StopInstances") == "allowed"
        assert metric(server, "iamgate_reload_diff_refusals_total") == 2
    finally:
        server.stop()


def test_the_sample_keeps_no_secrets_and_only_what_decides(tmp_path):
    """issue 15: a context key that names a secret never reaches the sample
    (the diff counts requests, and two requests differing only in a secret
    are one), and without a limit a reload is compared but not refused."""
    bundle = write_bundle(tmp_path / "b", OLD, "one")
    server = start_with_control(tmp_path, "--bundle", str(bundle), "--no-watch",
                                "--decision-sample-every", "1")
    try:
        for i in range(5):
            authorize(server, "alice", "ec2:StartInstances",
                      context={"aws:SourceIp": "10.0.0.1", "x:SessionToken": f"secret-{i}"})
        write_bundle(bundle, NEW, "two")
        r = reload(server)
        assert r.status_code == 200, r.text
        d = status(server)["decision_diff"]
        assert (d["sampled"], d["changed"], d["refused"]) == (1, 1, False)
        assert "limit" not in d
    finally:
        server.stop()


def test_a_logged_context_decides_the_diff(tmp_path):
    """issue 15: with --decision-log-context the log carries each request's
    context (keys naming secrets left out), and `bundle diff` decides the
    logged requests with it: a condition on aws:SourceIp changes exactly the
    requests from the addresses it no longer allows."""
    def grants(cidr):
        return {"alice": [{"Effect": "Allow", "Action": "ec2:StartInstances", "Resource": "*",
                           "Condition": {"IpAddress": {"aws:SourceIp": cidr}}}]}
    old = write_bundle(tmp_path / "old", grants("10.0.0.0/8"), "old")
    new = write_bundle(tmp_path / "new", grants("10.1.0.0/16"), "new")
    log = tmp_path / "decisions.jsonl"
    server = start_server(tmp_path, "--bundle", str(old), "--decision-log", str(log),
                          "--decision-log-context", "--no-watch")
    try:
        for ip in ("10.1.2.3", "10.2.3.4", "192.0.2.1"):
            authorize(server, "alice", "ec2:StartInstances",
                      context={"aws:SourceIp": ip, "x:SessionToken": "s3cr3t"})
        assert wait_for(lambda: log.exists() and len(log.read_text().splitlines()) == 3)
    finally:
        server.stop()
    assert "s3cr3t" not in log.read_text()
    assert json.loads(log.read_text().splitlines()[0])["context"]["aws:sourceip"] == "10.1.2.3"
    code, out = diff(old, new, "--requests", log, "--json")
    assert code == 1, out
    report = json.loads(out)
    assert (report["compared"], report["changed"]) == (3, 1)
    assert report["by_change"] == {"allowed -> implicitDeny": 1}
