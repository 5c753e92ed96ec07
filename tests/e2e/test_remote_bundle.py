"""Remote and signed bundles (issue 15): `iamgate bundle build --sign`,
`serve --bundle http://...` polled with ETags from a real nginx (and from
Python's http.server where a test needs to control ETags and count
requests), `--bundle s3://...` from `moto_server` as a real S3 API,
`--bundle-verify-key` refusing unsigned, wrongly signed and tampered
bundles, and `--bundle-cache` serving the last good bundle when the source
is down.

Keys come from `openssl genpkey -algorithm ed25519` / `openssl pkey -pubout`.
"""

import hashlib
import http.server
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import time

import pytest
import requests

from conftest import BINARY, ROOT, start_server, wait_for

DEMO = ROOT / "src" / "bundle" / "demo"
BIN = pathlib.Path(sys.executable).parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keypair(tmp, name):
    priv, pub = tmp / f"{name}.pem", tmp / f"{name}.pub.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(priv)], check=True)
    subprocess.run(["openssl", "pkey", "-in", str(priv), "-pubout", "-out", str(pub)], check=True)
    return priv, pub


def bundle_dir(tmp, revision):
    d = tmp / f"src-{revision}"
    if d.exists():
        shutil.rmtree(d)
    shutil.copytree(DEMO, d)
    (d / "manifest.json").write_text(json.dumps({"revision": revision}))
    return d


def build(src, out, *sign):
    args = [str(BINARY), "bundle", "build", str(src), "-o", str(out), "--json"]
    for key in sign:
        args += ["--sign", str(key)]
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def publish(tmp, out, revision, *sign):
    """Builds a bundle of `revision` and replaces `out` with it."""
    return build(bundle_dir(tmp, revision), out, *sign)


def tamper(archive, add=None):
    """Rewrites a signed archive with one file changed (or added)."""
    members = {}
    with tarfile.open(archive, "r:gz") as t:
        for m in t.getmembers():
            members[m.name] = t.extractfile(m).read()
    if add:
        members[add] = b"[]"
    else:
        doc = json.loads(members["iam/111111111111.json"])
        doc["UserDetailList"][0]["UserName"] += "x"
        members["iam/111111111111.json"] = json.dumps(doc).encode()
    tmp = archive.with_suffix(".tmp")
    with tarfile.open(tmp, "w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, __import__("io").BytesIO(data))
    os.replace(tmp, archive)


def revision_of(server):
    r = requests.get(server.admin + "/readyz", timeout=5)
    return r.json().get("revision") if r.status_code == 200 else None


def status(server):
    return requests.get(server.admin + "/v1/status", timeout=5).json()


def metric(server, name, **labels):
    text = requests.get(server.admin + "/metrics", timeout=5).text
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}}" if want else f"{name} "):
            return float(line.rsplit(" ", 1)[1])
    return None


class EtagServer:
    """Python's http.server serving one file with a strong ETag (its SHA-256)
    and honouring If-None-Match; counts 200s and 304s. Needed where a test
    controls ETags exactly."""

    def __init__(self, path, long_poll=False, port=0):
        self.path = path
        self.hits = {"200": 0, "304": 0}
        self.changed = threading.Condition()
        self.waiting = 0
        outer = self

        def current():
            data = outer.path.read_bytes()
            return data, '"%s"' % hashlib.sha256(data).hexdigest()[:32]

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                data, etag = current()
                prefer = self.headers.get("Prefer", "")
                waited = None
                if long_poll and prefer.startswith("wait=") and self.headers.get("If-None-Match") == etag:
                    # Long polling: hold the request until the file changes.
                    waited = prefer
                    with outer.changed:
                        outer.waiting += 1
                        outer.changed.wait_for(lambda: current()[1] != etag,
                                               timeout=int(prefer[5:]))
                        outer.waiting -= 1
                    data, etag = current()
                if self.headers.get("If-None-Match") == etag:
                    outer.hits["304"] += 1
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    if waited:
                        self.send_header("Preference-Applied", waited)
                    self.end_headers()
                    return
                outer.hits["200"] += 1
                self.send_response(200)
                self.send_header("ETag", etag)
                if waited:
                    self.send_header("Preference-Applied", waited)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/bundle.tar.gz"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def notify(self):
        with self.changed:
            self.changed.notify_all()

    def stop(self):
        self.notify()
        self.httpd.shutdown()
        self.httpd.server_close()


class Nginx:
    """The real nginx, unprivileged, on a loopback port, serving `root`."""

    def __init__(self, tmp, root, tls=None):
        self.port = free_port()
        self.scheme = "https" if tls else "http"
        listen = f"127.0.0.1:{self.port}"
        if tls:
            cert, key = tls
            listen += f" ssl; ssl_certificate {cert}; ssl_certificate_key {key}"
        self.dir = tmp / "nginx"
        self.dir.mkdir(exist_ok=True)
        self.access_log = self.dir / "access.log"
        conf = self.dir / "nginx.conf"
        conf.write_text(f"""
daemon off;
master_process off;
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log;
events {{ worker_connections 1024; }}
http {{
    log_format bundle '$status $body_bytes_sent "$http_if_none_match"';
    access_log {self.access_log} bundle;
    client_body_temp_path {self.dir}/body;
    proxy_temp_path {self.dir}/proxy;
    fastcgi_temp_path {self.dir}/fastcgi;
    uwsgi_temp_path {self.dir}/uwsgi;
    scgi_temp_path {self.dir}/scgi;
    server {{
        listen {listen};
        root {root};
        etag on;
    }}
}}
""")
        self.proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(self.dir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        assert wait_for(self._up, 10), (self.dir / "error.log").read_text()

    def _up(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def url(self, name):
        return f"{self.scheme}://127.0.0.1:{self.port}/{name}"

    def statuses(self):
        if not self.access_log.exists():
            return []
        return [line.split()[0] for line in self.access_log.read_text().splitlines()]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def keys(tmp_path):
    return {n: keypair(tmp_path, n) for n in ("k1", "k2", "rogue")}


def test_signed_bundle_from_nginx_converges_with_etags(tmp_path, keys):
    """issue 15: a signed bundle served by nginx is verified and activated;
    unchanged polls are 304s; a newly published bundle is active within a
    poll interval or so."""
    site = tmp_path / "site"
    site.mkdir()
    archive = site / "bundle.tar.gz"
    built = publish(tmp_path, archive, "rev-1", keys["k1"][0])
    os.utime(archive, (1_700_000_000, 1_700_000_000))
    nginx = Nginx(tmp_path, site)
    try:
        server = start_server(tmp_path, "--bundle", nginx.url("bundle.tar.gz"),
                              "--bundle-verify-key", str(keys["k1"][1]),
                              "--bundle-poll-interval", "0.3")
        try:
            assert revision_of(server).startswith("rev-1+"), server.log()
            src = status(server)["bundle_source"]
            assert src["kind"] == "http" and src["served_from"] == "source"
            assert src["verification"]["required"] is True
            assert src["verification"]["active_key_id"] == built["signed_by"][0]
            assert src["etag"], src
            # Unchanged: conditional GETs answered 304 with no body.
            assert wait_for(lambda: nginx.statuses().count("304") >= 3, 10), nginx.statuses()
            assert nginx.statuses()[0] == "200"
            assert set(nginx.statuses()[1:]) == {"304"}, nginx.statuses()
            assert metric(server, "iamgate_bundle_fetches_total", result="not_modified") >= 3

            publish(tmp_path, archive, "rev-2", keys["k1"][0])
            t0 = time.monotonic()
            assert wait_for(lambda: revision_of(server).startswith("rev-2+"), 10), server.log()
            assert time.monotonic() - t0 < 0.3 * 1.2 + 2
            assert nginx.statuses().count("200") == 2, nginx.statuses()
            # The first load and the new bundle.
            assert metric(server, "iamgate_bundle_fetches_total", result="updated") == 2
            # Decisions come from the new revision.
            r = server.authorize({"principal": {"arn": "arn:aws:iam::111111111111:user/alice"},
                                  "action": "ec2:DescribeInstances", "resource": "*"})
            assert r.status_code == 200 and r.json()["revision"].startswith("rev-2+"), r.text
        finally:
            server.stop()
    finally:
        nginx.stop()


def test_https_bundle_trusts_the_ca_file(tmp_path, keys):
    """issue 15: an https:// bundle from nginx over TLS is fetched when
    --bundle-ca-file holds the server's CA, and refused (TLS error, nothing
    served) when the system's CAs are all it trusts."""
    from test_tls import make_ca, make_leaf

    pki = tmp_path / "pki"
    pki.mkdir()
    make_ca(pki, "ca")
    make_leaf(pki, "server", "ca", "IP:127.0.0.1,DNS:localhost")
    site = tmp_path / "site"
    site.mkdir()
    publish(tmp_path, site / "bundle.tar.gz", "tls-1", keys["k1"][0])
    nginx = Nginx(tmp_path, site, tls=(pki / "server.pem", pki / "server.key"))
    try:
        url = nginx.url("bundle.tar.gz")
        assert url.startswith("https://")
        server = start_server(tmp_path, "--bundle", url, "--bundle-ca-file", str(pki / "ca.pem"),
                              "--bundle-verify-key", str(keys["k1"][1]),
                              "--bundle-poll-interval", "0.3")
        try:
            assert revision_of(server).startswith("tls-1+"), server.log()
            assert wait_for(lambda: status(server)["bundle_source"]["not_modified"] >= 1, 10)
        finally:
            server.stop()
        with pytest.raises(RuntimeError, match="TLS"):
            start_server(tmp_path, "--bundle", url, timeout=10)
    finally:
        nginx.stop()


def test_unsigned_wrongly_signed_and_tampered_bundles_are_refused(tmp_path, keys):
    """issue 15: with --bundle-verify-key, an unsigned bundle, one signed by
    an untrusted key, and a signed one with a file changed or added are
    refused (the reason in /v1/status and metrics) while the last good
    revision keeps serving; a bundle signed by the second trusted key
    (rotation) is activated."""
    archive = tmp_path / "bundle.tar.gz"
    publish(tmp_path, archive, "good-1", keys["k1"][0])
    source = EtagServer(archive)
    try:
        server = start_server(tmp_path, "--bundle", source.url,
                              "--bundle-verify-key", str(keys["k1"][1]),
                              "--bundle-verify-key", str(keys["k2"][1]),
                              "--bundle-poll-interval", "0.2")
        try:
            assert revision_of(server).startswith("good-1+")
            cases = [
                ("unsigned", lambda: publish(tmp_path, archive, "bad-unsigned"), "not signed"),
                ("unknown_key", lambda: publish(tmp_path, archive, "bad-rogue", keys["rogue"][0]),
                 "no signature by a trusted key"),
                ("tampered", lambda: (publish(tmp_path, archive, "bad-changed", keys["k1"][0]),
                                      tamper(archive)), "`iam/111111111111.json` changed"),
                ("tampered", lambda: (publish(tmp_path, archive, "bad-added", keys["k1"][0]),
                                      tamper(archive, add="tests/extra.json")),
                 "`tests/extra.json` added"),
            ]
            for n, (reason, do, words) in enumerate(cases, 1):
                do()

                def refused():
                    refusal = status(server)["bundle_source"]["verification"]["last_refusal"]
                    return refusal and refusal["reason"] == reason and words in refusal["message"]
                assert wait_for(refused, 10), (reason, status(server))
                st = status(server)
                assert st["revision"].startswith("good-1+"), st
                assert st["last_reload"]["ok"] is False and words in st["last_reload"]["error"]
                assert revision_of(server).startswith("good-1+")
            assert metric(server, "iamgate_bundle_signature_refusals_total", reason="unsigned") == 1
            assert metric(server, "iamgate_bundle_signature_refusals_total", reason="unknown_key") == 1
            assert metric(server, "iamgate_bundle_signature_refusals_total", reason="tampered") == 2
            # A refused bundle is not downloaded again at every poll.
            time.sleep(1)
            downloads = source.hits["200"]
            time.sleep(1)
            assert source.hits["200"] == downloads and source.hits["304"] > 0

            built = publish(tmp_path, archive, "good-2", keys["k2"][0])
            assert wait_for(lambda: revision_of(server).startswith("good-2+"), 10)
            assert status(server)["bundle_source"]["verification"]["active_key_id"] == built["signed_by"][0]
        finally:
            server.stop()
    finally:
        source.stop()

    # At startup an unsigned bundle is refused outright (fail closed).
    publish(tmp_path, archive, "bad-start")
    source = EtagServer(archive)
    try:
        with pytest.raises(RuntimeError, match="not signed"):
            start_server(tmp_path, "--bundle", source.url,
                         "--bundle-verify-key", str(keys["k1"][1]), timeout=10)
        # `bundle check` verifies the same way.
        check = subprocess.run([str(BINARY), "bundle", "check", str(archive),
                                "--bundle-verify-key", str(keys["k1"][1]), "--json"],
                               capture_output=True, text=True)
        assert check.returncode == 2
        assert json.loads(check.stdout)["error"]["reason"] == "unsigned"
    finally:
        source.stop()


def test_long_polling_activates_a_change_at_once(tmp_path, keys):
    """issue 15: with --bundle-long-poll the server holds each poll until
    the bundle changes (`Prefer: wait=N`, answered with
    `Preference-Applied`), so a new bundle is active well before the
    (here 60 s) poll interval, with a handful of requests."""
    archive = tmp_path / "bundle.tar.gz"
    publish(tmp_path, archive, "long-1", keys["k1"][0])
    source = EtagServer(archive, long_poll=True)
    try:
        server = start_server(tmp_path, "--bundle", source.url,
                              "--bundle-verify-key", str(keys["k1"][1]),
                              "--bundle-poll-interval", "60", "--bundle-long-poll", "20")
        try:
            assert revision_of(server).startswith("long-1+")
            for revision in ("long-2", "long-3"):
                # A held request is outstanding: the sidecar asked at once.
                assert wait_for(lambda: source.waiting == 1, 5), source.hits
                publish(tmp_path, archive, revision, keys["k1"][0])
                t0 = time.monotonic()
                source.notify()
                assert wait_for(lambda: revision_of(server).startswith(revision + "+"), 10)
                assert time.monotonic() - t0 < 3, "the held poll answers the change at once"
            # The first load and two changes; no interval-driven polls.
            assert source.hits["200"] == 3, source.hits
        finally:
            server.stop()
    finally:
        source.stop()


def test_wait_for_bundle_becomes_ready_when_the_source_appears(tmp_path, keys):
    """issue 15: with --wait-for-bundle and no cache, a sidecar whose source
    is down starts not ready (fail closed), backs off, and becomes ready
    once the source serves a good bundle."""
    archive = tmp_path / "bundle.tar.gz"
    publish(tmp_path, archive, "late-1", keys["k1"][0])
    port = free_port()
    url = f"http://127.0.0.1:{port}/bundle.tar.gz"
    server = start_server(tmp_path, "--bundle", url, "--wait-for-bundle",
                          "--bundle-verify-key", str(keys["k1"][1]),
                          "--bundle-poll-interval", "0.3", wait_ready=False)
    try:
        assert requests.get(server.admin + "/readyz", timeout=5).status_code == 503
        assert wait_for(lambda: status(server)["bundle_source"]["errors"] >= 2, 10)
        st = status(server)
        assert st["ready"] is False and st["bundle_source"]["stale"] is True
        assert "127.0.0.1" in st["bundle_source"]["last_error"]
        late = EtagServer(archive, port=port)
        try:
            assert wait_for(lambda: (revision_of(server) or "").startswith("late-1+"), 15), server.log()
            assert status(server)["bundle_source"]["stale"] is False
        finally:
            late.stop()
    finally:
        server.stop()


def test_cache_serves_when_the_source_is_down(tmp_path, keys):
    """issue 15: --bundle-cache keeps the last activated bundle; restarted
    while the source is down, the sidecar is ready on it and says `stale`
    and since when; once the source answers again (304: same bundle) it is
    no longer stale; a cache that fails its own checks is ignored."""
    archive = tmp_path / "bundle.tar.gz"
    publish(tmp_path, archive, "cached-1", keys["k1"][0])
    cache = tmp_path / "cache"
    source = EtagServer(archive)
    port = source.httpd.server_address[1]
    args = ["--bundle", source.url, "--bundle-verify-key", str(keys["k1"][1]),
            "--bundle-poll-interval", "0.2", "--bundle-cache", str(cache)]
    server = start_server(tmp_path, *args)
    assert revision_of(server).startswith("cached-1+")
    assert wait_for(lambda: (cache / "bundle.json").exists())
    record = json.loads((cache / "bundle.json").read_text())
    assert record["revision"].startswith("cached-1+") and record["source"] == source.url
    server.stop()
    source.stop()

    t0 = time.time()
    server = start_server(tmp_path, *args, timeout=15)
    try:
        assert revision_of(server).startswith("cached-1+"), server.log()
        src = status(server)["bundle_source"]
        assert src["stale"] is True and src["served_from"] == "cache", src
        assert t0 - 1 <= src["stale_since"] <= time.time()
        assert src["cached_at"] == record["cached_at"]
        assert metric(server, "iamgate_bundle_source_stale") == 1
        # The source comes back on the same port with the same bundle: 304.
        again = http.server.ThreadingHTTPServer(("127.0.0.1", port), source.httpd.RequestHandlerClass)
        threading.Thread(target=again.serve_forever, daemon=True).start()
        try:
            assert wait_for(lambda: status(server)["bundle_source"]["stale"] is False, 10)
            assert status(server)["bundle_source"]["not_modified"] >= 1
            assert metric(server, "iamgate_bundle_source_stale") == 0
        finally:
            again.shutdown()
            again.server_close()
    finally:
        server.stop()

    # A cache whose archive no longer matches its record is ignored: with
    # the source down there is nothing to serve, so serve refuses to start.
    data = bytearray((cache / "bundle.tar.gz").read_bytes())
    data[len(data) // 2] ^= 1
    (cache / "bundle.tar.gz").write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match="cannot load the bundle"):
        start_server(tmp_path, *args, timeout=15)


@pytest.fixture
def moto(tmp_path):
    """moto's S3 API with request authentication on: after the first three
    actions (which create the IAM user, its key and its policy) every
    request's SigV4 signature is verified against moto's IAM keys."""
    port = free_port()
    log = open(tmp_path / "moto.log", "w")
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
    proc = subprocess.Popen([str(BIN / "moto_server"), "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    ok = wait_for(lambda: _connectable(port), 30)
    if not ok:
        proc.kill()
        raise RuntimeError("moto_server did not start")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


def _connectable(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def test_s3_bundle_over_moto(tmp_path, keys, moto):
    """issue 15: `--bundle s3://bucket/key` with SigV4-signed GETs against
    moto's S3 API (path-style, custom endpoint, signatures verified by
    moto), credentials from the shared credentials file; ETag polling
    picks up a new object; a wrong secret is refused by S3 (403)."""
    import boto3

    setup = dict(endpoint_url=moto, region_name="us-east-1",
                 aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="setup")
    iam = boto3.client("iam", **setup)
    iam.create_user(UserName="bundle-reader")
    key = iam.create_access_key(UserName="bundle-reader")["AccessKey"]
    iam.put_user_policy(UserName="bundle-reader", PolicyName="s3", PolicyDocument=json.dumps(
        {"Version": "2012-10-17",
         "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    env = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"],
           "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
    s3 = boto3.client("s3", endpoint_url=moto, region_name="us-east-1",
                      aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    s3.create_bucket(Bucket="policy-bundles")
    archive = tmp_path / "bundle.tar.gz"
    publish(tmp_path, archive, "s3-1", keys["k1"][0])
    s3.put_object(Bucket="policy-bundles", Key="prod/bundle.tar.gz", Body=archive.read_bytes())

    creds = tmp_path / "aws-credentials"
    creds.write_text("[bundles]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                     % (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]))
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    run_env.update({"AWS_SHARED_CREDENTIALS_FILE": str(creds), "AWS_PROFILE": "bundles"})
    server = start_server(tmp_path, "--bundle", "s3://policy-bundles/prod/bundle.tar.gz",
                          "--bundle-s3-endpoint", moto, "--bundle-s3-path-style",
                          "--bundle-s3-region", "us-east-1",
                          "--bundle-verify-key", str(keys["k1"][1]),
                          "--bundle-poll-interval", "0.3", env=run_env)
    try:
        assert revision_of(server).startswith("s3-1+"), server.log()
        src = status(server)["bundle_source"]
        head = s3.head_object(Bucket="policy-bundles", Key="prod/bundle.tar.gz")
        assert src["kind"] == "s3" and src["etag"] == head["ETag"], (src, head)
        assert wait_for(lambda: status(server)["bundle_source"]["not_modified"] >= 2, 10)

        publish(tmp_path, archive, "s3-2", keys["k1"][0])
        s3.put_object(Bucket="policy-bundles", Key="prod/bundle.tar.gz", Body=archive.read_bytes())
        assert wait_for(lambda: revision_of(server).startswith("s3-2+"), 10), server.log()
        # moto verified every GET's signature and answered 200 or 304.
        log = (tmp_path / "moto.log").read_text()
        gets = [line for line in log.splitlines() if "GET /policy-bundles/prod/bundle.tar.gz" in line]
        assert gets and all('" 200 ' in g or '" 304 ' in g for g in gets), gets
    finally:
        server.stop()

    # A wrong secret: S3 refuses the signature (403); nothing is served.
    wrong = dict(run_env, AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "missing"),
                 AWS_ACCESS_KEY_ID=env["AWS_ACCESS_KEY_ID"], AWS_SECRET_ACCESS_KEY="wrong")
    with pytest.raises(RuntimeError, match="answered 403"):
        start_server(tmp_path, "--bundle", "s3://policy-bundles/prod/bundle.tar.gz",
                     "--bundle-s3-endpoint", moto, "--bundle-s3-path-style",
                     env=wrong, timeout=10)

    # Without credentials the fetch fails before any request is sent.
    bare = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    bare["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "missing")
    with pytest.raises(RuntimeError, match="AWS credentials"):
        start_server(tmp_path, "--bundle", "s3://policy-bundles/prod/bundle.tar.gz",
                     "--bundle-s3-endpoint", moto, "--bundle-s3-path-style",
                     env=bare, timeout=10)
