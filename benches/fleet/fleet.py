"""Fleet measurement (issue 15): N iamgate sidecars poll one real nginx for a
signed bundle with ETags. Publishes a new signed bundle and measures when
each sidecar activated it (the `last_reload.at` each one reports, against
the moment the archive was renamed into place), counts the requests and
bytes nginx served (its access log), then stops nginx, restarts a third of
the sidecars and checks they come back ready on their cached bundle.

Prints a markdown report on stdout. Run through benches/fleet/run.sh.
"""

import argparse
import json
import os
import pathlib
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEMO = ROOT / "src" / "bundle" / "demo"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, None
    except OSError:
        return None, None


def sh(*args):
    subprocess.run([str(a) for a in args], check=True, capture_output=True)


class Sidecar:
    def __init__(self, binary, work, index, args):
        self.binary, self.index, self.args = binary, index, args
        self.log = work / f"sidecar-{index}.log"
        self.proc = None
        self.admin = None

    def start(self):
        cmd = [str(self.binary), "serve", "--grpc-listen", "127.0.0.1:0",
               "--http-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", *self.args]
        env = dict(os.environ, RUST_LOG="warn")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(self.log, "a"),
                                     env=env, text=True)

    def wait_listening(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"sidecar {self.index} exited: {self.log.read_text()[-2000:]}")
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "listening" in msg:
                self.admin = "http://" + msg["listening"]["admin"]
                return
        raise RuntimeError(f"sidecar {self.index} did not start")

    def ready(self):
        code, body = get_json(self.admin + "/readyz", 2)
        return body["revision"] if code == 200 and body else None

    def status(self):
        return get_json(self.admin + "/v1/status")[1] or {}

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def pct(values, p):
    s = sorted(values)
    if not s:
        return float("nan")
    k = min(len(s) - 1, max(0, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def access_log(path):
    """(msec, status, bytes) per request nginx served."""
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            t, status, size = line.split()[:3]
            out.append((float(t), status, int(size)))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sidecars", type=int, default=50)
    ap.add_argument("--poll-interval", type=float, default=2.0)
    ap.add_argument("--binary", default=str(ROOT / "target" / "debug" / "iamgate"))
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--steady-seconds", type=float, default=10.0)
    a = ap.parse_args()
    binary = pathlib.Path(a.binary)
    work = pathlib.Path(tempfile.mkdtemp(prefix="iamgate-fleet-"))
    site = work / "site"
    site.mkdir()
    archive = site / "bundle.tar.gz"
    sh("openssl", "genpkey", "-algorithm", "ed25519", "-out", work / "sign.pem")
    sh("openssl", "pkey", "-in", work / "sign.pem", "-pubout", "-out", work / "verify.pem")

    def publish(revision):
        src = work / f"src-{revision}"
        shutil.copytree(DEMO, src)
        (src / "manifest.json").write_text(json.dumps({"revision": revision}))
        out = subprocess.run([str(binary), "bundle", "build", str(src), "-o", str(archive),
                              "--sign", str(work / "sign.pem"), "--json"],
                             check=True, capture_output=True, text=True)
        return json.loads(out.stdout)

    first = publish("fleet-1")
    port = free_port()
    ngx = work / "nginx"
    ngx.mkdir()
    log_path = ngx / "access.log"
    conf = ngx / "nginx.conf"
    conf.write_text(f"""
daemon off;
master_process off;
worker_processes 1;
pid {ngx}/nginx.pid;
error_log {ngx}/error.log;
events {{ worker_connections 4096; }}
http {{
    log_format fleet '$msec $status $body_bytes_sent';
    access_log {log_path} fleet;
    client_body_temp_path {ngx}/body;
    proxy_temp_path {ngx}/proxy;
    fastcgi_temp_path {ngx}/fastcgi;
    uwsgi_temp_path {ngx}/uwsgi;
    scgi_temp_path {ngx}/scgi;
    server {{ listen 127.0.0.1:{port}; root {site}; etag on; }}
}}
""")
    nginx = subprocess.Popen([a.nginx, "-c", str(conf), "-p", str(ngx)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    time.sleep(0.5)
    url = f"http://127.0.0.1:{port}/bundle.tar.gz"
    sidecars = []
    report = []
    try:
        for i in range(a.sidecars):
            cache = work / f"cache-{i}"
            s = Sidecar(binary, work, i, ["--bundle", url,
                                          "--bundle-verify-key", str(work / "verify.pem"),
                                          "--bundle-poll-interval", str(a.poll_interval),
                                          "--bundle-cache", str(cache)])
            s.start()
            sidecars.append(s)
        for s in sidecars:
            s.wait_listening()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(
                (s.ready() or "").startswith("fleet-1+") for s in sidecars):
            time.sleep(0.5)
        started_ok = sum((s.ready() or "").startswith("fleet-1+") for s in sidecars)

        # Steady state: every poll is a conditional GET.
        steady_from = time.time()
        time.sleep(a.steady_seconds)
        steady_to = time.time()
        steady = [r for r in access_log(log_path) if steady_from <= r[0] < steady_to]

        # Publish (bundle build renames the archive into place).
        published_at = time.time()
        second = publish("fleet-2")
        published_at = (published_at + time.time()) / 2
        deadline = time.monotonic() + a.poll_interval * 10 + 30
        while time.monotonic() < deadline and not all(
                (s.ready() or "").startswith("fleet-2+") for s in sidecars):
            time.sleep(0.25)
        converged = []
        for s in sidecars:
            st = s.status()
            last = st.get("last_reload") or {}
            if (st.get("revision") or "").startswith("fleet-2+") and last.get("ok"):
                converged.append(last["at"] - published_at)
        after = time.time()
        change = [r for r in access_log(log_path) if published_at <= r[0] <= after]
        full = [r for r in change if r[1] == "200"]
        not_modified = [r for r in change if r[1] == "304"]

        # Outage: nginx stops; a third of the sidecars restart on their cache.
        nginx.terminate()
        nginx.wait(10)
        time.sleep(a.poll_interval * 1.5)
        restart = sidecars[: max(1, a.sidecars // 3)]
        t_restart = time.monotonic()
        for s in restart:
            s.stop()
            s.start()
        for s in restart:
            s.wait_listening()
        back_ready, back_stale = 0, 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            back_ready = sum((s.ready() or "").startswith("fleet-2+") for s in restart)
            if back_ready == len(restart):
                break
            time.sleep(0.25)
        restart_s = time.monotonic() - t_restart
        for s in restart:
            src = s.status().get("bundle_source") or {}
            if src.get("stale") and src.get("served_from") == "cache" and src.get("stale_since"):
                back_stale += 1
        others_ready = sum((s.ready() or "").startswith("fleet-2+") for s in sidecars[len(restart):])
        others_stale = sum(bool((s.status().get("bundle_source") or {}).get("stale"))
                           for s in sidecars[len(restart):])

        n = a.sidecars
        budget = a.poll_interval + 2
        report += [
            f"## Fleet: {n} sidecars, one nginx, poll interval {a.poll_interval:g} s",
            "",
            f"- binary: `{binary}`; bundle: the demo bundle, signed "
            f"({first['bytes']} / {second['bytes']} bytes as .tar.gz)",
            f"- ready on the first revision at startup: {started_ok}/{n}",
            f"- steady state ({a.steady_seconds:g} s, nothing published): {len(steady)} requests "
            f"= {len(steady) / a.steady_seconds:.1f} req/s, "
            f"{sum(1 for r in steady if r[1] == '304')} answered 304, "
            f"{sum(r[2] for r in steady)} body bytes",
            "",
            "| after publishing a new signed bundle | value |",
            "|---|---|",
            f"| sidecars on the new revision | {len(converged)}/{n} |",
            f"| time to activation p50 | {pct(converged, 50):.2f} s |",
            f"| time to activation p99 | {pct(converged, 99):.2f} s |",
            f"| time to activation max | {max(converged, default=float('nan')):.2f} s |",
            f"| target (poll interval + 2 s = {budget:g} s) met | "
            f"{'yes' if len(converged) == n and max(converged) <= budget else 'NO'} |",
            f"| nginx requests until all converged | {len(change)} "
            f"({len(full)} × 200, {len(not_modified)} × 304) |",
            f"| bytes served for the change | {sum(r[2] for r in change)} "
            f"({sum(r[2] for r in full) / max(1, len(full)):.0f} per sidecar) |",
            "",
            "| nginx stopped; a third of the sidecars restarted | value |",
            "|---|---|",
            f"| restarted sidecars ready on the cached revision | {back_ready}/{len(restart)} "
            f"(all within {restart_s:.1f} s) |",
            f"| of them reporting `stale` with `stale_since`, served from cache | "
            f"{back_stale}/{len(restart)} |",
            f"| sidecars not restarted, still ready | {others_ready}/{n - len(restart)} "
            f"({others_stale} report stale) |",
            f"| processes failing readiness while a cache exists | "
            f"{len(restart) - back_ready + (n - len(restart) - others_ready)} |",
        ]
        print("\n".join(report))
        ok = (len(converged) == n and back_ready == len(restart)
              and others_ready == n - len(restart))
        return 0 if ok else 1
    finally:
        for s in sidecars:
            s.stop()
        if nginx.poll() is None:
            nginx.terminate()
            nginx.wait(10)
        if os.environ.get("FLEET_KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"\n(work dir kept: {work})", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
