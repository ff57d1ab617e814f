"""Fan-out: one EdgeDeployment selecting N EdgeClusters (N = 10, 50, 200).

The EdgeClusters point at the two local edge API servers, each with its own target
namespace, as many sites behind few API servers would. Measured per N:
  - seconds from `kubectl apply` of the EdgeDeployment until status shows N/N ready (Healthy)
  - the operator's peak RSS (VmHWM) over the whole run
  - API requests the operator sent per cluster during the rollout (its own counter
    edgeline_member_cluster_requests_total, by purpose), and all requests the edge API
    servers served in that time (incl. controller-manager and kwok), per cluster
  - the operator's CPU seconds per cluster (utime+stime of its process during the rollout)
  - side by side, same run, same clusters: what users do today, a `kubectl apply` of the same
    rendered objects per cluster (its kubeconfig, its namespace) followed by `kubectl wait` for
    the Deployment to be Available, sequentially and 16 clusters at a time
Run: .venv/bin/python bench/fanout/bench_fanout.py [--sizes 10 50 200]; writes bench/results/fanout.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from edgeline.api.edgedeployment import RevisionRef  # noqa: E402
from edgeline.devenv.environment import DevEnvironment, free_port  # noqa: E402
from edgeline.render.runtime import Target, render  # noqa: E402
from tests.helpers.artifact_server import serve  # noqa: E402

STATE = ROOT / ".edgeline" / "bench"
KUBECTL = str(Path(sys.executable).parent / "kubectl")
NS = "bench"
DIGEST = next(d["spec"]["artifact"]["sha256"] for d in yaml.safe_load_all(
    (ROOT / "manifests/samples/20-mlmodels.yaml").read_text()) if d["spec"]["version"] == "1.0.0")


def kubectl(env, cluster, *args, input=None, check=True):
    proc = subprocess.run([KUBECTL, "--kubeconfig", str(env.kubeconfig(cluster)), *args], input=input,
                          capture_output=True, text=True, timeout=300)
    if check and proc.returncode:
        raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr}")
    return proc.stdout


def apply(env, docs):
    kubectl(env, "hub", "apply", "-f", "-", input=yaml.safe_dump_all(docs))


def requests_total(env, cluster) -> float:
    text = kubectl(env, cluster, "get", "--raw", "/metrics")
    return sum(float(m.group(1)) for m in re.finditer(r'^apiserver_request_total\{[^}]*\} ([0-9.e+]+)$', text, re.M))


def operator_requests(port: int) -> dict[str, float]:
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {m.group(1): float(m.group(2)) for m in re.finditer(
        r'^edgeline_member_cluster_requests_total\{purpose="(\w+)"\} ([0-9.e+]+)$', text, re.M)}


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def kubectl_loop(env, member: dict[str, str], revision: dict, parallel: int) -> float:
    """What users do without Edgeline: per cluster, `kubectl apply` the same objects into a
    namespace of its own, then `kubectl wait` until the Deployment is Available. Seconds."""
    tag = f"kc{parallel}"

    def one(cluster: str) -> None:
        namespace = f"{tag}-{cluster}"
        objects = render(NS, "kubectl", RevisionRef.model_validate(revision), Target(cluster, namespace))
        docs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}, *objects]
        kubectl(env, member[cluster], "apply", "-f", "-", input=yaml.safe_dump_all(docs))
        name = next(o["metadata"]["name"] for o in objects if o["kind"] == "Deployment")
        kubectl(env, member[cluster], "wait", "-n", namespace, f"deployment/{name}", "--for=condition=Available",
                "--timeout=600s")

    start = time.monotonic()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, member))
    seconds = time.monotonic() - start
    for edge in set(member.values()):
        for cluster in [c for c, e in member.items() if e == edge]:
            kubectl(env, edge, "delete", "namespace", f"{tag}-{cluster}", "--wait=false", check=False)
    return seconds


def clean_slate(env) -> None:
    """Leftovers of an interrupted run (deployments, clusters) would load the operator and skew every figure."""
    kubectl(env, "hub", "delete", "edgedeployments", "--all", "-n", NS, "--ignore-not-found", "--timeout=300s",
            check=False)
    kubectl(env, "hub", "delete", "edgeclusters", "--all", "--ignore-not-found", "--timeout=300s", check=False)


def wait(check, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.25)
    raise TimeoutError(what)


def run(sizes: list[int]) -> dict:
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
    log = (STATE / "operator.log").open("ab")
    port = free_port()
    operator = subprocess.Popen([sys.executable, "-m", "edgeline", "run"], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                env={**os.environ, "KUBECONFIG": str(env.kubeconfig("hub")),
                                     "EDGELINE_NAMESPACE": "edgeline-system", "EDGELINE_METRICS_PORT": str(port),
                                     "EDGELINE_ARTIFACT_ALLOWED_CIDRS": "127.0.0.1/32"})
    results = {"machine": f"{os.cpu_count()} cores", "runs": []}
    try:
        with serve(ROOT / "manifests/samples/models") as url:
            # The model server's port changes per run and an MLModel's spec is immutable.
            kubectl(env, "hub", "delete", "mlmodel", "detector-1.0.0", "-n", NS, "--ignore-not-found")
            clean_slate(env)
            apply(env, [{"apiVersion": "edgeline.io/v1alpha1", "kind": "MLModel",
                         "metadata": {"name": "detector-1.0.0", "namespace": NS},
                         "spec": {"model": "defect-detector", "version": "1.0.0", "stage": "production",
                                  "artifact": {"uri": f"{url}/defect-detector-1.0.0.onnx", "sha256": DIGEST}}}])
            kubectl(env, "hub", "wait", "mlmodel/detector-1.0.0", "-n", NS, "--for=condition=Ready", "--timeout=120s")
            for n in sizes:
                results["runs"].append(one_size(env, n, port, operator.pid))
                print(json.dumps(results["runs"][-1]), flush=True)
        results["operator_peak_rss_mib"] = round(peak_rss_mib(operator.pid), 1)
    finally:
        operator.terminate()
        operator.wait(30)
        if os.environ.get("EDGELINE_KEEP_ENV") != "1":
            env.down()
    return results


def one_size(env, n: int, port: int, pid: int) -> dict:
    names = [f"site-{n}-{i:03d}" for i in range(n)]
    member = {name: ("edge-a" if i % 2 else "edge-b") for i, name in enumerate(names)}
    apply(env, [{"apiVersion": "edgeline.io/v1alpha1", "kind": "EdgeCluster",
                 "metadata": {"name": name, "labels": {"bench": str(n)}},
                 "spec": {"tier": "edge", "targetNamespace": name,
                          "connection": {"kubeconfigSecretRef": {"name": f"{member[name]}-kubeconfig"}}}}
                for name in names])
    wait(lambda: kubectl(env, "hub", "get", "edgeclusters", "-l", f"bench={n}", "-o",
                         "jsonpath={range .items[*]}{.status.phase}{'\\n'}{end}").split().count("Ready") == n,
         300, f"{n} EdgeClusters Ready")
    before = {c: requests_total(env, c) for c in ("edge-a", "edge-b")}
    ours_before = operator_requests(port)
    cpu_before = cpu_seconds(pid)
    deployment = {"apiVersion": "edgeline.io/v1alpha1", "kind": "EdgeDeployment",
                  "metadata": {"name": f"fanout-{n}", "namespace": NS},
                  "spec": {"modelRef": {"name": "detector-1.0.0"},
                           "placement": {"clusterSelector": {"matchLabels": {"bench": str(n)}}},
                           "runtime": {"replicas": 1, "resources": {"requests": {"cpu": "5m", "memory": "8Mi"}}},
                           "approval": {"required": False}}}
    start = time.monotonic()
    apply(env, [deployment])

    def healthy():
        out = kubectl(env, "hub", "get", "edgedeployment", f"fanout-{n}", "-n", NS, "-o",
                      "jsonpath={.status.phase} {.status.ready}")
        return out == f"Healthy {n}/{n}"
    wait(healthy, 600, f"fanout-{n} Healthy")
    seconds = time.monotonic() - start
    cpu = cpu_seconds(pid) - cpu_before
    after = {c: requests_total(env, c) for c in ("edge-a", "edge-b")}
    ours = {k: round((v - ours_before.get(k, 0)) / n, 1) for k, v in operator_requests(port).items()}
    requests = sum(after[c] - before[c] for c in after)
    revision = json.loads(kubectl(env, "hub", "get", "edgedeployment", f"fanout-{n}", "-n", NS, "-o", "json"))[
        "status"]["currentRevision"]
    sequential = kubectl_loop(env, member, revision, 1)
    parallel = kubectl_loop(env, member, revision, 16)
    kubectl(env, "hub", "delete", "edgedeployment", f"fanout-{n}", "-n", NS, "--timeout=300s")
    kubectl(env, "hub", "delete", "edgeclusters", "-l", f"bench={n}", "--wait=false")
    return {"clusters": n, "seconds_to_all_ready": round(seconds, 1),
            "operator_cpu_s_per_cluster": round(cpu / n, 4),
            "kubectl_loop_seconds": {"sequential": round(sequential, 1), "parallel_16": round(parallel, 1)},
            "edgeline_speedup": {"vs_sequential": round(sequential / seconds, 1),
                                 "vs_parallel_16": round(parallel / seconds, 1)},
            "operator_requests_per_cluster": ours,
            "edge_api_requests_per_cluster_all_clients": round(requests / n, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/fanout.json")
    args = parser.parse_args()
    results = run(args.sizes)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
