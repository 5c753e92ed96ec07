"""Helpers for the issue 15 tests (decision diffs, gated reloads, shadow
snapshots, decision-log shipping): small bundles written as directories in
the AWS CLI's shapes, and a client for `/v1/authorize`."""

import json
import pathlib
import re

import requests

ACCOUNT = "111122223333"


def arn(user):
    return f"arn:aws:iam::{ACCOUNT}:user/{user}"


def write_bundle(path, grants, revision, manifest_extra=None):
    """A bundle at `path` (a directory, replaced in place) whose users have
    one inline policy each: `grants` maps a user name to a list of
    statements, e.g. {"alice": [{"Effect": "Allow", "Action": "ec2:Describe*",
    "Resource": "*"}]}."""
    path = pathlib.Path(path)
    (path / "iam").mkdir(parents=True, exist_ok=True)
    users = [{
        "UserName": name, "UserId": f"AIDA{name.upper()}", "Arn": arn(name), "Path": "/",
        "UserPolicyList": [{"PolicyName": "p", "PolicyDocument": {
            "Version": "2012-10-17", "Statement": statements}}],
    } for name, statements in grants.items()]
    iam = {"UserDetailList": users, "GroupDetailList": [], "RoleDetailList": [], "Policies": []}
    (path / "iam" / f"{ACCOUNT}.json").write_text(json.dumps(iam))
    manifest = {"revision": revision, **(manifest_extra or {})}
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


def allow(*actions):
    return {"Effect": "Allow", "Action": list(actions), "Resource": "*"}


def deny(*actions):
    return {"Effect": "Deny", "Action": list(actions), "Resource": "*"}


def authorize(server, user, action, resource="*", context=None):
    """The decision `/v1/authorize` gives."""
    body = {"principal": {"arn": arn(user)}, "action": action, "resource": resource}
    if context:
        body["context"] = context
    r = requests.post(server.http + "/v1/authorize", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["decision"]


def metric(server, name, labels=None):
    """The value of one sample of `/metrics` (0 when absent)."""
    text = requests.get(server.admin + "/metrics", timeout=10).text
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        m = re.match(r"^([a-zA-Z_:]+)(\{[^}]*\})?\s+(\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in (labels or {}).items()):
            return float(m.group(3))
    return 0.0


def status(server):
    return requests.get(server.admin + "/v1/status", timeout=10).json()
