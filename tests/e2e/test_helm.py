"""Issue 14 ("Deploy and operate"): deploy/kubernetes/ and the helm/iamgate
chart, checked by the tools that consume them and against the real binary.

- helm (pinned, offline: scripts/helm-tool.sh): `helm lint --strict` and
  `helm template` over several values files (defaults, sidecar, TLS + mTLS
  control listener, Prometheus Operator, bundle from a volume, bundle inline);
  a typo in the values, a wrong value and an unauthenticated control listener
  are refused.
- kubernetes-validate --strict -k 1.33.0: every rendered manifest and every
  file in deploy/kubernetes/. The Prometheus Operator's CRDs (ServiceMonitor,
  PodMonitor, PrometheusRule) have no schema there: they are reported as
  skipped, the PrometheusRule's rules go through `promtool check rules`, and
  the monitors are checked against the Service / pods they select.
- Golden checks of the fields that matter: probes, the hardened
  securityContext, the Envoy config's identity-header removal (first HTTP
  filter) and `envoy --mode validate`, the control token from a Secret, the
  NetworkPolicy's peers per port.
- The iamgate args of every rendered Deployment (and of deploy/kubernetes/)
  start the real binary: each mounted volume is recreated in a temporary
  directory (ConfigMaps the chart renders from their data, Secrets as
  cert-manager would write them, the bundle as a .tar.gz or a folder) and the
  binary must become ready with exactly those flags (listen addresses moved
  to 127.0.0.1 ephemeral ports).
- The sidecar pod as rendered, run on loopback: the application (a stub
  backend), iamgate with the rendered flags, Envoy with the rendered config;
  a JWT caller is allowed as the principal iamgate decided for, a denied
  action and a missing token never reach the application.
"""

import copy
import os
import json
import pathlib
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tarfile
import time

import grpc
import pytest
import requests
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conftest import ROOT, start_server
from envoy_util import Backend, Envoy, envoy_binary
from jwt_util import AUDIENCE, ISSUER, Issuer
from telemetry.prometheus_server import PROMTOOL
from test_tls import make_ca, make_leaf

CHART = ROOT / "helm" / "iamgate"
CI = CHART / "ci"
K8S = ROOT / "deploy" / "kubernetes"
DEMO_BUNDLE = ROOT / "src" / "bundle" / "demo"
KUBE_VERSION = "1.33.0"
# Kinds of the Prometheus Operator: no schema in kubernetes-validate.
CRD_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
IDENTITY_HEADERS = {"x-iamgate-principal", "x-iamgate-decision-id"}


def run(cmd, **kw):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120, **kw)
    return p.returncode, p.stdout + p.stderr


@pytest.fixture(scope="session")
def helm():
    rc, out = run([ROOT / "scripts" / "helm-tool.sh"])
    assert rc == 0, f"installing helm failed:\n{out}"
    return out.strip().splitlines()[-1]


def kubernetes_validate():
    exe = pathlib.Path(sys.executable).parent / "kubernetes-validate"
    if not exe.exists():
        pytest.fail(f"{exe} missing: kubernetes-validate is in tests/e2e/requirements.txt")
    return exe


def inline_bundle_values(tmp):
    """Values putting the demo bundle inline (bundle.files)."""
    files = {str(p.relative_to(DEMO_BUNDLE)): p.read_text()
             for p in sorted(DEMO_BUNDLE.rglob("*")) if p.is_file()}
    path = tmp / "inline-bundle-values.yaml"
    path.write_text(yaml.safe_dump({"bundle": {"files": files}, "identity": {
        "jwtPrincipals": ["corp:sub=arn:aws:iam::111111111111:user/{claim}"]}}))
    return path


CASES = {
    "defaults": [],
    "sidecar": [CI / "sidecar-values.yaml"],
    "tls-control": [CI / "tls-control-values.yaml"],
    "prometheus": [CI / "prometheus-values.yaml"],
    "volume-bundle": [CI / "volume-bundle-values.yaml"],
    "inline-bundle": "inline",
    # issue 15: a remote signed bundle (https, cached) and a fleet sidecar
    # (S3, shadow bundle, decision-log shipping).
    "remote-bundle": [CI / "remote-bundle-values.yaml"],
    "fleet": [CI / "fleet-values.yaml"],
}
# Cases rendering the application's pod (mode: sidecar).
SIDECAR_CASES = {"sidecar", "fleet"}


def values_files(case, tmp):
    files = CASES[case]
    return [inline_bundle_values(tmp)] if files == "inline" else files


def render(helm, files, *sets):
    args = [helm, "template", "rel", CHART, "--namespace", "iamgate"]
    for f in files:
        args += ["-f", f]
    for s in sets:
        args += ["--set", s]
    return run(args)


@pytest.fixture(scope="module")
def rendered(helm, tmp_path_factory):
    """case -> (rendered YAML text, [documents])."""
    tmp = tmp_path_factory.mktemp("helm")
    out = {}
    for case in CASES:
        rc, text = render(helm, values_files(case, tmp))
        assert rc == 0, f"helm template ({case}) failed:\n{text}"
        docs = [d for d in yaml.safe_load_all(text) if d]
        out[case] = (text, docs)
    return out


def k8s_docs():
    return {p.name: [d for d in yaml.safe_load_all(p.read_text()) if d]
            for p in sorted(K8S.glob("*.yaml"))}


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def one(docs, kind, name=None):
    found = [d for d in by_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def container(deployment, name):
    cs = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    assert len(cs) == 1, f"container {name}"
    return cs[0]


# ── helm lint and the values schema ──────────────────────────────────────


@pytest.mark.parametrize("case", list(CASES))
def test_helm_lint_strict(helm, case, tmp_path):
    args = [helm, "lint", "--strict", CHART]
    for f in values_files(case, tmp_path):
        args += ["-f", f]
    rc, out = run(args)
    assert rc == 0, out
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("bad, expect", [
    ("replicaCont=3", "additional properties 'replicaCont' not allowed"),
    ("tls.enable=true", "additional properties 'enable' not allowed"),
    ("mode=sidcar", "value must be one of 'service', 'sidecar'"),
    ("podAntiAffinity=always", "value must be one of 'soft', 'hard'"),
    ("ports.grpc=70000", "maximum"),
    ("identity.jwtPrincipals[0]=sub-without-key", "pattern"),
])
def test_values_typos_are_refused(helm, bad, expect):
    rc, out = run([helm, "lint", "--strict", CHART, "--set", bad])
    assert rc != 0 and expect in out, out
    rc, out = render(helm, [], bad)
    assert rc != 0 and expect in out, out


@pytest.mark.parametrize("sets, expect", [
    (["control.enabled=true"], "control.enabled needs authentication"),
    (["control.enabled=true", "control.tls.enabled=true", "control.tls.requireClientCert=false"],
     "control.enabled needs authentication"),
    (["tls.enabled=true"], "tls.enabled needs tls.secretName"),
    (["mode=sidecar", "tls.enabled=true", "tls.secretName=x"], "mode sidecar"),
    (["bundle.configMap.name=a", "bundle.files.manifest\\.json=x"], "set only one of"),
    (["inventoryState.existingClaim=pvc"], "one PVC cannot hold the state of several replicas"),
])
def test_unsafe_combinations_are_refused(helm, sets, expect):
    rc, out = render(helm, [], *sets)
    assert rc != 0 and expect in out, out


# ── offline schema validation ─────────────────────────────────────────────


def validate_file(path):
    rc, out = run([kubernetes_validate(), "--strict", "-k", KUBE_VERSION, path])
    skipped = sorted(set(re.findall(r"Couldn't find schema for kind (\w+)", out)))
    return rc, out, skipped


@pytest.mark.parametrize("case", list(CASES))
def test_rendered_manifests_pass_kubernetes_validate(rendered, case, tmp_path):
    text, docs = rendered[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    rc, out, skipped = validate_file(path)
    assert rc == 0, out
    assert "failed" not in out.lower(), out
    kinds = {d["kind"] for d in docs}
    passed = re.findall(r"passed for resource (\w+)/", out)
    assert len(passed) == len([d for d in docs if d["kind"] not in CRD_KINDS]), out
    assert set(skipped) == kinds & CRD_KINDS, out
    if skipped:
        print(f"kubernetes-validate has no schema for {', '.join(skipped)} ({case}): "
              "checked by test_prometheus_operator_resources instead")


@pytest.mark.parametrize("name", sorted(p.name for p in K8S.glob("*.yaml")))
def test_deploy_kubernetes_passes_kubernetes_validate(name):
    rc, out, skipped = validate_file(K8S / name)
    docs = k8s_docs()[name]
    assert rc == 0, out
    assert set(skipped) <= {"Certificate"}, out
    assert len(re.findall(r"passed for resource", out)) == \
        len([d for d in docs if d["kind"] not in skipped]), out
    if skipped:
        print(f"kubernetes-validate has no schema for {', '.join(skipped)} ({name}): "
              "checked by test_certificates_are_the_mounted_secrets instead")


def test_certificates_are_the_mounted_secrets():
    """cert-manager's Certificates (no schema in kubernetes-validate) write
    exactly the TLS Secrets the shared service mounts, for its Services' names."""
    certs = by_kind(k8s_docs()["certificates.yaml"], "Certificate")
    docs = k8s_docs()["shared-service.yaml"]
    dep = one(docs, "Deployment")
    ig = container(dep, "iamgate")
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    tls_secrets = {volumes[m["name"]]["secret"]["secretName"] for m in ig["volumeMounts"]
                   if m["mountPath"].endswith("tls")}
    assert {c["spec"]["secretName"] for c in certs} == tls_secrets == {"iamgate-tls", "iamgate-control-tls"}
    names = {c["spec"]["secretName"]: c["spec"]["dnsNames"] for c in certs}
    ns = "iamgate"
    for svc, secret in [("iamgate", "iamgate-tls"), ("iamgate-control", "iamgate-control-tls")]:
        one(docs, "Service", svc)
        assert f"{svc}.{ns}.svc" in names[secret]
    for c in certs:
        assert c["apiVersion"] == "cert-manager.io/v1"
        assert c["spec"]["usages"] == ["server auth"]
        assert c["spec"]["privateKey"]["rotationPolicy"] == "Always"


def test_strict_validation_catches_a_misplaced_field(tmp_path):
    """The validator is not a rubber stamp: a field in the wrong place fails."""
    doc = copy.deepcopy(one(k8s_docs()["shared-service.yaml"], "Deployment"))
    doc["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFilesystem"] = True
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    rc, out, _ = validate_file(path)
    assert rc != 0 and "readOnlyRootFilesystem" in out, out


def test_prometheus_operator_resources(rendered, tmp_path):
    """What kubernetes-validate cannot check: the PrometheusRule holds
    deploy/prometheus's rules and promtool accepts them; the ServiceMonitor
    selects the admin Service's `admin` port; sidecar mode uses a PodMonitor
    on the pods' admin port."""
    _, docs = rendered["prometheus"]
    rule = one(docs, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    source = yaml.safe_load((ROOT / "deploy" / "prometheus" / "iamgate-rules.yml").read_text())
    assert rule["spec"] == source
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(rule["spec"]))
    rc, out = run([PROMTOOL, "check", "rules", rules])
    assert rc == 0, out

    monitor = one(docs, "ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    targets = [s for s in by_kind(docs, "Service")
               if selector.items() <= s["metadata"]["labels"].items()]
    assert [s["metadata"]["name"] for s in targets] == ["rel-iamgate-admin"]
    assert monitor["spec"]["endpoints"] == [{"port": "admin", "path": "/metrics", "interval": "15s"}]
    assert "iamgate" in targets[0]["metadata"]["name"]  # the rules select jobs named like iamgate
    assert [p["name"] for p in targets[0]["spec"]["ports"]] == ["admin"]



def test_prometheus_operator_sidecar_uses_a_pod_monitor(helm):
    rc, text = render(helm, [CI / "sidecar-values.yaml"], "prometheusOperator.enabled=true")
    assert rc == 0, text
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert not by_kind(docs, "ServiceMonitor")
    monitor = one(docs, "PodMonitor")
    pod = one(docs, "Deployment")["spec"]["template"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "admin"
    assert "admin" in [p["name"] for p in container(one(docs, "Deployment"), "iamgate")["ports"]]


def test_chart_files_match_deploy(rendered):
    """The chart carries copies (helm reads nothing outside the chart): they
    stay equal to deploy/."""
    for chart_file, source in [("iamgate-rules.yml", "prometheus/iamgate-rules.yml"),
                               ("iamgate.json", "grafana/iamgate.json")]:
        assert (CHART / "files" / chart_file).read_bytes() == (ROOT / "deploy" / source).read_bytes(), chart_file
    _, docs = rendered["defaults"]
    dashboard = one(docs, "ConfigMap", "rel-iamgate-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["iamgate.json"]) == json.loads(
        (ROOT / "deploy" / "grafana" / "iamgate.json").read_text())


# ── golden checks ─────────────────────────────────────────────────────────


def assert_hardened(c, uid=None):
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True, c["name"]
    assert sc["readOnlyRootFilesystem"] is True, c["name"]
    assert sc["allowPrivilegeEscalation"] is False, c["name"]
    assert sc["capabilities"] == {"drop": ["ALL"]}, c["name"]
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, c["name"]
    if uid is not None:
        assert sc["runAsUser"] == uid and sc["runAsGroup"] == uid, c["name"]
    assert "requests" in c["resources"] and c["resources"]["limits"]["memory"], c["name"]


def assert_iamgate_pod(dep, expect_grpc_probe):
    spec = dep["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    ig = container(dep, "iamgate")
    assert_hardened(ig, uid=65532)
    for other in spec["containers"]:
        assert_hardened(other)
    ports = {p["name"]: p["containerPort"] for p in ig["ports"]}
    admin = [a for a in ig["args"] if a.startswith("--admin-listen=")]
    assert admin == [f"--admin-listen=0.0.0.0:{ports['admin']}"]
    assert ig["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert ig["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    if expect_grpc_probe:
        assert ig["startupProbe"]["grpc"] == {"port": ports["grpc"]}
    else:
        assert ig["startupProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    # Every file iamgate reads comes from a read-only mount; it writes only
    # to the inventory-state volume.
    volumes = {v["name"]: v for v in spec["volumes"]}
    for m in ig["volumeMounts"]:
        v = volumes[m["name"]]
        writable = "emptyDir" in v or "persistentVolumeClaim" in v and m["mountPath"].startswith("/var/lib/")
        assert m.get("readOnly") is (None if writable else True), m
        if "secret" in v:
            assert v["secret"]["defaultMode"] == 0o440
    return ig, volumes


@pytest.mark.parametrize("case", list(CASES))
def test_rendered_pod_golden(rendered, case):
    _, docs = rendered[case]
    dep = one(docs, "Deployment")
    service_mode = case not in SIDECAR_CASES
    ig, volumes = assert_iamgate_pod(dep, expect_grpc_probe=service_mode and case != "tls-control")
    args = ig["args"]
    bind = "0.0.0.0" if service_mode else "127.0.0.1"
    assert f"--grpc-listen={bind}:9191" in args and f"--http-listen={bind}:8181" in args
    assert "--inventory-state=/var/lib/iamgate/inventory" in args
    if service_mode:
        assert dep["spec"]["replicas"] == 2
        anti = dep["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
        kind = ("requiredDuringSchedulingIgnoredDuringExecution" if case == "tls-control"
                else "preferredDuringSchedulingIgnoredDuringExecution")
        assert list(anti) == [kind]
        pdb = one(docs, "PodDisruptionBudget")
        assert pdb["spec"]["minAvailable"] == 1
        assert pdb["spec"]["selector"] == dep["spec"]["selector"]


def test_control_token_and_tls_come_from_secrets(rendered):
    _, docs = rendered["tls-control"]
    ig = container(one(docs, "Deployment"), "iamgate")
    volumes = {v["name"]: v for v in one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in ig["volumeMounts"]}

    def secret_of(flag):
        values = [a.split("=", 1)[1] for a in ig["args"] if a.startswith(flag + "=")]
        assert len(values) == 1, flag
        mount = str(pathlib.PurePosixPath(values[0]).parent)
        return mounts[mount]["secret"]["secretName"], pathlib.PurePosixPath(values[0]).name

    assert secret_of("--control-token-file") == ("iamgate-control-token", "token")
    assert secret_of("--control-tls-cert") == ("iamgate-control-tls", "tls.crt")
    assert secret_of("--control-tls-key") == ("iamgate-control-tls", "tls.key")
    assert secret_of("--control-client-ca") == ("iamgate-control-tls", "ca.crt")
    assert secret_of("--tls-cert") == ("iamgate-tls", "tls.crt")
    assert secret_of("--tls-client-ca") == ("iamgate-tls", "ca.crt")
    assert secret_of("--message-key-file") == ("iamgate-message-key", "key")
    # No token or key is ever in the rendered output itself.
    assert not by_kind(docs, "Secret")
    control = one(docs, "Service", "rel-iamgate-control")
    assert control["spec"]["clusterIP"] == "None"


def test_deploy_kubernetes_golden():
    docs = k8s_docs()
    sidecar = one(docs["sidecar.yaml"], "Deployment")
    ig, _ = assert_iamgate_pod(sidecar, expect_grpc_probe=False)
    assert "--grpc-listen=127.0.0.1:9191" in ig["args"]
    shared = one(docs["shared-service.yaml"], "Deployment")
    ig, _ = assert_iamgate_pod(shared, expect_grpc_probe=False)
    assert shared["spec"]["replicas"] == 2
    assert "requiredDuringSchedulingIgnoredDuringExecution" in \
        shared["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert one(docs["shared-service.yaml"], "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    assert "--control-token-file=/etc/iamgate/control-token/token" in ig["args"]


def network_peers(np):
    """port -> the podSelector labels allowed to reach it (None: anyone)."""
    out = {}
    for rule in np["spec"]["ingress"]:
        peers = rule.get("from")
        for p in rule["ports"]:
            out[p["port"]] = None if peers is None else [f["podSelector"]["matchLabels"] for f in peers]
    return out


@pytest.mark.parametrize("source", ["chart", "deploy"])
def test_network_policy_admits_only_the_right_peers(rendered, source):
    if source == "chart":
        np = one(rendered["tls-control"][1], "NetworkPolicy")
    else:
        np = one(k8s_docs()["shared-service.yaml"], "NetworkPolicy")
    peers = network_peers(np)
    assert peers == {
        9191: [{"iamgate/client": "true"}],
        8181: [{"iamgate/client": "true"}],
        8183: [{"iamgate/control-plane": "true"}],
        8182: [{"app.kubernetes.io/name": "prometheus"}],
    }
    assert np["spec"]["egress"] == [] and "Egress" in np["spec"]["policyTypes"]
    if source == "chart":
        np = one(rendered["sidecar"][1], "NetworkPolicy")
        assert "Egress" not in np["spec"]["policyTypes"]  # the application's own egress
    else:
        np = one(k8s_docs()["sidecar.yaml"], "NetworkPolicy")
    # Sidecar: anyone reaches Envoy, only Prometheus iamgate's admin port.
    assert network_peers(np) == {8080: None, 8182: [{"app.kubernetes.io/name": "prometheus"}]}


# ── the Envoy configuration of the sidecar pod ──────────────────────────


def http_filters(envoy_config):
    listener = envoy_config["static_resources"]["listeners"][0]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return hcm["http_filters"]


def envoy_configs(rendered):
    _, docs = rendered["sidecar"]
    cm = one(docs, "ConfigMap", "rel-iamgate-envoy")
    k8s = one(k8s_docs()["sidecar.yaml"], "ConfigMap")
    return {"chart": yaml.safe_load(cm["data"]["envoy.yaml"]),
            "deploy": yaml.safe_load(k8s["data"]["envoy.yaml"])}


@pytest.mark.parametrize("source", ["chart", "deploy"])
def test_envoy_config_removes_the_identity_headers_first(rendered, source, tmp_path):
    cfg = envoy_configs(rendered)[source]
    filters = http_filters(cfg)
    first = filters[0]
    assert first["name"] == "envoy.filters.http.header_mutation"
    removed = {m["remove"] for m in first["typed_config"]["mutations"]["request_mutations"]}
    assert removed == IDENTITY_HEADERS
    names = [f["name"] for f in filters]
    assert names.index("envoy.filters.http.jwt_authn") < names.index("envoy.filters.http.ext_authz")
    authz = filters[names.index("envoy.filters.http.ext_authz")]["typed_config"]
    assert authz["failure_mode_allow"] is False
    assert authz["metadata_context_namespaces"] == ["envoy.filters.http.jwt_authn"]
    iamgate = [c for c in cfg["static_resources"]["clusters"] if c["name"] == "iamgate"][0]
    addr = iamgate["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert addr["socket_address"] == {"address": "127.0.0.1", "port_value": 9191}
    # The filter chain is the reference one (deploy/envoy/generic-jwt.yaml).
    reference = yaml.safe_load((ROOT / "deploy" / "envoy" / "generic-jwt.yaml").read_text())
    assert filters == http_filters(reference)
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    rc, out = run([envoy_binary(), "--mode", "validate", "-c", path])
    assert rc == 0 and "OK" in out, out


# ── the rendered flags start the real binary ─────────────────────────────


def materialize(docs, dep, tmp, pki, files=None):
    """Recreates the iamgate container's mounts under `tmp`; returns
    {mountPath: local dir}. `files` ({mountPath: {name: source path}}) fills
    mounts of ConfigMaps and Secrets an operator creates (keys, bundles)."""
    spec = dep["spec"]["template"]["spec"]
    ig = container(dep, "iamgate")
    volumes = {v["name"]: v for v in spec["volumes"]}
    configmaps = {d["metadata"]["name"]: d for d in by_kind(docs, "ConfigMap")}
    bundle_arg = [a.split("=", 1)[1] for a in ig["args"] if a.startswith("--bundle=")][0]
    mounts = {}
    for m in ig["volumeMounts"]:
        local = tmp / m["mountPath"].strip("/")
        local.mkdir(parents=True, exist_ok=True)
        mounts[m["mountPath"]] = local
        v = volumes[m["name"]]
        if "configMap" in v and v["configMap"]["name"] in configmaps:
            data = configmaps[v["configMap"]["name"]]["data"]
            items = v["configMap"].get("items") or [{"key": k, "path": k} for k in data]
            for it in items:
                f = local / it["path"]
                f.parent.mkdir(parents=True, exist_ok=True)
                f.write_text(data[it["key"]])
        elif "secret" in v:
            for name in ("tls.crt", "tls.key", "ca.crt"):
                src = {"tls.crt": "server.pem", "tls.key": "server.key", "ca.crt": "ca.pem"}[name]
                shutil.copy(pki / src, local / name)
            (local / "token").write_text(secrets.token_hex(24) + "\n")
            (local / "key").write_text(secrets.token_hex(32) + "\n")
        elif m["mountPath"] == "/etc/iamgate/bundle":
            # The bundle source the chart does not render (an existing
            # ConfigMap or a volume): what an operator would put there.
            target = local / bundle_arg[len("/etc/iamgate/bundle"):].lstrip("/")
            if bundle_arg.endswith(".tar.gz"):
                with tarfile.open(target, "w:gz") as tar:
                    tar.add(DEMO_BUNDLE, arcname="bundle")
            else:
                shutil.copytree(DEMO_BUNDLE, target, dirs_exist_ok=True)
    for mount, entries in (files or {}).items():
        assert mount in mounts, f"{mount} is not mounted: {sorted(mounts)}"
        for name, source in entries.items():
            shutil.copy(source, mounts[mount] / name)
    return mounts


LISTEN_FLAGS = ("--grpc-listen", "--http-listen", "--admin-listen")


def make_pki(tmp):
    """A CA and a server certificate, as a cert-manager Secret would hold them."""
    pki = tmp / "pki"
    pki.mkdir()
    make_ca(pki, "ca")
    make_leaf(pki, "server", "ca", "IP:127.0.0.1,DNS:localhost")
    return pki


def start_with_rendered_args(docs, dep, tmp, pki=None, files=None, endpoints=None, secrets_data=None):
    """Starts the binary with the rendered args. `endpoints` ({flag: value})
    points a remote endpoint (bundle source, log receiver) at a local one;
    `secrets_data` ({secret: {key: value}}) resolves the env's secretKeyRefs."""
    mounts = materialize(docs, dep, tmp / "root", pki or make_pki(tmp), files)
    ig = container(dep, "iamgate")
    assert ig["args"][0] == "serve"
    env = {"RUST_LOG": "warn"}
    for e in ig.get("env", []):
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            data = (secrets_data or {}).get(ref["name"], {})
            assert ref["key"] in data or ref.get("optional"), e
            if ref["key"] in data:
                env[e["name"]] = data[ref["key"]]
    args = []
    for a in ig["args"][1:]:
        flag, _, value = a.partition("=")
        if flag in LISTEN_FLAGS:
            continue  # start_server binds them to 127.0.0.1:0
        if flag == "--control-listen":
            value = "127.0.0.1:0"
        if flag in (endpoints or {}):
            value = endpoints[flag]
        for mount, local in sorted(mounts.items(), key=lambda kv: -len(kv[0])):
            if value == mount or value.startswith(mount + "/"):
                value = str(local) + value[len(mount):]
                break
        else:
            assert not value.startswith("/"), f"{a}: a path outside every mount"
        args.append(f"{flag}={value}" if value else flag)
    return start_server(tmp, *args, env=env), args


# Cases whose bundle is remote: started by the tests of issue 15 below, with
# a local source in place of the rendered one.
REMOTE_CASES = {"remote-bundle", "fleet"}


@pytest.mark.parametrize("case", [c for c in CASES if c not in REMOTE_CASES])
def test_rendered_args_start_the_real_binary(rendered, case, tmp_path):
    _, docs = rendered[case]
    server, args = start_with_rendered_args(docs, one(docs, "Deployment"), tmp_path)
    try:
        assert server.proc.poll() is None, server.log()
        ready = requests.get(server.admin + "/readyz", timeout=5)
        assert ready.status_code == 200, (args, server.log())
        status = requests.get(server.admin + "/v1/status", timeout=5).json()
        assert "revision" in json.dumps(status)
        if any(a.startswith("--control-listen") for a in args):
            assert "control" in server.addrs
        probe = container(one(docs, "Deployment"), "iamgate")["startupProbe"]
        if "grpc" in probe:
            # What the kubelet's gRPC probe asks: grpc.health.v1, service "".
            with grpc.insecure_channel(server.grpc) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=probe["grpc"].get("service", "")),
                    timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("name", ["sidecar.yaml", "shared-service.yaml"])
def test_deploy_kubernetes_args_start_the_real_binary(name, tmp_path):
    docs = k8s_docs()[name]
    server, args = start_with_rendered_args(docs, one(docs, "Deployment"), tmp_path)
    try:
        assert requests.get(server.admin + "/readyz", timeout=5).status_code == 200, server.log()
    finally:
        assert server.stop() == 0


# ── the rendered sidecar pod, run on loopback ────────────────────────────


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_rendered_sidecar_pod_decides_end_to_end(helm, tmp_path):
    """The sidecar pod as the chart renders it: the backend (the
    application), iamgate with the rendered flags and Envoy with the rendered
    config on loopback. A caller with a valid JWT is allowed and the backend
    sees the principal iamgate decided for, not the one the client sent; a
    denied action and a missing token never reach the backend. Test-only
    changes to the rendered Envoy config: ephemeral listener and admin ports,
    and the issuer's keys inline (local_jwks) instead of fetched from the IdP."""
    backend = Backend(tmp_path, ROOT / "tests" / "e2e" / "envoy" / "backend.py")
    grpc_port, admin_port = free_port(), free_port()
    values = tmp_path / "pod-values.yaml"
    values.write_text(yaml.safe_dump({
        "ports": {"grpc": grpc_port, "admin": admin_port},
        "identity": {"jwtPrincipals": ["corp:sub=arn:aws:iam::111111111111:user/{claim}"]},
        "sidecar": {"app": {"port": backend.port}, "envoy": {
            "jwt": {"provider": "corp", "issuer": ISSUER, "audiences": [AUDIENCE]},
            "routes": [{"prefix": "/instances/", "action": "ec2:{path.2}Instances",
                        "resource": "arn:aws:ec2:us-east-1:111111111111:instance/{path.1}",
                        "context": {"aws:RequestedRegion": "us-east-1",
                                    "ec2:ResourceTag/team": "blue"}}]}},
    }))
    rc, text = render(helm, [CI / "sidecar-values.yaml", values])
    assert rc == 0, text
    docs = [d for d in yaml.safe_load_all(text) if d]
    dep = one(docs, "Deployment")
    mounts = materialize(docs, dep, tmp_path / "root", make_pki(tmp_path))
    args = []
    for a in container(dep, "iamgate")["args"][1:]:
        for mount, local in mounts.items():
            a = a.replace("=" + mount, "=" + str(local))
        args.append(a.replace("=0.0.0.0:", "=127.0.0.1:"))
    assert f"--grpc-listen=127.0.0.1:{grpc_port}" in args
    iamgate = None
    envoy = None
    try:
        # start_server's ephemeral listen flags come first; the rendered
        # ones, later, win.
        iamgate = start_server(tmp_path, *args, env={"RUST_LOG": "warn"})
        assert iamgate.addrs["grpc"] == f"127.0.0.1:{grpc_port}"
        issuer = Issuer()
        cfg = yaml.safe_load(one(docs, "ConfigMap", "rel-iamgate-envoy")["data"]["envoy.yaml"])
        cfg["admin"]["address"]["socket_address"]["port_value"] = 0
        cfg["static_resources"]["listeners"][0]["address"]["socket_address"] = {
            "address": "127.0.0.1", "port_value": 0}
        jwt_filter = http_filters(cfg)[1]["typed_config"]
        provider = jwt_filter["providers"]["corp"]
        del provider["remote_jwks"]
        provider["local_jwks"] = {"inline_string": issuer.jwks}
        cfg["static_resources"]["clusters"] = [
            c for c in cfg["static_resources"]["clusters"] if c["name"] != "idp"]
        template = tmp_path / "envoy.yaml"
        template.write_text(yaml.safe_dump(cfg).replace("$", "$$"))
        envoy = Envoy(envoy_binary(), tmp_path, template)

        bob = "arn:aws:iam::111111111111:user/engineering/bob"
        forged = {"x-iamgate-principal": "arn:aws:iam::111111111111:user/admin",
                  **issuer.bearer("engineering/bob")}
        status, _, body = envoy.call("POST", "/instances/i-0blue0000000000001/Start", headers=forged)
        assert status == 200, (body, iamgate.log())
        seen = backend.requests()
        assert len(seen) == 1
        assert seen[0]["headers"]["x-iamgate-principal"] == bob
        assert seen[0]["headers"].get("x-iamgate-decision-id")

        status, _, _ = envoy.call("POST", "/instances/i-0blue0000000000001/Terminate",
                                  headers=issuer.bearer("engineering/bob"))
        assert status == 403
        status, _, _ = envoy.call("POST", "/instances/i-0blue0000000000001/Start",
                                  headers={"x-iamgate-principal": bob})
        assert status == 401
        assert len(backend.requests()) == 1
        status, _, _ = envoy.call("GET", "/healthz")
        assert status == 200
    finally:
        if envoy:
            envoy.stop()
        if iamgate:
            iamgate.stop()
        backend.stop()


def test_readme_proxy_cluster_for_the_shared_service_validates(tmp_path):
    """The README's `iamgate` cluster for proxies calling the shared service
    over mutual TLS, in place of the loopback cluster of
    deploy/envoy/generic-jwt.yaml, passes `envoy --mode validate`."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("Each proxy's `iamgate` cluster")
    block = readme[readme.index("```yaml\n", start) + 8:]
    cluster = yaml.safe_load(block[:block.index("```")])[0]
    assert cluster["name"] == "iamgate"
    tls = pathlib.Path("/etc/envoy/tls")
    pki = make_pki(tmp_path)
    text = yaml.safe_dump(cluster)
    for name, src in [("tls.crt", "server.pem"), ("tls.key", "server.key"), ("ca.crt", "ca.pem")]:
        text = text.replace(str(tls / name), str(pki / src))
    cfg = yaml.safe_load((ROOT / "deploy" / "envoy" / "generic-jwt.yaml").read_text())
    clusters = cfg["static_resources"]["clusters"]
    cfg["static_resources"]["clusters"] = [
        yaml.safe_load(text) if c["name"] == "iamgate" else c for c in clusters]
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    rc, out = run([envoy_binary(), "--mode", "validate", "-c", path])
    assert rc == 0 and "OK" in out, out


def test_configmap_update_reloads_the_bundle(rendered, tmp_path):
    """The chart's default bundle source is a ConfigMap holding a .tar.gz.
    The kubelet updates a ConfigMap volume atomically: the new files go to a
    fresh hidden folder and the `..data` link is swapped; `bundle.tar.gz` is
    a link through `..data`. The binary started with the rendered flags
    serves the new revision after such a swap, with no signal."""
    _, docs = rendered["defaults"]
    dep = one(docs, "Deployment")
    bundle_arg = [a for a in container(dep, "iamgate")["args"] if a.startswith("--bundle=")]
    assert bundle_arg == ["--bundle=/etc/iamgate/bundle/bundle.tar.gz"]
    volume = [v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == "iamgate-bundle"][0]
    assert volume["configMap"] == {"name": "rel-iamgate-bundle"}

    mount = tmp_path / "etc" / "iamgate" / "bundle"
    mount.mkdir(parents=True)

    def publish(revision, stamp):
        src = tmp_path / f"src-{stamp}"
        shutil.copytree(DEMO_BUNDLE, src)
        (src / "manifest.json").write_text(json.dumps({"revision": revision}))
        folder = mount / f"..2026_12_06_00_00_0{stamp}"
        folder.mkdir()
        with tarfile.open(folder / "bundle.tar.gz", "w:gz") as tar:
            tar.add(src, arcname="bundle")
        tmp_link = mount / "..data_tmp"
        tmp_link.symlink_to(folder.name)
        os.replace(tmp_link, mount / "..data")

    publish("cm-1", 1)
    (mount / "bundle.tar.gz").symlink_to("..data/bundle.tar.gz")
    server = start_server(tmp_path, f"--bundle={mount / 'bundle.tar.gz'}", env={"RUST_LOG": "warn"})
    try:
        def revision():
            return requests.get(server.admin + "/v1/status", timeout=5).json()["manifest_revision"]
        assert revision() == "cm-1"
        publish("cm-2", 2)
        deadline = time.monotonic() + 15
        while revision() != "cm-2" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert revision() == "cm-2", server.log()
    finally:
        assert server.stop() == 0


# ── issue 15: remote signed bundles, shadow bundle, decision-log shipping ─

from test_remote_bundle import Nginx, build, bundle_dir, keypair, moto, revision_of, status  # noqa: E402,F401

BOB_START = {"principal": {"arn": "arn:aws:iam::111111111111:user/engineering/bob"},
             "action": "ec2:StartInstances",
             "resource": "arn:aws:ec2:us-east-1:111111111111:instance/i-0abc",
             "context": {"aws:RequestedRegion": "us-east-1", "ec2:ResourceTag/team": "blue",
                         "aws:SourceIp": "203.0.113.77"}}


def serve_help_flags():
    p = subprocess.run([str(conftest_binary()), "serve", "--help"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return set(re.findall(r"--[a-z0-9-]+", p.stdout))


def conftest_binary():
    from conftest import BINARY
    return BINARY


@pytest.mark.parametrize("case", list(CASES))
def test_rendered_flags_exist_in_serve_help(rendered, case):
    """issue 15: every flag the chart renders (remote bundle, cache, keys,
    decision-diff gate, shadow bundle, shipping included) is one that
    `iamgate serve --help` lists: a renamed flag fails here, not in a pod."""
    _, docs = rendered[case]
    args = container(one(docs, "Deployment"), "iamgate")["args"]
    flags = {a.split("=", 1)[0] for a in args if a.startswith("--")}
    unknown = flags - serve_help_flags()
    assert not unknown, unknown


@pytest.mark.parametrize("sets, expect", [
    (["bundle.url=https://b.example.com/x.tar.gz", "bundle.configMap.name=a"],
     "at '/bundle/configMap/name'"),
    (["bundle.url=https://b.example.com/x.tar.gz", "bundle.files.manifest\\.json=x"],
     "at '/bundle/files'"),
    (["bundle.url=ftp://b.example.com/x.tar.gz"], "does not match pattern"),
    (["bundle.url=s3://bucket-without-key"], "does not match pattern"),
    (["bundle.verifyKeys.configMap=a", "bundle.verifyKeys.secret=b",
      "bundle.verifyKeys.keys[0]=k.pem"], "at '/bundle/verifyKeys'"),
    (["decisionLogShipping.masks[0]=password"], "does not match pattern"),
    (["decisionDiff.maxChangedDecisions=-1"], "minimum"),
    (["bundle.cacheDir=/tmp"], "additional properties 'cacheDir' not allowed"),
])
def test_contradictory_fleet_values_are_refused_by_the_schema(helm, sets, expect):
    """issue 15: values.schema.json refuses a remote url beside another
    bundle source, a scheme iamgate does not fetch, two key sources, an
    unknown mask; `helm lint --strict` and `helm template` both refuse."""
    rc, out = render(helm, [], *sets)
    assert rc != 0 and expect in out, out
    args = [helm, "lint", "--strict", CHART]
    for s in sets:
        args += ["--set", s]
    rc, out = run(args)
    assert rc != 0 and expect in out, out


@pytest.mark.parametrize("sets, expect", [
    (["bundle.cache.enabled=true"], "bundle.cache keeps a remote bundle"),
    (["bundle.url=https://b.example.com/x.tar.gz"], "allow that egress in networkPolicy.egress"),
    (["mode=sidecar", "bundle.url=s3://b/k", "bundle.caFile.configMap=ca"], "bundle.caFile is for an https://"),
    (["mode=sidecar", "bundle.url=https://b/k", "bundle.s3.pathStyle=true"], "bundle.s3 is for an s3://"),
    (["mode=sidecar", "bundle.url=s3://b/k", "bundle.longPoll=30"], "bundle.longPoll is for an http(s)://"),
    (["bundle.verifyKeys.keys[0]=k.pem"], "needs bundle.verifyKeys.configMap or bundle.verifyKeys.secret"),
    (["bundle.verifyKeys.secret=keys"], "list the PEM files to trust"),
    (["mode=sidecar", "bundle.url=s3://b/k", "bundle.cache.enabled=true",
      "bundle.cache.existingClaim=pvc"], "one PVC cannot hold the cache of several replicas"),
    (["shadowBundle.configMap.name=a", "shadowBundle.volume.emptyDir.medium=Memory"],
     "shadowBundle: set only one of"),
])
def test_unsafe_fleet_combinations_are_refused(helm, sets, expect):
    """issue 15: the chart refuses what the schema cannot express: options
    of another scheme, a cache without a remote source, keys without their
    ConfigMap/Secret, one PVC for several caches, a remote source behind a
    NetworkPolicy that denies every egress."""
    rc, out = render(helm, [], *sets)
    assert rc != 0 and expect in out, out


def test_remote_bundle_values_golden(rendered):
    """issue 15: the remote source mounts no bundle volume; keys and the CA
    come from their read-only ConfigMaps; the cache is the emptyDir."""
    _, docs = rendered["remote-bundle"]
    dep = one(docs, "Deployment")
    ig, volumes = assert_iamgate_pod(dep, expect_grpc_probe=True)
    mounts = {m["mountPath"]: volumes[m["name"]] for m in ig["volumeMounts"]}
    assert "/etc/iamgate/bundle" not in mounts
    assert "--bundle=https://bundles.example.com/prod/bundle.tar.gz" in ig["args"]
    assert mounts["/etc/iamgate/bundle-keys"]["configMap"]["name"] == "iamgate-bundle-keys"
    assert mounts["/etc/iamgate/bundle-ca"]["configMap"]["name"] == "bundle-server-ca"
    assert "emptyDir" in mounts["/var/lib/iamgate/bundle-cache"]
    assert [a for a in ig["args"] if a.startswith("--bundle-verify-key")] == [
        "--bundle-verify-key=/etc/iamgate/bundle-keys/current.pem",
        "--bundle-verify-key=/etc/iamgate/bundle-keys/next.pem"]
    np = one(docs, "NetworkPolicy")
    assert {p["port"] for rule in np["spec"]["egress"] for p in rule["ports"]} >= {443, 53}


def test_remote_bundle_values_start_the_real_binary(rendered, tmp_path):
    """issue 15: ci/remote-bundle-values.yaml's flags and mounts, with the
    bundle URL pointed at the real nginx over TLS (certificate from the CA
    the ConfigMap holds): the signed bundle loads under the rendered keys,
    lands in the cache volume, and after the source goes away a restarted
    container is ready on the cached bundle, marked stale."""
    _, docs = rendered["remote-bundle"]
    dep = one(docs, "Deployment")
    pki = make_pki(tmp_path)
    current, nxt = keypair(tmp_path, "current"), keypair(tmp_path, "next")
    site = tmp_path / "site"
    site.mkdir()
    build(bundle_dir(tmp_path, "fleet-1"), site / "bundle.tar.gz", current[0])
    nginx = Nginx(tmp_path, site, tls=(pki / "server.pem", pki / "server.key"))
    files = {"/etc/iamgate/bundle-keys": {"current.pem": current[1], "next.pem": nxt[1]},
             "/etc/iamgate/bundle-ca": {"ca.crt": pki / "ca.pem"}}
    endpoints = {"--bundle": nginx.url("bundle.tar.gz"), "--bundle-poll-interval": "1"}
    try:
        server, args = start_with_rendered_args(docs, dep, tmp_path / "first", pki, files, endpoints)
        try:
            assert revision_of(server).startswith("fleet-1+"), server.log()
            src = status(server)["bundle_source"]
            assert src["stale"] is False and src["kind"] in ("http", "https"), src
        finally:
            assert server.stop() == 0
    finally:
        nginx.stop()
    cache = tmp_path / "first" / "root" / "var" / "lib" / "iamgate" / "bundle-cache"
    assert any(cache.iterdir()), "nothing in the cache volume"
    # The container restarts with the same emptyDir (materialize keeps what
    # the volumes hold) while the source is down.
    server, _ = start_with_rendered_args(docs, dep, tmp_path / "first", pki, files, endpoints)
    try:
        assert revision_of(server).startswith("fleet-1+"), server.log()
        src = status(server)["bundle_source"]
        assert src["stale"] is True and src["served_from"] == "cache", src
        metrics = requests.get(server.admin + "/metrics", timeout=5).text
        assert "iamgate_bundle_source_stale 1" in metrics
    finally:
        assert server.stop() == 0


class TlsReceiver:
    """A decision-log receiver over TLS (Python's http.server with the
    test CA's server certificate): records the gzip'd JSON arrays POSTed."""

    def __init__(self, pki):
        import gzip
        import http.server
        import ssl
        import threading

        self.records = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                outer.records += json.loads(body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki / "server.pem", pki / "server.key")
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}/v1/decisions"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_fleet_values_start_the_real_binary(rendered, tmp_path, moto):
    """issue 15: ci/fleet-values.yaml's sidecar flags, env and mounts, with
    the S3 endpoint pointed at moto (signatures verified by moto, credentials
    from the env the chart maps from the Secret), the decision-log receiver
    at a local TLS server trusted through the rendered CA Secret, and the
    shadow bundle from its ConfigMap mount: the signed bundle loads, the
    shadow is active, a decision is shipped with the masked context key."""
    import boto3

    _, docs = rendered["fleet"]
    dep = one(docs, "Deployment")
    pki = make_pki(tmp_path)
    signer = keypair(tmp_path, "signer")
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
    archive, shadow = tmp_path / "bundle.tar.gz", tmp_path / "shadow.tar.gz"
    build(bundle_dir(tmp_path, "fleet-1"), archive, signer[0])
    build(bundle_dir(tmp_path, "fleet-2"), shadow, signer[0])
    s3.put_object(Bucket="policy-bundles", Key="prod/bundle.tar.gz", Body=archive.read_bytes())

    receiver = TlsReceiver(pki)
    otlp_port = free_port()  # nothing listens: OTLP export fails and is retried off the path
    files = {"/etc/iamgate/bundle-keys": {"bundle-verify.pem": signer[1]},
             "/etc/iamgate/shadow-bundle": {"bundle.tar.gz": shadow}}
    endpoints = {"--bundle-s3-endpoint": moto, "--decision-log-http": receiver.url,
                 "--decision-log-otlp": f"http://127.0.0.1:{otlp_port}"}
    secrets_data = {"iamgate-bundle-reader": {"AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                                              "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}}
    try:
        server, args = start_with_rendered_args(docs, dep, tmp_path, pki, files, endpoints,
                                                secrets_data)
        try:
            assert revision_of(server).startswith("fleet-1+"), server.log()
            st = status(server)
            assert st["bundle_source"]["kind"] == "s3", st["bundle_source"]
            assert json.dumps(st["shadow"]).count("fleet-2+") >= 1, st["shadow"]
            r = server.authorize(BOB_START)
            assert r.status_code == 200 and r.json()["decision"] == "allowed", r.text
            deadline = time.monotonic() + 10
            while not receiver.records and time.monotonic() < deadline:
                time.sleep(0.1)
            assert receiver.records, server.log()
            shipped = json.dumps(receiver.records)
            assert "ec2:StartInstances" in shipped
            assert "203.0.113.77" not in shipped  # --decision-log-mask=context.aws:SourceIp
        finally:
            server.stop()
    finally:
        receiver.stop()
