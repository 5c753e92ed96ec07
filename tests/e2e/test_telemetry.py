"""Telemetry on every decision, checked with real back-ends: an OTLP/gRPC
receiver gets the decision span joined to the caller's trace; a real
Prometheus server scrapes the admin `/metrics` and `promtool check metrics`
accepts it; the decision log writes one JSON line per decision, never a
secret, and counts what it drops."""

import concurrent.futures
import datetime
import json
import re
import secrets
import signal
import time

import pytest
import requests

from conftest import start_server
from telemetry.otlp_receiver import OtlpReceiver
from telemetry.prometheus_server import Prometheus, promtool_check_metrics

BOB = "arn:aws:iam::111111111111:user/engineering/bob"
INSTANCE = "arn:aws:ec2:us-east-1:111111111111:instance/i-0abc"
ALLOW = {
    "principal": {"arn": BOB},
    "action": "ec2:StartInstances",
    "resource": INSTANCE,
    "context": {"aws:RequestedRegion": "us-east-1", "ec2:ResourceTag/team": "blue"},
}
EXPLICIT_DENY = {
    "principal": {"arn": BOB},
    "action": "ec2:TerminateInstances",
    "resource": "*",
    "context": {"aws:RequestedRegion": "us-east-1"},
}
IMPLICIT_DENY = {
    "principal": {"arn": BOB},
    "action": "ec2:StartInstances",
    "resource": INSTANCE,
    "context": {"aws:RequestedRegion": "us-east-1", "ec2:ResourceTag/team": "red"},
}


def traceparent():
    """A fresh caller context: (header, trace id, parent span id)."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def metric_values(text, name):
    """{labels string: value} of one metric in Prometheus text format."""
    out = {}
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})?\s+(\S+)$", line)
        if m:
            out[m.group(1) or ""] = float(m.group(2))
    return out


def read_log(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_until(fn, timeout=20, step=0.05):
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(step)


# --- OTLP -------------------------------------------------------------------


def decision_spans(trace_id=None):
    def pick(spans):
        return [s for s in spans if s.name == "iamgate.decision"
                and (trace_id is None or s.trace_id == trace_id)]
    return pick


def test_decision_span_joins_the_callers_trace(tmp_path):
    log = tmp_path / "decisions.jsonl"
    with OtlpReceiver() as rx:
        server = start_server(tmp_path, "--decision-log", str(log), env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        })
        try:
            header, trace_id, parent_id = traceparent()
            r = server.authorize(ALLOW, headers={"traceparent": header})
            assert r.status_code == 200, r.text
            answer = r.json()
            assert answer["decision"] == "allowed"

            spans = rx.wait_for(decision_spans(trace_id))
            assert spans, f"no decision span with trace id {trace_id}; got {rx.spans}"
            (span,) = spans
            assert span.parent_span_id == parent_id
            assert span.span_id != parent_id
            assert span.attributes.get("decision") == "allowed"
            assert span.attributes.get("decision_id") == answer["decision_id"]
            assert span.attributes.get("frontend") == "http"
            assert span.attributes.get("action") == "ec2:StartInstances"
            assert span.resource.get("service.name") == "iamgate"

            # A batch: one span per item, each a child of the caller's span.
            header2, trace2, parent2 = traceparent()
            r = requests.post(server.http + "/v1/authorize/batch", headers={"traceparent": header2},
                              json={"principal": {"arn": BOB}, "items": [
                                  {k: v for k, v in ALLOW.items() if k != "principal"},
                                  {k: v for k, v in EXPLICIT_DENY.items() if k != "principal"},
                              ]}, timeout=10)
            assert r.status_code == 200, r.text
            batch = rx.wait_for(lambda s: len(decision_spans(trace2)(s)) >= 2 and decision_spans(trace2)(s))
            assert batch, rx.spans
            assert {s.parent_span_id for s in batch} == {parent2}
            assert sorted(s.attributes.get("decision") for s in batch) == ["allowed", "explicitDeny"]

            # No caller context (or a malformed one): a new root trace, and
            # the decision log names it.
            r = server.authorize(IMPLICIT_DENY, headers={"traceparent": "00-zz-not-valid"})
            assert r.status_code == 200, r.text
            root_id = r.json()["decision_id"]
            roots = rx.wait_for(lambda s: [x for x in decision_spans()(s)
                                           if x.attributes.get("decision_id") == root_id])
            assert roots, rx.spans
            (root,) = roots
            assert root.parent_span_id == ""
            assert root.trace_id not in (trace_id, trace2, "0" * 32)

            lines = wait_until(lambda: (lambda l: l if len(l) >= 4 else None)(read_log(log)))
            by_id = {x["decision_id"]: x for x in lines}
            assert by_id[answer["decision_id"]]["trace_id"] == trace_id
            assert by_id[root_id]["trace_id"] == root.trace_id
        finally:
            assert server.stop() == 0, server.log()


def test_spans_are_flushed_on_shutdown(tmp_path):
    with OtlpReceiver() as rx:
        # Batches every minute only: the span can arrive only through the
        # flush at shutdown.
        server = start_server(tmp_path, env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "60000",
            "OTEL_SERVICE_NAME": "iamgate-under-test",
        })
        header, trace_id, parent_id = traceparent()
        try:
            r = server.authorize(EXPLICIT_DENY, headers={"traceparent": header})
            assert r.status_code == 200 and r.json()["decision"] == "explicitDeny", r.text
            time.sleep(0.5)
            assert not decision_spans(trace_id)(rx.spans)
        finally:
            started = time.monotonic()
            assert server.stop() == 0, server.log()
        assert time.monotonic() - started < 10
        spans = rx.wait_for(decision_spans(trace_id), timeout=5)
        assert spans, f"span not flushed at shutdown; got {rx.spans}\n{server.log()}"
        assert spans[0].parent_span_id == parent_id
        assert spans[0].resource.get("service.name") == "iamgate-under-test"


def test_unreachable_collector_never_delays_decisions(tmp_path):
    # Nothing listens on the endpoint: decisions are answered as usual and
    # shutdown stays bounded.
    with OtlpReceiver() as rx:
        dead = rx.endpoint
    server = start_server(tmp_path, env={
        "OTEL_EXPORTER_OTLP_ENDPOINT": dead,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "500",
    })
    started = time.monotonic()
    try:
        for _ in range(50):
            header, _, _ = traceparent()
            r = server.authorize(ALLOW, headers={"traceparent": header})
            assert r.status_code == 200 and r.json()["decision"] == "allowed"
        assert time.monotonic() - started < 10
    finally:
        stopping = time.monotonic()
        assert server.stop(timeout=20) == 0, server.log()
        assert time.monotonic() - stopping < 12


# --- Prometheus --------------------------------------------------------------


def test_prometheus_scrapes_the_metrics(tmp_path, demo_server):
    wanted = {"allowed": 3, "explicitDeny": 2, "implicitDeny": 1}
    for body, n in ((ALLOW, 3), (EXPLICIT_DENY, 2), (IMPLICIT_DENY, 1)):
        for _ in range(n):
            r = demo_server.authorize(body)
            assert r.status_code == 200, r.text
    r = requests.post(demo_server.http + "/v1/authorize", data=b"{nope",
                      headers={"content-type": "application/json"}, timeout=10)
    assert r.status_code == 400

    target = demo_server.addrs["admin"]
    with Prometheus(tmp_path, target=target) as prom:
        up = prom.wait_for('up{job="iamgate"}', lambda res: res and res[0][1] == 1.0)
        assert up[0][0]["instance"] == target
        res = prom.wait_for('iamgate_decisions_total{job="iamgate",frontend="http"}',
                            lambda res: {m["decision"]: v for m, v in res} == wanted)
        assert all(set(m) >= {"decision", "frontend", "instance", "job"} for m, _ in res)
        # Labels stay bounded: no principal or resource ever becomes one.
        series = requests.get(prom.url + "/api/v1/series",
                              params={"match[]": '{job="iamgate"}'}, timeout=10).json()["data"]
        names = {s["__name__"] for s in series}
        assert {"iamgate_decisions_total", "iamgate_decision_duration_seconds_bucket",
                "iamgate_request_errors_total", "iamgate_snapshot_info",
                "iamgate_decision_log_dropped_total"} <= names
        for s in series:
            assert not any("arn:" in v for v in s.values()), s
        errors = prom.query('sum(iamgate_request_errors_total{job="iamgate",frontend="http"})')
        assert errors and errors[0][1] >= 1
        latency = prom.query('sum(iamgate_decision_duration_seconds_count{job="iamgate"})')
        assert latency and latency[0][1] == sum(wanted.values())

    text = requests.get(demo_server.admin + "/metrics", timeout=10).text
    code, out = promtool_check_metrics(text)
    assert code == 0, out


# --- Decision log ------------------------------------------------------------


def test_decision_log_lines_and_no_secrets(tmp_path):
    log = tmp_path / "decisions.jsonl"
    server = start_server(tmp_path, "--decision-log", str(log))
    secret_header = "Bearer tok-" + secrets.token_hex(16)
    secret_ctx = "ctx-secret-" + secrets.token_hex(16)
    try:
        header, trace_id, _ = traceparent()
        body = dict(ALLOW, context=dict(ALLOW["context"], **{"aws:SourceIdentity": secret_ctx}))
        r = server.authorize(body, headers={"traceparent": header, "Authorization": secret_header,
                                            "x-api-key": secret_header})
        assert r.status_code == 200, r.text
        allowed = r.json()
        r = server.authorize(EXPLICIT_DENY, headers={"Authorization": secret_header})
        denied = r.json()
        r = server.authorize(IMPLICIT_DENY)
        implicit = r.json()

        lines = wait_until(lambda: (lambda l: l if len(l) >= 3 else None)(read_log(log)))
        assert lines and len(lines) == 3, lines
        raw = log.read_text()
        for secret in (secret_header, secret_ctx, "tok-", "ctx-secret-"):
            assert secret not in raw
        assert "authorization" not in raw.lower()

        by_id = {x["decision_id"]: x for x in lines}
        first = by_id[allowed["decision_id"]]
        for key in ("decision_id", "time", "revision", "principal", "action", "resource",
                    "decision", "matched", "trace_id"):
            assert key in first, (key, first)
        assert first["decision"] == "allowed"
        assert first["principal"] == BOB
        assert first["action"] == "ec2:StartInstances"
        assert first["resource"] == INSTANCE
        assert first["revision"] == allowed["revision"]
        assert allowed["revision"].startswith("demo-1+sha256:")
        assert first["trace_id"] == trace_id
        assert first["matched"] == allowed["matched"] and first["matched"]
        assert {"policy", "policy_type", "statement"} <= set(first["matched"][0])
        when = datetime.datetime.fromisoformat(first["time"].replace("Z", "+00:00"))
        assert abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds()) < 60
        assert by_id[denied["decision_id"]]["decision"] == "explicitDeny"
        assert by_id[denied["decision_id"]]["matched"]
        assert by_id[implicit["decision_id"]]["decision"] == "implicitDeny"
        assert "trace_id" not in by_id[implicit["decision_id"]]
        # Without an OTLP endpoint nothing is exported.
        assert "OTLP" not in server.log()
    finally:
        assert server.stop() == 0, server.log()


def test_decision_log_drops_are_counted_and_decisions_unaffected(tmp_path):
    log = tmp_path / "decisions.jsonl"
    server = start_server(tmp_path, "--decision-log", str(log), "--decision-log-queue", "1")
    items = [{k: v for k, v in b.items() if k != "principal"}
             for b in (ALLOW, EXPLICIT_DENY, IMPLICIT_DENY) for _ in range(33)] + [
        {k: v for k, v in ALLOW.items() if k != "principal"}]
    assert len(items) == 100
    batches, workers = 30, 6

    def burst(_):
        r = requests.post(server.http + "/v1/authorize/batch",
                          json={"principal": {"arn": BOB}, "items": items}, timeout=30)
        assert r.status_code == 200, r.text
        got = [x["decision"] for x in r.json()["results"]]
        assert got == ["allowed"] * 33 + ["explicitDeny"] * 33 + ["implicitDeny"] * 33 + ["allowed"]
        return len(got)

    try:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            answered = sum(pool.map(burst, range(batches)))
        total = batches * len(items)
        assert answered == total

        def settled():
            text = requests.get(server.admin + "/metrics", timeout=10).text
            dropped = sum(metric_values(text, "iamgate_decision_log_dropped_total").values())
            decided = sum(metric_values(text, "iamgate_decisions_total").values())
            written = len(read_log(log))
            return (dropped, decided, written) if written + dropped == total else None

        result = wait_until(settled, timeout=30, step=0.2)
        assert result, f"log lines + drops never matched {total} decisions"
        dropped, decided, written = result
        assert decided == total
        assert dropped > 0, "a queue of 1 under a burst should drop records"
        assert written > 0
    finally:
        assert server.stop() == 0, server.log()
