"""Installing Edgeline with its Helm chart (helm/edgeline), as a cluster administrator does.

First what the chart renders (helm lint / helm template, default and other values, no cluster
needed), then the chart installed and upgraded on the hub, and finally the operator run with the
chart's ServiceAccount token, so that a permission the chart forgot fails here (403 in the log)
rather than in a user's cluster. The kubectl plugin is checked against the EdgeDeployment that
operator rolls out. helm is built by dev/build-tools.sh; without it these tests fail.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from edgeline.domain.quantities import format_bytes
from edgeline.settings import Settings
from tests.e2e.conftest import ROOT, STATE_DIR, OperatorProcess, kubectl_binary, wait_for
from tests.helpers.artifact_server import serve

CHART = ROOT / "helm" / "edgeline"
INSTALL_YAML = ROOT / "manifests" / "install.yaml"
DASHBOARD = ROOT / "manifests" / "grafana" / "edgeline-dashboard.json"
RELEASE_NAMESPACE = "edgeline-helm"
MODELS = ROOT / "manifests" / "samples" / "models"
SAMPLE_DIGESTS = {d["spec"]["version"]: d["spec"]["artifact"]["sha256"] for d in yaml.safe_load_all(
    (ROOT / "manifests" / "samples" / "20-mlmodels.yaml").read_text())}


def helm_binary() -> Path:
    versions = dict(line.split("=", 1) for line in (ROOT / "dev" / "versions.env").read_text().splitlines()
                    if "=" in line and not line.startswith("#"))
    cache = Path(os.environ.get("EDGELINE_CACHE", Path.home() / ".cache" / "edgeline"))
    return cache / "bin" / f"helm-{versions['HELM_VERSION'].strip()}"


@pytest.fixture(scope="session")
def helm():
    binary = helm_binary()
    if not os.access(binary, os.X_OK):
        pytest.fail(f"helm is not built ({binary} is missing): run `bash dev/build-tools.sh helm`", pytrace=False)

    def run(*args: str, kubeconfig: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, "HELM_CACHE_HOME": str(STATE_DIR / "helm" / "cache"),
               "HELM_CONFIG_HOME": str(STATE_DIR / "helm" / "config"),
               "HELM_DATA_HOME": str(STATE_DIR / "helm" / "data")}
        if kubeconfig:
            env["KUBECONFIG"] = str(kubeconfig)
        proc = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=180, env=env, cwd=ROOT)
        if check and proc.returncode != 0:
            pytest.fail(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}", pytrace=False)
        return proc
    return run


def render(helm, *values: str) -> list[dict]:
    out = helm("template", "edgeline", str(CHART), "--namespace", "edgeline-system", *values).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def one(objects: list[dict], kind: str, name: str | None = None) -> dict:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"{kind} {name}: {[o['metadata']['name'] for o in found]}"
    return found[0]


def env_of(deployment: dict) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


# --- what the chart renders ----------------------------------------------------------------------

def test_the_charts_copies_of_crds_rules_and_user_roles_match_their_sources():
    proc = subprocess.run([sys.executable, str(ROOT / "helm" / "sync-crds.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (CHART / "crds").glob("*.yaml")) == sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))


def test_helm_lint_passes_with_default_and_other_values(helm):
    helm("lint", "--strict", str(CHART))
    helm("lint", "--strict", str(CHART), "--set", "metrics.serviceMonitor.enabled=true,prometheusRule.enabled=true,"
         "userRoles.create=false,image.tag=dev", "--set", "rbac.artifactCredentialNamespaces={factory}")


def test_the_default_operator_runs_locked_down_with_the_app_version_image(helm):
    objects = render(helm)
    deployment = one(objects, "Deployment", "edgeline-operator")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert container["image"] == f"ghcr.io/edgeline/operator:{app_version}"
    assert container["command"] == ["edgeline"]
    assert container["args"] == ["run", "--liveness", "http://0.0.0.0:8081/healthz"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]} and security["runAsNonRoot"] is True
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"][0]["name"] == "tmp" and "emptyDir" in pod["volumes"][0]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert pod["serviceAccountName"] == "edgeline-operator"
    env = env_of(deployment)
    assert env["EDGELINE_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert (env["EDGELINE_WEBHOOK_PORT"], env["EDGELINE_ALERTS_PORT"], env["EDGELINE_METRICS_PORT"]) == \
        ("9443", "8082", "8080")
    assert env["EDGELINE_WEBHOOK_SERVICE"] == "edgeline-webhook"
    assert env["EDGELINE_CLUSTER_PROBE_INTERVAL_S"] == "10"


def test_the_services_reach_the_webhook_the_alert_receiver_and_metrics(helm):
    objects = render(helm)
    ports = {o["metadata"]["name"]: o["spec"]["ports"][0] for o in objects if o["kind"] == "Service"}
    assert ports["edgeline-webhook"]["port"] == 9443 and ports["edgeline-webhook"]["targetPort"] == "webhook"
    assert ports["edgeline-alerts"]["port"] == 8082 and ports["edgeline-metrics"]["port"] == 8080
    container = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == \
        {"webhook": 9443, "alerts": 8082, "metrics": 8080, "health": 8081}
    selector = one(objects, "Deployment")["spec"]["selector"]["matchLabels"]
    for service in (o for o in objects if o["kind"] == "Service"):
        assert service["spec"]["selector"] == selector
    assert not [o for o in objects if o["kind"] in ("ServiceMonitor", "PrometheusRule")]


def _rules(objects: list[dict]) -> list[tuple[str, str, dict]]:
    return [(o["kind"], o["metadata"]["name"], rule) for o in objects
            if o["kind"] in ("ClusterRole", "Role") for rule in o.get("rules") or []]


def test_rbac_is_least_privilege_without_wildcards_or_cluster_admin(helm):
    objects = render(helm, "--set", "rbac.artifactCredentialNamespaces={factory,assembly}")
    for kind, name, rule in _rules(objects):
        for key in ("apiGroups", "resources", "verbs", "resourceNames"):
            assert "*" not in (rule.get(key) or []), f"{kind} {name} has a wildcard in {key}: {rule}"
    for binding in (o for o in objects if o["kind"] in ("ClusterRoleBinding", "RoleBinding")):
        assert binding["roleRef"]["name"] not in ("cluster-admin", "admin", "edit"), binding
    operator_rules = [r for kind, name, r in _rules(objects) if kind == "ClusterRole" and name == "edgeline-operator"]
    # Secrets are never granted cluster-wide: only in the release namespace and the namespaces listed.
    assert not [r for r in operator_rules if "secrets" in r["resources"]]
    secret_roles = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects
                    if o["kind"] == "Role" and any("secrets" in r["resources"] for r in o["rules"])}
    assert secret_roles == {("edgeline-system", "edgeline-operator"), ("factory", "edgeline-artifact-credentials"),
                            ("assembly", "edgeline-artifact-credentials")}
    webhook = next(r for r in operator_rules if "mutatingwebhookconfigurations" in r["resources"])
    assert webhook["resourceNames"] == ["edgeline-approvals"]
    binding = one(objects, "ClusterRoleBinding", "edgeline-operator")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "edgeline-operator",
                                    "namespace": "edgeline-system"}]
    # The user roles ship with the chart and still grant no */status.
    user_roles = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ClusterRole" and
                  o["metadata"]["name"] != "edgeline-operator"}
    assert set(user_roles) == {"edgeline-viewer", "edgeline-editor", "edgeline-approver"}
    assert not [r for role in user_roles.values() for r in role["rules"] if any("/" in x for x in r["resources"])]
    assert user_roles["edgeline-viewer"]["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"


def test_other_values_show_up_where_they_belong(helm, tmp_path):
    values = tmp_path / "values.yaml"
    # From a file numbers arrive as floats: they must still reach the operator as plain numbers.
    values.write_text(yaml.safe_dump({"settings": {"artifact_retries": 5, "artifact_retry_backoff_s": 0.5,
                                                   "webhook_manage_configuration": True, "artifact_ca_bundle": None}}))
    objects = render(helm, "-f", str(values), "--set", "image.tag=1.2.3-rc1,image.repository=registry.local/edgeline,ports.webhook=10443,"
                     "settings.artifact_max_bytes=1073741824,metrics.serviceMonitor.enabled=true,"
                     "metrics.serviceMonitor.labels.release=kube-prometheus-stack,prometheusRule.enabled=true,"
                     "userRoles.create=false,verbose=true", "--set", "watchNamespaces={factory,assembly}")
    deployment = one(objects, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.local/edgeline:1.2.3-rc1"
    assert container["args"][3:] == ["--namespace", "factory", "--namespace", "assembly", "--verbose"]
    env = env_of(deployment)
    assert env["EDGELINE_WEBHOOK_PORT"] == "10443" and env["EDGELINE_ARTIFACT_MAX_BYTES"] == "1073741824"
    assert (env["EDGELINE_ARTIFACT_RETRIES"], env["EDGELINE_ARTIFACT_RETRY_BACKOFF_S"],
            env["EDGELINE_WEBHOOK_MANAGE_CONFIGURATION"]) == ("5", "0.5", "true")
    assert "EDGELINE_ARTIFACT_CA_BUNDLE" not in env and env["EDGELINE_CLUSTER_PROBE_INTERVAL_S"] == "10"
    assert one(objects, "Service", "edgeline-webhook")["spec"]["ports"][0]["port"] == 10443
    monitor = one(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= \
        one(objects, "Service", "edgeline-metrics")["metadata"]["labels"].items()
    source = yaml.safe_load((ROOT / "manifests" / "monitoring" / "prometheusrule.yaml").read_text())
    assert one(objects, "PrometheusRule")["spec"] == source["spec"]
    assert {o["metadata"]["name"] for o in objects if o["kind"] == "ClusterRole"} == {"edgeline-operator"}
    # Plain namespace names need no access to namespaces; a pattern does (kopf watches them to match it).
    assert not [r for r in one(objects, "ClusterRole")["rules"] if "namespaces" in r["resources"]]
    patterned = one(render(helm, "--set", "watchNamespaces={factory-*}"), "ClusterRole", "edgeline-operator")
    assert {"resources": ["namespaces"], "verbs": ["list", "watch"], "apiGroups": [""]} in patterned["rules"]


def test_every_key_under_settings_is_an_operator_setting(helm):
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values["settings"]) <= set(Settings.model_fields)
    proc = helm("template", "x", str(CHART), "--set", "settings.webhook_port=1", check=False)
    assert proc.returncode != 0 and "settings.webhook_port is set by the chart" in proc.stderr


def test_install_yaml_is_the_chart_rendered_with_default_values(helm):
    proc = subprocess.run([sys.executable, str(ROOT / "helm" / "render-install.py"), "--check"],
                          capture_output=True, text=True, env={**os.environ, "HELM": str(helm_binary())})
    assert proc.returncode == 0, proc.stderr
    objects = [d for d in yaml.safe_load_all(INSTALL_YAML.read_text()) if d]
    assert [o["kind"] for o in objects].count("CustomResourceDefinition") == 4
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] in ("Deployment", "Service", "Role")} == \
        {"edgeline-system"}


def test_install_yaml_is_accepted_by_a_real_api_server(hub):
    hub.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "edgeline-system"}})
    applied = hub.kubectl("apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", str(INSTALL_YAML))
    assert applied.stdout.count("serverside-applied (server dry run)") == \
        len([d for d in yaml.safe_load_all(INSTALL_YAML.read_text()) if d])


# --- the Grafana dashboard -----------------------------------------------------------------------

def _dashboard_expressions() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    panels = [p for top in board["panels"] for p in [top, *top.get("panels", [])]]
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    exprs += [a["expr"] for a in board["annotations"]["list"] if a.get("expr")]
    return exprs


def _as_promql(expr: str) -> str:
    """Grafana's variables replaced by what it would put there."""
    return expr.replace("$__rate_interval", "1m").replace("$namespace", ".*").replace(
        "$deployment", ".*").replace("$cluster", ".*")


def _known_series() -> set[str]:
    from edgeline import metrics  # noqa: F401  (registers the operator's metrics)
    from prometheus_client import REGISTRY
    from edgeline.runtime.metrics import RuntimeMetrics

    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    names = set()
    for registry in (REGISTRY, RuntimeMetrics({}).registry):
        for family in registry.collect():
            if family.name.startswith("edgeline_"):
                names |= {family.name + s for s in suffixes.get(family.type, ("",))}
    return names


def test_the_dashboard_uses_only_metrics_that_exist():
    known = _known_series()
    used = {m for expr in _dashboard_expressions() for m in re.findall(r"\bedgeline_[a-z_]+\b", expr)}
    assert used and used <= known, f"unknown metrics: {used - known}"
    # Every operator metric and every runtime metric has a panel.
    families = {re.sub(r"_(total|bucket|sum|count)$", "", m) for m in known}
    assert families <= {re.sub(r"_(total|bucket|sum|count)$", "", m) for m in used}


def test_every_dashboard_query_parses_with_promtool(tmp_path):
    from edgeline.devenv.monitoring import MonitoringError, promtool

    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"edgeline_dashboard:query{i}", "expr": _as_promql(e)}
        for i, e in enumerate(_dashboard_expressions())]}]}
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    try:
        proc = promtool("check", "rules", str(path))
    except MonitoringError as exc:
        pytest.fail(f"promtool is needed to check the dashboard: {exc}", pytrace=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- installed on the hub --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hub_to_ourselves(operator):
    """The session's operator (admin kubeconfig) would reconcile the same objects and own the
    webhook configuration: it pauses while this module runs the chart's operator."""
    operator.stop()
    yield
    operator.start()


@pytest.fixture(scope="module")
def release(helm, hub, hub_to_ourselves):
    roles_before = hub.kubectl("get", "clusterrole", "edgeline-viewer", check=False).returncode == 0
    install = helm("install", "edgeline", str(CHART), "--namespace", RELEASE_NAMESPACE, "--create-namespace",
                   # The user roles may already be there (test_approvals applies manifests/rbac/user-roles.yaml).
                   "--take-ownership", kubeconfig=hub.kubeconfig)
    assert "STATUS: deployed" in install.stdout and "kubectl get mutatingwebhookconfiguration" in install.stdout
    yield RELEASE_NAMESPACE
    helm("uninstall", "edgeline", "--namespace", RELEASE_NAMESPACE, kubeconfig=hub.kubeconfig, check=False)
    hub.kubectl("delete", "mutatingwebhookconfiguration", "edgeline-approvals", "--ignore-not-found", check=False)
    if roles_before:   # the uninstall took the adopted user roles along; leave the hub as it was
        hub.kubectl("apply", "-f", str(ROOT / "manifests" / "rbac" / "user-roles.yaml"))


def _operator_pod_ready(hub):
    pods = hub.get("pods", "-n", RELEASE_NAMESPACE, "-l", "app.kubernetes.io/component=operator")["items"]
    running = [p for p in pods if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]
    return running[0] if len(running) == 1 else None


def test_helm_install_then_upgrade_changes_the_running_deployment(helm, hub, release):
    hub.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/edgedeployments.edgeline.io")
    deployment = hub.get("deployment", "edgeline-operator", "-n", release)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].startswith("ghcr.io/edgeline/operator:")
    wait_for(lambda: _operator_pod_ready(hub), timeout=90, what="the operator Pod Running (kwok)")
    for name in ("edgeline-webhook", "edgeline-alerts", "edgeline-metrics"):
        hub.get("service", name, "-n", release)
    assert hub.kubectl("auth", "can-i", "patch", "edgedeployments.edgeline.io/status",
                       f"--as=system:serviceaccount:{release}:edgeline-operator", check=False).stdout.strip() == "yes"
    assert hub.kubectl("auth", "can-i", "get", "secrets", "-n", "default",
                       f"--as=system:serviceaccount:{release}:edgeline-operator", check=False).stdout.strip() == "no"

    helm("upgrade", "edgeline", str(CHART), "--namespace", release, "--reuse-values", "--set",
         "image.tag=0.1.1,settings.cluster_probe_interval_s=5,metrics.serviceMonitor.enabled=false",
         kubeconfig=hub.kubeconfig)
    upgraded = hub.get("deployment", "edgeline-operator", "-n", release)
    container = upgraded["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/edgeline/operator:0.1.1"
    assert env_of(upgraded)["EDGELINE_CLUSTER_PROBE_INTERVAL_S"] == "5"
    assert upgraded["metadata"]["generation"] > deployment["metadata"]["generation"]
    history = json.loads(helm("history", "edgeline", "-n", release, "-o", "json", kubeconfig=hub.kubeconfig).stdout)
    assert [h["revision"] for h in history] == [1, 2] and history[-1]["status"] == "deployed"
    wait_for(lambda: (p := _operator_pod_ready(hub)) and
             p["spec"]["containers"][0]["image"].endswith(":0.1.1"), timeout=90, what="the upgraded operator Pod")


# --- the operator, with exactly the chart's permissions ------------------------------------------------

def _service_account_kubeconfig(hub, namespace: str, path: Path) -> Path:
    token = hub.kubectl("create", "token", "edgeline-operator", "-n", namespace, "--duration=2h").stdout.strip()
    admin = yaml.safe_load(hub.kubeconfig.read_text())
    cluster = admin["clusters"][0]
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "clusters": [cluster],
        "users": [{"name": "edgeline-operator", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": cluster["name"], "user": "edgeline-operator",
                                               "namespace": namespace}}],
        "current-context": "sa"}))
    path.chmod(0o600)
    return path


class ChartOperator(OperatorProcess):
    """`edgeline run` with the ServiceAccount's kubeconfig, in the release namespace."""

    def __init__(self, kubeconfig: Path, log: Path, namespace: str):
        super().__init__(kubeconfig, log)
        self.namespace = namespace

    def start(self) -> None:
        import tests.e2e.conftest as conftest

        before = conftest.OPERATOR_NAMESPACE
        conftest.OPERATOR_NAMESPACE = self.namespace   # OperatorProcess.start reads it for EDGELINE_NAMESPACE
        try:
            super().start()
        finally:
            conftest.OPERATOR_NAMESPACE = before


@pytest.fixture(scope="module")
def chart_operator(hub, release, tmp_path_factory):
    kubeconfig = _service_account_kubeconfig(hub, release, tmp_path_factory.mktemp("sa") / "operator.kubeconfig")
    log = STATE_DIR / "operator-helm.log"
    log.unlink(missing_ok=True)
    # What the operator creates on its first start must be created by this ServiceAccount, not found
    # left over from an earlier run or from the session's operator.
    hub.kubectl("delete", "mutatingwebhookconfiguration", "edgeline-approvals", "--ignore-not-found")
    hub.kubectl("delete", "secret", "-n", release, "--ignore-not-found", "edgeline-approval-key",
                "edgeline-webhook-tls", "edgeline-alerts")
    op = ChartOperator(kubeconfig, log, release)
    op.start()
    yield op
    op.stop()


def _forbidden(log: Path, hub=None, namespace: str | None = None) -> list[str]:
    """403s in the operator's log, and (some controllers report a refused call in status or an
    Event rather than in the log) in the Events and status of the test namespace's objects."""
    found = [line for line in log.read_text(errors="replace").splitlines()
             if re.search(r"\b403\b|forbidden", line, re.IGNORECASE)]
    if hub is not None:
        for kinds, ns in (("events,edgedeployments,datapipelines,mlmodels", namespace), ("events", "default")):
            for obj in hub.get(kinds, "-n", ns)["items"]:
                text = json.dumps({"message": obj.get("message"), "status": obj.get("status")})
                match = re.search(r"forbidden", text, re.IGNORECASE)
                if match:
                    found.append(f"{obj['kind']} {obj['metadata']['name']}: "
                                 f"...{text[max(0, match.start() - 300):match.end() + 200]}...")
    return found


@pytest.fixture(scope="module")
def rolled_out(hub, edge_a, release, chart_operator):
    """Given the chart installed and its operator running, when a user registers an edge cluster,
    adds a model and deploys it, then it rolls out: the state the plugin tests read."""
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    cluster = f"helm-{uuid.uuid4().hex[:5]}"
    hub.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    hub.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"{cluster}-kubeconfig", "namespace": release},
               "stringData": {"kubeconfig": edge_a.kubeconfig.read_text()}})
    hub.apply({"apiVersion": "edgeline.io/v1alpha1", "kind": "EdgeCluster",
               "metadata": {"name": cluster, "labels": {"edgeline.io/fleet": cluster}},
               "spec": {"tier": "edge", "targetNamespace": f"ns-{cluster}",
                        "connection": {"kubeconfigSecretRef": {"name": f"{cluster}-kubeconfig"}}}})
    with serve(MODELS) as url:
        for version in ("1.0.0", "2.0.0"):
            hub.apply({"apiVersion": "edgeline.io/v1alpha1", "kind": "MLModel",
                       "metadata": {"name": f"detector-{version}", "namespace": namespace},
                       "spec": {"model": "defect-detector", "version": version, "stage": "production",
                                "artifact": {"uri": f"{url}/defect-detector-{version}.onnx",
                                             "sha256": SAMPLE_DIGESTS[version]}}})
        hub.kubectl("wait", f"edgecluster/{cluster}", "--for=condition=Ready", "--timeout=60s")
        for version in ("1.0.0", "2.0.0"):
            hub.kubectl("wait", f"mlmodel/detector-{version}", "-n", namespace, "--for=condition=Ready",
                        "--timeout=90s", timeout=120)
        hub.apply(_deployment(namespace, cluster, "1.0.0"))
        hub.kubectl("wait", "edgedeployment/detector", "-n", namespace, "--for=jsonpath={.status.phase}=Healthy",
                    "--timeout=120s", timeout=150)
        yield namespace, cluster, url
    hub.kubectl("delete", "datapipelines,edgedeployments", "--all", "-n", namespace, "--timeout=60s", check=False)
    hub.kubectl("delete", "edgecluster", cluster, "--wait=false", check=False)
    hub.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _deployment(namespace: str, cluster: str, version: str) -> dict:
    return {"apiVersion": "edgeline.io/v1alpha1", "kind": "EdgeDeployment",
            "metadata": {"name": "detector", "namespace": namespace},
            "spec": {"modelRef": {"name": f"detector-{version}"},
                     "placement": {"clusterSelector": {"matchLabels": {"edgeline.io/fleet": cluster}}},
                     "runtime": {"replicas": 1},
                     "rollout": {"waves": [{"name": "pilot", "selector": {"matchLabels": {
                         "edgeline.io/fleet": cluster}}}], "waveTimeoutSeconds": 60},
                     "approval": {"required": False}}}


def test_the_operator_does_its_work_with_only_the_charts_permissions(hub, edge_a, release, chart_operator,
                                                                    rolled_out):
    namespace, cluster, _ = rolled_out
    status = hub.get("edgedeployment", "detector", "-n", namespace)["status"]
    assert status["ready"] == "1/1" and status["clusters"][0]["name"] == cluster
    assert edge_a.get("deployments", "-n", f"ns-{cluster}", "-l", "edgeline.io/deployment=detector")["items"]
    config = hub.get("mutatingwebhookconfiguration", "edgeline-approvals")
    assert config["webhooks"][0]["clientConfig"]["url"].startswith("https://127.0.0.1:")
    for secret in ("edgeline-approval-key", "edgeline-webhook-tls"):
        assert hub.get("secret", secret, "-n", release)["metadata"]["labels"]["app.kubernetes.io/part-of"] == "edgeline"
    # Events were posted (cluster-scoped objects' go to default).
    assert hub.get("events", "-n", namespace, "--field-selector", "involvedObject.name=detector")["items"]
    assert not _forbidden(chart_operator.log, hub, namespace), "\n".join(_forbidden(chart_operator.log, hub, namespace))


def test_a_datapipeline_runs_its_hub_step_and_registers_its_model_with_only_the_charts_permissions(
        hub, rolled_out, chart_operator):
    namespace, _, url = rolled_out
    # kwok ends the step's container with this exit code and termination message (the step's outputs).
    outputs = {"uri": f"{url}/defect-detector-2.0.0.onnx", "sha256": SAMPLE_DIGESTS["2.0.0"]}
    hub.apply({"apiVersion": "edgeline.io/v1alpha1", "kind": "DataPipeline",
               "metadata": {"name": "retrain", "namespace": namespace},
               "spec": {"steps": [{"name": "train", "image": "example/trainer:1", "podAnnotations": {
                   "kwok.edgeline.io/exit-code": "0", "kwok.edgeline.io/termination-message": json.dumps(outputs)}}],
                        "produces": {"fromStep": "train", "model": "defect-detector"}}})
    hub.kubectl("annotate", "--overwrite", "datapipeline", "retrain", "-n", namespace, "edgeline.io/run-now=helm")
    def finished():
        status = hub.get("datapipeline", "retrain", "-n", namespace).get("status") or {}
        refused = re.search("forbidden", json.dumps(status), re.IGNORECASE)
        return status if status.get("phase") in ("Succeeded", "Failed") or refused else None
    status = wait_for(finished, timeout=90, what="the pipeline run to end")
    assert not _forbidden(chart_operator.log, hub, namespace), "\n".join(_forbidden(chart_operator.log, hub, namespace))
    assert status["phase"] == "Succeeded", json.dumps(status)[:2000]
    run = status["runs"][0]
    assert hub.get("jobs", "-n", namespace)["items"], "the step ran as a Job on the hub"
    hub.kubectl("wait", f"mlmodel/{run['producedModel']}", "-n", namespace, "--for=condition=Ready",
                "--timeout=60s")
    assert not _forbidden(chart_operator.log, hub, namespace), "\n".join(_forbidden(chart_operator.log, hub, namespace))


# --- the kubectl plugin on that deployment --------------------------------------------------------------

def plugin(hub, *args: str) -> subprocess.CompletedProcess:
    """`kubectl edgeline ...`: kubectl finds kubectl-edgeline on PATH (the venv's bin)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "KUBECONFIG": str(hub.kubeconfig)}
    if not (Path(sys.executable).parent / "kubectl-edgeline").exists():
        pytest.fail("kubectl-edgeline is not installed: reinstall the package (`make setup`, pyproject.toml "
                    "[project.scripts])", pytrace=False)
    return subprocess.run([kubectl_binary(), "edgeline", *args], capture_output=True, text=True, env=env,
                          timeout=60)


def test_kubectl_edgeline_status_history_models_and_rollback(hub, rolled_out, chart_operator):
    namespace, cluster, _ = rolled_out
    status = hub.get("edgedeployment", "detector", "-n", namespace)["status"]
    first = status["currentRevision"]["revision"]

    tree = plugin(hub, "status", "detector", "-n", namespace)
    assert tree.returncode == 0, tree.stderr
    lines = tree.stdout.splitlines()
    assert lines[0] == f"{namespace}/detector  Healthy  1/1 ready  revision {first} (defect-detector 1.0.0)"
    assert "└── wave pilot  1/1 ready" in lines
    assert re.fullmatch(rf"    └── {cluster}  Ready  {first}  1/1 pods  seen \d+s ago", lines[-1]), lines
    data = json.loads(plugin(hub, "status", "detector", "-n", namespace, "-o", "json").stdout)
    assert data["waves"][0]["clusters"][0]["name"] == cluster and data["phase"] == "Healthy"

    models = plugin(hub, "models", "-n", namespace).stdout.splitlines()
    size = format_bytes((MODELS / "defect-detector-1.0.0.onnx").stat().st_size)
    assert models[1].split()[:7] == ["detector-1.0.0", "defect-detector", "1.0.0", "Ready", "17", size, "detector"], models

    # A second version rolls out; then the plugin rolls back to the first by a prefix of its revision.
    hub.apply(_deployment(namespace, cluster, "2.0.0"))
    wait_for(lambda: (s := hub.get("edgedeployment", "detector", "-n", namespace)["status"]).get("phase") == "Healthy"
             and s["currentRevision"]["revision"] != first, timeout=120, what="version 2.0.0 rolled out")
    history = plugin(hub, "history", "detector", "-n", namespace).stdout.splitlines()
    assert history[0].split()[:4] == ["REVISION", "MODEL", "VERSION", "OUTCOME"]
    assert [row.split()[2] for row in history[1:3]] == ["2.0.0", "1.0.0"] and history[1].startswith("*")

    rollback = plugin(hub, "rollback", "detector", "-n", namespace, "--to", first[:6])
    assert rollback.returncode == 0 and f"to revision {first} requested" in rollback.stdout, rollback.stderr
    wait_for(lambda: hub.get("edgedeployment", "detector", "-n", namespace)["status"].get(
        "currentRevision", {}).get("revision") == first, timeout=90, what="the rollback to the first revision")
    record = hub.get("edgedeployment", "detector", "-n", namespace)["status"]["rollbacks"][0]
    assert record["mode"] == "Manual" and record["toRevision"] == first
    unknown = plugin(hub, "rollback", "detector", "-n", namespace, "--to", "zzzz")
    assert unknown.returncode == 1 and "no revision 'zzzz'" in unknown.stderr
    assert not _forbidden(chart_operator.log, hub, namespace), "\n".join(_forbidden(chart_operator.log, hub, namespace))
