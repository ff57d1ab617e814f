"""Rollback latency: an alert reaches the operator's receiver -> every affected edge
Deployment reverted (server-side applied back to the known-good revision).

For N = 1, 10, 100 affected clusters (EdgeClusters pointing at the two local edge API
servers, a namespace each) the alert is POSTed to the receiver as Alertmanager would, and
two figures are taken per run:
  - operator: receipt of the request -> last cluster's revert applied (status.rollbacks[0].latencyMs)
  - external: the POST -> status showing the revert applied (adds the status write and polling)
Each run first rolls a fresh bad revision forward, so every rollback is a real one.
Also measured once: the metric going bad -> reverted, through Prometheus and Alertmanager
with the timings shown (the edge runtime serving a broken model, real traffic).
Run: .venv/bin/python bench/rollback/bench_rollback.py; writes bench/results/rollback.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "fanout"))

from bench_fanout import NS, STATE, apply, clean_slate, kubectl, wait  # noqa: E402

from edgeline import timestamps  # noqa: E402
from edgeline.devenv.environment import DevEnvironment, free_port  # noqa: E402
from edgeline.devenv.monitoring import Monitoring, ScrapeTarget, Timings, Webhook  # noqa: E402
from tests.helpers import onnx_models, runtime_models  # noqa: E402
from tests.helpers.artifact_server import ArtifactServer  # noqa: E402

TOKEN = "bench-token"


def current_config(env, member: str, namespace: str) -> dict:
    """The data of the runtime ConfigMap the (single) runtime Deployment in `namespace` uses:
    each revision has its own ConfigMap, and older ones stay while a ReplicaSet names them."""
    deployment = json.loads(kubectl(env, member, "get", "deployments", "-n", namespace, "-o", "json"))["items"][0]
    name = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"]
    return json.loads(kubectl(env, member, "get", "configmap", name, "-n", namespace, "-o", "json"))["data"]


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def status(env, name):
    return json.loads(kubectl(env, "hub", "get", "edgedeployment", name, "-n", NS, "-o", "json")).get("status") or {}


def deployment(name, n, version, iteration):
    return {"apiVersion": "edgeline.io/v1alpha1", "kind": "EdgeDeployment", "metadata": {"name": name, "namespace": NS},
            "spec": {"modelRef": {"name": f"detector-{version}"},
                     "placement": {"clusterSelector": {"matchLabels": {"rollback-bench": str(n)}}},
                     "runtime": {"replicas": 1, "resources": {"requests": {"cpu": "5m", "memory": "8Mi"}},
                                 "env": [{"name": "BENCH_ITERATION", "value": str(iteration)}]},
                     "approval": {"required": False},
                     "rollback": {"scope": "Deployment", "guardSeconds": 3600}}}


def post_alert(port, name):
    labels = {"alertname": "EdgelineRuntimeErrorRateHigh", "severity": "critical", "namespace": NS,
              "edgeline_deployment": name}
    body = {"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": labels,
                                                            "startsAt": "2026-11-25T10:00:00Z",
                                                            "fingerprint": uuid.uuid4().hex[:16]}]}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/alerts", data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {TOKEN}"}, method="POST")
    urllib.request.urlopen(request, timeout=10).read()


def one_size(env, n, runs, alerts_port):
    names = [f"rb-{n}-{i:03d}" for i in range(n)]
    apply(env, [{"apiVersion": "edgeline.io/v1alpha1", "kind": "EdgeCluster",
                 "metadata": {"name": c, "labels": {"rollback-bench": str(n)}},
                 "spec": {"tier": "edge", "targetNamespace": c,
                          "connection": {"kubeconfigSecretRef": {"name": f"{'edge-a' if i % 2 else 'edge-b'}-kubeconfig"}}}}
                for i, c in enumerate(names)])
    wait(lambda: kubectl(env, "hub", "get", "edgeclusters", "-l", f"rollback-bench={n}", "-o",
                         "jsonpath={range .items[*]}{.status.phase}{'\\n'}{end}").split().count("Ready") == n, 300,
         "EdgeClusters Ready")
    name = f"rollback-{n}"
    apply(env, [deployment(name, n, "1.0.0", 0)])
    wait(lambda: status(env, name).get("phase") == "Healthy", 600, "first rollout")
    operator_ms, external_ms = [], []
    for run in range(1, runs + 1):
        apply(env, [deployment(name, n, "2.0.0", run)])
        bad = wait(lambda: (s := status(env, name)).get("phase") == "Healthy" and
                   s["currentRevision"]["version"] == "2.0.0" and s["currentRevision"]["revision"], 600,
                   "bad revision rolled out")
        start = time.monotonic()
        post_alert(alerts_port, name)
        record = wait(lambda: ((s := status(env, name)).get("rollbacks") or [{}])[0].get("appliedAt")
                      and s["rollbacks"][0]["fromRevision"] == bad and s["rollbacks"][0], 120, "rollback applied")
        external_ms.append((time.monotonic() - start) * 1000)
        operator_ms.append(record["latencyMs"])
        assert len(record["clusters"]) == n
    sample = names[0]
    member = "edge-a" if names.index(sample) % 2 else "edge-b"
    digest = current_config(env, member, sample)["EDGELINE_MODEL_SHA256"]
    kubectl(env, "hub", "delete", "edgedeployment", name, "-n", NS, "--timeout=300s")
    kubectl(env, "hub", "delete", "edgeclusters", "-l", f"rollback-bench={n}", "--wait=false")
    return {"clusters": n, "runs": runs,
            "operator_ms": {"p50": percentile(operator_ms, 0.5), "p99": percentile(operator_ms, 0.99),
                            "max": max(operator_ms)},
            "external_ms": {"p50": round(percentile(external_ms, 0.5)), "p99": round(percentile(external_ms, 0.99))},
            "sample_cluster_digest_after": digest}


def metric_to_revert(env, alerts_port, model_root: Path, server_url: str) -> dict:
    """The broken model served by a real runtime with traffic; Prometheus and Alertmanager with
    short timings; from the first failing request to the revert applied."""
    name = "rollback-e2e"
    apply(env, [{"apiVersion": "edgeline.io/v1alpha1", "kind": "EdgeCluster",
                 "metadata": {"name": "rb-e2e", "labels": {"rollback-bench": "e2e"}},
                 "spec": {"tier": "edge", "targetNamespace": "rb-e2e",
                          "connection": {"kubeconfigSecretRef": {"name": "edge-a-kubeconfig"}}}}])
    wait(lambda: "Ready" in kubectl(env, "hub", "get", "edgecluster", "rb-e2e", "-o", "jsonpath={.status.phase}"),
         120, "EdgeCluster Ready")
    spec = deployment(name, "e2e", "1.0.0", 0)
    apply(env, [spec])
    wait(lambda: status(env, name).get("phase") == "Healthy", 120, "good rollout")
    spec["spec"]["modelRef"]["name"] = "detector-broken"
    apply(env, [spec])
    wait(lambda: (s := status(env, name)).get("phase") == "Healthy" and s["currentRevision"]["version"] == "9.0.0",
         120, "broken rollout")
    config = current_config(env, "edge-a", "rb-e2e")
    work = Path(tempfile.mkdtemp(prefix="edgeline-rollback-bench-"))
    runtime_env = {**{k: v for k, v in os.environ.items() if not k.startswith("EDGELINE_")}, **config,
                   "EDGELINE_MODEL_DIR": str(work / "models"), "EDGELINE_PORT": str(free_port()),
                   "EDGELINE_HOST": "127.0.0.1"}
    runtime = subprocess.Popen([sys.executable, "-m", "edgeline", "runtime", "serve", "--host", "127.0.0.1",
                                "--port", runtime_env["EDGELINE_PORT"]], env=runtime_env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{runtime_env['EDGELINE_PORT']}"
    timings = Timings()
    stop = threading.Event()
    first_failure: list[float] = []

    def traffic():
        body = json.dumps(runtime_models.infer_body(runtime_models.images(1))).encode()
        while not stop.is_set():
            try:
                urllib.request.urlopen(urllib.request.Request(f"{url}/v2/models/defect-detector/infer", data=body,
                                                              method="POST"), timeout=5)
            except urllib.error.HTTPError:
                if not first_failure:
                    first_failure.append(time.time())
            except OSError:
                pass
            time.sleep(0.1)
    try:
        wait(lambda: _ready(url), 60, "runtime ready")
        with Monitoring(work / "monitoring", targets=[ScrapeTarget(url.removeprefix("http://"))],
                        rule_files=[ROOT / "manifests/monitoring/prometheus-rules.yaml"],
                        webhook=Webhook(f"http://127.0.0.1:{alerts_port}/alerts", bearer_token=TOKEN), timings=timings):
            thread = threading.Thread(target=traffic, daemon=True)
            thread.start()
            record = wait(lambda: ((s := status(env, name)).get("rollbacks") or [{}])[0].get("appliedAt")
                          and s["rollbacks"][0], 180, "the rollback")
            stop.set()
    finally:
        runtime.terminate()
        runtime.wait(20)
    applied = _epoch(record["appliedAt"])
    received = _epoch(record["receivedAt"])
    kubectl(env, "hub", "delete", "edgedeployment", name, "-n", NS, "--timeout=120s")
    kubectl(env, "hub", "delete", "edgecluster", "rb-e2e", "--wait=false")
    return {"timings": timings.__dict__, "first_failed_request_to_alert_received_s": round(received - first_failure[0], 2),
            "alert_received_to_reverted_ms": record["latencyMs"],
            "first_failed_request_to_reverted_s": round(applied - first_failure[0], 2)}


def _ready(url):
    try:
        return urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2).status == 200
    except OSError:
        return False


def _epoch(text):
    parsed = timestamps.parse(text)
    if parsed is None:
        raise ValueError(f"no timestamp: {text!r}")
    return parsed.timestamp()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/rollback.json")
    args = parser.parse_args()
    env = DevEnvironment(STATE)
    env.up(timeout_s=300)
    kubectl(env, "hub", "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kubectl(env, "hub", "wait", "--for=condition=Established", "-f", str(ROOT / "crds"))
    apply(env, [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in ("edgeline-system", NS)])
    # The bench measures rollouts, not approvals: the platform's policy for its namespace needs none.
    apply(env, [{"apiVersion": "edgeline.io/v1alpha1", "kind": "ApprovalPolicy", "metadata": {"name": "bench"},
                 "spec": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NS}},
                          "required": False}}])
    apply(env, [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"{c}-kubeconfig", "namespace": "edgeline-system"},
                 "stringData": {"kubeconfig": env.kubeconfig(c).read_text()}} for c in ("edge-a", "edge-b")])
    alerts_port = free_port()
    log = (STATE / "operator-rollback.log").open("ab")
    operator = subprocess.Popen([sys.executable, "-m", "edgeline", "run"], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                env={**os.environ, "KUBECONFIG": str(env.kubeconfig("hub")),
                                     "EDGELINE_NAMESPACE": "edgeline-system", "EDGELINE_METRICS_PORT": str(free_port()),
                                     "EDGELINE_ALERTS_PORT": str(alerts_port),
                                     "EDGELINE_ARTIFACT_ALLOWED_CIDRS": "127.0.0.1/32",
                                     "EDGELINE_ALERTS_LISTEN": "127.0.0.1", "EDGELINE_ALERTS_TOKEN": TOKEN})
    results = {"machine": f"{os.cpu_count()} cores", "sizes": []}
    root = Path(tempfile.mkdtemp(prefix="edgeline-rollback-models-"))
    for version in ("1.0.0", "2.0.0"):
        (root / f"{version}.onnx").write_bytes(runtime_models.sample_model(version).read_bytes())
    onnx_models.write(runtime_models.broken_defect_detector("9.0.0"), root / "broken.onnx")
    try:
        with ArtifactServer(root) as server:
            clean_slate(env)
            for version, file in (("1.0.0", "1.0.0.onnx"), ("2.0.0", "2.0.0.onnx"), ("broken", "broken.onnx")):
                kubectl(env, "hub", "delete", "mlmodel", f"detector-{version}", "-n", NS, "--ignore-not-found")
                apply(env, [{"apiVersion": "edgeline.io/v1alpha1", "kind": "MLModel",
                             "metadata": {"name": f"detector-{version}", "namespace": NS},
                             "spec": {"model": "defect-detector", "version": "9.0.0" if version == "broken" else version,
                                      "stage": "production",
                                      "artifact": {"uri": f"{server.url}/{file}",
                                                   "sha256": onnx_models.file_digest(root / file)}}}])
                kubectl(env, "hub", "wait", f"mlmodel/detector-{version}", "-n", NS, "--for=condition=Ready",
                        "--timeout=120s")
            for n in args.sizes:
                results["sizes"].append(one_size(env, n, args.runs, alerts_port))
                print(json.dumps(results["sizes"][-1]), flush=True)
            results["metric_to_revert"] = metric_to_revert(env, alerts_port, root, server.url)
            print(json.dumps(results["metric_to_revert"]), flush=True)
    finally:
        operator.terminate()
        operator.wait(30)
        if os.environ.get("EDGELINE_KEEP_ENV") != "1":
            env.down()
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
