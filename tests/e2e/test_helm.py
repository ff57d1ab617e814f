"""Installing Edgeline with its Helm chart (helm/edgeline) on the hub, as a cluster administrator
does: the chart installed and upgraded, then the operator run with the chart's ServiceAccount
token, so that a permission the chart forgot fails here (403 in the log) rather than in a user's
cluster. The kubectl plugin is checked against the EdgeDeployment that operator rolls out. What
the chart renders (no cluster needed) is tested in tests/integration/test_chart.py. helm is built
by dev/build-tools.sh; without it these tests fail.
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
from tests.e2e.conftest import (STATE_DIR, OperatorProcess, apply_sample_models, approval_policies_enforced,
                                install_approval_policies, kubectl_binary, register_edge_cluster,
                                remove_approval_policies, wait_for)
from tests.helpers.artifact_server import serve
from tests.helpers.chart import CHART, ROOT, env_of, helm_runner
from tests.helpers.kubeconfig import token_kubeconfig
from tests.helpers.manifests import SAMPLE_DIGESTS, SAMPLE_MODELS, edge_deployment

INSTALL_YAML = ROOT / "manifests" / "install.yaml"
RELEASE_NAMESPACE = "edgeline-helm"


@pytest.fixture(scope="session")
def helm():
    return helm_runner()


# --- what the chart renders is tested in tests/integration/test_chart.py ------------------

def test_install_yaml_is_accepted_by_a_real_api_server(hub):
    hub.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "edgeline-system"}})
    applied = hub.kubectl("apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", str(INSTALL_YAML))
    assert applied.stdout.count("serverside-applied (server dry run)") == \
        len([d for d in yaml.safe_load_all(INSTALL_YAML.read_text()) if d])


# --- installed on the hub --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hub_to_ourselves(operator):
    """The session's operator (admin kubeconfig) would reconcile the same objects: it pauses while
    this module runs the chart's operator."""
    operator.stop()
    yield
    operator.start()


@pytest.fixture(scope="module")
def release(helm, hub, hub_to_ourselves):
    roles_before = hub.kubectl("get", "clusterrole", "edgeline-viewer", check=False).returncode == 0
    remove_approval_policies(hub)
    install = helm("install", "edgeline", str(CHART), "--namespace", RELEASE_NAMESPACE, "--create-namespace",
                   # The user roles may already be there (test_approvals applies manifests/rbac/user-roles.yaml).
                   "--take-ownership", kubeconfig=hub.kubeconfig)
    assert "STATUS: deployed" in install.stdout and "kubectl get validatingadmissionpolicies" in install.stdout
    approval_policies_enforced(hub)     # now the chart's
    yield RELEASE_NAMESPACE
    helm("uninstall", "edgeline", "--namespace", RELEASE_NAMESPACE, kubeconfig=hub.kubeconfig, check=False)
    if roles_before:   # the uninstall took the adopted user roles along; leave the hub as it was
        hub.kubectl("apply", "-f", str(ROOT / "manifests" / "rbac" / "user-roles.yaml"))
    install_approval_policies(hub)      # and the adopted admission policies


def _operator_pods_ready(hub, replicas: int = 2):
    """The operator's Pods once exactly the chart's replicaCount (2) of them run."""
    pods = hub.get("pods", "-n", RELEASE_NAMESPACE, "-l", "app.kubernetes.io/component=operator")["items"]
    running = [p for p in pods if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]
    return running if len(running) == replicas else None


def test_helm_install_then_upgrade_changes_the_running_deployment(helm, hub, release):
    hub.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/edgedeployments.edgeline.io")
    deployment = hub.get("deployment", "edgeline-operator", "-n", release)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].startswith("ghcr.io/edgeline/operator:")
    wait_for(lambda: _operator_pods_ready(hub), timeout=90, what="both operator Pods Running (kwok)")
    for name in ("edgeline-alerts", "edgeline-metrics"):
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
    wait_for(lambda: (pods := _operator_pods_ready(hub)) and
             all(p["spec"]["containers"][0]["image"].endswith(":0.1.1") for p in pods), timeout=90,
             what="the upgraded operator Pods")


# --- the operator, with exactly the chart's permissions ------------------------------------------------

def _service_account_kubeconfig(hub, namespace: str, path: Path) -> Path:
    token = hub.kubectl("create", "token", "edgeline-operator", "-n", namespace, "--duration=2h").stdout.strip()
    return token_kubeconfig(hub.kubeconfig, "edgeline-operator", token, path, namespace=namespace)


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
    hub.kubectl("delete", "secret", "-n", release, "--ignore-not-found", "edgeline-alerts", "edgeline-alerts-tls",
                "edgeline-ca")
    hub.kubectl("delete", "lease", "-n", release, "--ignore-not-found", "edgeline-operator-leader")
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
    # The kubeconfig Secret in the release namespace, where the chart's operator reads Secrets.
    register_edge_cluster(hub, cluster, edge_a, {"edgeline.io/fleet": cluster}, stale_after=None,
                          secret_namespace=release)
    with serve(SAMPLE_MODELS) as url:
        hub.kubectl("wait", f"edgecluster/{cluster}", "--for=condition=Ready", "--timeout=60s")
        apply_sample_models(hub, namespace, url, timeout=90)
        hub.apply(_deployment(namespace, cluster, "1.0.0"))
        hub.kubectl("wait", "edgedeployment/detector", "-n", namespace, "--for=jsonpath={.status.phase}=Healthy",
                    "--timeout=120s", timeout=150)
        yield namespace, cluster, url
    hub.kubectl("delete", "datapipelines,edgedeployments", "--all", "-n", namespace, "--timeout=60s", check=False)
    hub.kubectl("delete", "edgecluster", cluster, "--wait=false", check=False)
    hub.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _deployment(namespace: str, cluster: str, version: str) -> dict:
    fleet = {"edgeline.io/fleet": cluster}
    return edge_deployment(namespace, fleet, version, runtime={"replicas": 1},
                           rollout={"waves": [{"name": "pilot", "selector": {"matchLabels": fleet}}],
                                    "waveTimeoutSeconds": 60})


def test_the_operator_does_its_work_with_only_the_charts_permissions(hub, edge_a, release, chart_operator,
                                                                    rolled_out):
    namespace, cluster, _ = rolled_out
    status = hub.get("edgedeployment", "detector", "-n", namespace)["status"]
    assert status["ready"] == "1/1" and status["clusters"][0]["name"] == cluster
    assert edge_a.get("deployments", "-n", f"ns-{cluster}", "-l", "edgeline.io/deployment=detector")["items"]
    # Approvals are the chart's admission policies' business: the operator registers no webhook.
    assert hub.kubectl("get", "mutatingwebhookconfiguration", "edgeline-approvals", check=False).returncode != 0
    assert hub.get("validatingadmissionpolicy", "edgeline-approval-identity")["metadata"]["labels"][
        "app.kubernetes.io/instance"] == "edgeline"
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

    # USED BY is the MLModel's status.usedBy, which the operator writes shortly after the rollout.
    wait_for(lambda: hub.get("mlmodel", "detector-1.0.0", "-n", namespace).get("status", {}).get("usedBy"),
             timeout=30, what="MLModel detector-1.0.0 status.usedBy")
    models = plugin(hub, "models", "-n", namespace).stdout.splitlines()
    size = format_bytes((SAMPLE_MODELS / "defect-detector-1.0.0.onnx").stat().st_size)
    assert models[1].split()[:8] == ["detector-1.0.0", "defect-detector", "1.0.0", "Ready", "17", size,
                                     f"{namespace}/detector", "(current)"], models

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
