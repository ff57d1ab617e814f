"""The golden-sample gate with the real runtime container on edge-a's real node (docs/line-schedules.md).

Given a golden sample made with `edgeline model golden` from the good defect detector 1.0.0,
when an EdgeDeployment names it, then 1.0.0 passes it and becomes ready; and when the
deployment moves to a 2.0.0 whose digest is right but whose weights differ, the runtime refuses
to become ready, the wave fails at once with the deviation in per-cluster status and in the
WaveFailed Event, and the 1.0.0 Pod keeps serving the line.

The environment provides the real node, the registry and the runtime image; a missing piece
fails these tests, it never skips them.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
import uuid

import pytest

from tests.e2e.conftest import ROOT, register_edge_cluster
from tests.e2e.test_real_containers import _cluster, _deployment, _log, _pods, _ready, _wait, real  # noqa: F401
from tests.helpers import onnx_models, runtime_models
from tests.helpers.artifact_server import ArtifactServer


@pytest.fixture(scope="module")
def artifacts(real, tmp_path_factory):
    """good.onnx (1.0.0), other.onnx (2.0.0: other weights) and golden.json made from good.onnx,
    served where the Pods reach them."""
    root = tmp_path_factory.mktemp("golden")
    (root / "good.onnx").write_bytes(runtime_models.sample_model("1.0.0").read_bytes())
    (root / "other.onnx").write_bytes(runtime_models.sample_model("2.0.0").read_bytes())
    (root / "frames.json").write_text(json.dumps(runtime_models.infer_body(runtime_models.images(2, seed=11))))
    made = subprocess.run([sys.executable, "-m", "edgeline", "model", "golden", str(root / "good.onnx"),
                           "--inputs", str(root / "frames.json"), "-o", str(root / "golden.json")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert made.returncode == 0, made.stderr
    digest = made.stdout.strip()
    assert digest == onnx_models.file_digest(root / "golden.json")
    with ArtifactServer(root, host=real.host) as server:
        yield server, root, {"uri": f"{server.url}/golden.json", "sha256": digest}


@pytest.fixture
def line(hub, edge_a, operator, namespace, artifacts):
    server, root, _ = artifacts
    name = "gold" + uuid.uuid4().hex[:5]
    register_edge_cluster(hub, name, edge_a, {"edgeline.io/line": name})
    for mlmodel, version, path in (("detector-1", "1.0.0", "good.onnx"), ("detector-2", "2.0.0", "other.onnx")):
        hub.apply({"apiVersion": "edgeline.io/v1alpha1", "kind": "MLModel",
                   "metadata": {"name": mlmodel, "namespace": namespace},
                   "spec": {"model": runtime_models.MODEL_NAME, "version": version, "stage": "production",
                            "artifact": {"uri": f"{server.url}/{path}",
                                         "sha256": onnx_models.file_digest(root / path)}}})
    for mlmodel in ("detector-1", "detector-2"):
        hub.kubectl("wait", f"mlmodel/{mlmodel}", "-n", namespace, "--for=condition=Ready", "--timeout=90s",
                    timeout=120)
    hub.kubectl("wait", f"edgecluster/{name}", "--for=condition=Ready", "--timeout=60s")
    yield name
    hub.kubectl("delete", "edgedeployments", "--all", "-n", namespace, "--timeout=90s", check=False, timeout=120)
    hub.kubectl("delete", "edgecluster", name, "--wait=false", check=False)


def _with_golden(manifest: dict, golden: dict) -> dict:
    manifest["spec"]["runtime"]["goldenSample"] = golden
    return manifest


def test_a_model_that_reproduces_its_golden_sample_becomes_ready(hub, edge_a, namespace, line, real, artifacts):
    _, _, golden = artifacts
    hub.apply(_with_golden(_deployment(namespace, line, real, "detector-1"), golden))
    _wait(hub, namespace, lambda s: s.get("phase") == "Healthy", "1.0.0 Ready after its golden sample")
    pod = next(p for p in _pods(edge_a, line) if _ready(p))
    events = [e["event"] for e in _log(edge_a, line, pod["metadata"]["name"])]
    assert "golden_sample_passed" in events and events.index("golden_sample_passed") < events.index("ready")


def test_a_model_that_deviates_from_its_golden_sample_fails_the_wave_with_the_deviation(hub, edge_a, namespace,
                                                                                       line, real, artifacts):
    _, _, golden = artifacts
    hub.apply(_with_golden(_deployment(namespace, line, real, "detector-1"), golden))
    good = _wait(hub, namespace, lambda s: s.get("phase") == "Healthy", "1.0.0 Ready")["currentRevision"]["revision"]

    # 2.0.0: the right digest for its own file, other weights: it loads, and answers differently.
    hub.apply(_with_golden(_deployment(namespace, line, real, "detector-2"), golden))
    # The wave's deadline is 600 s: the failure comes long before it.
    status = _wait(hub, namespace, lambda s: s.get("phase") == "Degraded", "the wave failed", timeout=240)
    state = _cluster(status, line)
    assert state["phase"] == "Failed" and state["reason"] == "GoldenSampleMismatch", state
    assert "does not reproduce its golden sample" in state["message"]
    assert "differs from the golden sample" in state["message"] and "largest difference" in state["message"]
    assert "GoldenSampleMismatch" in status["rollout"]["failedMessage"]
    assert any(e["reason"] == "WaveFailed" and "largest difference" in e["message"]
               for e in hub.events("detector", namespace))
    started = dt.datetime.strptime(status["rollout"]["waveStartedAt"], "%Y-%m-%dT%H:%M:%SZ")
    real.figures["golden_sample_mismatch_reported_within_s"] = round(
        time.time() - started.replace(tzinfo=dt.timezone.utc).timestamp(), 1)

    # The runtime says so itself: unready, with the reason on its readiness endpoint's log line ...
    new = [p for p in _pods(edge_a, line) if p["metadata"]["labels"]["edgeline.io/revision"] != good]
    assert new and not any(_ready(p) for p in new)
    refused = [e for e in _log(edge_a, line, new[0]["metadata"]["name"]) if e["event"] == "not_ready"]
    assert refused and refused[-1]["reason"] == "GoldenSampleFailed"
    # ... and the line keeps the good model: the 1.0.0 Pod still serves.
    assert [p for p in _pods(edge_a, line, good) if _ready(p)], "the 1.0.0 Pod stopped serving"
