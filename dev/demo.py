"""`make demo`: the local hub and edges, the operator, the samples, and a live view.

    python dev/demo.py          bring everything up, apply the samples, watch (Ctrl-C stops)
    python dev/demo.py --down   stop what an earlier demo left running

The samples' EdgeClusters name kubeconfig Secrets; the demo fills each with the
kubeconfig of the local cluster that plays that site (local_cluster_for below), and serves
the sample models on port 8765 of a host address that Pods on the real nodes reach (the
samples' MLModels say 127.0.0.1:8765; the demo applies them with that address instead).

Besides the samples, whose runtimes run on kwok nodes, the demo rolls the defect detector out
as a real container on edge-a's real node (EdgeDeployment factory/defect-detector-live, with
the runtime image from the local registry) and ends with an inference that runtime answers.
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))

from edgeline.devenv.environment import DevEnvError, DevEnvironment, free_port, user_kubeconfig  # noqa: E402

STATE = ROOT / ".edgeline" / "dev"
SAMPLES = ROOT / "manifests" / "samples"
ARTIFACT_PORT = 8765
OPERATOR_NAMESPACE = "edgeline-system"
KUBECTL = str(Path(sys.prefix) / "bin" / "kubectl")


def local_cluster_for(edge_cluster: dict) -> str:
    """Which local cluster plays a sample EdgeCluster: cloud -> hub, arm64 sites -> edge-b,
    every other edge -> edge-a."""
    spec = edge_cluster.get("spec", {})
    labels = edge_cluster.get("metadata", {}).get("labels", {})
    if spec.get("tier") == "cloud":
        return "hub"
    if "arm64" in json.dumps(labels) or "arm64" in json.dumps(spec):
        return "edge-b"
    return "edge-a"


def kubectl(*args: str, input: str | None = None, check: bool = True,
            cluster: str = "hub") -> subprocess.CompletedProcess:
    proc = subprocess.run([KUBECTL, "--kubeconfig", str(STATE / f"{cluster}.kubeconfig"), *args],
                          input=input, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def sample_documents(model_host: str = "127.0.0.1") -> list[dict]:
    docs = []
    for path in sorted(SAMPLES.glob("*.yaml")):
        text = path.read_text().replace(f"http://127.0.0.1:{ARTIFACT_PORT}/", f"http://{model_host}:{ARTIFACT_PORT}/")
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def apply_samples(model_host: str) -> None:
    """manifests/samples with the model URIs at an address Pods reach. An MLModel's spec cannot
    change: one left by an earlier demo with another address is created afresh."""
    docs = sample_documents(model_host)
    for doc in docs:
        if doc["kind"] != "MLModel":
            continue
        found = kubectl("get", "mlmodel", doc["metadata"]["name"], "-n", doc["metadata"]["namespace"], "-o", "json",
                        check=False)
        if found.returncode == 0 and json.loads(found.stdout)["spec"]["artifact"]["uri"] != doc["spec"]["artifact"]["uri"]:
            kubectl("delete", "mlmodel", doc["metadata"]["name"], "-n", doc["metadata"]["namespace"])
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))


def create_kubeconfig_secrets(env: DevEnvironment) -> None:
    secrets = []
    for doc in sample_documents():
        if doc.get("kind") != "EdgeCluster":
            continue
        ref = doc.get("spec", {}).get("connection", {}).get("kubeconfigSecretRef")
        if not ref:
            continue
        local = local_cluster_for(doc)
        key = ref.get("key", "kubeconfig")
        secrets.append({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": ref["name"], "namespace": OPERATOR_NAMESPACE,
                         "labels": {"edgeline.io/demo-cluster": local}},
            "stringData": {key: env.kubeconfig(local).read_text()},
        })
        print(f"  EdgeCluster {doc['metadata']['name']:24} -> local cluster {local}")
    if secrets:
        kubectl("apply", "-f", "-", input=yaml.safe_dump_all(secrets))


def serve_models(host: str) -> http.server.ThreadingHTTPServer:
    handler = functools.partial(_QuietHandler, directory=str(SAMPLES))
    try:
        server = http.server.ThreadingHTTPServer((host, ARTIFACT_PORT), handler)
    except OSError as exc:
        raise SystemExit(f"port {ARTIFACT_PORT} (sample model server) is busy: {exc}. Is another demo running?")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass


def start_operator(model_host: str) -> subprocess.Popen:
    log = (STATE / "operator.log").open("ab")
    env = {**os.environ, "KUBECONFIG": str(STATE / "hub.kubeconfig"), "EDGELINE_NAMESPACE": OPERATOR_NAMESPACE,
           "EDGELINE_METRICS_PORT": "0",
           "EDGELINE_ALERTS_PORT": str(free_port()), "EDGELINE_ALERTS_LISTEN": "127.0.0.1",
           # The sample models are served on the host's bridge address (Pods fetch them too), which the
           # fetch policy refuses unless allowed: exactly that address.
           "EDGELINE_ARTIFACT_ALLOWED_CIDRS": f"{model_host}/32"}
    proc = subprocess.Popen([sys.executable, "-m", "edgeline", "run", "--liveness", ""],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True)
    (STATE / "operator.pid").write_text(str(proc.pid))
    return proc


def grant_roles() -> None:
    """The platform team's mapping of groups to roles (docs/approvals.md)."""
    kubectl("apply", "-f", str(ROOT / "manifests" / "rbac" / "user-roles.yaml"))
    bindings = [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                 "metadata": {"name": f"factory-{role}"},
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": f"edgeline-{role}"},
                 "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}]}
                for role, group in (("editor", "factory:editors"), ("approver", "factory:approvers"))]
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(bindings))


def approve_as_two_people(env: DevEnvironment, name: str = "defect-detector") -> bool:
    """Once the deployment waits for approval, approve it as approver-a and approver-b."""
    found = kubectl("get", "edgedeployment", name, "-n", "factory", "-o", "json", check=False)
    if found.returncode:
        return False
    pending = ((json.loads(found.stdout).get("status") or {}).get("pendingApproval") or {}).get("revision") or {}
    if not pending.get("revision"):
        return False
    for user in ("approver-a", "approver-b"):
        config = user_kubeconfig(env, "hub", user)
        result = subprocess.run([sys.executable, "-m", "edgeline", "approve", name, "-n", "factory",
                                 "--kubeconfig", str(config)], capture_output=True, text=True, cwd=ROOT)
        if result.returncode != 0:
            print(f"approval by {user} refused: {result.stderr.strip()}", file=sys.stderr)
            return False
    return True


LIVE = "defect-detector-live"
REAL_NODE_LABEL = "edgeline.io/real-node"


def live_deployment(env: DevEnvironment) -> dict:
    """The sample defect detector on hamburg-line-1, as a real container on edge-a's real node."""
    sample = next(d for d in sample_documents() if d["kind"] == "EdgeDeployment" and
                  d["metadata"]["name"] == "defect-detector")
    spec = json.loads(json.dumps(sample["spec"]))
    spec["placement"] = {"clusterSelector": {"matchLabels": {"edgeline.io/site": "plant-hamburg",
                                                             "edgeline.io/line": "line-1"}}}
    spec["rollout"] = {"waveTimeoutSeconds": 300}
    spec["runtime"].update({
        "image": env.images["runtime"], "nodeSelector": {REAL_NODE_LABEL: "true"},
        "tolerations": [{"key": REAL_NODE_LABEL, "operator": "Equal", "value": "true", "effect": "NoSchedule"}]})
    return {"apiVersion": sample["apiVersion"], "kind": "EdgeDeployment",
            "metadata": {"name": LIVE, "namespace": "factory"}, "spec": spec}


def live_inference() -> str | None:
    """An inference answered by the live runtime Pod at its Pod IP, or None while it is not ready."""
    pods = kubectl("get", "pods", "-n", "edgeline-line-1", "-l", f"edgeline.io/deployment={LIVE}", "-o", "json",
                   check=False, cluster="edge-a")
    if pods.returncode:
        return None
    ready = [p for p in json.loads(pods.stdout)["items"] if any(
        c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]
    if not ready:
        return None
    pod = ready[0]
    frame = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    body = json.dumps({"inputs": [{"name": "image", "shape": [1, 3, 64, 64], "datatype": "FP32",
                                   "data": frame.reshape(-1).tolist()}]}).encode()
    url = f"http://{pod['status']['podIP']}:8080/v2/models/defect-detector/infer"
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
    except (OSError, ValueError) as exc:
        return f"POST {url}: {exc}"
    out = answer["outputs"][0]
    return (f"POST {url}\n  -> {answer['model_name']} {answer['model_version']} on {pod['spec']['nodeName']} "
            f"answered {out['name']} = {[round(x, 4) for x in out['data']]}")


def stop_operator() -> None:
    pid_file = STATE / "operator.pid"
    if pid_file.exists():
        try:
            os.killpg(int(pid_file.read_text()), signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            pass
        pid_file.unlink()


def down() -> int:
    stop_operator()
    DevEnvironment(STATE).down()
    print("demo stopped")
    return 0


def up() -> int:
    env = DevEnvironment(STATE)
    print("1/5 starting hub, edge-a and edge-b ...")
    try:
        env.up()
    except DevEnvError as exc:
        print(f"the local clusters did not start:\n{exc}", file=sys.stderr)
        return 1
    print("2/5 installing the CRDs ...")
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(ROOT / "crds"))
    kubectl("create", "namespace", OPERATOR_NAMESPACE, check=False)
    # The approval admission policies (the chart's): the API server records who changed each spec.
    kubectl("apply", "-f", str(ROOT / "manifests" / "policies" / "approvals.yaml"))
    print("3/5 connecting the sample EdgeClusters to the local clusters ...")
    create_kubeconfig_secrets(env)
    host = env.pod_visible_host
    print(f"4/5 serving sample models on http://{host}:{ARTIFACT_PORT}/models/ and starting the operator ...")
    server = serve_models(host)
    stop_operator()
    operator = start_operator(host)
    print("5/5 applying the user roles and manifests/samples ...")
    grant_roles()
    # Deployments left from an earlier demo start afresh, each with a revision waiting for approval.
    kubectl("delete", "edgedeployments", "--all", "-n", "factory", "--ignore-not-found", "--timeout=60s",
            check=False)
    kubectl("delete", "edgedeployment", LIVE, "-n", "factory", "--ignore-not-found", "--timeout=60s", check=False)
    apply_samples(host)
    kubectl("apply", "-f", "-", input=yaml.safe_dump(live_deployment(env)))
    approved = live_approved = False
    answer = None
    try:
        while operator.poll() is None:
            time.sleep(5)
            if not approved:
                approved = approve_as_two_people(env)
            if not live_approved:
                live_approved = approve_as_two_people(env, LIVE)
            elif answer is None or answer.startswith("POST") and "->" not in answer:
                answer = live_inference()
            print("\033[2J\033[H", end="")
            print(kubectl("get", "edgeline", "-A", check=False).stdout)
            print("edge-b (Brno, arm64), the runtime of EdgeDeployment factory/defect-detector:")
            print(kubectl("-n", "edgeline-assembly", "get", "pods", "-o", "wide", check=False, cluster="edge-b").stdout)
            print(f"edge-a's real node, the runtime container of EdgeDeployment factory/{LIVE}:")
            print(kubectl("-n", "edgeline-line-1", "get", "pods", "-o", "wide", "-l",
                          f"edgeline.io/deployment={LIVE}", check=False, cluster="edge-a").stdout)
            if approved:
                print("factory/defect-detector was approved by approver-a and approver-b (four eyes).")
            if answer:
                print(f"a real inference, answered by the runtime container:\n{answer}")
            print(f"operator log: {STATE / 'operator.log'}   kubeconfig: {STATE / 'hub.kubeconfig'}")
            print("Ctrl-C stops the demo (the clusters too); `make demo-down` from another shell does the same.")
        print(f"the operator exited ({operator.returncode}); see {STATE / 'operator.log'}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping ...")
        return 0
    finally:
        server.shutdown()
        down()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--down", action="store_true", help="stop an earlier demo")
    args = parser.parse_args()
    sys.exit(down() if args.down else up())
