"""The edge runtime as a real container on edge-a's real node (kubelet + containerd), pulled from
the local registry, rolled out by the operator: it fetches the model from an HTTP server on the
host, verifies its digest, serves Open Inference Protocol v2 at its Pod IP, is scraped by
Prometheus through edge-a's API server, and is replaced by the previous version when the shipped
alert fires. And when it cannot run, EdgeDeployment status says why, per cluster.

The environment (`edgeline dev up`) provides the real node, the registry and the images; a
missing piece fails these tests, it never skips them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from edgeline.devenv.monitoring import HttpDiscovery, Monitoring, Webhook
from edgeline.devenv.pod_discovery import PodDiscovery
from tests.e2e.conftest import ALERTS_TOKEN, ROOT, register_edge_cluster, runtime_config, wait_for
from tests.helpers import onnx_models, runtime_models
from tests.helpers.artifact_server import ArtifactServer
from tests.helpers.runtime_process import http

RULES = ROOT / "manifests" / "monitoring" / "prometheus-rules.yaml"
RESULTS = ROOT / "bench" / "results" / "real_containers.json"
REAL_NODE_LABEL = "edgeline.io/real-node"
MODEL = runtime_models.MODEL_NAME


# --- the environment's real parts -----------------------------------------------------------------

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
    """good = the sample defect detector 1.0.0, broken = a 2.0.0 that loads but fails every
    inference; swapped = a file whose bytes change after its MLModel was validated. Served on
    an address the Pods reach."""
    root = tmp_path_factory.mktemp("real-models")
    (root / "good.onnx").write_bytes(runtime_models.sample_model("1.0.0").read_bytes())
    (root / "other.onnx").write_bytes(runtime_models.sample_model("2.0.0").read_bytes())
    onnx_models.write(runtime_models.broken_defect_detector("2.0.0"), root / "broken.onnx")
    (root / "swapped.onnx").write_bytes(runtime_models.sample_model("1.0.0").read_bytes())
    with ArtifactServer(root, host=real.host) as server:
        yield server, root


@pytest.fixture
def line(hub, edge_a, operator, namespace, models):
    server, root = models
    name = "real" + uuid.uuid4().hex[:5]
    register_edge_cluster(hub, name, edge_a, {"edgeline.io/line": name})
    for mlmodel, version, path in (("detector-1", "1.0.0", "good.onnx"), ("detector-2", "2.0.0", "other.onnx"),
                                   ("detector-broken", "2.0.0", "broken.onnx"),
                                   ("detector-swapped", "1.0.0", "swapped.onnx")):
        hub.apply({"apiVersion": "edgeline.io/v1alpha1", "kind": "MLModel",
                   "metadata": {"name": mlmodel, "namespace": namespace},
                   "spec": {"model": MODEL, "version": version, "stage": "production",
                            "artifact": {"uri": f"{server.url}/{path}",
                                         "sha256": onnx_models.file_digest(root / path)}}})
    for mlmodel in ("detector-1", "detector-2", "detector-broken", "detector-swapped"):
        hub.kubectl("wait", f"mlmodel/{mlmodel}", "-n", namespace, "--for=condition=Ready", "--timeout=90s",
                    timeout=120)
    hub.kubectl("wait", f"edgecluster/{name}", "--for=condition=Ready", "--timeout=60s")
    yield name
    hub.kubectl("delete", "edgedeployments", "--all", "-n", namespace, "--timeout=90s", check=False, timeout=120)
    hub.kubectl("delete", "edgecluster", name, "--wait=false", check=False)


def _deployment(namespace, line, real: Real, mlmodel, *, image=None, env=None, node_selector=None, rollback=None):
    runtime = {"image": image or real.runtime_image, "replicas": 1,
               "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
               "nodeSelector": {REAL_NODE_LABEL: "true", **(node_selector or {})},
               "tolerations": [{"key": REAL_NODE_LABEL, "operator": "Equal", "value": "true",
                                "effect": "NoSchedule"}]}
    if env:
        runtime["env"] = [{"name": k, "value": v} for k, v in env.items()]
    spec = {"modelRef": {"name": mlmodel},
            "placement": {"clusterSelector": {"matchLabels": {"edgeline.io/line": line}}},
            "runtime": runtime, "rollout": {"waveTimeoutSeconds": 600}, "approval": {"required": False}}
    if rollback:
        spec["rollback"] = rollback
    return {"apiVersion": "edgeline.io/v1alpha1", "kind": "EdgeDeployment",
            "metadata": {"name": "detector", "namespace": namespace}, "spec": spec}


def _status(hub, namespace) -> dict:
    return hub.get("edgedeployment", "detector", "-n", namespace).get("status") or {}


def _wait(hub, namespace, check, what, timeout=180):
    return wait_for(lambda: (s := _status(hub, namespace)) and check(s) and s, timeout=timeout,
                    what=lambda: f"{what} (last: {json.dumps(_status(hub, namespace))[:1500]})")


def _cluster(status, line) -> dict:
    return {c["name"]: c for c in status.get("clusters", [])}.get(line, {})


def _pods(edge, line, revision=None) -> list[dict]:
    selector = "edgeline.io/deployment=detector" + (f",edgeline.io/revision={revision}" if revision else "")
    return edge.get("pods", "-n", f"ns-{line}", "-l", selector)["items"]


def _ready(pod) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def _infer(pod_ip: str, frames: np.ndarray, port: int = 8080) -> tuple[int, dict | str]:
    return http("POST", f"http://{pod_ip}:{port}/v2/models/{MODEL}/infer", runtime_models.infer_body(frames))


def _probabilities(answer: dict) -> np.ndarray:
    out = next(o for o in answer["outputs"] if o["name"] == "probabilities")
    return np.array(out["data"], dtype=np.float32).reshape(out["shape"])


def _log(edge, line, pod) -> list[dict]:
    text = edge.kubectl("logs", pod, "-n", f"ns-{line}", "-c", "runtime").stdout
    return [json.loads(x) for x in text.splitlines() if x.startswith("{")]


def _seconds(text: str) -> float:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc).timestamp()


# --- a model served by a real container --------------------------------------------------------------

def test_the_runtime_container_fetches_verifies_and_answers_at_its_pod_ip(hub, edge_a, namespace, line, real,
                                                                          models):
    _, root = models
    hub.apply(_deployment(namespace, line, real, "detector-1"))
    status = _wait(hub, namespace, lambda s: s.get("phase") == "Healthy", "1.0.0 Ready on the real node")
    assert _cluster(status, line)["readyReplicas"] == 1

    pod = next(p for p in _pods(edge_a, line) if _ready(p))
    assert pod["spec"]["nodeName"] == real.node
    assert pod["spec"]["containers"][0]["image"] == real.runtime_image
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
    events = _log(edge_a, line, pod["metadata"]["name"])
    verified = next(e for e in events if e["event"] == "model_verified")
    assert verified["digest"] == onnx_models.file_digest(root / "good.onnx")
    assert [e["event"] for e in events].index("ready") > [e["event"] for e in events].index("model_loaded")

    frames = runtime_models.images(batch=2, seed=3)
    code, answer = _infer(pod["status"]["podIP"], frames)
    assert code == 200, answer
    assert answer["model_name"] == MODEL and answer["model_version"] == "1.0.0"
    np.testing.assert_allclose(_probabilities(answer), runtime_models.run_directly(root / "good.onnx", frames),
                               rtol=1e-5, atol=1e-6)

    ready_at = next(c["lastTransitionTime"] for c in pod["status"]["conditions"] if c["type"] == "Ready")
    real.figures["runtime_pod_created_to_ready_s"] = _seconds(ready_at) - _seconds(pod["metadata"]["creationTimestamp"])


def _runc(real: Real, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["runc", "--root", str(real.runc_root), *args], capture_output=True, text=True, timeout=30)


def _container_serving(real: Real, digest: str) -> str:
    """The runc id of the runtime container whose environment names this model digest."""
    listed = _runc(real, "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    for entry in json.loads(listed.stdout or "[]") or []:
        config = Path(entry["bundle"]) / "config.json"
        if entry.get("status") != "running" or not config.is_file():
            continue
        env = json.loads(config.read_text()).get("process", {}).get("env", [])
        if f"EDGELINE_MODEL_SHA256={digest}" in env:
            return entry["id"]
    pytest.fail(f"no running container on {real.node} serves {digest}")


def test_an_old_revisions_container_restarted_mid_rollout_still_serves_the_old_model(hub, edge_a, namespace, line,
                                                                                     real, models):
    _, root = models
    old_digest = onnx_models.file_digest(root / "good.onnx")
    hub.apply(_deployment(namespace, line, real, "detector-1"))
    old = _wait(hub, namespace, lambda s: s.get("phase") == "Healthy", "1.0.0 Ready")["currentRevision"]["revision"]
    # A rollout to 2.0.0 that cannot finish (its Pod fits no node): the 1.0.0 Pod keeps serving.
    hub.apply(_deployment(namespace, line, real, "detector-2", node_selector={"edgeline.io/no-such-node": "true"}))
    _wait(hub, namespace, lambda s: _cluster(s, line).get("reason") == "Unschedulable", "2.0.0 waiting for a node")
    assert runtime_config(edge_a, f"ns-{line}")["EDGELINE_MODEL_VERSION"] == "2.0.0"

    # When the old Pod's container dies (as a crash would: SIGKILL to its process) ...
    pod = next(p for p in _pods(edge_a, line, old))
    killed = _runc(real, "kill", _container_serving(real, old_digest), "KILL")
    assert killed.returncode == 0, killed.stderr
    back = wait_for(lambda: [p for p in _pods(edge_a, line, old) if p["metadata"]["name"] == pod["metadata"]["name"]
                             and p["status"]["containerStatuses"][0]["restartCount"] >= 1 and _ready(p)],
                    timeout=120, what="the old Pod's container restarted and ready again")[0]

    # ... the kubelet starts it again with its own revision's configuration: it still serves 1.0.0.
    frames = runtime_models.images(batch=1, seed=5)
    code, answer = _infer(back["status"]["podIP"], frames)
    assert code == 200 and answer["model_version"] == "1.0.0", answer
    np.testing.assert_allclose(_probabilities(answer), runtime_models.run_directly(root / "good.onnx", frames),
                               rtol=1e-5, atol=1e-6)
    verified = [e for e in _log(edge_a, line, back["metadata"]["name"]) if e["event"] == "model_verified"]
    assert verified and verified[-1]["digest"] == old_digest


# --- when the runtime cannot run, status says why ------------------------------------------------------

def test_an_image_that_cannot_be_pulled_fails_the_wave_at_once_and_names_the_image(hub, edge_a, namespace, line,
                                                                                  real):
    missing = f"{real.registry}/edgeline/no-such-runtime:0.0.0"
    hub.apply(_deployment(namespace, line, real, "detector-1", image=missing))
    # The wave's deadline is 600 s: the failure comes long before it.
    status = _wait(hub, namespace, lambda s: s.get("phase") == "Degraded", "the wave failed", timeout=150)
    state = _cluster(status, line)
    assert state["phase"] == "Failed" and state["reason"] == "ImagePullFailed"
    assert f"the image {missing} cannot be pulled" in state["message"]
    assert status["rollout"]["failedMessage"].startswith("wave ")
    assert missing in status["rollout"]["failedMessage"]
    started = _seconds(status["rollout"]["waveStartedAt"])
    assert any(e["reason"] == "WaveFailed" and missing in e["message"] for e in hub.events("detector", namespace))
    real.figures["image_pull_failure_reported_within_s"] = round(time.time() - started, 1)


def test_a_model_whose_digest_does_not_match_never_becomes_ready_and_status_says_why(hub, edge_a, namespace, line,
                                                                                     real, models):
    _, root = models
    # Validated on the hub as 1.0.0; then the bytes at that URL change.
    (root / "swapped.onnx").write_bytes(runtime_models.sample_model("2.0.0").read_bytes())
    try:
        hub.apply(_deployment(namespace, line, real, "detector-swapped"))
        status = _wait(hub, namespace, lambda s: _cluster(s, line).get("reason") == "ModelRejected",
                       "the runtime's refusal in status", timeout=150)
    finally:
        (root / "swapped.onnx").write_bytes(runtime_models.sample_model("1.0.0").read_bytes())
    state = _cluster(status, line)
    assert "DigestMismatch" in state["message"] and state["readyReplicas"] == 0
    assert state["lastLog"].startswith("not_ready: DigestMismatch")
    status = _wait(hub, namespace, lambda s: s.get("phase") == "Degraded", "the wave failed on the refused model")
    assert "ModelRejected" in status["rollout"]["failedMessage"]
    pod = next(p for p in _pods(edge_a, line))
    assert not _ready(pod) and pod["status"]["containerStatuses"][0]["state"].get("running")


def test_a_crashing_container_is_reported_as_crashloopbackoff_with_its_last_log_line(hub, edge_a, namespace, line,
                                                                                    real):
    # A setting the runtime refuses at start: it says so on stderr and exits 2, on every start.
    hub.apply(_deployment(namespace, line, real, "detector-1", env={"EDGELINE_INFERENCE_THREADS": "0"}))
    status = _wait(hub, namespace, lambda s: _cluster(s, line).get("reason") == "CrashLoopBackOff"
                   and (_cluster(s, line).get("restarts") or 0) >= 1, "the crash loop in status", timeout=180)
    state = _cluster(status, line)
    assert "--inference-threads (EDGELINE_INFERENCE_THREADS)" in state["lastLog"]
    assert "keeps exiting" in state["message"] and "exit code 2" in state["message"]
    assert status["phase"] == "Progressing"          # a crash loop waits for the wave's deadline


# --- monitoring on a real Pod: alert -> the previous version back ---------------------------------------

class Traffic:
    """A line's camera: sends a frame every 50 ms to every ready runtime Pod it finds through
    edge-a's API server, and notes when the first error came and when the first good answer
    of each version came after it."""

    def __init__(self, edge, line):
        self.edge, self.line = edge, line
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
            try:
                self.targets = [p["status"]["podIP"] for p in _pods(self.edge, self.line)
                                if _ready(p) and not p["metadata"].get("deletionTimestamp")]
            except Exception:  # noqa: BLE001  (kubectl failed once; the next round asks again)
                pass
            self.stop.wait(0.5)

    def _send(self):
        frames = runtime_models.images(1)
        while not self.stop.is_set():
            for ip in list(self.targets):
                try:
                    code, answer = _infer(ip, frames)
                except OSError:
                    continue
                now = time.time()
                version = answer.get("model_version") if isinstance(answer, dict) else None
                self.answers.append((now, code, version))
                if code >= 500 and self.first_error is None:
                    self.first_error = now
                elif code == 200 and self.first_error is not None and version not in self.first_good_after_error:
                    self.first_good_after_error[version] = now
            self.stop.wait(0.05)


def test_a_failing_model_on_a_real_pod_fires_the_alert_and_the_previous_version_serves_again(
        hub, edge_a, namespace, line, real, operator, tmp_path):
    rollback = {"mode": "Automatic", "scope": "Deployment", "guardSeconds": 600,
                "alertMatchers": [{"name": "severity", "value": "critical"}]}
    hub.apply(_deployment(namespace, line, real, "detector-1", rollback=rollback))
    good = _wait(hub, namespace, lambda s: s.get("phase") == "Healthy", "1.0.0 Ready")["currentRevision"]
    with PodDiscovery(edge_a.kubeconfig, namespaces=[f"ns-{line}"]) as discovery, \
            Monitoring(tmp_path / "monitoring", discovered=[HttpDiscovery("edge-a-pods", discovery.url)],
                       rule_files=[RULES], webhook=Webhook(operator.alerts_url, bearer_token=ALERTS_TOKEN,
                                       ca_file=operator.alerts_ca_file())) as mon, \
            Traffic(edge_a, line) as traffic:
        wait_for(lambda: [s for s in mon.query(f'edgeline_runtime_ready{{deployment="detector",namespace="{namespace}"}}')
                          if s.value == 1], timeout=60, what="Prometheus scraping the runtime Pod it discovered")
        wait_for(lambda: len(traffic.answers) > 5, timeout=30, what="traffic answered by 1.0.0")

        hub.apply(_deployment(namespace, line, real, "detector-broken", rollback=rollback))
        status = _wait(hub, namespace, lambda s: s.get("phase") == "RolledBack", "the automatic rollback",
                       timeout=240)
        wait_for(lambda: "1.0.0" in traffic.first_good_after_error, timeout=180,
                 what="a good answer from the restored 1.0.0 Pod")
        # Over a window: the 2.0.0 Pod is gone by now, and its series with it.
        scraped = mon.query(f'max_over_time(edgeline_runtime_requests_total{{deployment="detector",'
                            f'namespace="{namespace}",code="500"}}[10m])')
    assert scraped and max(s.value for s in scraped) > 0          # the errors Prometheus saw were the Pod's

    record = status["rollbacks"][0]
    assert record["alert"] == "EdgelineRuntimeErrorRateHigh" and record["mode"] == "Automatic"
    assert record["toRevision"] == good["revision"] and status["currentRevision"]["revision"] == good["revision"]
    assert runtime_config(edge_a, f"ns-{line}")["EDGELINE_MODEL_VERSION"] == "1.0.0"
    restored = [p for p in _pods(edge_a, line, good["revision"]) if _ready(p)]
    assert restored and restored[0]["spec"]["nodeName"] == real.node

    breach_to_good = traffic.first_good_after_error["1.0.0"] - traffic.first_error
    received = dt.datetime.strptime(record["receivedAt"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=dt.timezone.utc).timestamp()
    real.figures["alert_to_restored"] = {
        "first_failed_request_to_first_good_answer_of_restored_version_s": round(breach_to_good, 2),
        "first_failed_request_to_alert_at_receiver_s": round(received - traffic.first_error, 2),
        "alert_at_receiver_to_revert_applied_ms": record["latencyMs"],
        "alert_at_receiver_to_first_good_answer_s": round(traffic.first_good_after_error["1.0.0"] - received, 2),
        "prometheus": "2.42 (Debian), scrape and evaluation every 1 s, targets from edge-a's API server",
        "alertmanager": "0.25 (Debian), group_wait 0 s",
    }
