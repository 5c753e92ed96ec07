"""Shared fixtures for end-to-end tests: start the real `iamgate` binary on
loopback with ephemeral ports and talk to it with real clients.

The binary prints one JSON line on stdout once it listens:
{"listening": {"http": "127.0.0.1:PORT", "admin": "...", "grpc": "..."}}
"""

import json
import os
import pathlib
import signal
import subprocess
import time

import pytest
import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = pathlib.Path(os.environ.get("IAMGATE_BIN", ROOT / "target" / "debug" / "iamgate"))


class Server:
    """A running `iamgate serve`."""

    def __init__(self, proc, addrs, log_path):
        self.proc = proc
        self.addrs = addrs
        self.log_path = log_path

    @property
    def http(self):
        return "http://" + self.addrs["http"]

    @property
    def admin(self):
        return "http://" + self.addrs["admin"]

    @property
    def grpc(self):
        return self.addrs.get("grpc")

    def authorize(self, body, **kw):
        return requests.post(self.http + "/v1/authorize", json=body, timeout=10, **kw)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log(self):
        return pathlib.Path(self.log_path).read_text(errors="replace")


def start_server(tmp_path, *args, env=None, wait_ready=True, timeout=30):
    """Starts the binary with ephemeral ports; returns a Server."""
    log_path = tmp_path / f"iamgate-{time.monotonic_ns()}.log"
    cmd = [
        str(BINARY),
        "serve",
        "--grpc-listen", "127.0.0.1:0",
        "--http-listen", "127.0.0.1:0",
        "--admin-listen", "127.0.0.1:0",
        *args,
    ]
    full_env = dict(os.environ)
    full_env.setdefault("RUST_LOG", "info")
    if env:
        full_env.update(env)
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, env=full_env, text=True)
    deadline = time.monotonic() + timeout
    addrs = None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"iamgate exited with {proc.returncode}:\n{log_path.read_text()}"
                )
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if "listening" in msg:
            addrs = msg["listening"]
            break
    if addrs is None:
        proc.kill()
        raise RuntimeError(f"iamgate did not start:\n{log_path.read_text()}")
    server = Server(proc, addrs, log_path)
    if wait_ready:
        while time.monotonic() < deadline:
            try:
                if requests.get(server.admin + "/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.05)
    return server


_STUBS = {}


def wait_for(pred, timeout=15):
    """Polls `pred` every 50 ms until it holds (True) or `timeout` seconds pass
    (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def grpc_stubs(tmp_path_factory, proto):
    """(NAME_pb2, NAME_pb2_grpc) for `proto/iamgate/v1/NAME.proto`, generated
    once per session with grpcio-tools: an independent gRPC stack. All of
    iamgate's protos are generated together into one `iamgate.v1` package."""
    import importlib
    import sys

    if not _STUBS:
        from grpc_tools import protoc
        import grpc_tools

        out = tmp_path_factory.mktemp("iamgate-stubs")
        well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
        protos = sorted(str(p) for p in (ROOT / "proto" / "iamgate" / "v1").glob("*.proto"))
        args = ["grpc_tools.protoc", f"-I{ROOT / 'proto'}", f"-I{well_known}",
                f"--python_out={out}", f"--grpc_python_out={out}", *protos]
        assert protoc.main(args) == 0, "protoc failed"
        sys.path.insert(0, str(out))
        _STUBS["dir"] = out
    return (importlib.import_module(f"iamgate.v1.{proto}_pb2"),
            importlib.import_module(f"iamgate.v1.{proto}_pb2_grpc"))


@pytest.fixture
def demo_server(tmp_path):
    """iamgate serving its built-in demo bundle."""
    server = start_server(tmp_path)
    yield server
    server.stop()
