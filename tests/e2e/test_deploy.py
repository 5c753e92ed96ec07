"""Issue 14 ("Deploy and operate"): the artefacts under deploy/ checked by
the real tools that consume them, and against the real binary.

- deploy/prometheus/: `promtool check rules`, `promtool test rules` (the
  unit tests beside the rules), every metric the rules read exists in a live
  server's /metrics, and a real Prometheus evaluates the rules against two
  live servers (one ready, one without a bundle) without evaluation errors.
- deploy/grafana/iamgate.json: a well-formed dashboard model, every query
  parses as PromQL (promtool), names only exported metrics, and returns data
  from a real Prometheus scraping a live server.
- Issue 15 (a fleet on one policy): the alerts and panels for remote bundle
  sources, signature refusals, decision-diff refusals, shadow disagreements
  and decision-log shipping read metrics that a live server with those
  features on (FleetServer: signed bundle, refused unsigned reload, shadow
  bundle, HTTP and OTLP shipping) exports, and the panels return data.
- deploy/systemd/: `systemd-analyze verify` and `systemd-analyze security
  --offline`, and the binary run with the unit's config file under the
  unit's constraints as far as this machine allows (tests/e2e/deploy/sandbox.sh).
"""

import json
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import time

import pytest
import requests

import conftest
from conftest import ROOT, start_server
from telemetry.prometheus_server import PROMTOOL, Prometheus

DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "iamgate-rules.yml"
RULES_TEST = DEPLOY / "prometheus" / "iamgate-rules.test.yml"
DASHBOARD = DEPLOY / "grafana" / "iamgate.json"
UNIT = DEPLOY / "systemd" / "iamgate.service"
UNIT_CONFIG = DEPLOY / "systemd" / "config.json"
SANDBOX = ROOT / "tests" / "e2e" / "deploy" / "sandbox.sh"
DEMO_BUNDLE = ROOT / "src" / "bundle" / "demo"
# An allowed request of the demo bundle (README, "Try it").
BOB_START = {"principal": {"arn": "arn:aws:iam::111111111111:user/engineering/bob"},
             "action": "ec2:StartInstances",
             "resource": "arn:aws:ec2:us-east-1:111111111111:instance/i-0abc",
             "context": {"aws:RequestedRegion": "us-east-1", "ec2:ResourceTag/team": "blue"}}

# Series Prometheus itself adds to every scrape target, not exported by iamgate.
SCRAPE_SERIES = {"up"}

PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
    "unless", "bool", "offset", "inf", "nan",
}


def run(cmd, **kw):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120, **kw)
    return p.returncode, p.stdout + p.stderr


def metric_names(expr):
    """The metric (and recording-rule) names a PromQL expression reads: the
    identifiers left once strings, label matchers, ranges, grouping clauses,
    function calls, keywords and numbers are removed."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        word = m.group(0)
        if word.lower() in PROMQL_WORDS:
            continue
        if re.match(r"\s*\(", s[m.end():]):
            continue  # a function call
        if re.fullmatch(r"\d", s[m.start() - 1:m.start()] or "x"):
            continue  # an exponent or duration suffix (1e-05, 5m)
        names.add(word)
    return names


def test_metric_names_parser():
    """The helper that lists the metrics of an expression must itself be
    right, or the existence checks below check nothing."""
    assert metric_names(
        'histogram_quantile(0.99, sum by (job, le) (rate(iamgate_decision_duration_seconds_bucket'
        '{frontend=~"grpc|http"}[5m])))') == {"iamgate_decision_duration_seconds_bucket"}
    assert metric_names('up{job=~".*iamgate.*"} == 1 unless on (job, instance) '
                        "iamgate_snapshot_info == 1") == {"up", "iamgate_snapshot_info"}
    assert metric_names("time() - iamgate_last_successful_reload_timestamp_seconds > 1e-05") == {
        "iamgate_last_successful_reload_timestamp_seconds"}
    assert metric_names("a:b:rate5m / on (x) group_left c_total") == {"a:b:rate5m", "c_total"}


def load_yaml_rules():
    """The rule groups, read with promtool's own parser: `promtool check
    rules` proves the file parses; its names and expressions are read here by
    a line scan, which is enough for the file's fixed layout, and compared
    with promtool's rule count so none is missed."""
    text = RULES.read_text()
    code, out = run([PROMTOOL, "check", "rules", RULES])
    assert code == 0, out
    count = int(re.search(r"SUCCESS: (\d+) rules found", out).group(1))
    rules = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"\s*- (record|alert): (\S+)", lines[i])
        if m:
            kind, name = m.groups()
            j = i + 1
            while not re.match(r"\s*expr:", lines[j]):
                j += 1
            first = lines[j].split("expr:", 1)[1].strip()
            if first in (">-", "|", ">"):
                indent = len(lines[j + 1]) - len(lines[j + 1].lstrip())
                body = []
                k = j + 1
                while k < len(lines) and (not lines[k].strip()
                                          or len(lines[k]) - len(lines[k].lstrip()) >= indent):
                    body.append(lines[k].strip())
                    k += 1
                expr = " ".join(b for b in body if b)
            else:
                expr = first
            rules.append((kind, name, expr))
            i = j
        i += 1
    assert len(rules) == count, (len(rules), count)
    return rules


class FleetServer:
    """issue 15: a live server with every fleet feature on, so that their
    labelled metric families have series: a signed bundle (then an unsigned
    one, refused at a SIGHUP reload), a shadow bundle without the
    organization's SCPs, decision logs shipped over HTTP to a receiver
    here and over OTLP to a port nobody listens on (delivery fails once,
    the batch is dropped and counted)."""

    def __init__(self, tmp_path):
        import http.server
        import signal
        import socket
        import threading

        tmp = pathlib.Path(tempfile.mkdtemp(dir=tmp_path, prefix="fleet-"))
        key, pub = tmp / "signer.pem", tmp / "signer.pub.pem"
        subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)], check=True)
        subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(pub)], check=True)
        active, shadow = tmp / "bundle.tar.gz", tmp / "shadow.tar.gz"
        self._build(DEMO_BUNDLE, active, key)
        # The shadow: the demo bundle without its organization (no SCPs),
        # so that it decides differently from the active one.
        no_org = tmp / "no-org"
        shutil.copytree(DEMO_BUNDLE, no_org, ignore=shutil.ignore_patterns("tests", "organization.json"))
        (no_org / "manifest.json").write_text(json.dumps({"revision": "no-org"}))
        self._build(no_org, shadow, key)

        self.shipped = []
        outer = self

        class Receiver(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                outer.shipped.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead = s.getsockname()[1]
        self.server = start_server(
            tmp, "--bundle", str(active), "--bundle-verify-key", str(pub), "--no-watch",
            "--shadow-bundle", str(shadow),
            "--decision-log-http", f"http://127.0.0.1:{self.httpd.server_address[1]}/logs",
            "--decision-log-otlp", f"http://127.0.0.1:{dead}",
            "--decision-log-retries", "1", "--decision-log-flush-ms", "100")
        # An unsigned bundle in its place: the SIGHUP reload refuses it.
        self._build(DEMO_BUNDLE, active)
        self.server.proc.send_signal(signal.SIGHUP)

    @staticmethod
    def _build(src, out, key=None):
        args = [str(conftest.BINARY), "bundle", "build", str(src), "-o", str(out)]
        if key:
            args += ["--sign", str(key)]
        p = subprocess.run(args, capture_output=True, text=True)
        assert p.returncode == 0, p.stdout + p.stderr

    def metrics_text(self):
        return requests.get(self.server.admin + "/metrics", timeout=10).text

    def wait_for_series(self, families, timeout=15):
        """Waits until each family has a sample (the shipping and shadow
        threads and the reload run off the request path)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.metrics_text()
            missing = [f for f in families if not re.search(rf"^{f}[{{ ]", text, re.M)]
            if not missing:
                return text
            assert time.monotonic() < deadline, (missing, self.server.log())
            time.sleep(0.2)

    def stop(self):
        self.server.stop()
        self.httpd.shutdown()
        self.httpd.server_close()


# Families that have series only once the feature has acted.
FLEET_FAMILIES = ("iamgate_bundle_signature_refusals_total", "iamgate_shadow_disagreements_total",
                  "iamgate_decision_log_shipped_total", "iamgate_decision_log_ship_dropped_total")


def live_metric_names(tmp_path):
    """Every sample name in a live server's /metrics, after a decision and a
    refused request so that labelled counters have series; with a second
    server running the fleet features of issue 15 (FleetServer)."""
    texts = []
    for fleet in (False, True):
        fs = FleetServer(tmp_path) if fleet else None
        server = fs.server if fleet else start_server(tmp_path)
        try:
            r = server.authorize({"principal": {"arn": "arn:aws:iam::111111111111:user/alice"},
                                  "action": "ec2:DescribeInstances", "resource": "*"})
            assert r.status_code == 200, r.text
            r = requests.post(server.http + "/v1/authorize", data=b"{nope",
                              headers={"content-type": "application/json"}, timeout=10)
            assert r.status_code == 400
            texts.append(fs.wait_for_series(FLEET_FAMILIES) if fleet
                         else requests.get(server.admin + "/metrics", timeout=10).text)
        finally:
            (fs or server).stop()
    names = {re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0)
             for text in texts for line in text.splitlines() if line and not line.startswith("#")}
    assert "iamgate_request_errors_total" in names, texts[0]
    return names


# --- Prometheus rules --------------------------------------------------------


def test_prometheus_rules_pass_promtool_check_and_unit_tests():
    """issue 14: `promtool check rules` and `promtool test rules`."""
    code, out = run([PROMTOOL, "check", "rules", RULES])
    assert code == 0 and "SUCCESS" in out, out
    code, out = run([PROMTOOL, "test", "rules", RULES_TEST.name], cwd=RULES_TEST.parent)
    assert code == 0 and "SUCCESS" in out, out
    # The unit tests cover every alert.
    alerts = {name for kind, name, _ in load_yaml_rules() if kind == "alert"}
    tested = set(re.findall(r"alertname: (\w+)", RULES_TEST.read_text()))
    assert alerts == tested, alerts ^ tested


def test_prometheus_rules_read_only_exported_metrics(tmp_path):
    """issue 14: every metric a rule reads is one the server exports (or a
    recording rule of the same file, or Prometheus' own `up`)."""
    rules = load_yaml_rules()
    recorded = {name for kind, name, _ in rules if kind == "record"}
    exported = live_metric_names(tmp_path)
    read = set()
    for _, name, expr in rules:
        read |= metric_names(expr)
    assert read, rules
    unknown = read - exported - recorded - SCRAPE_SERIES
    assert not unknown, f"rules read metrics the server does not export: {unknown}"
    # Each exported family the rules are meant to watch is used.
    for family in ("iamgate_reloads_total", "iamgate_last_successful_reload_timestamp_seconds",
                   "iamgate_decision_duration_seconds_bucket", "iamgate_request_errors_total",
                   "iamgate_decision_log_dropped_total", "iamgate_snapshot_info",
                   # issue 15
                   "iamgate_bundle_source_stale", "iamgate_bundle_signature_refusals_total",
                   "iamgate_reload_diff_refusals_total", "iamgate_decision_log_ship_dropped_total",
                   "iamgate_shadow_disagreements_total"):
        assert family in read, family


class RulesPrometheus(Prometheus):
    """A real Prometheus scraping several iamgate admin listeners with the
    rules loaded."""

    def __init__(self, tmp_path, targets):
        super().__init__(tmp_path, target=targets[0])
        self.config.write_text(json.dumps({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{
                "job_name": "iamgate",
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "static_configs": [{"targets": list(targets)}],
            }],
        }, indent=2))


def test_prometheus_evaluates_the_rules_against_live_servers(tmp_path):
    """issue 14: loaded into a real Prometheus beside two live servers, every
    rule evaluates without error, the recording rules produce series, and
    IamgateNotReady goes pending for the server without a bundle only."""
    ready = start_server(tmp_path)
    waiting = start_server(tmp_path, "--bundle", str(tmp_path / "missing"), "--wait-for-bundle",
                           wait_ready=False)
    try:
        assert requests.get(waiting.admin + "/readyz", timeout=5).status_code == 503
        r = ready.authorize({"principal": {"arn": "arn:aws:iam::111111111111:user/alice"},
                             "action": "ec2:DescribeInstances", "resource": "*"})
        assert r.status_code == 200, r.text
        with RulesPrometheus(tmp_path, [ready.addrs["admin"], waiting.addrs["admin"]]) as prom:
            both = {ready.addrs["admin"], waiting.addrs["admin"]}
            prom.wait_for('iamgate:requests:rate5m{frontend="http"}',
                          lambda res: {m["instance"] for m, _ in res} == both)
            deadline = time.monotonic() + 30
            while True:
                alerts = requests.get(prom.url + "/api/v1/alerts", timeout=10).json()
                not_ready = [a["labels"]["instance"] for a in alerts["data"]["alerts"]
                             if a["labels"]["alertname"] == "IamgateNotReady"]
                if not_ready or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert not_ready == [waiting.addrs["admin"]], alerts
            names = {a["labels"]["alertname"] for a in alerts["data"]["alerts"]}
            assert names == {"IamgateNotReady"}, alerts
            groups = requests.get(prom.url + "/api/v1/rules", timeout=10).json()["data"]["groups"]
            evaluated = [r for g in groups for r in g["rules"]]
            assert len(evaluated) == len(load_yaml_rules())
            bad = [(r["name"], r.get("lastError")) for r in evaluated if r["health"] != "ok"]
            assert not bad, bad
    finally:
        ready.stop()
        waiting.stop()


# --- Grafana dashboard -------------------------------------------------------

PANEL_TYPES = {"row", "timeseries", "stat", "table", "gauge", "bargauge", "heatmap", "text"}
DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}
# Grafana's own interval variables, and what the checks below put in their place.
GRAFANA_GLOBALS = {"__rate_interval": "1m", "__interval": "1m", "__range": "1m"}


def dashboard():
    return json.loads(DASHBOARD.read_text())


def dashboard_queries(dash):
    """(panel title, expr) for every query target of every panel."""
    return [(p["title"], t["expr"]) for p in dash["panels"] if p["type"] != "row"
            for t in p["targets"]]


def variables_used(text):
    return set(re.findall(r"\$\{?(\w+)\}?", text))


def substitute(expr, values):
    """The expression with Grafana variables replaced, as Grafana would send
    it for the values given."""
    def repl(m):
        return values[m.group(1)]
    out = re.sub(r"\$\{?(\w+)\}?", repl, expr)
    assert "$" not in out, out
    return out


def overlaps(a, b):
    return (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
            and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"])


def test_grafana_dashboard_is_a_valid_model():
    """issue 14: the dashboard JSON has the fields Grafana's dashboard model
    requires, unique panel ids and refIds, a laid-out grid, and every
    datasource reference and variable resolves."""
    dash = dashboard()
    for field, kind in (("uid", str), ("title", str), ("schemaVersion", int), ("panels", list),
                        ("templating", dict), ("time", dict), ("annotations", dict),
                        ("version", int), ("tags", list)):
        assert isinstance(dash.get(field), kind), field
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", dash["uid"])
    assert dash["schemaVersion"] >= 36  # datasource references as {type, uid} objects
    assert {"from", "to"} <= set(dash["time"])
    assert "id" not in dash or dash["id"] is None  # an exported model carries no database id

    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    defined = set(variables) | set(GRAFANA_GLOBALS)

    ids = [p["id"] for p in dash["panels"]]
    assert all(isinstance(i, int) for i in ids) and len(ids) == len(set(ids)), ids
    grids = []
    for p in dash["panels"]:
        assert p["type"] in PANEL_TYPES, p["type"]
        assert p.get("title"), p
        g = p["gridPos"]
        assert all(isinstance(g[k], int) for k in "hwxy"), g
        assert g["x"] >= 0 and g["y"] >= 0 and g["h"] > 0 and 0 < g["w"] and g["x"] + g["w"] <= 24, g
        for other_title, other in grids:
            assert not overlaps(g, other), (p["title"], other_title)
        grids.append((p["title"], g))
        if p["type"] == "row":
            continue
        assert p["datasource"] == DATASOURCE_REF, p["title"]
        assert p["targets"], p["title"]
        ref_ids = [t["refId"] for t in p["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), p["title"]
        for t in p["targets"]:
            assert t["datasource"] == DATASOURCE_REF, p["title"]
            assert t["expr"].strip(), p["title"]
            assert variables_used(t["expr"]) <= defined, (p["title"], t["expr"])
    for v in variables.values():
        if v["type"] == "query":
            assert v["datasource"] == DATASOURCE_REF, v["name"]
            assert variables_used(v["query"]["query"]) <= defined, v["name"]
    # The panels the issue asks for.
    titles = " / ".join(p["title"].lower() for p in dash["panels"])
    for word in ("front door and outcome", "latency", "reload", "revision", "error",
                 "snapshot size", "decision-log drops",
                 # issue 15
                 "bundle source", "signature refusals", "reload decision diff",
                 "shadow disagreements", "decision-log shipping"):
        assert word in titles, word


def test_grafana_queries_parse_as_promql(tmp_path):
    """issue 14: promtool parses every panel query (and the selectors of the
    variable queries), each as a recording rule of a generated rule file."""
    dash = dashboard()
    values = dict(GRAFANA_GLOBALS, job=".*", instance=".*", datasource="prometheus")
    exprs = [substitute(e, values) for _, e in dashboard_queries(dash)]
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            m = re.fullmatch(r"label_values\((.+), *(\w+)\)", v["query"]["query"])
            assert m, v["query"]
            exprs.append(substitute(m.group(1), values))
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for i, e in enumerate(exprs):
        lines += [f"      - record: dashboard:query_{i}", f"        expr: {json.dumps(e)}"]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text("\n".join(lines) + "\n")
    code, out = run([PROMTOOL, "check", "rules", path])
    assert code == 0 and f"SUCCESS: {len(exprs)} rules found" in out, out
    # A broken query is refused by the same check: the check can fail.
    path.write_text("groups:\n  - name: x\n    rules:\n      - record: x:y\n"
                    "        expr: \"sum by (frontend (rate(iamgate_decisions_total[1m]))\"\n")
    code, out = run([PROMTOOL, "check", "rules", path])
    assert code != 0, out


def test_grafana_queries_read_exported_metrics_and_return_data(tmp_path):
    """issue 14: every metric a panel names is in a live server's /metrics,
    and against a real Prometheus scraping that server every panel query
    returns data."""
    dash = dashboard()
    exported = live_metric_names(tmp_path)
    named = set()
    for title, expr in dashboard_queries(dash):
        named |= metric_names(expr)
    unknown = named - exported - SCRAPE_SERIES
    assert not unknown, f"the dashboard names metrics the server does not export: {unknown}"
    for family in ("iamgate_decisions_total", "iamgate_decision_duration_seconds_bucket",
                   "iamgate_request_errors_total", "iamgate_reloads_total",
                   "iamgate_snapshot_info", "iamgate_snapshot_statements",
                   "iamgate_decision_log_dropped_total",
                   # issue 15
                   "iamgate_bundle_fetches_total", "iamgate_bundle_source_stale",
                   "iamgate_bundle_signature_refusals_total", "iamgate_reload_diff_sampled_requests",
                   "iamgate_reload_diff_changed_decisions", "iamgate_shadow_disagreements_total",
                   "iamgate_decision_log_shipped_total", "iamgate_decision_log_ship_dropped_total"):
        assert family in named, family

    # The fleet features on (issue 15), so that their panels have series.
    fleet = FleetServer(tmp_path)
    server = fleet.server
    try:
        with Prometheus(tmp_path, target=server.addrs["admin"]) as prom:
            prom.wait_for('up{job="iamgate"}', lambda res: res and res[0][1] == 1.0)
            # Traffic while Prometheus scrapes, so that rates are not all zero:
            # decisions, and a refused request for the error panels.
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                r = server.authorize({"principal": {"arn": "arn:aws:iam::111111111111:user/alice"},
                                      "action": "ec2:DescribeInstances", "resource": "*"})
                assert r.status_code == 200, r.text
                requests.post(server.http + "/v1/authorize", data=b"{nope",
                              headers={"content-type": "application/json"}, timeout=10)
                time.sleep(0.1)
            values = dict(GRAFANA_GLOBALS, job="iamgate", instance=server.addrs["admin"])
            fleet.wait_for_series(FLEET_FAMILIES)
            for title, expr in dashboard_queries(dash):
                prom.wait_for(substitute(expr, values), lambda res: len(res) > 0, timeout=20)
    finally:
        fleet.stop()


# --- systemd -----------------------------------------------------------------

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def unit_settings():
    """(section, key) -> [values] of the unit file."""
    settings, section = {}, None
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        settings.setdefault((section, key), []).append(value)
    return settings


def test_systemd_unit_hardening_settings():
    """issue 14: the unit runs iamgate unprivileged and confined."""
    s = unit_settings()
    want = {
        "DynamicUser": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
        "PrivateTmp": "yes", "PrivateDevices": "yes", "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "", "AmbientCapabilities": "", "RestrictSUIDSGID": "yes",
        "RestrictNamespaces": "yes", "MemoryDenyWriteExecute": "yes",
        "SystemCallArchitectures": "native", "LockPersonality": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    }
    for key, value in want.items():
        assert s.get(("Service", key)) == [value], key
    assert "@system-service" in s[("Service", "SystemCallFilter")]
    exec_start = s[("Service", "ExecStart")][0].split()
    assert exec_start[1:] == ["serve", "--config", "/etc/iamgate/config.json"], exec_start
    # The config file it names is the one shipped beside it.
    assert json.loads(UNIT_CONFIG.read_text())["bundle"].startswith("/etc/iamgate/")


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed "
                    "(scripts/test.sh installs the systemd package when it is missing)")
def test_systemd_unit_verifies_and_scores_ok(tmp_path):
    """issue 14: `systemd-analyze verify` accepts the unit with no warning
    (verify warns on stderr and still exits 0, so any output fails), and the
    offline security review rates its exposure at most 1.5 of 10."""
    # verify checks that ExecStart's binary exists: point it at the one built.
    unit = tmp_path / "iamgate.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/iamgate", str(conftest.BINARY)))
    code, out = run([SYSTEMD_ANALYZE, "verify", unit])
    if "Failed to initialize manager" in out or "System has not been booted" in out:
        pytest.skip(f"systemd-analyze verify cannot run in this sandbox: {out.strip()}")
    assert code == 0 and out.strip() == "", out
    # The same check flags a broken setting, so a clean result means something.
    bad = tmp_path / "bad.service"
    bad.write_text(unit.read_text().replace("ProtectSystem=strict", "ProtectSystem=sideways"))
    code, out = run([SYSTEMD_ANALYZE, "verify", bad])
    assert "sideways" in out, out

    code, out = run([SYSTEMD_ANALYZE, "security", "--offline=true", "--threshold=15", UNIT])
    assert code == 0, out
    m = re.search(r"Overall exposure level for iamgate.service: ([\d.]+) (\w+)", out)
    assert m and float(m.group(1)) <= 1.5 and m.group(2) == "OK", out
    print(m.group(0))


def sandbox_available():
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setpriv"):
        return "needs root, unshare and setpriv"
    p = subprocess.run(["unshare", "--mount", "true"], capture_output=True, text=True)
    if p.returncode != 0:
        return f"no mount namespaces here: {p.stderr.strip()}"
    return None


def test_systemd_unit_constraints_run(tmp_path, monkeypatch):
    """issue 14: iamgate starts from the unit's config file and serves as an
    unprivileged uid with no capabilities, no_new_privs, a read-only file
    system except its log directory, and empty /tmp, /home, /root (the unit's
    DynamicUser, CapabilityBoundingSet=, NoNewPrivileges, ProtectSystem=strict,
    LogsDirectory, PrivateTmp, ProtectHome). The unit's seccomp filter and
    address-family restrictions need systemd itself and are not applied here."""
    why = sandbox_available()
    if why:
        pytest.skip(f"cannot confine a process in this sandbox: {why}")
    uid = 61234
    logs = tempfile.mkdtemp(prefix="iamgate-logs-")
    view = tempfile.mkdtemp(prefix="iamgate-view-")
    try:
        os.chown(logs, uid, uid)
        wrapper = tmp_path / "iamgate-confined"
        # The checkout stands in for the installed binary, unit config and
        # bundle: visible read-only even if it lies below /tmp, /home or /root.
        wrapper.write_text(f"#!/bin/sh\nSANDBOX_VIEW={view} SANDBOX_EXPOSE={ROOT} exec {SANDBOX} / {uid} "
                           f"{logs}:/var/log/iamgate {conftest.BINARY} \"$@\"\n")
        wrapper.chmod(0o755)
        monkeypatch.setattr(conftest, "BINARY", wrapper)
        # The unit's config file as shipped; only the bundle path (and the
        # ephemeral ports the helper passes as flags) are overridden.
        server = start_server(tmp_path, "--config", str(UNIT_CONFIG),
                              env={"IAMGATE_BUNDLE": str(DEMO_BUNDLE)})
        try:
            assert requests.get(server.admin + "/readyz", timeout=5).status_code == 200
            r = server.authorize(BOB_START)
            assert r.status_code == 200 and r.json()["decision"] == "allowed", r.text
            status = pathlib.Path(f"/proc/{server.proc.pid}/status").read_text()
            assert re.search(rf"^Uid:\s+{uid}\s+{uid}\s+{uid}\s+{uid}$", status, re.M), status
            assert re.search(r"^CapEff:\s+0+$", status, re.M), status
            assert re.search(r"^NoNewPrivs:\s+1$", status, re.M), status
            # The decision log went to the unit's LogsDirectory.
            deadline = time.monotonic() + 10
            log = os.path.join(logs, "decisions.jsonl")
            while time.monotonic() < deadline and not (os.path.exists(log) and os.path.getsize(log)):
                time.sleep(0.1)
            assert os.stat(log).st_uid == uid
            assert "ec2:StartInstances" in open(log).read()
        finally:
            assert server.stop() == 0, server.log()
        # Under the same confinement nothing else is writable.
        p = subprocess.run([str(SANDBOX), "/", str(uid), f"{logs}:/var/log/iamgate", "/bin/sh",
                            "-c", "touch /etc/iamgate-probe || touch /var/lib/iamgate-probe || "
                            "touch /work/iamgate-probe || echo refused"],
                           capture_output=True, text=True, env=dict(os.environ, SANDBOX_VIEW=view),
                           timeout=30)
        assert p.stdout.strip() == "refused" and "Read-only file system" in p.stderr, p
    finally:
        shutil.rmtree(logs, ignore_errors=True)
        os.rmdir(view)

