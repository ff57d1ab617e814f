"""What the Helm chart (helm/edgeline) renders, as a cluster administrator would install it:
helm lint and helm template with default and other values, the chart's copies of CRDs, rules and
roles, manifests/install.yaml, and the Grafana dashboard's queries (checked by promtool). Real
helm and promtool binaries, no cluster; tests/e2e/test_helm.py installs the chart on the hub.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from edgeline.settings import Settings
from tests.helpers.chart import CHART, ROOT, env_of, helm_binary, helm_runner, one, render

INSTALL_YAML = ROOT / "manifests" / "install.yaml"
DASHBOARD = ROOT / "manifests" / "grafana" / "edgeline-dashboard.json"


@pytest.fixture(scope="session")
def helm():
    return helm_runner()


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
    assert (env["EDGELINE_ALERTS_PORT"], env["EDGELINE_METRICS_PORT"]) == ("8082", "8080")
    # No admission endpoint: approvals are checked by the API server's admission policies.
    assert not [k for k in env if "WEBHOOK" in k]
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert env["EDGELINE_CLUSTER_PROBE_INTERVAL_S"] == "10"


def test_the_services_reach_the_alert_receiver_and_metrics(helm):
    objects = render(helm)
    ports = {o["metadata"]["name"]: o["spec"]["ports"][0] for o in objects if o["kind"] == "Service"}
    assert set(ports) == {"edgeline-alerts", "edgeline-metrics"}
    assert ports["edgeline-alerts"]["port"] == 8082 and ports["edgeline-metrics"]["port"] == 8080
    container = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"alerts": 8082, "metrics": 8080,
                                                                           "health": 8081}
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
    # Only to remove the approval webhook configuration of earlier releases.
    webhook = next(r for r in operator_rules if "mutatingwebhookconfigurations" in r["resources"])
    assert webhook["resourceNames"] == ["edgeline-approvals"] and webhook["verbs"] == ["delete"]
    # The operator writes no Approval and no ApprovalPolicy.
    assert {v for r in operator_rules if {"approvals", "approvalpolicies"} & set(r["resources"])
            for v in r["verbs"]} == {"list", "watch"}
    binding = one(objects, "ClusterRoleBinding", "edgeline-operator")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "edgeline-operator",
                                    "namespace": "edgeline-system"}]
    # The user roles ship with the chart and still grant no */status.
    user_roles = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ClusterRole" and
                  o["metadata"]["name"] != "edgeline-operator"}
    assert set(user_roles) == {"edgeline-viewer", "edgeline-editor", "edgeline-approver", "edgeline-platform"}
    # Namespace editors (aggregated into edit/admin) cannot write ApprovalPolicies or Approvals, nor approve.
    editor = [r for r in user_roles["edgeline-editor"]["rules"] if {"approvals", "approvalpolicies"} & set(r["resources"])
              or "approve" in r["verbs"]]
    assert {v for r in editor for v in r["verbs"]} == {"get", "list", "watch"}
    assert "rbac.authorization.k8s.io/aggregate-to-admin" not in user_roles["edgeline-platform"]["metadata"]["labels"]
    assert not [k for k in user_roles["edgeline-platform"]["metadata"]["labels"] if "aggregate" in k]
    assert not [r for role in user_roles.values() for r in role["rules"] if any("/" in x for x in r["resources"])]
    assert user_roles["edgeline-viewer"]["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"


def test_only_a_hub_with_pull_sites_may_create_namespaces_configmaps_leases_and_roles(helm):
    def operator_rules(*args):
        return [r for kind, name, r in _rules(render(helm, *args))
                if kind == "ClusterRole" and name == "edgeline-operator"]

    pull_only = {"serviceaccounts", "configmaps", "leases", "roles", "rolebindings"}
    assert not [r for r in operator_rules() if pull_only & set(r["resources"])]
    granted = {(res, verb) for r in operator_rules("--set", "pullSites.enabled=true")
               for res in r["resources"] for verb in r["verbs"]}
    assert {("namespaces", "create"), ("serviceaccounts", "create"), ("configmaps", "delete"),
            ("leases", "update"), ("roles", "create"), ("rolebindings", "create")} <= granted
    assert ("namespaces", "delete") not in granted and ("secrets", "get") not in granted
    tokens = [r for r in operator_rules("--set", "pullSites.enabled=true") if "serviceaccounts/token" in r["resources"]]
    assert tokens == [{"apiGroups": [""], "resources": ["serviceaccounts/token"], "resourceNames": ["edgeline-agent"],
                       "verbs": ["create"]}]           # what a site's Role grants its agent, and nothing more


def test_other_values_show_up_where_they_belong(helm, tmp_path):
    values = tmp_path / "values.yaml"
    # From a file numbers arrive as floats: they must still reach the operator as plain numbers.
    values.write_text(yaml.safe_dump({"settings": {"artifact_retries": 5, "artifact_retry_backoff_s": 0.5,
                                                   "artifact_ca_bundle": None}}))
    objects = render(helm, "-f", str(values), "--set", "image.tag=1.2.3-rc1,image.repository=registry.local/edgeline,ports.alerts=10443,"
                     "settings.artifact_max_bytes=1073741824,metrics.serviceMonitor.enabled=true,"
                     "metrics.serviceMonitor.labels.release=kube-prometheus-stack,prometheusRule.enabled=true,"
                     "userRoles.create=false,verbose=true", "--set", "watchNamespaces={factory,assembly}")
    deployment = one(objects, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.local/edgeline:1.2.3-rc1"
    assert container["args"][3:] == ["--namespace", "factory", "--namespace", "assembly", "--verbose"]
    env = env_of(deployment)
    assert env["EDGELINE_ALERTS_PORT"] == "10443" and env["EDGELINE_ARTIFACT_MAX_BYTES"] == "1073741824"
    assert (env["EDGELINE_ARTIFACT_RETRIES"], env["EDGELINE_ARTIFACT_RETRY_BACKOFF_S"]) == ("5", "0.5")
    assert "EDGELINE_ARTIFACT_CA_BUNDLE" not in env and env["EDGELINE_CLUSTER_PROBE_INTERVAL_S"] == "10"
    assert one(objects, "Service", "edgeline-alerts")["spec"]["ports"][0]["port"] == 10443
    monitor = one(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= \
        one(objects, "Service", "edgeline-metrics")["metadata"]["labels"].items()
    source = yaml.safe_load((ROOT / "manifests" / "monitoring" / "prometheusrule.yaml").read_text())
    assert one(objects, "PrometheusRule")["spec"] == source["spec"]
    assert {o["metadata"]["name"] for o in objects if o["kind"] == "ClusterRole"} == {"edgeline-operator"}
    # Namespaces are watched (list, watch) for their labels, which EdgeClusters' tenancy selectors and
    # ApprovalPolicies' namespaceSelectors read; nothing more on them.
    rules = [r for r in one(objects, "ClusterRole")["rules"] if "namespaces" in r["resources"]]
    assert rules == [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]}]


def test_every_key_under_settings_is_an_operator_setting(helm):
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values["settings"]) <= set(Settings.model_fields)
    proc = helm("template", "x", str(CHART), "--set", "settings.alerts_port=1", check=False)
    assert proc.returncode != 0 and "settings.alerts_port is set by the chart" in proc.stderr


def test_the_admission_policies_and_the_platform_s_approval_policies_are_rendered(helm):
    objects = render(helm, "--set-json", 'approvals.policies=[{"name": "lines", "spec": {"approverGroups": ["qa"], '
                                         '"minApprovers": 2}}]')
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert {("MutatingAdmissionPolicy", "edgeline-spec-authors"),
            ("ValidatingAdmissionPolicy", "edgeline-edgedeployment-authors"),
            ("ValidatingAdmissionPolicy", "edgeline-approval-identity"),
            ("ValidatingAdmissionPolicy", "edgeline-approval-pending"),
            ("MutatingAdmissionPolicy", "edgeline-mlmodel-creator"),
            ("ValidatingAdmissionPolicy", "edgeline-mlmodel-creator")} <= kinds
    for policy in (o for o in objects if o["kind"].endswith("AdmissionPolicy")):
        assert policy["spec"]["failurePolicy"] == "Fail"
        binding = one(objects, policy["kind"] + "Binding", policy["metadata"]["name"])
        assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert one(objects, "ApprovalPolicy", "lines")["spec"] == {"approverGroups": ["qa"], "minApprovers": 2}
    # Not optional: without them nobody would check who creates an Approval.
    assert "admissionPolicies" not in yaml.safe_load((CHART / "values.yaml").read_text())["approvals"]


def test_install_yaml_is_the_chart_rendered_with_default_values(helm):
    proc = subprocess.run([sys.executable, str(ROOT / "helm" / "render-install.py"), "--check"],
                          capture_output=True, text=True, env={**os.environ, "HELM": str(helm_binary())})
    assert proc.returncode == 0, proc.stderr
    objects = [d for d in yaml.safe_load_all(INSTALL_YAML.read_text()) if d]
    assert [o["kind"] for o in objects].count("CustomResourceDefinition") == 7
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] in ("Deployment", "Service", "Role")} == \
        {"edgeline-system"}


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
    from edgeline.runtime.metrics import INFERENCE_BUCKETS, RuntimeMetrics
    from edgeline.runtime.shadow import ShadowMetrics

    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    names = set()
    shadowing = RuntimeMetrics({})      # a runtime with a candidate in shadow has these too
    ShadowMetrics(shadowing.registry, shadowing.identity, "2", INFERENCE_BUCKETS)
    for registry in (REGISTRY, shadowing.registry):
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


# --- high availability, certificates, network policy (issue 15) ---------------------------------------

def test_two_replicas_roll_without_a_gap_and_may_hold_the_leader_lease(helm):
    objects = render(helm)
    deployment = one(objects, "Deployment", "edgeline-operator")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    env = env_of(deployment)
    assert env["EDGELINE_TLS_SOURCE"] == "operator" and env["EDGELINE_TENANCY_OPEN_WITHOUT_SECTION"] == "false"
    role = one(objects, "Role", "edgeline-operator")
    lease_rules = [r for r in role["rules"] if r.get("apiGroups") == ["coordination.k8s.io"]]
    assert {v for r in lease_rules for v in r["verbs"]} == {"create", "get", "update"}
    assert [r.get("resourceNames") for r in lease_rules if "update" in r["verbs"]] == [["edgeline-operator-leader"]]


def test_the_network_policy_lets_in_only_the_api_server_alertmanager_and_prometheus(helm):
    policy = one(render(helm), "NetworkPolicy", "edgeline-operator")
    ingress = {rule["ports"][0]["port"]: rule.get("from") for rule in policy["spec"]["ingress"]}
    monitoring = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert ingress == {"alerts": monitoring, "metrics": monitoring}
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert not [o for o in render(helm, "--set", "networkPolicy.enabled=false") if o["kind"] == "NetworkPolicy"]


def test_cert_manager_issues_the_serving_certificates_when_asked(helm):
    assert not [o for o in render(helm) if o["apiVersion"].startswith("cert-manager.io/")]
    objects = render(helm, "--set", "certManager.enabled=true")
    certificates = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Certificate"}
    assert set(certificates) == {"edgeline-ca", "edgeline-alerts-tls"}
    assert certificates["edgeline-alerts-tls"]["spec"]["dnsNames"][0] == "edgeline-alerts.edgeline-system.svc"
    assert env_of(one(objects, "Deployment", "edgeline-operator"))["EDGELINE_TLS_SOURCE"] == "secret"
