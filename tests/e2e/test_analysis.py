"""A rollout waits for evidence: the metric checks an EdgeDeployment declares for its waves run
against a real Prometheus scraping the real runtime containers, and a wave passes only when they
pass. A degraded version fails its check in the pilot wave and is reverted before the next wave
starts; a Prometheus that stops answering fails the check (missing data fails closed), so the
wave does not pass; with Prometheus back, a good version passes every check and reaches every
line.

Two lines (EdgeClusters) share edge-a's real node (kubelet + containerd), each in its own
namespace: the pilot wave and the rest. Prometheus finds the runtime Pods through edge-a's API
server and keeps their labels; each EdgeCluster names that Prometheus in
spec.monitoring.prometheusUrl. A missing piece of the environment fails these tests, never skips
them. With EDGELINE_RECORD_BENCH=1 the first test writes its figures to bench/results/analysis.json
(bench/analysis/README.md).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
import uuid

import pytest

from edgeline.devenv.monitoring import HttpDiscovery, Monitoring
from edgeline.devenv.pod_discovery import PodDiscovery
from tests.e2e.conftest import OPERATOR_NAMESPACE, ROOT, runtime_configmaps, wait_for
from tests.e2e.test_real_containers import MODEL, REAL_NODE_LABEL, Real, _ready, models, real  # noqa: F401
from tests.helpers import onnx_models, runtime_models
from tests.helpers.manifests import edge_cluster, kubeconfig_secret
from tests.helpers.runtime_process import http

RESULTS = ROOT / "bench" / "results" / "analysis.json"
# The first measurement comes one interval after the wave is ready. A new Pod's first scrape comes up to
# 5 s after Prometheus discovers it (it hands new targets to its scrapers every 5 s), rate() needs two, and
# the cameras find the new Pod through the API server: on this loaded machine 10 s was once not enough.
INTERVAL_S = int(os.environ.get("EDGELINE_ANALYSIS_INTERVAL_S", "15"))
# The share of the version's requests answered with 5xx on one line, over the last 20 s.
ERROR_RATE = ('sum(rate(edgeline_runtime_requests_total{namespace="{{namespace}}",deployment="{{deployment}}",'
              'cluster="{{cluster}}",version="{{version}}",code=~"5.."}[20s])) / '
              'sum(rate(edgeline_runtime_requests_total{namespace="{{namespace}}",deployment="{{deployment}}",'
              'cluster="{{cluster}}",version="{{version}}"}[20s]))')


@pytest.fixture
def lines(hub, edge_a, operator, namespace, models):  # noqa: F811  (the fixture imported above)
    """Two EdgeClusters on edge-a's real node: <tag>-pilot (wave pilot) and <tag>-rest (wave rest),
    and the MLModels: detector-1 (1.0.0), detector-broken (2.0.0, fails every inference),
    detector-2 (2.0.0, good)."""
    server, root = models
    tag = "an" + uuid.uuid4().hex[:5]
    names = {"pilot": f"{tag}-pilot", "rest": f"{tag}-rest"}
    hub.apply(kubeconfig_secret(f"{tag}-kubeconfig", OPERATOR_NAMESPACE, edge_a.kubeconfig.read_text()))
    for wave, name in names.items():
        hub.apply(edge_cluster(name, {"edgeline.io/fleet": tag, "edgeline.io/line": wave}, f"{tag}-kubeconfig"))
    for mlmodel, version, path in (("detector-1", "1.0.0", "good.onnx"), ("detector-broken", "2.0.0", "broken.onnx"),
                                   ("detector-2", "2.0.0", "other.onnx")):
        hub.apply({"apiVersion": "edgeline.io/v1alpha1", "kind": "MLModel",
                   "metadata": {"name": mlmodel, "namespace": namespace},
                   "spec": {"model": runtime_models.MODEL_NAME, "version": version, "stage": "production",
                            "artifact": {"uri": f"{server.url}/{path}",
                                         "sha256": onnx_models.file_digest(root / path)}}})
    for mlmodel in ("detector-1", "detector-broken", "detector-2"):
        hub.kubectl("wait", f"mlmodel/{mlmodel}", "-n", namespace, "--for=condition=Ready", "--timeout=90s",
                    timeout=120)
    for name in names.values():
        hub.kubectl("wait", f"edgecluster/{name}", "--for=condition=Ready", "--timeout=60s")
    yield tag, names
    hub.kubectl("delete", "edgedeployments", "--all", "-n", namespace, "--timeout=90s", check=False, timeout=120)
    for name in names.values():
        hub.kubectl("delete", "edgecluster", name, "--wait=false", check=False)


def _point_at(hub, tag: str, names: dict, prometheus_url: str) -> None:
    """Each EdgeCluster names the Prometheus that holds its series (spec.monitoring.prometheusUrl)."""
    for wave, name in names.items():
        cluster = edge_cluster(name, {"edgeline.io/fleet": tag, "edgeline.io/line": wave}, f"{tag}-kubeconfig")
        cluster["spec"]["monitoring"] = {"prometheusUrl": prometheus_url}
        hub.apply(cluster)


def _deployment(namespace, tag, real: Real, mlmodel, *, checks=None, env=None):
    runtime = {"image": real.runtime_image, "replicas": 1,
               "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
               "nodeSelector": {REAL_NODE_LABEL: "true"},
               "tolerations": [{"key": REAL_NODE_LABEL, "operator": "Equal", "value": "true",
                                "effect": "NoSchedule"}]}
    if env:
        runtime["env"] = [{"name": k, "value": v} for k, v in env.items()]
    spec = {"modelRef": {"name": mlmodel},
            "placement": {"clusterSelector": {"matchLabels": {"edgeline.io/fleet": tag}}},
            "runtime": runtime,
            "rollout": {"waveTimeoutSeconds": 600,
                        "waves": [{"name": "pilot", "selector": {"matchLabels": {"edgeline.io/line": "pilot"}}},
                                  {"name": "rest", "selector": {"matchLabels": {"edgeline.io/line": "rest"}}}]},
            "approval": {"required": False},
            "rollback": {"mode": "Automatic", "scope": "Deployment", "guardSeconds": 600,
                         # Alerts are not what this test is about: only checks may roll back here.
                         "alertMatchers": [{"name": "alertname", "value": "NoSuchAlert"}]}}
    if checks:
        spec["analysis"] = {"checks": checks}
    return {"apiVersion": "edgeline.io/v1alpha1", "kind": "EdgeDeployment",
            "metadata": {"name": "detector", "namespace": namespace}, "spec": spec}


def _error_rate_check(count=3, missing_data="Fail"):
    return {"name": "error-rate", "query": ERROR_RATE, "condition": "result < 0.05", "intervalSeconds": INTERVAL_S,
            "count": count, "failureLimit": 0, "waves": ["pilot"], "missingData": missing_data}


def _status(hub, namespace) -> dict:
    return hub.get("edgedeployment", "detector", "-n", namespace).get("status") or {}


def _wait(hub, namespace, check, what, timeout=240):
    return wait_for(lambda: (s := _status(hub, namespace)) and check(s) and s, timeout=timeout,
                    what=lambda: f"{what} (last: {json.dumps(_status(hub, namespace))[:2000]})")


def _versions_ever_on(edge, line) -> set[str]:
    """Every model version whose configuration Edgeline ever put on a line that still exists there
    (each revision has its own ConfigMap), plus the one its Deployment names."""
    return {c["data"].get("EDGELINE_MODEL_VERSION") for c in runtime_configmaps(edge, f"ns-{line}")}


def _check(status, name="error-rate") -> dict:
    """The check's result in status.analysis ({} before the checks began)."""
    return next((c for c in (status.get("analysis") or {}).get("checks", []) if c["name"] == name), {})


def _seconds(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Traffic:
    """The lines' cameras: a frame every 50 ms to every ready runtime Pod of both lines (found
    through edge-a's API server); notes when the first error came and when each version first
    answered well after it."""

    def __init__(self, edge, lines):
        self.edge, self.lines = edge, list(lines)
        self.targets: list[str] = []
        self.first_error: float | None = None
        self.first_good_after_error: dict[str, float] = {}
        self.answers = 0
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
                pods = json.loads(proc.stdout)["items"] if proc.returncode == 0 else None
                if pods is None:
                    found = self.targets
                    break
                found += [p["status"]["podIP"] for p in pods if _ready(p) and not p["metadata"].get("deletionTimestamp")]
            self.targets = found
            self.stop.wait(0.5)

    def _send(self):
        body = runtime_models.infer_body(runtime_models.images(1))
        while not self.stop.is_set():
            for ip in list(self.targets):
                try:
                    # A short deadline: a Pod that has just gone (its IP no longer answers) must not hold up
                    # the others' traffic for long, or the new Pod's error ratio has no requests (NaN).
                    code, answer = http("POST", f"http://{ip}:8080/v2/models/{MODEL}/infer", body, timeout=2)
                except Exception:  # noqa: BLE001  (a refused, reset or timed-out request: the next round tries)
                    continue
                now = time.time()
                self.answers += 1
                version = answer.get("model_version") if isinstance(answer, dict) else None
                if code >= 500 and self.first_error is None:
                    self.first_error = now
                elif code == 200 and self.first_error is not None and version not in self.first_good_after_error:
                    self.first_good_after_error[version] = now
            self.stop.wait(0.05)


def _monitoring(tmp_path, edge_a, names):
    discovery = PodDiscovery(edge_a.kubeconfig, namespaces=[f"ns-{n}" for n in names.values()])
    return discovery, lambda url: Monitoring(tmp_path / "monitoring", discovered=[HttpDiscovery("edge-a-pods", url)],
                                             rule_files=[], webhook=_no_webhook())


def _no_webhook():
    from edgeline.devenv.monitoring import Webhook

    # Alertmanager needs a receiver; nothing listens there (no alert rules are loaded).
    return Webhook("http://127.0.0.1:9/unused")


def _edgeline_status(hub, namespace) -> str:
    proc = subprocess.run([sys.executable, "-m", "edgeline", "status", "detector", "-n", namespace,
                           "--kubeconfig", str(hub.kubeconfig)], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_a_degraded_version_fails_its_check_in_the_pilot_and_is_reverted_before_the_next_wave(
        hub, edge_a, namespace, lines, real, operator, tmp_path):  # noqa: F811
    tag, names = lines
    hub.apply(_deployment(namespace, tag, real, "detector-1"))
    good = _wait(hub, namespace, lambda s: s.get("phase") == "Healthy", "1.0.0 Ready on both lines")["currentRevision"]

    discovery, monitoring = _monitoring(tmp_path, edge_a, names)
    with discovery, monitoring(discovery.url) as mon, Traffic(edge_a, names.values()) as traffic:
        _point_at(hub, tag, names, mon.prometheus_url)
        wait_for(lambda: len([s for s in mon.query(f'edgeline_runtime_ready{{deployment="detector",'
                                                   f'namespace="{namespace}"}}') if s.value == 1]) == 2,
                 timeout=90, what="Prometheus scraping both lines' runtime Pods")
        wait_for(lambda: traffic.answers > 10, timeout=30, what="traffic answered by 1.0.0")

        # Inconclusive: should the new Pod's first series come late, the check waits for them; what fails it
        # is the value. (The next test shows missing data failing with the default, Fail.)
        hub.apply(_deployment(namespace, tag, real, "detector-broken",
                              checks=[_error_rate_check(missing_data="Inconclusive")]))
        status = _wait(hub, namespace, lambda s: s.get("phase") == "RolledBack", "the check's rollback", timeout=300)
        wait_for(lambda: "1.0.0" in traffic.first_good_after_error, timeout=180,
                 what="a good answer from the restored 1.0.0 Pod")
        tree = _edgeline_status(hub, namespace)

    # The pilot measured the errors and failed; the rest of the fleet never saw 2.0.0.
    check = _check(status)
    assert (check["cluster"], check["phase"], check["reason"]) == (names["pilot"], "Failed", "CheckFailed"), check
    assert float(check["lastValue"]) >= 0.05 and "does not satisfy result < 0.05" in check["message"]
    assert f'cluster="{names["pilot"]}"' in check["query"] and 'version="2.0.0"' in check["query"]
    assert status["analysis"]["wave"] == "pilot"
    record = status["rollbacks"][0]
    assert record["alert"] == f"check error-rate on {names['pilot']}" and record["mode"] == "Automatic"
    assert record["toRevision"] == good["revision"] and status["currentRevision"]["revision"] == good["revision"]
    assert "2.0.0" in _versions_ever_on(edge_a, names["pilot"])
    assert _versions_ever_on(edge_a, names["rest"]) == {"1.0.0"}
    condition = next(c for c in status["conditions"] if c["type"] == "ChecksPassed")
    assert (condition["status"], condition["reason"]) == ("False", "CheckFailed")
    events = hub.events("detector", namespace)
    assert any(e["reason"] == "CheckFailed" and e["type"] == "Warning" and names["pilot"] in e["message"]
               for e in events)
    assert f"check error-rate on {names['pilot']}  Failed" in tree

    figures = {
        "check_interval_s": INTERVAL_S, "count": 3, "failure_limit": 0, "query_window": "20s",
        "missing_data": "Inconclusive", "inconclusive_measurements": check.get("inconclusive", 0),
        "first_failed_request_to_revert_applied_s": round(_seconds(record["appliedAt"]) - traffic.first_error, 2),
        "check_failed_to_revert_applied_ms": record["latencyMs"],
        "prometheus": "2.42 (Debian), scrape every 1 s, targets from edge-a's API server",
        "runtime": "real containers on edge-a's real node (kubelet + containerd 2)",
    }
    if os.environ.get("EDGELINE_RECORD_BENCH") == "1":
        runs = json.loads(RESULTS.read_text()).get("runs", []) if RESULTS.is_file() else []
        RESULTS.write_text(json.dumps({
            "what": "breach (first 5xx of the degraded version) to the revert applied, via a metric check",
            "runs": [*runs, {**figures, "measured": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}],
            "machine": "2 cores, shared"}, indent=2) + "\n")


def test_a_silent_prometheus_fails_the_check_and_the_wave_then_a_good_version_passes_when_it_is_back(
        hub, edge_a, namespace, lines, real, operator, tmp_path):  # noqa: F811
    tag, names = lines
    hub.apply(_deployment(namespace, tag, real, "detector-1"))
    good = _wait(hub, namespace, lambda s: s.get("phase") == "Healthy", "1.0.0 Ready on both lines")["currentRevision"]

    discovery, monitoring = _monitoring(tmp_path, edge_a, names)
    with discovery, Traffic(edge_a, names.values()):
        mon = monitoring(discovery.url)
        mon.start()
        try:
            _point_at(hub, tag, names, mon.prometheus_url)
            wait_for(lambda: len([s for s in mon.query(f'edgeline_runtime_ready{{namespace="{namespace}"}}')
                                  if s.value == 1]) == 2, timeout=90, what="Prometheus scraping both lines")
            # A good 2.0.0 whose pilot measures six times: Prometheus stops after the first measurement passed.
            hub.apply(_deployment(namespace, tag, real, "detector-2", checks=[_error_rate_check(count=6)]))
            _wait(hub, namespace, lambda s: (s.get("analysis") or {}).get("revision") == s["rollout"]["revision"]
                  and _check(s).get("successes", 0) >= 1, "the pilot's first passing measurement", timeout=300)
            mon.stop()
            status = _wait(hub, namespace, lambda s: _check(s).get("phase") == "Failed", "the check failing closed")
            check = _check(status)
            assert check["reason"] == "CheckMissingData" and mon.prometheus_url in check["message"], check
            assert check["successes"] >= 1 and check["failures"] == 1
            # Missing data fails the wave like a bad value: the policy reverts the pilot; the rest never moved.
            status = _wait(hub, namespace, lambda s: s.get("phase") == "RolledBack", "the revert of the pilot")
            assert status["currentRevision"]["revision"] == good["revision"]
            assert _versions_ever_on(edge_a, names["rest"]) == {"1.0.0"}
            condition = next(c for c in status["conditions"] if c["type"] == "ChecksPassed")
            assert (condition["status"], condition["reason"]) == ("False", "CheckMissingData")
            assert any(e["reason"] == "CheckMissingData" for e in hub.events("detector", namespace))

            # Prometheus back (on a new port, which the EdgeClusters now name): a good revision (2.0.0 with
            # another runtime setting, so not the rolled-back one) passes its checks on the pilot and goes on.
            mon.start()
            _point_at(hub, tag, names, mon.prometheus_url)
            wait_for(lambda: mon.query(f'edgeline_runtime_ready{{namespace="{namespace}"}}'), timeout=90,
                     what="Prometheus scraping again")
            hub.apply(_deployment(namespace, tag, real, "detector-2", checks=[_error_rate_check()],
                                  env={"LINE_NOTE": "second try"}))
            status = _wait(hub, namespace, lambda s: s.get("phase") == "Healthy"
                           and s["currentRevision"]["version"] == "2.0.0", "2.0.0 through both waves", timeout=360)
        finally:
            mon.stop()
    check = _check(status)
    assert (check["phase"], check["reason"], check["successes"]) == ("Passed", "CheckPassed", 3)
    assert float(check["lastValue"]) < 0.05
    assert _versions_ever_on(edge_a, names["rest"]) >= {"2.0.0"}
    assert next(c for c in status["conditions"] if c["type"] == "ChecksPassed")["status"] == "True"
