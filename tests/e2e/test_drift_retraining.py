"""The retraining loop closes by itself, and the approver sees the candidate run in shadow:
a camera whose frames drift (a brighter red channel) raises the runtime's drift score against the
reference profile recorded with the MLModel; the shipped EdgelineModelDrift rule fires in a real
Prometheus, Alertmanager posts it to the operator, the sample-style DataPipeline that the profile
names starts a run, its training step yields a candidate MLModel (with its own reference profile),
and the EdgeDeployment that follows the newest staging version waits for approval while the
candidate runs in shadow on the chosen line: status.pendingApproval.shadow and `edgeline approve
--dry-run` show candidate against current.

And a candidate that fails on every request, run in shadow, changes nothing the line receives.

Real runtime containers on edge-a's real node (kubelet + containerd), Prometheus and Alertmanager
from Debian's packages, the operator as a process; the training step is a kwok Pod on the hub that
reports its outputs. A missing piece of the environment fails these tests, never skips them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import numpy as np
import pytest

from edgeline.devenv.monitoring import HttpDiscovery, Monitoring, Webhook
from edgeline.devenv.pod_discovery import PodDiscovery
from edgeline.runtime.quality import build_profile
from tests.e2e.conftest import ALERTS_TOKEN, ROOT, register_edge_cluster, runtime_config, wait_for
from tests.helpers.real_runtime import MODEL, REAL_NODE_LABEL, Real, Traffic, models, real  # noqa: F401
from tests.helpers import onnx_models, runtime_models

RULES = ROOT / "manifests" / "monitoring" / "prometheus-rules.yaml"
PIPELINE = "defect-retraining"


def _profile(root, path, model_file, pipeline="") -> str:
    """The reference profile of the model's training frames, as a training step writes it; its digest."""
    training = runtime_models.images(batch=200, seed=11)
    scores = runtime_models.run_directly(root / model_file, training).max(axis=1)
    runtime_models.write_json(build_profile(training, top_scores=scores, output="probabilities", input="image",
                                            pipeline=pipeline), root / path)
    return onnx_models.file_digest(root / path)


@pytest.fixture
def site(hub, edge_a, operator, namespace, models):  # noqa: F811  (the fixture imported above)
    """One line (EdgeCluster) on edge-a's real node, the served MLModel detector-1 (1.0.0) with its
    reference profile naming the retraining pipeline, and that profile and the candidate's over HTTP."""
    server, root = models
    name = "dr" + uuid.uuid4().hex[:6]
    register_edge_cluster(hub, name, edge_a, {"edgeline.io/line": name})
    digests = {"profile-1.json": _profile(root, "profile-1.json", "good.onnx", PIPELINE),
               "profile-2.json": _profile(root, "profile-2.json", "other.onnx", PIPELINE)}
    hub.apply({"apiVersion": "edgeline.io/v1alpha1", "kind": "MLModel",
               "metadata": {"name": "detector-1", "namespace": namespace},
               "spec": {"model": MODEL, "version": "1.0.0", "stage": "production",
                        "artifact": {"uri": f"{server.url}/good.onnx",
                                     "sha256": onnx_models.file_digest(root / "good.onnx")},
                        "referenceProfile": {"uri": f"{server.url}/profile-1.json",
                                             "sha256": digests["profile-1.json"]}}})
    hub.kubectl("wait", "mlmodel/detector-1", "-n", namespace, "--for=condition=Ready", "--timeout=90s", timeout=120)
    hub.kubectl("wait", f"edgecluster/{name}", "--for=condition=Ready", "--timeout=60s")
    yield name, server, root, digests
    hub.kubectl("delete", "edgedeployments", "--all", "-n", namespace, "--timeout=90s", check=False, timeout=120)
    hub.kubectl("delete", "datapipelines", "--all", "-n", namespace, "--timeout=60s", check=False)
    hub.kubectl("delete", "edgecluster", name, "--wait=false", check=False)


def _deployment(namespace, line, real: Real, model_ref: dict, *, approval: bool, shadow: bool = True):  # noqa: F811
    spec = {"modelRef": model_ref,
            "placement": {"clusterSelector": {"matchLabels": {"edgeline.io/line": line}}},
            "runtime": {"image": real.runtime_image, "replicas": 1,
                        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
                        "nodeSelector": {REAL_NODE_LABEL: "true"},
                        "tolerations": [{"key": REAL_NODE_LABEL, "operator": "Equal", "value": "true",
                                         "effect": "NoSchedule"}]},
            "approval": {"required": approval, "approverGroups": ["edgeline:approvers"]},
            "rollback": {"mode": "Automatic", "scope": "Deployment",
                         "alertMatchers": [{"name": "alertname", "value": "NoSuchAlert"}]}}
    if shadow:
        spec["shadow"] = {"clusters": [line]}
    return {"apiVersion": "edgeline.io/v1alpha1", "kind": "EdgeDeployment",
            "metadata": {"name": "detector", "namespace": namespace}, "spec": spec}


def _status(hub, namespace) -> dict:
    return hub.get("edgedeployment", "detector", "-n", namespace).get("status") or {}


def _wait(hub, namespace, check, what, timeout=240):
    return wait_for(lambda: (s := _status(hub, namespace)) and check(s) and s, timeout=timeout,
                    what=lambda: f"{what} (last: {json.dumps(_status(hub, namespace))[:2500]})")


def _shadow(status: dict) -> dict:
    return (status.get("pendingApproval") or {}).get("shadow") or {}


def _compared(status: dict, key: str = "requests") -> dict | None:
    found = [c for c in _shadow(status).get("comparisons") or [] if c.get(key)]
    return found[0] if found else None


class Camera(Traffic):
    """The line's camera (real_runtime.Traffic); `brighten` shifts the red channel (a lamp over the
    line changed). Keeps every answer: (code, version, probabilities, frames)."""

    timeout_s = 5.0

    def __init__(self, edge, line):
        super().__init__(edge, [line])
        self.brighten = 0.0
        self.answers: list[tuple[int, str | None, list | None, np.ndarray]] = []

    def frames(self, seed: int) -> np.ndarray:
        frames = runtime_models.images(1, seed=seed)
        frames[:, 0] += self.brighten
        return frames

    def note(self, at: float, code: int, answer, frames: np.ndarray) -> None:
        output = next((o["data"] for o in answer.get("outputs", []) if o["name"] == "probabilities"),
                      None) if isinstance(answer, dict) else None
        version = answer.get("model_version") if isinstance(answer, dict) else None
        self.answers.append((code, version, output, frames))


def _monitoring(tmp_path, edge_a, line, operator):
    discovery = PodDiscovery(edge_a.kubeconfig, namespaces=[f"ns-{line}"])
    return discovery, lambda url: Monitoring(
        tmp_path / "monitoring", discovered=[HttpDiscovery("edge-a-pods", url)], rule_files=[RULES],
        webhook=Webhook(operator.alerts_url, bearer_token=ALERTS_TOKEN, ca_file=operator.alerts_ca_file()))


def _explain(mon, edge, line):
    """What Prometheus and the line show, for a failure message."""
    def text() -> str:
        try:
            series = [(s.labels, s.value) for s in mon.query('{__name__=~"edgeline_runtime_(ready|drift_reference|'
                                                            'drift_score|shadow_ready)"}')]
            up = [(s.labels.get("instance"), s.value) for s in mon.query("up")]
        except Exception as exc:  # noqa: BLE001  (a message, not a check)
            series, up = f"query failed: {exc}", []
        config = {k: v for k, v in runtime_config(edge, f"ns-{line}").items() if "PROFILE" in k or "SHADOW" in k}
        pods = edge.kubectl("logs", "-n", f"ns-{line}", "-l", "edgeline.io/deployment=detector", "--tail=15",
                            check=False)
        return f"series {series}; up {up}; config {config}; runtime log {pods.stdout[-3000:]}"
    return text


def _point_at(hub, line, prometheus_url):
    """The line's EdgeCluster names the Prometheus that holds its series (its labels kept: they place it)."""
    cluster = hub.get("edgecluster", line)
    hub.apply({"apiVersion": "edgeline.io/v1alpha1", "kind": "EdgeCluster",
               "metadata": {"name": line, "labels": cluster["metadata"].get("labels") or {}},
               "spec": {**cluster["spec"], "monitoring": {"prometheusUrl": prometheus_url}}})


def _edgeline(hub, *args) -> str:
    proc = subprocess.run([sys.executable, "-m", "edgeline", *args, "--kubeconfig", str(hub.kubeconfig)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _serve_then_require_approval(hub, namespace, line, real, model_ref):  # noqa: F811
    """1.0.0 rolled out (no approval needed for the first), then approval required for what comes next."""
    hub.apply(_deployment(namespace, line, real, model_ref, approval=False))
    status = _wait(hub, namespace, lambda s: s.get("phase") == "Healthy", "1.0.0 Ready on the line")
    hub.apply(_deployment(namespace, line, real, model_ref, approval=True))
    return status


def test_drift_starts_retraining_and_the_candidate_awaits_approval_with_its_shadow_run_shown(
        hub, edge_a, namespace, site, real, operator, tmp_path):  # noqa: F811
    line, server, root, digests = site
    model = hub.get("mlmodel", "detector-1", "-n", namespace)
    profile_condition = next(c for c in model["status"]["conditions"] if c["type"] == "ReferenceProfile")
    assert (profile_condition["status"], profile_condition["reason"]) == ("True", "ReferenceProfileRecorded")

    # Given the sample-style retraining pipeline: triggered by EdgelineModelDrift, its training step
    # reports the new model, its evaluation metrics and its reference profile.
    outputs = {"uri": f"{server.url}/other.onnx", "sha256": onnx_models.file_digest(root / "other.onnx"),
               "version": "2.0.0", "metric.accuracy": "0.97",
               "referenceProfileUri": f"{server.url}/profile-2.json",
               "referenceProfileSha256": digests["profile-2.json"]}
    hub.apply({"apiVersion": "edgeline.io/v1alpha1", "kind": "DataPipeline",
               "metadata": {"name": PIPELINE, "namespace": namespace},
               "spec": {"triggers": {"alerts": ["EdgelineModelDrift"]},
                        "steps": [{"name": "train", "image": "example/trainer:1", "podAnnotations": {
                            "kwok.edgeline.io/exit-code": "0",
                            "kwok.edgeline.io/termination-message": json.dumps(outputs)}}],
                        "produces": {"fromStep": "train", "model": MODEL}}})
    # and the line serving 1.0.0, following the newest staging-or-better version, behind approval
    _serve_then_require_approval(hub, namespace, line, real,
                                 {"model": MODEL, "follow": "LatestReady", "minStage": "staging"})

    discovery, monitoring = _monitoring(tmp_path, edge_a, line, operator)
    with discovery, monitoring(discovery.url) as mon, Camera(edge_a, line) as camera:
        _point_at(hub, line, mon.prometheus_url)
        explain = _explain(mon, edge_a, line)
        wait_for(lambda: [s for s in mon.query(f'edgeline_runtime_ready{{namespace="{namespace}"}}') if s.value == 1],
                 timeout=150, what=lambda: f"Prometheus scraping the ready runtime ({explain()})")
        wait_for(lambda: [s for s in mon.query(f'edgeline_runtime_drift_reference{{namespace="{namespace}",'
                                               f'state="loaded",pipeline="{PIPELINE}"}}') if s.value == 1],
                 timeout=60, what=lambda: f"the runtime's reference profile loaded ({explain()})")
        wait_for(lambda: len(camera.answers) > 20, timeout=90, what="frames answered by 1.0.0")

        # When the lamp over the line changes
        camera.brighten = 0.6
        wait_for(lambda: [s for s in mon.query(f'edgeline_runtime_drift_score{{namespace="{namespace}",'
                                               f'kind="input"}}') if s.value > 1], timeout=120,
                 what=lambda: f"the input drift score above 1 ({explain()})")

        # Then EdgelineModelDrift fires, the pipeline runs and hands over a candidate
        run = wait_for(lambda: next((r for r in (hub.get("datapipeline", PIPELINE, "-n", namespace).get("status")
                                                 or {}).get("runs") or [] if r.get("trigger") == "Alert"), None),
                       timeout=240, what="a retraining run started by the drift alert")
        candidate = f"{MODEL}-2.0.0"
        wait_for(lambda: hub.kubectl("get", "mlmodel", candidate, "-n", namespace, check=False).returncode == 0,
                 timeout=120, what=lambda: f"the run's candidate MLModel (run: {json.dumps(run)[:1500]})")
        hub.kubectl("wait", f"mlmodel/{candidate}", "-n", namespace, "--for=condition=Ready", "--timeout=180s",
                    timeout=200)
        spec = hub.get("mlmodel", candidate, "-n", namespace)["spec"]
        assert spec["referenceProfile"] == {"uri": f"{server.url}/profile-2.json",
                                            "sha256": digests["profile-2.json"]}
        assert spec["stage"] == "staging" and spec["metrics"] == {"accuracy": 0.97}

        # and the deployment waits for approval, the candidate in shadow on the line
        camera.brighten = 0.0
        status = _wait(hub, namespace, lambda s: s.get("phase") == "AwaitingApproval"
                       and _compared(s) and _compared(s).get("candidateP50Ms") is not None,
                       "AwaitingApproval with a shadow comparison", timeout=300)
        approve = _edgeline(hub, "approve", "detector", "-n", namespace, "--dry-run")
        tree = _edgeline(hub, "status", "detector", "-n", namespace)
        shadow_pods = edge_a.kubectl("get", "deployments", "-n", f"ns-{line}", "-l", "edgeline.io/deployment=detector",
                                     "-o", "json").stdout

    assert run["trigger"] == "Alert"
    shadow = _shadow(status)
    assert (shadow["version"], shadow["currentVersion"], shadow["clusters"]) == ("2.0.0", "1.0.0", [line])
    compared = _compared(status)
    assert compared["cluster"] == line and compared["state"] == "Ready"
    assert compared["requests"] > 0 and 0 <= compared["agreement"] <= 1
    assert compared["currentP50Ms"] is not None and compared["candidateP95Ms"] >= compared["candidateP50Ms"]
    assert status["pendingApproval"]["metrics"] == {"accuracy": 0.97}
    assert status["currentRevision"]["version"] == "1.0.0"
    # The line is still served by 1.0.0: the candidate's answers were discarded.
    labels = json.loads(shadow_pods)["items"][0]["metadata"]["labels"]
    assert labels["edgeline.io/shadow-revision"] == shadow["revision"]
    assert labels["edgeline.io/revision"] == status["currentRevision"]["revision"]
    assert {version for code, version, _, _ in camera.answers if code == 200} == {"1.0.0"}
    assert f"shadow      2.0.0 beside 1.0.0 on {line}" in approve and "agreement" in approve, approve
    assert "latency p50/p95  candidate" in approve and "accuracy 0.97" in approve
    assert "dry run: nothing approved" in approve
    assert "shadow: 2.0.0 beside 1.0.0" in tree, tree


def test_a_failing_candidate_in_shadow_changes_nothing_the_line_receives(
        hub, edge_a, namespace, site, real, operator, tmp_path):  # noqa: F811
    line, server, root, _ = site
    hub.apply({"apiVersion": "edgeline.io/v1alpha1", "kind": "MLModel",
               "metadata": {"name": "detector-broken", "namespace": namespace},
               "spec": {"model": MODEL, "version": "2.0.0", "stage": "production",
                        "artifact": {"uri": f"{server.url}/broken.onnx",
                                     "sha256": onnx_models.file_digest(root / "broken.onnx")}}})
    hub.kubectl("wait", "mlmodel/detector-broken", "-n", namespace, "--for=condition=Ready", "--timeout=90s",
                timeout=120)
    broken = hub.get("mlmodel", "detector-broken", "-n", namespace)
    assert next(c for c in broken["status"]["conditions"] if c["type"] == "ReferenceProfile")["reason"] == \
        "NoReferenceProfile"
    _serve_then_require_approval(hub, namespace, line, real, {"name": "detector-1"})

    discovery, monitoring = _monitoring(tmp_path, edge_a, line, operator)
    with discovery, monitoring(discovery.url) as mon, Camera(edge_a, line) as camera:
        _point_at(hub, line, mon.prometheus_url)
        wait_for(lambda: len(camera.answers) > 10, timeout=60, what="frames answered by 1.0.0")
        # When a candidate that fails every inference waits for approval, in shadow on the line
        hub.apply(_deployment(namespace, line, real, {"name": "detector-broken"}, approval=True))
        status = _wait(hub, namespace, lambda s: s.get("phase") == "AwaitingApproval"
                       and _compared(s, "failed"), "the shadow's failures counted", timeout=300)
        during = len(camera.answers)
        wait_for(lambda: len(camera.answers) > during + 20, timeout=60, what="more frames with the shadow on")

    # Then every frame was answered by 1.0.0, exactly as 1.0.0 answers it. (Attaching the candidate rolls the
    # runtime Pod: a request racing the old Pod's shutdown may get its 503 "Stopping", never a 500.)
    answers = [a for a in camera.answers if a[0] == 200]
    assert not [a[:2] for a in camera.answers if a[0] not in (200, 503)]
    assert len(answers) >= len(camera.answers) - 3 and {version for _, version, _, _ in answers} == {"1.0.0"}
    good = root / "good.onnx"
    for _, _, output, frames in answers[-30:]:
        np.testing.assert_allclose(np.array(output).reshape(1, -1), runtime_models.run_directly(good, frames),
                                   rtol=1e-5, atol=1e-6)
    compared = _compared(status, "failed")
    assert compared["failed"] > 0 and not compared.get("requests"), compared
    assert status["currentRevision"]["version"] == "1.0.0"
    events = hub.events("detector", namespace)
    assert any(e["reason"] == "ShadowStarted" and line in e["message"] for e in events)
