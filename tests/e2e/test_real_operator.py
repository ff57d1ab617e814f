"""`helm install` of the chart on the hub, with the operator image from the local registry: the
operator runs as a real Pod on the hub's real node, validates a model it fetches over the Pod
network, and counts an approval that the hub's API server admitted (the chart's admission
policies): a real approval, and a real refusal, go through them.

While this module runs, the session's operator (a host process) is paused: two operators
would reconcile the same objects.
"""

from __future__ import annotations

import json
import uuid

import pytest

from tests.e2e.conftest import (ROOT, approval_policies_enforced, install_approval_policies, remove_approval_policies,
                                wait_for)
from tests.e2e.test_approvals import approve, governed, people  # noqa: F401  (fixtures: roles, a policy)
from tests.helpers.chart import CHART, helm_runner
from tests.helpers import onnx_models, runtime_models
from tests.helpers.artifact_server import ArtifactServer

RELEASE = "edgeline-real"
REAL_NODE_LABEL = "edgeline.io/real-node"


@pytest.fixture(scope="module")
def helm():
    return helm_runner()


@pytest.fixture(scope="module")
def operator_image(dev_env) -> str:
    try:
        return dev_env.images["operator"]
    except (AttributeError, KeyError, RuntimeError) as exc:
        pytest.fail(f"the local registry has no operator image ({type(exc).__name__}: {exc}); `make images` builds "
                    f"it and `edgeline dev up` pushes it", pytrace=False)


@pytest.fixture(scope="module")
def session_operator_paused(operator):
    operator.stop()
    yield
    operator.start()


@pytest.fixture(scope="module")
def release(helm, hub, dev_env, operator_image, session_operator_paused, people):
    roles_before = hub.kubectl("get", "clusterrole", "edgeline-viewer", check=False).returncode == 0
    # A release an interrupted run left behind goes first.
    helm("uninstall", "edgeline", "--namespace", RELEASE, kubeconfig=hub.kubeconfig, check=False)
    repository, tag = operator_image.rsplit(":", 1)
    toleration = {"key": REAL_NODE_LABEL, "operator": "Equal", "value": "true", "effect": "NoSchedule"}
    remove_approval_policies(hub)
    helm("install", "edgeline", str(CHART), "--namespace", RELEASE, "--create-namespace", "--take-ownership",
         "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
         "--set-json", f"nodeSelector={json.dumps({REAL_NODE_LABEL: 'true'})}",
         "--set-json", f"tolerations={json.dumps([toleration])}",
         # The test's model server is on the host's bridge address: not public, so it must be allowed.
         "--set", f"settings.artifact_allowed_cidrs={dev_env.pod_visible_host}/32",
         kubeconfig=hub.kubeconfig)
    approval_policies_enforced(hub)     # now the chart's
    yield RELEASE
    helm("uninstall", "edgeline", "--namespace", RELEASE, kubeconfig=hub.kubeconfig, check=False)
    hub.kubectl("delete", "namespace", RELEASE, "--wait=false", check=False)
    if roles_before:
        hub.kubectl("apply", "-f", str(ROOT / "manifests" / "rbac" / "user-roles.yaml"))
    install_approval_policies(hub)      # the uninstall took the adopted admission policies along


@pytest.fixture(scope="module")
def model_url(dev_env, tmp_path_factory):
    root = tmp_path_factory.mktemp("operator-pod-models")
    (root / "good.onnx").write_bytes(runtime_models.sample_model("1.0.0").read_bytes())
    with ArtifactServer(root, host=dev_env.pod_visible_host) as server:
        yield f"{server.url}/good.onnx", onnx_models.file_digest(root / "good.onnx")


def _operator_pod(hub) -> dict | None:
    pods = hub.get("pods", "-n", RELEASE, "-l", "app.kubernetes.io/component=operator")["items"]
    ready = [p for p in pods if any(c["type"] == "Ready" and c["status"] == "True"
                                    for c in p["status"].get("conditions", []))]
    return ready[0] if len(ready) == 1 else None


def _log_tail(hub, pod) -> str:
    return hub.kubectl("logs", pod["metadata"]["name"], "-n", RELEASE, "--tail=30", check=False).stdout[-3000:]


def _pod_states(hub) -> str:
    pods = hub.get("pods", "-n", RELEASE)["items"]
    return json.dumps([{"name": p["metadata"]["name"], "node": p["spec"].get("nodeName"),
                        "conditions": p["status"].get("conditions"),
                        "containers": p["status"].get("containerStatuses")} for p in pods])[:3000]


def test_the_operator_runs_as_a_pod_and_counts_what_the_hub_s_admission_policies_admit(
        hub, dev_env, release, operator_image, model_url, namespace, governed):  # noqa: F811
    pod = wait_for(lambda: _operator_pod(hub), timeout=240,
                   what=lambda: f"the operator Pod Ready on the hub's real node (last: {_pod_states(hub)})")
    assert pod["spec"]["nodeName"] == dev_env.real_node("hub")
    assert pod["spec"]["containers"][0]["image"] == operator_image
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
    # The chart installed the admission policies; no webhook sends the API server's requests to the Pod.
    assert hub.get("validatingadmissionpolicy", "edgeline-approval-identity")["metadata"]["labels"][
        "app.kubernetes.io/instance"] == "edgeline"
    assert hub.kubectl("get", "mutatingwebhookconfiguration", "edgeline-approvals", check=False).returncode != 0

    # The operator in the Pod fetches and validates a model over the Pod network.
    uri, digest = model_url
    hub.apply({"apiVersion": "edgeline.io/v1alpha1", "kind": "MLModel",
               "metadata": {"name": "detector-1", "namespace": namespace},
               "spec": {"model": runtime_models.MODEL_NAME, "version": "1.0.0", "stage": "production",
                        "artifact": {"uri": uri, "sha256": digest}}})
    wait_for(lambda: (hub.get("mlmodel", "detector-1", "-n", namespace).get("status") or {}).get("phase") == "Ready",
             timeout=120, what=lambda: f"the MLModel Ready (last: {hub.get('mlmodel', 'detector-1', '-n', namespace).get('status')}; "
                                       f"operator log: {_log_tail(hub, pod)})")

    # A change that needs an approval, placed nowhere yet.
    hub.apply({"apiVersion": "edgeline.io/v1alpha1", "kind": "EdgeDeployment",
               "metadata": {"name": "detector", "namespace": namespace},
               "spec": {"modelRef": {"name": "detector-1"},
                        "placement": {"clusterSelector": {"matchLabels": {"edgeline.io/line": "u" + uuid.uuid4().hex}}},
                        "approval": {"required": True, "approverGroups": ["factory:approvers"], "minApprovers": 2}}},
              user="editor")
    status = wait_for(lambda: (s := hub.get("edgedeployment", "detector", "-n", namespace).get("status") or {})
                      .get("phase") == "AwaitingApproval" and s, timeout=90, what="AwaitingApproval")
    revision = status["pendingApproval"]["revision"]["revision"]
    assert status["pendingApproval"]["requestedBy"] == "editor"

    assert status["approvalPolicy"]["sources"] == [governed]

    # The hub's API server refuses the editor; the operator in the Pod counts the approvers.
    refused = approve(hub, namespace, "editor", revision)
    assert refused.returncode != 0 and "forbidden" in refused.stderr.lower()
    for user in ("approver-a", "approver-b"):
        accepted = approve(hub, namespace, user, revision)
        assert accepted.returncode == 0, accepted.stderr
    status = wait_for(lambda: (s := hub.get("edgedeployment", "detector", "-n", namespace).get("status") or {})
                      .get("approval") == "Approved" and s, timeout=90, what="the approvals counted")
    assert sorted(a["user"] for a in status["rollout"]["approvals"]) == ["approver-a", "approver-b"]
