"""Issue 15: a shadow snapshot (`--shadow-bundle`) evaluated beside the
active one on live requests, off the decision path, and promoted on the
control listener, through the real binary."""

import json

import requests

from conftest import start_server, wait_for
from control_util import control_post, start_with_control
from decision_util import allow, arn, authorize, deny, metric, status, write_bundle
from test_remote_bundle import moto  # noqa: F401 (pytest fixture)

ACTIVE = {"alice": [allow("ec2:Describe*", "ec2:StartInstances")], "bob": [allow("ec2:Describe*")]}
SHADOW = {"alice": [allow("ec2:Describe*"), deny("ec2:DescribeImages")],
          "bob": [allow("ec2:Describe*", "ec2:StopInstances")]}
REQUESTS = [
    ("alice", "ec2:DescribeInstances", "allowed"),
    ("alice", "ec2:DescribeImages", "allowed"),
    ("alice", "ec2:StartInstances", "allowed"),
    ("bob", "ec2:DescribeInstances", "allowed"),
    ("bob", "ec2:StopInstances", "implicitDeny"),
    ("bob", "ec2:TerminateInstances", "implicitDeny"),
]


def test_disagreements_are_counted_and_logged_and_answers_never_change(tmp_path):
    """issue 15: every answer is the active snapshot's; the shadow's
    disagreements are counted by action and decision pair and logged with
    both outcomes; promotion is control-only and activates the shadow."""
    active = write_bundle(tmp_path / "active", ACTIVE, "active")
    shadow = write_bundle(tmp_path / "shadow", SHADOW, "shadow")
    log = tmp_path / "decisions.jsonl"
    server = start_with_control(tmp_path, "--bundle", str(active), "--shadow-bundle", str(shadow),
                                "--decision-log", str(log), "--no-watch")
    try:
        for user, action, expected in REQUESTS:
            assert authorize(server, user, action) == expected
        assert wait_for(lambda: (status(server)["shadow"] or {}).get("evaluated") == len(REQUESTS))
        st = status(server)["shadow"]
        assert st["revision"].startswith("shadow+sha256:") and st["error"] is None
        assert (st["disagreements"], st["dropped"]) == (3, 0)
        assert metric(server, "iamgate_shadow_evaluations_total") == 6
        assert metric(server, "iamgate_shadow_disagreements_total",
                      {"action": "ec2:StartInstances", "active": "allowed", "shadow": "implicitDeny"}) == 1
        assert metric(server, "iamgate_shadow_disagreements_total",
                      {"action": "ec2:DescribeImages", "active": "allowed", "shadow": "explicitDeny"}) == 1
        assert metric(server, "iamgate_shadow_disagreements_total",
                      {"action": "ec2:StopInstances", "active": "implicitDeny", "shadow": "allowed"}) == 1

        def shadow_lines():
            return [r for r in map(json.loads, log.read_text().splitlines()) if "shadow" in r]
        assert wait_for(lambda: len(shadow_lines()) == 3)
        by_action = {r["action"]: r for r in shadow_lines()}
        stop = by_action["ec2:StopInstances"]
        assert stop["principal"] == arn("bob")
        assert stop["decision"] == "implicitDeny" and stop["revision"].startswith("active+")
        assert stop["shadow"]["decision"] == "allowed"
        assert stop["shadow"]["active_decision"] == "implicitDeny"
        assert stop["shadow"]["revision"] == st["revision"]
        # The shadow record shares the id of the answered decision.
        answered = [r for r in map(json.loads, log.read_text().splitlines())
                    if "shadow" not in r and r["action"] == "ec2:StopInstances"]
        assert [r["decision_id"] for r in answered] == [stop["decision_id"]]

        # A shadow source that no longer loads: neither reloaded nor
        # promoted; the active snapshot keeps serving (last known good).
        iam = next((shadow / "iam").glob("*.json"))
        iam.write_text("{not json")
        r = control_post(server, "/v1/shadow/reload")
        assert r.status_code == 422, r.text
        r = control_post(server, "/v1/shadow/promote")
        assert r.status_code == 422 and r.json()["revision"].startswith("active+"), r.text
        broken = status(server)
        assert broken["revision"].startswith("active+") and broken["last_reload"]["ok"] is False
        assert broken["shadow"]["revision"] == st["revision"] and broken["shadow"]["error"]
        assert authorize(server, "bob", "ec2:StopInstances") == "implicitDeny"
        write_bundle(shadow, SHADOW, "shadow")
        r = control_post(server, "/v1/shadow/reload")
        assert r.status_code == 200 and r.json()["revision"] == st["revision"], r.text
        assert status(server)["shadow"]["error"] is None

        # Promotion is not served on the decision or admin listeners, and
        # needs the control token.
        for base in (server.http, server.admin):
            assert requests.post(base + "/v1/shadow/promote", timeout=10).status_code == 404
        assert requests.post(server.control + "/v1/shadow/promote", timeout=10).status_code == 401
        r = control_post(server, "/v1/shadow/promote")
        assert r.status_code == 200, r.text
        assert r.json()["revision"] == st["revision"]
        assert status(server)["revision"] == st["revision"]
        assert authorize(server, "bob", "ec2:StopInstances") == "allowed"
        assert authorize(server, "alice", "ec2:StartInstances") == "implicitDeny"
        after = status(server)["shadow"]
        assert after["revision"] is None and after["promoted"]["revision"] == st["revision"]
        # Nothing left to promote.
        assert control_post(server, "/v1/shadow/promote").status_code == 422
    finally:
        server.stop()


def test_an_invalid_shadow_never_serves_and_cannot_be_promoted(tmp_path):
    """issue 15: a shadow bundle is validated like the main one; a refused one
    is reported in /v1/status, shadows nothing, and promotion is refused
    while the active snapshot keeps serving."""
    active = write_bundle(tmp_path / "active", ACTIVE, "active")
    shadow = write_bundle(tmp_path / "shadow", SHADOW, "shadow")
    (shadow / "tests").mkdir()
    (shadow / "tests" / "t.json").write_text(json.dumps({
        "principal": {"arn": arn("alice")},
        "tests": [{"name": "must start", "action": "ec2:StartInstances", "resource": "*",
                   "expect": "allowed"}]}))
    server = start_with_control(tmp_path, "--bundle", str(active), "--shadow-bundle", str(shadow),
                                "--no-watch")
    try:
        st = status(server)
        assert "bundle test failed" in st["shadow"]["error"]
        assert st["shadow"]["revision"] is None
        assert authorize(server, "alice", "ec2:StartInstances") == "allowed"
        r = control_post(server, "/v1/shadow/promote")
        assert r.status_code == 422 and "no shadow snapshot" in r.json()["error"], r.text
        assert status(server)["revision"].startswith("active+")
    finally:
        server.stop()


def test_a_full_shadow_queue_drops_and_counts_never_waits(tmp_path):
    """issue 15: with a one-slot queue, a burst of batch decisions is
    answered in full; every decision is either evaluated on the shadow or
    counted as dropped."""
    active = write_bundle(tmp_path / "active", ACTIVE, "active")
    shadow = write_bundle(tmp_path / "shadow", SHADOW, "shadow")
    server = start_server(tmp_path, "--bundle", str(active), "--shadow-bundle", str(shadow),
                          "--shadow-queue", "1", "--no-watch")
    try:
        items = [{"action": "ec2:StartInstances", "resource": f"arn:aws:ec2:us-east-1:{'111122223333'}:instance/i-{n:017x}"}
                 for n in range(100)]
        total = 0
        for _ in range(5):
            r = requests.post(server.http + "/v1/authorize/batch",
                              json={"principal": {"arn": arn("alice")}, "items": items}, timeout=10)
            assert r.status_code == 200, r.text
            assert all(d["decision"] == "allowed" for d in r.json()["results"]), r.text
            total += len(items)

        def settled():
            s = status(server)["shadow"]
            return s["evaluated"] + s["dropped"] == total
        assert wait_for(settled), status(server)["shadow"]
        s = status(server)["shadow"]
        assert metric(server, "iamgate_shadow_dropped_total") == s["dropped"]
        assert s["disagreements"] == s["evaluated"]
    finally:
        server.stop()


def test_the_shadow_bundle_is_watched(tmp_path):
    """issue 15: a new shadow bundle written in place is picked up like the
    main one (its counts start over); a broken rewrite keeps the previous
    shadow and reports why."""
    active = write_bundle(tmp_path / "active", ACTIVE, "active")
    shadow = write_bundle(tmp_path / "shadow", SHADOW, "shadow")
    server = start_server(tmp_path, "--bundle", str(active), "--shadow-bundle", str(shadow))
    try:
        first = status(server)["shadow"]["revision"]
        assert authorize(server, "bob", "ec2:StopInstances") == "implicitDeny"
        assert wait_for(lambda: status(server)["shadow"]["disagreements"] == 1)
        write_bundle(shadow, ACTIVE, "shadow-2")
        assert wait_for(lambda: status(server)["shadow"]["revision"].startswith("shadow-2+"))
        assert status(server)["shadow"]["disagreements"] == 0
        assert authorize(server, "bob", "ec2:StopInstances") == "implicitDeny"
        assert wait_for(lambda: status(server)["shadow"]["evaluated"] == 1)
        assert status(server)["shadow"]["disagreements"] == 0
        (shadow / "manifest.json").write_text("{")
        assert wait_for(lambda: status(server)["shadow"]["error"] is not None)
        st = status(server)
        assert st["shadow"]["revision"].startswith("shadow-2+") and first != st["shadow"]["revision"]
        assert st["revision"].startswith("active+")
    finally:
        server.stop()


def test_with_verify_keys_an_unsigned_shadow_is_refused_and_cannot_be_promoted(tmp_path):
    """issue 15: a promoted shadow becomes the active snapshot, so with
    `--bundle-verify-key` the shadow answers to the same keys as the main
    bundle: an unsigned shadow never loads and promotion is refused, while a
    shadow signed by a trusted key is evaluated and can be promoted."""
    from test_remote_bundle import build, keypair

    priv, pub = keypair(tmp_path, "signer")
    active = tmp_path / "active.tar.gz"
    build(write_bundle(tmp_path / "active", ACTIVE, "active"), active, priv)
    shadow_dir = write_bundle(tmp_path / "shadow", SHADOW, "shadow")
    unsigned = tmp_path / "shadow.tar.gz"
    build(shadow_dir, unsigned)
    server = start_with_control(tmp_path, "--bundle", str(active), "--shadow-bundle", str(unsigned),
                                "--bundle-verify-key", str(pub), "--no-watch")
    try:
        st = status(server)
        assert st["revision"].startswith("active+")
        assert "signature" in st["shadow"]["error"], st["shadow"]
        assert st["shadow"]["revision"] is None
        r = control_post(server, "/v1/shadow/promote")
        assert r.status_code == 422, r.text
        assert status(server)["revision"].startswith("active+")
        assert authorize(server, "alice", "ec2:StartInstances") == "allowed"

        build(shadow_dir, unsigned, priv)
        r = control_post(server, "/v1/shadow/reload")
        assert r.status_code == 200, r.text
        assert status(server)["shadow"]["revision"].startswith("shadow+")
        r = control_post(server, "/v1/shadow/promote")
        assert r.status_code == 200, r.text
        assert status(server)["revision"].startswith("shadow+")
    finally:
        server.stop()


def test_a_remote_signed_shadow_is_polled_evaluated_updated_and_promoted(tmp_path):
    """issue 15: `--shadow-bundle` takes the sources `--bundle` takes: a
    signed bundle served by the real nginx is fetched, verified with
    `--bundle-verify-key` and evaluated; republishing it reloads the shadow
    (never the active snapshot); an unsigned republication is refused and
    the previous shadow stays; its polls are counted apart from the main
    source's; promotion activates the fetched shadow."""
    import os

    from test_remote_bundle import Nginx, build, keypair

    priv, pub = keypair(tmp_path, "signer")
    active = tmp_path / "active.tar.gz"
    build(write_bundle(tmp_path / "active", ACTIVE, "active"), active, priv)
    site = tmp_path / "site"
    site.mkdir()
    archive = site / "shadow.tar.gz"
    published = [0]

    def publish(grants, revision, *sign):
        build(write_bundle(tmp_path / f"src-{revision}", grants, revision), archive, *sign)
        # nginx's ETag is mtime and size: give every publication its own mtime.
        published[0] += 1
        stamp = 1_700_000_000 + published[0] * 100
        os.utime(archive, (stamp, stamp))

    publish(SHADOW, "shadow", priv)
    nginx = Nginx(tmp_path, site)
    try:
        server = start_with_control(tmp_path, "--bundle", str(active),
                                    "--shadow-bundle", nginx.url("shadow.tar.gz"),
                                    "--bundle-verify-key", str(pub),
                                    "--bundle-poll-interval", "0.3", "--no-watch")
        try:
            st = status(server)
            assert st["revision"].startswith("active+"), st
            sh = st["shadow"]
            assert sh["revision"].startswith("shadow+") and sh["error"] is None, sh
            assert sh["source"] == nginx.url("shadow.tar.gz")
            src = sh["bundle_source"]
            assert src["kind"] == "http" and src["verification"]["required"] is True, src
            assert src["verification"]["active_key_id"], src

            # Evaluated beside the active snapshot, which answers.
            assert authorize(server, "bob", "ec2:StopInstances") == "implicitDeny"
            assert wait_for(lambda: status(server)["shadow"]["disagreements"] == 1)
            assert metric(server, "iamgate_shadow_disagreements_total",
                          {"action": "ec2:StopInstances", "active": "implicitDeny",
                           "shadow": "allowed"}) == 1

            # Unchanged polls are 304s, counted as the shadow's.
            assert wait_for(lambda: metric(server, "iamgate_shadow_bundle_fetches_total",
                                           {"result": "not_modified"}) >= 2)
            assert "304" in nginx.statuses()
            assert metric(server, "iamgate_shadow_bundle_fetches_total", {"result": "updated"}) == 1
            for result in ("updated", "not_modified", "error"):
                assert metric(server, "iamgate_bundle_fetches_total", {"result": result}) == 0

            # Republished: the shadow reloads, the active snapshot does not.
            shadow_2 = {"alice": [allow("ec2:Describe*", "ec2:StartInstances")],
                        "bob": [allow("ec2:Describe*", "ec2:TerminateInstances")]}
            publish(shadow_2, "shadow-2", priv)
            assert wait_for(lambda: status(server)["shadow"]["revision"].startswith("shadow-2+")), \
                status(server)["shadow"]
            st = status(server)
            assert st["revision"].startswith("active+"), st["revision"]
            assert st["shadow"]["disagreements"] == 0
            assert metric(server, "iamgate_shadow_bundle_fetches_total", {"result": "updated"}) == 2
            assert authorize(server, "bob", "ec2:TerminateInstances") == "implicitDeny"
            assert wait_for(lambda: status(server)["shadow"]["disagreements"] == 1)

            # An unsigned republication is refused; the shadow keeps shadow-2.
            publish(ACTIVE, "shadow-unsigned")
            assert wait_for(lambda: metric(server, "iamgate_shadow_bundle_signature_refusals_total",
                                           {"reason": "unsigned"}) == 1), status(server)["shadow"]
            st = status(server)
            assert st["shadow"]["revision"].startswith("shadow-2+"), st["shadow"]
            assert "signature" in st["shadow"]["error"], st["shadow"]
            refusal = st["shadow"]["bundle_source"]["verification"]["last_refusal"]
            assert refusal["reason"] == "unsigned", refusal
            assert st["revision"].startswith("active+")
            assert metric(server, "iamgate_bundle_signature_refusals_total", {"reason": "unsigned"}) == 0

            # Signed again, then promoted: the fetched shadow becomes active.
            publish(shadow_2, "shadow-2", priv)
            assert wait_for(lambda: status(server)["shadow"]["error"] is None)
            r = control_post(server, "/v1/shadow/promote")
            assert r.status_code == 200, r.text
            assert r.json()["revision"].startswith("shadow-2+"), r.text
            assert status(server)["revision"].startswith("shadow-2+")
            assert authorize(server, "bob", "ec2:TerminateInstances") == "allowed"
            assert authorize(server, "bob", "ec2:StopInstances") == "implicitDeny"
        finally:
            server.stop()
    finally:
        nginx.stop()


def test_an_s3_shadow_over_moto_is_polled_and_promoted(tmp_path, moto):
    """issue 15: `--shadow-bundle s3://bucket/key` fetched with SigV4-signed
    GETs from moto's S3 API (moto verifies every signature), polled with
    ETags: a new object reloads the shadow, never the active snapshot, and
    promotion activates it."""
    import os

    import boto3

    from test_remote_bundle import build

    setup = dict(endpoint_url=moto, region_name="us-east-1",
                 aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="setup")
    iam = boto3.client("iam", **setup)
    iam.create_user(UserName="bundle-reader")
    key = iam.create_access_key(UserName="bundle-reader")["AccessKey"]
    iam.put_user_policy(UserName="bundle-reader", PolicyName="s3", PolicyDocument=json.dumps(
        {"Version": "2012-10-17",
         "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    s3 = boto3.client("s3", endpoint_url=moto, region_name="us-east-1",
                      aws_access_key_id=key["AccessKeyId"],
                      aws_secret_access_key=key["SecretAccessKey"])
    s3.create_bucket(Bucket="policy-bundles")

    def put(grants, revision):
        out = tmp_path / f"{revision}.tar.gz"
        build(write_bundle(tmp_path / f"src-{revision}", grants, revision), out)
        s3.put_object(Bucket="policy-bundles", Key="shadow/bundle.tar.gz", Body=out.read_bytes())

    put(SHADOW, "s3-shadow")
    active = write_bundle(tmp_path / "active", ACTIVE, "active")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]})
    server = start_with_control(tmp_path, "--bundle", str(active),
                                "--shadow-bundle", "s3://policy-bundles/shadow/bundle.tar.gz",
                                "--bundle-s3-endpoint", moto, "--bundle-s3-path-style",
                                "--bundle-s3-region", "us-east-1",
                                "--bundle-poll-interval", "0.3", "--no-watch", env=env)
    try:
        st = status(server)
        assert st["revision"].startswith("active+")
        sh = st["shadow"]
        assert sh["revision"].startswith("s3-shadow+") and sh["error"] is None, sh
        head = s3.head_object(Bucket="policy-bundles", Key="shadow/bundle.tar.gz")
        assert sh["bundle_source"]["kind"] == "s3" and sh["bundle_source"]["etag"] == head["ETag"]
        assert authorize(server, "bob", "ec2:StopInstances") == "implicitDeny"
        assert wait_for(lambda: status(server)["shadow"]["disagreements"] == 1)
        assert wait_for(lambda: metric(server, "iamgate_shadow_bundle_fetches_total",
                                       {"result": "not_modified"}) >= 1)

        put({"bob": [allow("ec2:Describe*", "ec2:RebootInstances")]}, "s3-shadow-2")
        assert wait_for(lambda: status(server)["shadow"]["revision"].startswith("s3-shadow-2+")), \
            status(server)["shadow"]
        assert status(server)["revision"].startswith("active+")
        assert metric(server, "iamgate_bundle_fetches_total", {"result": "updated"}) == 0

        r = control_post(server, "/v1/shadow/promote")
        assert r.status_code == 200 and r.json()["revision"].startswith("s3-shadow-2+"), r.text
        assert authorize(server, "bob", "ec2:RebootInstances") == "allowed"
        assert authorize(server, "alice", "ec2:DescribeInstances") == "implicitDeny"
        # moto verified every GET's signature and answered 200 or 304.
        log = (tmp_path / "moto.log").read_text()
        gets = [line for line in log.splitlines() if "GET /policy-bundles/shadow/bundle.tar.gz" in line]
        assert gets and all('" 200 ' in g or '" 304 ' in g for g in gets), gets
    finally:
        server.stop()
