"""`helm install` of the chart on the hub, with the operator image from the local registry: the
operator runs as a real Pod on the hub's real node, validates a model it fetches over the Pod
network, and answers the approval webhook that the hub's API server calls (through the
edgeline-webhook Service): a real approval, and a real refusal, go through it.

While this module runs, the session's operator (a host process) is paused: two operators
would reconcile the same objects and fight over the webhook configuration.
"""

from __future__ import annotations

import json
import uuid

import pytest

from tests.e2e.conftest import ROOT, wait_for
from tests.e2e.test_approvals import people  # noqa: F401  (a fixture: groups bound to Edgeline's roles)
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
    # The session's operator registered the webhook at its own host address: the Pod registers its Service.
    hub.kubectl("delete", "mutatingwebhookconfiguration", "edgeline-approvals", "--ignore-not-found")
    # A release an interrupted run left behind goes first.
    helm("uninstall", "edgeline", "--namespace", RELEASE, kubeconfig=hub.kubeconfig, check=False)
    repository, tag = operator_image.rsplit(":", 1)
    toleration = {"key": REAL_NODE_LABEL, "operator": "Equal", "value": "true", "effect": "NoSchedule"}
    helm("install", "edgeline", str(CHART), "--namespace", RELEASE, "--create-namespace", "--take-ownership",
         "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
         "--set-json", f"nodeSelector={json.dumps({REAL_NODE_LABEL: 'true'})}",
         "--set-json", f"tolerations={json.dumps([toleration])}",
         # The test's model server is on the host's bridge address: not public, so it must be allowed.
         "--set", f"settings.artifact_allowed_cidrs={dev_env.pod_visible_host}/32",
         kubeconfig=hub.kubeconfig)
    yield RELEASE
    helm("uninstall", "edgeline", "--namespace", RELEASE, kubeconfig=hub.kubeconfig, check=False)
    hub.kubectl("delete", "mutatingwebhookconfiguration", "edgeline-approvals", "--ignore-not-found", check=False)
    hub.kubectl("delete", "namespace", RELEASE, "--wait=false", check=False)
    if roles_before:
        hub.kubectl("apply", "-f", str(ROOT / "manifests" / "rbac" / "user-roles.yaml"))


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


def test_the_operator_runs_as_a_pod_and_its_webhook_answers_the_hub(hub, dev_env, release, operator_image,
                                                                    model_url, namespace):
    pod = wait_for(lambda: _operator_pod(hub), timeout=240,
                   what=lambda: f"the operator Pod Ready on the hub's real node (last: {_pod_states(hub)})")
    assert pod["spec"]["nodeName"] == dev_env.real_node("hub")
    assert pod["spec"]["containers"][0]["image"] == operator_image
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
    config = wait_for(lambda: hub.kubectl("get", "mutatingwebhookconfiguration", "edgeline-approvals", "-o", "json",
                                          check=False).stdout or None, timeout=60,
                      what="the webhook configuration the operator Pod registers")
    client = json.loads(config)["webhooks"][0]["clientConfig"]
    assert client["service"] == {"namespace": RELEASE, "name": "edgeline-webhook", "port": 9443, "path": "/approvals"}

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
                        "approval": {"required": True, "approverGroups": ["factory:approvers"], "minApprovers": 1}}},
              user="editor")
    status = wait_for(lambda: (s := hub.get("edgedeployment", "detector", "-n", namespace).get("status") or {})
                      .get("phase") == "AwaitingApproval" and s, timeout=90, what="AwaitingApproval")
    revision = status["pendingApproval"]["revision"]["revision"]
    assert status["pendingApproval"]["requestedBy"] == "editor"

    def approve(user):
        return hub.kubectl("annotate", "edgedeployment", "detector", "-n", namespace, "--overwrite",
                           f"edgeline.io/approve={revision}", user=user, check=False)

    # The hub's API server asks the webhook in the Pod: its answers are the operator's own words.
    refused = approve("editor")
    assert refused.returncode != 0 and "editor is not in an approver group" in refused.stderr
    accepted = approve("approver-a")
    assert accepted.returncode == 0, accepted.stderr
    status = wait_for(lambda: (s := hub.get("edgedeployment", "detector", "-n", namespace).get("status") or {})
                      .get("approval") == "Approved" and s, timeout=90, what="the approval recorded")
    assert [a["user"] for a in status["rollout"]["approvals"]] == ["approver-a"]
