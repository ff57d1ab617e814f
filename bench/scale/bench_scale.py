"""Scale against SIMULATED member clusters: the operator's own cost per cluster, up to 1,000.

The hub is a real kube-apiserver (the dev environment's, hub only); the member clusters are
stand-ins (bench/scale/standin.py: one aiohttp process answering, per cluster, the requests
Edgeline sends; a Deployment turns ready 0.5 s after its spec changes). Every figure from
here is labelled "simulation" in bench/results/scale.json. Per cluster count N:
  - fan-out: `kubectl apply` of one EdgeDeployment -> status Healthy N/N (wall time), the
    operator's CPU seconds (utime+stime of its process) and member requests per cluster;
  - revert: an alert POSTed to the receiver -> every cluster reverted, `--runs` times, each
    after a fresh bad revision rolled out: as the operator records it (status.rollbacks[0]
    .latencyMs, receipt -> last write), from outside (POST -> status shows it), and from the
    edge side (POST -> the last stand-in Deployment whose Pod template got the restored revision);
then, at the largest N: RSS with `--deployments` EdgeDeployments on every cluster, and the
idle member-API requests/s with 1 and with that many deployments.
Run: .venv/bin/python bench/scale/bench_scale.py [--sizes 10 100 1000] [--runs 20] [--profile out.prof]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(Path(__file__).parent))

from standin import kubeconfig  # noqa: E402

from bench.common.alerts import AlertReceiver  # noqa: E402
from bench.common.hub import apply, kubectl, wait  # noqa: E402
from bench.common.process import cpu_seconds, memory_mib, operator_requests  # noqa: E402
from edgeline.devenv.environment import DevEnvironment, free_port  # noqa: E402
from edgeline.devenv.topology import HUB  # noqa: E402
from tests.helpers import onnx_models, runtime_models  # noqa: E402
from tests.helpers.artifact_server import ArtifactServer  # noqa: E402

STATE = ROOT / ".edgeline" / "bench-scale"
NS = "bench"
SYSTEM = "edgeline-system"


def get_json(url):
    return json.loads(urllib.request.urlopen(url, timeout=30).read())


def standin_requests(port: int) -> float:
    return sum(get_json(f"http://127.0.0.1:{port}/stats")["requests"].values())


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def status(env, name):
    """Straight from the hub's API (no kubectl process per poll: the operator shares these 2 cores)."""
    path = f"/apis/edgeline.io/v1alpha1/namespaces/{NS}/edgedeployments/{name}"
    return env.access("hub").request("GET", path, timeout=30).get("status") or {}


def deployment(name, selector, version, iteration, guard=3600):
    return {"apiVersion": "edgeline.io/v1alpha1", "kind": "EdgeDeployment", "metadata": {"name": name, "namespace": NS},
            "spec": {"modelRef": {"name": f"detector-{version}"},
                     "placement": {"clusterSelector": {"matchLabels": selector}},
                     "runtime": {"replicas": 1, "resources": {"requests": {"cpu": "5m", "memory": "8Mi"}},
                                 "env": [{"name": "BENCH_ITERATION", "value": str(iteration)}]},
                     "approval": {"required": False},
                     "rollback": {"scope": "Deployment", "guardSeconds": guard}}}


def healthy(env, name, n, version=None):
    s = status(env, name)
    ok = s.get("phase") == "Healthy" and s.get("ready") == f"{n}/{n}"
    if ok and version:
        ok = (s.get("currentRevision") or {}).get("version") == version
    return s if ok else None


class Bench:
    def __init__(self, env, standin_port, metrics_port, receiver: AlertReceiver, pid, standin_pid=None):
        self.env, self.standin_port, self.metrics_port, self.receiver, self.pid = \
            env, standin_port, metrics_port, receiver, pid
        self.standin_pid = standin_pid

    def register(self, n: int) -> list[str]:
        names = [f"sim-{n}-{i:04d}" for i in range(n)]
        docs = []
        for name in names:
            docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"{name}-kubeconfig",
                                                                           "namespace": SYSTEM},
                         "stringData": {"kubeconfig": yaml.safe_dump(kubeconfig(self.standin_port, name))}})
            docs.append({"apiVersion": "edgeline.io/v1alpha1", "kind": "EdgeCluster",
                         "metadata": {"name": name, "labels": {"sim": str(n)}},
                         "spec": {"tier": "edge", "targetNamespace": "site", "tenancy": {"namespaces": [NS]},
                                  "connection": {"kubeconfigSecretRef": {"name": f"{name}-kubeconfig"}}}})
        start = time.monotonic()
        apply(self.env, docs)
        wait(lambda: kubectl(self.env, "get", "edgeclusters", "-l", f"sim={n}", "-o",
                             "jsonpath={range .items[*]}{.status.phase}{'\\n'}{end}").split().count("Ready") == n,
             900, f"{n} EdgeClusters Ready", every=1.0)
        print(f"{n} clusters registered and Ready in {time.monotonic() - start:.1f}s", flush=True)
        return names

    def fanout(self, n: int) -> dict:
        name = f"fanout-{n}"
        cpu0, req0, ours0 = cpu_seconds(self.pid), standin_requests(self.standin_port), \
            operator_requests(self.metrics_port)
        rig0 = cpu_seconds(self.standin_pid) if self.standin_pid else 0.0
        start = time.monotonic()
        apply(self.env, [deployment(name, {"sim": str(n)}, "1.0.0", 0)])
        wait(lambda: healthy(self.env, name, n), 900, f"{name} Healthy", every=0.25)
        seconds = time.monotonic() - start
        cpu = cpu_seconds(self.pid) - cpu0
        ours = {k: round((v - ours0.get(k, 0)) / n, 2) for k, v in operator_requests(self.metrics_port).items()
                if v - ours0.get(k, 0)}
        return {"clusters": n, "seconds_to_all_ready": round(seconds, 2),
                "operator_cpu_s_per_cluster": round(cpu / n, 4),
                "standin_cpu_s_per_cluster": round((cpu_seconds(self.standin_pid) - rig0) / n, 4)
                if self.standin_pid else None,
                "operator_member_requests_per_cluster": ours,
                "member_requests_per_cluster_all": round((standin_requests(self.standin_port) - req0) / n, 2),
                "operator_memory_mib": memory_mib(self.pid)}

    def revert(self, n: int, runs: int) -> dict:
        name = f"fanout-{n}"
        good = status(self.env, name)["currentRevision"]["revision"]
        operator_ms, external_ms, edge_ms, operator_cpu, standin_cpu = [], [], [], [], []
        for run in range(1, runs + 1):
            apply(self.env, [deployment(name, {"sim": str(n)}, "2.0.0", run)])
            bad = wait(lambda: healthy(self.env, name, n, "2.0.0"), 900, "bad revision rolled out",
                       every=0.25)["currentRevision"]["revision"]
            posted = time.time()
            start = time.monotonic()
            cpu0 = cpu_seconds(self.pid)
            rig0 = cpu_seconds(self.standin_pid) if self.standin_pid else 0.0
            self.receiver.post(name, NS)
            record = wait(lambda: ((s := status(self.env, name)).get("rollbacks") or [{}])[0].get("appliedAt")
                          and s["rollbacks"][0]["fromRevision"] == bad and s["rollbacks"][0], 300, "rollback applied",
                          every=0.05)
            external_ms.append(round((time.monotonic() - start) * 1000))
            # CPU of the whole window (POST -> status shows the rollback): the fast path and the tick after it.
            operator_cpu.append(round(cpu_seconds(self.pid) - cpu0, 3))
            standin_cpu.append(round(cpu_seconds(self.standin_pid) - rig0, 3) if self.standin_pid else None)
            operator_ms.append(record["latencyMs"])
            edge = get_json(f"http://127.0.0.1:{self.standin_port}/stats/revision?label={good}&prefix=bench-fanout-{n}")
            assert edge["clusters"] == n, edge
            edge_ms.append(round((edge["last"] - posted) * 1000))
            print(f"  revert {n} run {run}: operator {operator_ms[-1]} ms, edge {edge_ms[-1]} ms, "
                  f"external {external_ms[-1]} ms", flush=True)
        summary = {}
        for label, values in (("operator_ms", operator_ms), ("edge_ms", edge_ms), ("external_ms", external_ms)):
            summary[label] = {"p50": percentile(values, 0.5), "p99": percentile(values, 0.99), "max": max(values)}
        summary["operator_cpu_s_p50"] = percentile(operator_cpu, 0.5)
        if self.standin_pid:
            summary["standin_cpu_s_p50"] = percentile(standin_cpu, 0.5)
        return {"clusters": n, "runs": runs, **summary, "operator_ms_all": operator_ms, "edge_ms_all": edge_ms,
                "operator_cpu_s_all": operator_cpu}

    def idle(self, seconds: float = 30.0) -> dict:
        req0, cpu0, t0 = standin_requests(self.standin_port), cpu_seconds(self.pid), time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - t0
        return {"member_requests_per_s": round((standin_requests(self.standin_port) - req0) / elapsed, 1),
                "operator_cpu_share": round((cpu_seconds(self.pid) - cpu0) / elapsed, 3)}

    def many(self, n: int, count: int) -> dict:
        """`count` EdgeDeployments (the fan-out one and count-1 more) on all n clusters."""
        idle_one = self.idle()
        more = [deployment(f"extra-{n}-{i}", {"sim": str(n)}, "1.0.0", 0) for i in range(1, count)]
        start = time.monotonic()
        apply(self.env, more)
        for spec in more:
            wait(lambda: healthy(self.env, spec["metadata"]["name"], n), 1800, "extra deployments Healthy",
                 every=1.0)
        seconds = time.monotonic() - start
        time.sleep(10)
        idle_many = self.idle()
        return {"clusters": n, "deployments": count, "seconds_to_all_ready": round(seconds, 1),
                "operator_memory_mib": memory_mib(self.pid),
                "idle_with_1_deployment": idle_one, f"idle_with_{count}_deployments": idle_many}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--runs", type=int, nargs="+", default=[20],
                        help="reverts per size (one number for all sizes, or one per size)")
    parser.add_argument("--deployments", type=int, default=10)
    parser.add_argument("--probe-interval", type=float, default=None,
                        help="EDGELINE_CLUSTER_PROBE_INTERVAL_S for the operator (default: the operator's, 10 s)")
    parser.add_argument("--profile", type=Path, help="run the operator under cProfile and write its stats here")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/scale.json")
    args = parser.parse_args()
    # Stopped by a signal, the bench still tears down what it started (a background job ignores SIGINT).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))     # a connection or two per cluster, both sides

    env = DevEnvironment(STATE, clusters=(HUB,), real_nodes=False)
    # A fresh hub each run: objects an interrupted run left would point at a stand-in that is gone.
    env.down()
    shutil.rmtree(STATE, ignore_errors=True)
    env.up(timeout_s=300)
    STATE.mkdir(parents=True, exist_ok=True)
    standin_port, metrics_port = free_port(), free_port()
    receiver = AlertReceiver(env.kubeconfig("hub"), free_port())
    standin = subprocess.Popen([sys.executable, str(Path(__file__).parent / "standin.py"), "--port", str(standin_port)],
                               stdout=subprocess.DEVNULL, stderr=(STATE / "standin.log").open("ab"))
    kubectl(env, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kubectl(env, "wait", "--for=condition=Established", "-f", str(ROOT / "crds"))
    apply(env, [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in (SYSTEM, NS)])
    # The bench measures rollouts, not approvals: the platform's policy for its namespace needs none.
    apply(env, [{"apiVersion": "edgeline.io/v1alpha1", "kind": "ApprovalPolicy", "metadata": {"name": "bench"},
                 "spec": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NS}},
                          "required": False}}])
    command = [sys.executable, *(["-m", "cProfile", "-o", str(args.profile)] if args.profile else []),
               "-m", "edgeline", "run", "--liveness", f"http://127.0.0.1:{free_port()}/healthz"]
    operator = subprocess.Popen(command, stdout=(STATE / "operator.log").open("ab"), stderr=subprocess.STDOUT,
                                cwd=ROOT, env={**os.environ, "KUBECONFIG": str(env.kubeconfig("hub")),
                                               "EDGELINE_NAMESPACE": SYSTEM, "EDGELINE_METRICS_PORT": str(metrics_port),
                                               "EDGELINE_WEBHOOK_PORT": "0", **receiver.env(),
                                               # This machine's load (other sessions' clusters) can keep the hub from
                                               # answering a renewal for 10 s; the bench measures the rollout, not the
                                               # election, so a longer deadline keeps one overloaded second from
                                               # ending the run.
                                               **({"EDGELINE_CLUSTER_PROBE_INTERVAL_S": str(args.probe_interval)}
                                                  if args.probe_interval else {}),
                                               "EDGELINE_LEADER_LEASE_DURATION_S": "60",
                                               "EDGELINE_LEADER_RENEW_DEADLINE_S": "45",
                                               "EDGELINE_ARTIFACT_ALLOWED_CIDRS": "127.0.0.1/32"})
    results = {"simulation": "member clusters are stand-ins (bench/scale/standin.py), not Kubernetes; the hub is a "
                             "real kube-apiserver; everything shares the same machine",
               "machine": f"{os.cpu_count()} cores", "probe_interval_s": args.probe_interval or 10.0,
               "fanout": [], "revert": []}
    root = Path(tempfile.mkdtemp(prefix="edgeline-scale-models-"))
    for version in ("1.0.0", "2.0.0"):
        (root / f"{version}.onnx").write_bytes(runtime_models.sample_model(version).read_bytes())
    bench = Bench(env, standin_port, metrics_port, receiver, operator.pid, standin.pid)
    try:
        with ArtifactServer(root) as server:
            for version in ("1.0.0", "2.0.0"):
                kubectl(env, "delete", "mlmodel", f"detector-{version}", "-n", NS, "--ignore-not-found")
                apply(env, [{"apiVersion": "edgeline.io/v1alpha1", "kind": "MLModel",
                             "metadata": {"name": f"detector-{version}", "namespace": NS},
                             "spec": {"model": "defect-detector", "version": version, "stage": "production",
                                      "artifact": {"uri": f"{server.url}/{version}.onnx",
                                                   "sha256": onnx_models.file_digest(root / f"{version}.onnx")}}}])
                kubectl(env, "wait", f"mlmodel/detector-{version}", "-n", NS, "--for=condition=Ready",
                        "--timeout=180s")
            results["load_average_1m_at_start"] = round(os.getloadavg()[0], 1)
            runs = dict(zip(args.sizes, args.runs if len(args.runs) == len(args.sizes) else args.runs[:1] * len(args.sizes)))
            for n in args.sizes:
                bench.register(n)
                results["fanout"].append(bench.fanout(n))
                print(json.dumps(results["fanout"][-1]), flush=True)
                if runs[n]:
                    results["revert"].append(bench.revert(n, runs[n]))
                    print(json.dumps({k: v for k, v in results["revert"][-1].items() if not k.endswith("_all")}),
                          flush=True)
                if n == max(args.sizes) and args.deployments > 1:
                    results["many"] = bench.many(n, args.deployments)
                    print(json.dumps(results["many"]), flush=True)
                results["operator_memory_mib"] = memory_mib(operator.pid)
                results.setdefault("load_average_1m_after_each_size", []).append(round(os.getloadavg()[0], 1))
                args.out.write_text(json.dumps(results, indent=2) + "\n")
                if n != max(args.sizes):
                    kubectl(env, "delete", "edgedeployment", f"fanout-{n}", "-n", NS, "--timeout=600s")
                    kubectl(env, "delete", "edgeclusters", "-l", f"sim={n}", "--wait=false")
    finally:
        operator.terminate()
        try:
            operator.wait(120)
        except subprocess.TimeoutExpired:
            operator.kill()
        standin.kill()
        standin.wait(30)
        if os.environ.get("EDGELINE_KEEP_ENV") != "1":
            env.down()
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
