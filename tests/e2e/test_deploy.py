"""Issue 14 ("Deploy and operate"): the artefacts under deploy/ checked by
the real tools that consume them, and against the real binary.

- deploy/prometheus/: `promtool check rules`, `promtool test rules` (the
  unit tests beside the rules), every metric the rules read exists in a live
  server's /metrics, and a real Prometheus evaluates the rules against two
  live servers (one ready, one without a bundle) without evaluation errors.
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
