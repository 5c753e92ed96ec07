"""Issue 15: decision logs that leave the box, through the real binary.
Receivers are real servers on loopback: Python's http.server taking the
gzip'd JSON batches (as an OPA decision-log service would), and a grpcio
server implementing OTLP's LogsService with the stubs `opentelemetry-proto`
ships (no collector binary can run here)."""

import gzip
import json
import signal
import ssl
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc

from conftest import start_server, wait_for
from decision_util import allow, arn, authorize, metric, write_bundle
from test_tls import make_ca, make_leaf

GRANTS = {"alice": [allow("ec2:Describe*", "ec2:StartInstances")]}


class HttpReceiver:
    """Keeps every record of every batch. `fail_first` requests get a 503;
    with `hang`, a request is read and recorded, then never answered."""

    def __init__(self, fail_first=0, hang=False, tls=None):
        self.batches = []
        self.encodings = []
        self.fail_first = fail_first
        self.requests = 0
        self.hang = threading.Event() if hang else None
        self.lock = threading.Lock()
        rx = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                with rx.lock:
                    rx.requests += 1
                    n = rx.requests
                    rx.encodings.append(self.headers.get("content-encoding"))
                    if n > rx.fail_first:
                        rx.batches.append(json.loads(gzip.decompress(body)))
                if rx.hang is not None:
                    rx.hang.wait(30)
                    return
                self.send_response(503 if n <= rx.fail_first else 200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        scheme = "http"
        if tls:  # (cert, key) files
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}/logs"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def records(self):
        with self.lock:
            seen, out = set(), []
            for b in self.batches:
                for r in b:
                    if r["decision_id"] not in seen:  # a retried batch counts once
                        seen.add(r["decision_id"])
                        out.append(r)
            return out

    def close(self):
        if self.hang is not None:
            self.hang.set()
        self.server.shutdown()


def test_http_upload_batches_masks_and_retries(tmp_path):
    """issue 15: every decision arrives, in gzip'd JSON-array batches no
    larger than --decision-log-batch-bytes, masked as configured; refused
    uploads are retried with backoff and nothing is lost."""
    rx = HttpReceiver(fail_first=2)
    bundle = write_bundle(tmp_path / "b", GRANTS, "one")
    server = start_server(tmp_path, "--bundle", str(bundle), "--no-watch",
                          "--decision-log-http", rx.url, "--decision-log-flush-ms", "100",
                          "--decision-log-batch-bytes", "2000", "--decision-log-context",
                          "--decision-log-mask", "principal,context.aws:SourceIp")
    try:
        n = 40
        for i in range(n):
            authorize(server, "alice", "ec2:StartInstances",
                      context={"aws:SourceIp": f"10.0.0.{i}", "aws:RequestedRegion": "us-east-1",
                               "x:AuthToken": "never-logged"})
        assert wait_for(lambda: len(rx.records()) == n, timeout=20), len(rx.records())
        recs = rx.records()
        assert all(r["principal"] == "**masked**" for r in recs)
        assert all(r["context"]["aws:sourceip"] == "**masked**" for r in recs)
        assert all(r["context"]["aws:requestedregion"] == "us-east-1" for r in recs)
        assert all("x:authtoken" not in r["context"] for r in recs)
        assert all(r["decision"] == "allowed" and r["action"] == "ec2:StartInstances" for r in recs)
        assert set(rx.encodings) == {"gzip"}
        assert len(rx.batches) >= 2
        for b in rx.batches:
            assert len(json.dumps(b, separators=(",", ":"))) <= 2000 + 2
        assert metric(server, "iamgate_decision_log_shipped_total", {"sink": "http"}) == n
        assert metric(server, "iamgate_decision_log_ship_attempt_failures_total", {"sink": "http"}) == 2
        assert metric(server, "iamgate_decision_log_ship_dropped_total", {"sink": "http"}) == 0
    finally:
        server.stop()
        rx.close()


def test_a_hung_receiver_never_delays_decisions_and_drops_are_counted(tmp_path):
    """issue 15: with a receiver that never answers, authorizations stay fast,
    the bounded buffer drops what does not fit (counted), and shutdown still
    ends within its deadline."""
    rx = HttpReceiver(hang=True)
    bundle = write_bundle(tmp_path / "b", GRANTS, "one")
    buffer, n = 20, 300
    server = start_server(tmp_path, "--bundle", str(bundle), "--no-watch",
                          "--decision-log-http", rx.url, "--decision-log-flush-ms", "50",
                          "--decision-log-ship-buffer", str(buffer))
    try:
        slowest = 0.0
        for _ in range(n):
            t = time.monotonic()
            assert authorize(server, "alice", "ec2:DescribeImages") == "allowed"
            slowest = max(slowest, time.monotonic() - t)
        # A decision held up by the shipper would wait out its 5 s attempt.
        assert slowest < 2.0, slowest
        received = len(rx.records())  # read by the hung receiver, never acknowledged
        dropped = lambda: metric(server, "iamgate_decision_log_ship_dropped_total",
                                 {"sink": "http", "reason": "buffer_full"})
        assert wait_for(lambda: dropped() >= n - buffer - len(rx.records()), timeout=10)
        assert n - buffer - len(rx.records()) <= dropped() <= n - received
        assert metric(server, "iamgate_decision_log_shipped_total", {"sink": "http"}) == 0
        t = time.monotonic()
        server.stop(timeout=20)
        assert time.monotonic() - t < 10
    finally:
        server.stop()
        rx.close()


def test_records_queued_at_shutdown_are_flushed(tmp_path):
    """issue 15: records waiting for their batch are sent at shutdown."""
    rx = HttpReceiver()
    bundle = write_bundle(tmp_path / "b", GRANTS, "one")
    server = start_server(tmp_path, "--bundle", str(bundle), "--no-watch",
                          "--decision-log-http", rx.url, "--decision-log-flush-ms", "60000")
    try:
        for _ in range(7):
            authorize(server, "alice", "ec2:StartInstances")
        time.sleep(0.3)
        assert rx.records() == []
        assert server.stop(sig=signal.SIGTERM) == 0
        assert len(rx.records()) == 7
        assert {r["principal"] for r in rx.records()} == {arn("alice")}
    finally:
        server.stop()
        rx.close()


def test_https_upload_verifies_the_receiver(tmp_path):
    """issue 15: an https:// receiver is verified against
    --decision-log-http-ca; one whose certificate another CA signed gets
    nothing (every attempt fails and the batch is dropped, counted)."""
    make_ca(tmp_path, "ca")
    make_ca(tmp_path, "other")
    make_leaf(tmp_path, "server", "ca", "IP:127.0.0.1")
    rx = HttpReceiver(tls=(str(tmp_path / "server.pem"), str(tmp_path / "server.key")))
    bundle = write_bundle(tmp_path / "b", GRANTS, "one")
    good = start_server(tmp_path, "--bundle", str(bundle), "--no-watch",
                        "--decision-log-http", rx.url, "--decision-log-flush-ms", "50",
                        "--decision-log-http-ca", str(tmp_path / "ca.pem"))
    bad = start_server(tmp_path, "--bundle", str(bundle), "--no-watch",
                       "--decision-log-http", rx.url, "--decision-log-flush-ms", "50",
                       "--decision-log-retries", "2",
                       "--decision-log-http-ca", str(tmp_path / "other.pem"))
    try:
        for _ in range(3):
            authorize(good, "alice", "ec2:StartInstances")
        authorize(bad, "alice", "ec2:StopInstances")
        assert wait_for(lambda: len(rx.records()) == 3, timeout=15)
        assert wait_for(lambda: metric(bad, "iamgate_decision_log_ship_dropped_total",
                                       {"sink": "http", "reason": "delivery_failed"}) == 1, timeout=15)
        assert metric(bad, "iamgate_decision_log_ship_attempt_failures_total", {"sink": "http"}) == 2
        assert {r["action"] for r in rx.records()} == {"ec2:StartInstances"}
    finally:
        good.stop()
        bad.stop()
        rx.close()


class _Logs(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self):
        self.records = []
        self.resources = []
        self.lock = threading.Lock()

    def Export(self, request, context):
        with self.lock:
            for rl in request.resource_logs:
                self.resources.append({kv.key: kv.value.string_value for kv in rl.resource.attributes})
                for sl in rl.scope_logs:
                    for lr in sl.log_records:
                        self.records.append((sl.scope.name, lr))
        return logs_service_pb2.ExportLogsServiceResponse()


def start_logs_service(tls=None):
    """A grpcio LogsService on loopback; `tls` is (cert, key) files."""
    svc = _Logs()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(svc, server)
    if tls:
        creds = grpc.ssl_server_credentials([(open(tls[1], "rb").read(), open(tls[0], "rb").read())])
        port = server.add_secure_port("127.0.0.1:0", creds)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return svc, server, port


def test_otlp_logs_export_over_tls(tmp_path):
    """issue 15: an https:// OTLP endpoint is verified against
    --decision-log-otlp-ca."""
    make_ca(tmp_path, "ca")
    make_leaf(tmp_path, "server", "ca", "IP:127.0.0.1")
    svc, grpc_server, port = start_logs_service((tmp_path / "server.pem", tmp_path / "server.key"))
    bundle = write_bundle(tmp_path / "b", GRANTS, "one")
    server = start_server(tmp_path, "--bundle", str(bundle), "--no-watch",
                          "--decision-log-otlp", f"https://127.0.0.1:{port}",
                          "--decision-log-otlp-ca", str(tmp_path / "ca.pem"),
                          "--decision-log-flush-ms", "100")
    try:
        authorize(server, "alice", "ec2:StartInstances")
        assert wait_for(lambda: len(svc.records) == 1, timeout=20), len(svc.records)
        assert metric(server, "iamgate_decision_log_shipped_total", {"sink": "otlp"}) == 1
    finally:
        server.stop()
        grpc_server.stop(grace=None)


def test_otlp_logs_export(tmp_path):
    """issue 15: every decision is exported as an OTLP log record (body: the
    masked JSON record; attributes: decision, action, revision) to a real
    gRPC LogsService."""
    svc = _Logs()
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(svc, grpc_server)
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    bundle = write_bundle(tmp_path / "b", GRANTS, "one")
    server = start_server(tmp_path, "--bundle", str(bundle), "--no-watch",
                          "--decision-log-otlp", f"http://127.0.0.1:{port}",
                          "--decision-log-flush-ms", "100", "--decision-log-mask", "resource")
    try:
        actions = ["ec2:StartInstances", "ec2:StopInstances", "ec2:DescribeImages"]
        for a in actions:
            authorize(server, "alice", a, resource="arn:aws:ec2:us-east-1:111122223333:instance/i-0123456789abcdef0")
        assert wait_for(lambda: len(svc.records) == 3, timeout=20), len(svc.records)
        with svc.lock:
            got = {}
            for scope, lr in svc.records:
                assert scope == "iamgate.decision_log"
                attrs = {kv.key: kv.value.string_value for kv in lr.attributes}
                body = json.loads(lr.body.string_value)
                assert body["resource"] == "**masked**" and attrs["iamgate.resource"] == "**masked**"
                assert attrs["iamgate.principal"] == arn("alice")
                assert lr.event_name == "iamgate.decision" and lr.time_unix_nano > 0
                got[attrs["iamgate.action"]] = attrs["iamgate.decision"]
            assert got == {"ec2:StartInstances": "allowed", "ec2:StopInstances": "implicitDeny",
                           "ec2:DescribeImages": "allowed"}
            assert svc.resources[0]["service.name"] == "iamgate"
        assert metric(server, "iamgate_decision_log_shipped_total", {"sink": "otlp"}) == 3
    finally:
        server.stop()
        grpc_server.stop(grace=None)
