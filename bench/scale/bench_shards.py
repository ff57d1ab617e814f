"""Fan-out with 1 replica vs 2 sharded replicas, against SIMULATED member clusters.

Same rig as bench_scale.py (a real hub kube-apiserver, the member clusters are stand-ins from
standin.py), but the operator runs as 1 process (shards 1) or as 2 processes with 2 shards
(docs/install.md, "Sharded operation"). Per cluster count N and replica count: `kubectl apply`
of one EdgeDeployment -> Healthy N/N (wall time), the CPU seconds of every operator process
(utime+stime) and the member writes each replica made (edgeline_cluster_writes_total).

What it can show on this 2-core machine: how the per-cluster work divides between the replicas
(writes and CPU per replica) and what the hand-off costs (the leader's extra status writes, the
follower's rounds). What it cannot show: a speed-up from a second replica. Two replicas, the hub
API server and the stand-ins all share the same 2 cores, so the wall time measures contention,
not what two machines would do. Results: bench/results/shards.json ("simulation").
Run: .venv/bin/python bench/scale/bench_shards.py [--sizes 50 200]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench_scale as rig  # noqa: E402
from bench_scale import NS, ROOT, SYSTEM, Bench, apply, healthy, kubectl, wait  # noqa: E402

from bench.common.alerts import TOKEN  # noqa: E402
from bench.common.process import cpu_seconds  # noqa: E402
from edgeline.devenv.environment import DevEnvironment, free_port  # noqa: E402
from edgeline.devenv.topology import HUB  # noqa: E402
from tests.helpers import onnx_models, runtime_models  # noqa: E402

STATE = ROOT / ".edgeline" / "bench-shards"


def writes(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return 0
    return int(sum(float(m.group(1)) for m in re.finditer(r'^edgeline_cluster_writes_total\{[^}]*action="apply"'
                                                           r'[^}]*\} (\S+)$', text, re.M)))


def start_operator(env, index: int, shards: int) -> tuple[subprocess.Popen, int]:
    metrics_port = free_port()
    proc = subprocess.Popen(
        # A liveness port of its own: kopf's default (8081) is taken by the other replica or another session.
        [sys.executable, "-m", "edgeline", "run", "--liveness", f"http://127.0.0.1:{free_port()}/healthz"],
        stdout=(STATE / f"operator-{index}.log").open("ab"), stderr=subprocess.STDOUT, cwd=ROOT,
        env={**os.environ, "KUBECONFIG": str(env.kubeconfig("hub")), "EDGELINE_NAMESPACE": SYSTEM,
             "EDGELINE_METRICS_PORT": str(metrics_port), "EDGELINE_ALERTS_PORT": str(free_port()),
             "EDGELINE_ALERTS_LISTEN": "127.0.0.1", "EDGELINE_ALERTS_TOKEN": TOKEN,
             "EDGELINE_ARTIFACT_ALLOWED_CIDRS": "127.0.0.1/32", "EDGELINE_SHARDS": str(shards),
             # The stand-in EdgeClusters carry no spec.tenancy: every namespace may use them.
             "EDGELINE_TENANCY_OPEN_WITHOUT_SECTION": "true",
             "EDGELINE_LEADER_IDENTITY": f"bench-{shards}-{index}",
             # As bench_scale.py: this machine's load can keep the hub from answering a renewal for 10 s.
             "EDGELINE_LEADER_LEASE_DURATION_S": "60", "EDGELINE_LEADER_RENEW_DEADLINE_S": "45"})
    return proc, metrics_port


def stop(procs) -> None:
    for proc, _ in procs:
        proc.terminate()
    for proc, _ in procs:
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def balanced(env, shards: int) -> bool:
    holders = []
    for i in range(shards):
        out = kubectl(env, "get", "lease", f"edgeline-shard-{i}", "-n", SYSTEM, "-o",
                      "jsonpath={.spec.holderIdentity}", check=False)
        holders.append(out.strip())
    return len(set(h for h in holders if h)) == shards


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/shards.json")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    rig.STATE = STATE
    env = DevEnvironment(STATE, clusters=(HUB,), real_nodes=False)
    env.down()
    shutil.rmtree(STATE, ignore_errors=True)
    env.up(timeout_s=300)
    STATE.mkdir(parents=True, exist_ok=True)
    standin_port = free_port()
    standin = subprocess.Popen([sys.executable, str(Path(__file__).parent / "standin.py"), "--port", str(standin_port)],
                               stdout=subprocess.DEVNULL, stderr=(STATE / "standin.log").open("ab"))
    kubectl(env, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kubectl(env, "wait", "--for=condition=Established", "-f", str(ROOT / "crds"))
    apply(env, [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in (SYSTEM, NS)])
    # The bench's namespace is a sandbox: its platform team requires no approval (else the built-in floor does).
    apply(env, [{"apiVersion": "edgeline.io/v1alpha1", "kind": "ApprovalPolicy", "metadata": {"name": "bench-sandbox"},
                 "spec": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NS}},
                          "required": False, "allowSelfApproval": True}}])
    results = {"simulation": "member clusters are stand-ins (bench/scale/standin.py), not Kubernetes; the hub is a "
                             "real kube-apiserver; both replicas, the hub and the stand-ins share the same machine",
               "machine": f"{os.cpu_count()} cores", "load_average_1m_at_start": round(os.getloadavg()[0], 1),
               "fanout": []}
    root = Path(tempfile.mkdtemp(prefix="edgeline-shards-models-"))
    (root / "1.0.0.onnx").write_bytes(runtime_models.sample_model("1.0.0").read_bytes())
    procs = []
    try:
        with rig.ArtifactServer(root) as server:
            apply(env, [{"apiVersion": "edgeline.io/v1alpha1", "kind": "MLModel",
                         "metadata": {"name": "detector-1.0.0", "namespace": NS},
                         "spec": {"model": "defect-detector", "version": "1.0.0", "stage": "production",
                                  "artifact": {"uri": f"{server.url}/1.0.0.onnx",
                                               "sha256": onnx_models.file_digest(root / "1.0.0.onnx")}}}])
            for replicas in (1, 2):
                procs = [start_operator(env, i, replicas) for i in range(replicas)]
                if replicas > 1:
                    wait(lambda: balanced(env, replicas), 120, "one shard per replica", every=1.0)
                kubectl(env, "wait", "mlmodel/detector-1.0.0", "-n", NS, "--for=condition=Ready", "--timeout=180s")
                bench = Bench(env, standin_port, procs[0][1], None, procs[0][0].pid)  # only register(): no alerts
                for n in args.sizes:
                    bench.register(n)
                    name = f"fanout-{n}"
                    cpu0 = [cpu_seconds(p.pid) for p, _ in procs]
                    w0 = [writes(port) for _, port in procs]
                    start = time.monotonic()
                    apply(env, [rig.deployment(name, {"sim": str(n)}, "1.0.0", 0)])
                    wait(lambda: healthy(env, name, n), 1800, f"{name} Healthy", every=0.25)
                    seconds = time.monotonic() - start
                    if any(p.poll() is not None for p, _ in procs):
                        raise RuntimeError(f"an operator replica exited (see {STATE}/operator-*.log)")
                    row = {"replicas": replicas, "shards": replicas, "clusters": n,
                           "seconds_to_all_ready": round(seconds, 2),
                           "operator_cpu_s_per_replica": [round(cpu_seconds(p.pid) - c, 2)
                                                          for (p, _), c in zip(procs, cpu0)],
                           "member_writes_per_replica": [writes(port) - w for (_, port), w in zip(procs, w0)],
                           "load_average_1m": round(os.getloadavg()[0], 1)}
                    row["operator_cpu_s_per_cluster"] = round(sum(row["operator_cpu_s_per_replica"]) / n, 4)
                    results["fanout"].append(row)
                    print(json.dumps(row), flush=True)
                    args.out.write_text(json.dumps(results, indent=2) + "\n")
                    kubectl(env, "delete", "edgedeployment", name, "-n", NS, "--timeout=900s", timeout=960)
                    kubectl(env, "delete", "edgeclusters", "-l", f"sim={n}", "--timeout=600s", timeout=660)
                stop(procs)
                procs = []
    finally:
        stop(procs)
        standin.kill()
        standin.wait(30)
        if os.environ.get("EDGELINE_KEEP_ENV") != "1":
            env.down()
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
