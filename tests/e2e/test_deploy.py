"""Issue 14 ("Deploy and operate"): the artefacts under deploy/ checked by
the real tools that consume them, and against the real binary.

- deploy/prometheus/: `promtool check rules`, `promtool test rules` (the
  unit tests beside the rules), every metric the rules read exists in a live
  server's /metrics, and a real Prometheus evaluates the rules against two
  live servers (one ready, one without a bundle) without evaluation errors.
- deploy/grafana/iamgate.json: a well-formed dashboard model, every query
  parses as PromQL (promtool), names only exported metrics, and returns data
  from a real Prometheus scraping a live server.
"""

import json
import re
import subprocess
import time

import requests

from conftest import ROOT, start_server
from telemetry.prometheus_server import PROMTOOL, Prometheus

DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "iamgate-rules.yml"
RULES_TEST = DEPLOY / "prometheus" / "iamgate-rules.test.yml"
DASHBOARD = DEPLOY / "grafana" / "iamgate.json"

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


def live_metric_names(tmp_path):
    """Every sample name in a live server's /metrics, after a decision and a
    refused request so that labelled counters have series."""
    server = start_server(tmp_path)
    try:
        r = server.authorize({"principal": {"arn": "arn:aws:iam::111111111111:user/alice"},
                              "action": "ec2:DescribeInstances", "resource": "*"})
        assert r.status_code == 200, r.text
        r = requests.post(server.http + "/v1/authorize", data=b"{nope",
                          headers={"content-type": "application/json"}, timeout=10)
        assert r.status_code == 400
        text = requests.get(server.admin + "/metrics", timeout=10).text
    finally:
        server.stop()
    names = {re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0)
             for line in text.splitlines() if line and not line.startswith("#")}
    assert "iamgate_request_errors_total" in names, text
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
                   "iamgate_decision_log_dropped_total", "iamgate_snapshot_info"):
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
                 "snapshot size", "decision-log drops"):
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
                   "iamgate_decision_log_dropped_total"):
        assert family in named, family

    server = start_server(tmp_path)
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
            for title, expr in dashboard_queries(dash):
                prom.wait_for(substitute(expr, values), lambda res: len(res) > 0, timeout=20)
    finally:
        server.stop()
