"""The edge runtime as a real container on edge-a's real node, as the e2e tests of real containers,
metric checks and golden samples see it: the environment's real parts, the served model files,
an EdgeDeployment whose Pod lands on the real node, its status and Pods, and a line's camera
(traffic to every ready runtime Pod).

Fixtures here are imported by the test modules that use them (`from tests.helpers.real_runtime
import models, real`); module-scoped, so each module gets its own.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pytest

from tests.helpers import onnx_models, runtime_models
from tests.helpers.artifact_server import ArtifactServer
from tests.helpers.runtime_process import http
from tests.helpers.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
# The figures that tests put in Real.figures land here with EDGELINE_RECORD_BENCH=1.
RESULTS = ROOT / "bench" / "results" / "real_containers.json"
REAL_NODE_LABEL = "edgeline.io/real-node"
MODEL = runtime_models.MODEL_NAME


@dataclass
class Real:
    runtime_image: str
    registry: str
    host: str                  # a host address Pods reach
    node: str                  # edge-a's real node
    runc_root: Path            # where edge-a's node keeps its runc state
    figures: dict = field(default_factory=dict)


@pytest.fixture(scope="module")
def real(dev_env) -> Real:
    try:
        images = dev_env.images
        found = Real(runtime_image=images["runtime"], registry=dev_env.registry, host=dev_env.pod_visible_host,
                     node=dev_env.real_node("edge-a"),
                     runc_root=dev_env.real_node_paths("edge-a").runc_root / "k8s.io")
    except (AttributeError, KeyError, RuntimeError) as exc:
        pytest.fail(f"the local environment has no real node, registry or runtime image for edge-a "
                    f"({type(exc).__name__}: {exc}); `edgeline dev up` starts them and `make images` builds "
                    f"the images", pytrace=False)
    yield found
    if found.figures and os.environ.get("EDGELINE_RECORD_BENCH") == "1":
        # Figures of the tests that ran replace theirs; the others' stay.
        before = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
        RESULTS.write_text(json.dumps({**before, **found.figures,
                                       "measured": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                                       "machine": "2 cores, shared; edge-a's real node (kubelet + containerd 2)"},
                                      indent=2) + "\n")


@pytest.fixture(scope="module")
def models(real, tmp_path_factory):
    """good = the sample defect detector 1.0.0, other = 2.0.0 (other weights), broken = a 2.0.0
    that loads but fails every inference; swapped = a file whose bytes change after its MLModel
    was validated. Served on an address the Pods reach."""
    root = tmp_path_factory.mktemp("real-models")
    (root / "good.onnx").write_bytes(runtime_models.sample_model("1.0.0").read_bytes())
    (root / "other.onnx").write_bytes(runtime_models.sample_model("2.0.0").read_bytes())
    onnx_models.write(runtime_models.broken_defect_detector("2.0.0"), root / "broken.onnx")
    (root / "swapped.onnx").write_bytes(runtime_models.sample_model("1.0.0").read_bytes())
    with ArtifactServer(root, host=real.host) as server:
        yield server, root


def apply_models(hub, namespace: str, server, root: Path, models: Iterable[tuple[str, str, str]]) -> None:
    """Production MLModels (name, version, file under `root` served by `server`) of the sample
    detector, once each is Ready."""
    models = list(models)
    for mlmodel, version, path in models:
        hub.apply({"apiVersion": "edgeline.io/v1alpha1", "kind": "MLModel",
                   "metadata": {"name": mlmodel, "namespace": namespace},
                   "spec": {"model": MODEL, "version": version, "stage": "production",
                            "artifact": {"uri": f"{server.url}/{path}",
                                         "sha256": onnx_models.file_digest(root / path)}}})
    for mlmodel, _, _ in models:
        hub.kubectl("wait", f"mlmodel/{mlmodel}", "-n", namespace, "--for=condition=Ready", "--timeout=90s",
                    timeout=120)


def real_node_runtime(real: Real, *, image: str | None = None, env: dict[str, str] | None = None,
                      node_selector: dict[str, str] | None = None) -> dict:
    """spec.runtime of a runtime whose Pod lands on the real node (it tolerates its taint)."""
    runtime = {"image": image or real.runtime_image, "replicas": 1,
               "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
               "nodeSelector": {REAL_NODE_LABEL: "true", **(node_selector or {})},
               "tolerations": [{"key": REAL_NODE_LABEL, "operator": "Equal", "value": "true",
                                "effect": "NoSchedule"}]}
    if env:
        runtime["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return runtime


def status(hub, namespace: str, name: str = "detector") -> dict:
    return hub.get("edgedeployment", name, "-n", namespace).get("status") or {}


def wait_for_status(hub, namespace: str, check, what: str, timeout: float = 180, shown: int = 1500) -> dict:
    """The EdgeDeployment `detector`'s status once `check(status)` holds."""
    return wait_for(lambda: (s := status(hub, namespace)) and check(s) and s, timeout=timeout,
                    what=lambda: f"{what} (last: {json.dumps(status(hub, namespace))[:shown]})")


def cluster_status(status: dict, line: str) -> dict:
    return {c["name"]: c for c in status.get("clusters", [])}.get(line, {})


def pods(edge, line: str, revision: str | None = None) -> list[dict]:
    selector = "edgeline.io/deployment=detector" + (f",edgeline.io/revision={revision}" if revision else "")
    return edge.get("pods", "-n", f"ns-{line}", "-l", selector)["items"]


def ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def runtime_log(edge, line: str, pod: str) -> list[dict]:
    text = edge.kubectl("logs", pod, "-n", f"ns-{line}", "-c", "runtime").stdout
    return [json.loads(x) for x in text.splitlines() if x.startswith("{")]


def infer(pod_ip: str, frames: np.ndarray, port: int = 8080) -> tuple[int, dict | str]:
    return http("POST", f"http://{pod_ip}:{port}/v2/models/{MODEL}/infer", runtime_models.infer_body(frames))


def probabilities(answer: dict) -> np.ndarray:
    out = next(o for o in answer["outputs"] if o["name"] == "probabilities")
    return np.array(out["data"], dtype=np.float32).reshape(out["shape"])


def seconds(text: str) -> float:
    """A Kubernetes timestamp (with or without fractions) as seconds since the epoch."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Traffic:
    """The lines' cameras: a frame every 50 ms to every ready runtime Pod of the lines (found
    through the edge's API server); notes each answer, when the first error came and when each
    version first answered well after it."""

    def __init__(self, edge, lines: Iterable[str]):
        self.edge, self.lines = edge, list(lines)
        self.targets: list[str] = []
        self.first_error: float | None = None
        self.first_good_after_error: dict[str, float] = {}
        self.answers: list[tuple[float, int, str | None]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._discover, daemon=True),
                        threading.Thread(target=self._send, daemon=True)]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)

    def _discover(self):
        while not self.stop.is_set():
            found = []
            for line in self.lines:
                proc = self.edge.kubectl("get", "pods", "-n", f"ns-{line}", "-l", "edgeline.io/deployment=detector",
                                         "-o", "json", check=False)
                # kubectl failed once: keep the last targets; the next round asks again.
                if proc.returncode != 0:
                    found = self.targets
                    break
                found += [p["status"]["podIP"] for p in json.loads(proc.stdout)["items"]
                          if ready(p) and not p["metadata"].get("deletionTimestamp")]
            self.targets = found
            self.stop.wait(0.5)

    # A short deadline: a Pod that has just gone (its IP no longer answers) must not hold up the others'
    # traffic for long, or the new Pod's error ratio has no requests (NaN).
    timeout_s = 2.0

    def frames(self, seed: int) -> np.ndarray:
        """The next frame the camera sends (a subclass can change the scene)."""
        return runtime_models.images(1)

    def note(self, at: float, code: int, answer, frames: np.ndarray) -> None:
        version = answer.get("model_version") if isinstance(answer, dict) else None
        self.answers.append((at, code, version))
        if code >= 500 and self.first_error is None:
            self.first_error = at
        elif code == 200 and self.first_error is not None and version not in self.first_good_after_error:
            self.first_good_after_error[version] = at

    def _send(self):
        seed = 0
        while not self.stop.is_set():
            seed += 1
            frames = self.frames(seed)
            body = runtime_models.infer_body(frames)
            for ip in list(self.targets):
                try:
                    code, answer = http("POST", f"http://{ip}:8080/v2/models/{MODEL}/infer", body,
                                        timeout=self.timeout_s)
                except Exception:  # noqa: BLE001  (a refused, reset or timed-out request: the next round tries)
                    continue
                self.note(time.time(), code, answer, frames)
            self.stop.wait(0.05)
