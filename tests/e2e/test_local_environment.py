"""The local hybrid environment behaves like the clusters Edgeline meets in a factory."""

from __future__ import annotations

import http.server
import ipaddress
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from edgeline.devenv import network, nodes, processes
from edgeline.devenv.environment import DevEnvironment, pinned_versions
from tests.e2e.conftest import ROOT, STATE_DIR, Cluster, wait_for


def test_every_cluster_runs_the_pinned_kubernetes_release(hub, edge_a, edge_b):
    pinned = pinned_versions()["KUBERNETES_VERSION"]
    for cluster in (hub, edge_a, edge_b):
        version = yaml.safe_load(cluster.kubectl("version", "-o", "yaml").stdout)
        assert version["serverVersion"]["gitVersion"] == pinned, cluster.name


def test_edge_nodes_look_like_k3s_factory_hardware(hub, edge_a, edge_b):
    arm_nodes = edge_b.get("nodes")["items"]
    assert {n["metadata"]["labels"]["kubernetes.io/arch"] for n in arm_nodes} == {"arm64"}
    assert all(n["status"]["nodeInfo"]["kubeletVersion"].endswith("+k3s1") for n in arm_nodes)

    gpu_nodes = [n for n in edge_a.get("nodes")["items"] if "nvidia.com/gpu" in n["status"]["allocatable"]]
    assert [n["metadata"]["name"] for n in gpu_nodes] == ["edge-a-gpu-1"]

    hub_nodes = hub.get("nodes")["items"]
    assert not any("+k3s" in n["status"]["nodeInfo"]["kubeletVersion"] for n in hub_nodes)
    for cluster in (hub, edge_a, edge_b):
        for node in cluster.get("nodes")["items"]:
            ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
            assert ready == "True", f"{cluster.name}/{node['metadata']['name']} is not Ready"


def test_a_deployment_on_an_edge_gets_running_pods_on_kwok_nodes(edge_b):
    ns = "slice-deploy"
    edge_b.kubectl("create", "namespace", ns, check=False)
    edge_b.kubectl("-n", ns, "create", "deployment", "inference", "--image=edgeline/runtime:dev", "--replicas=2")

    def running_pods():
        pods = edge_b.get("pods", "-n", ns, "-l", "app=inference")["items"]
        running = [p for p in pods if p["status"].get("phase") == "Running"]
        return running if len(running) == 2 else None

    pods = wait_for(running_pods, timeout=60, what="2 Running pods of the Deployment on edge-b")
    node_names = {n["metadata"]["name"] for n in edge_b.get("nodes")["items"]}
    assert {p["spec"]["nodeName"] for p in pods} <= node_names
    # kwok's own default hands out 10.0.0.0/24, a range this workplace flags: ours is in 198.18.0.0/15.
    for pod in pods:
        assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network("198.18.0.0/15"), pod["status"]
    edge_b.kubectl("-n", ns, "rollout", "status", "deployment/inference", "--timeout=60s")
    edge_b.kubectl("delete", "namespace", ns, "--wait=false")


def test_a_job_on_an_edge_completes_or_fails_as_its_pod_asks(edge_a):
    ns = "slice-jobs"
    edge_a.kubectl("create", "namespace", ns, check=False)
    jobs = []
    for name, exit_code in (("collect-ok", "0"), ("collect-bad", "3")):
        jobs.append({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"backoffLimit": 0, "template": {
                "metadata": {"annotations": {"kwok.edgeline.io/exit-code": exit_code}},
                "spec": {"restartPolicy": "Never",
                         "containers": [{"name": "step", "image": "edgeline/collector:dev"}]},
            }},
        })
    edge_a.apply(jobs)

    def job_conditions(name):
        job = edge_a.get("job", name, "-n", ns)
        return {c["type"] for c in job.get("status", {}).get("conditions", []) if c["status"] == "True"}

    assert "Complete" in wait_for(lambda: job_conditions("collect-ok") & {"Complete", "Failed"}, 60, what="job end")
    assert "Failed" in wait_for(lambda: job_conditions("collect-bad") & {"Complete", "Failed"}, 60, what="job end")
    edge_a.kubectl("delete", "namespace", ns, "--wait=false")


def test_rbac_is_enforced_for_users_without_rights(hub):
    denied = hub.kubectl("get", "pods", "-A", user="outsider", check=False)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()


def _edgeline(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeline", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=400)


# --- real nodes ----------------------------------------------------------------------

def test_real_nodes_are_ready_with_containerd_2_and_only_take_pods_that_ask(dev_env, hub, edge_a):
    pinned = pinned_versions()
    for cluster in (hub, edge_a):
        node = cluster.get("node", dev_env.real_node(cluster.name))
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
        assert ready == "True", f"{cluster.name}: {node['status']['conditions']}"
        info = node["status"]["nodeInfo"]
        assert info["containerRuntimeVersion"] == "containerd://" + pinned["CONTAINERD_VERSION"].lstrip("v")
        assert info["kubeletVersion"] == pinned["KUBERNETES_VERSION"]
        assert node["metadata"]["labels"][nodes.REAL_NODE_LABEL] == "true"
        assert nodes.REAL_NODE_TAINT in node["spec"]["taints"]
        # A real kubelet: not managed by kwok (which would fight it over the node's status).
        assert "kwok.x-k8s.io/node" not in node["metadata"].get("annotations", {})
        addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
        assert addresses["InternalIP"].startswith("198.18.")
    edge_node = edge_a.get("node", dev_env.real_node("edge-a"))
    assert edge_node["metadata"]["labels"]["k3s.io/hostname"] == dev_env.real_node("edge-a")
    assert "node-role.kubernetes.io/control-plane" in edge_node["metadata"]["labels"]


def _hello_pod(name: str, image: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "hello"}},
        "spec": {
            "nodeSelector": nodes.REAL_NODE_SELECTOR,
            "tolerations": [nodes.REAL_NODE_TOLERATION],
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "hello", "image": image, "ports": [{"containerPort": 8080}],
                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
            }],
        },
    }


def _run_hello(cluster: Cluster, env: DevEnvironment, namespace: str) -> dict:
    name = f"hello-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace, check=False)
    # Pods are admitted once the controller-manager made the namespace's default ServiceAccount.
    wait_for(lambda: cluster.kubectl("get", "serviceaccount", "default", "-n", namespace, check=False).returncode == 0,
             timeout=30, what=f"the default ServiceAccount of {namespace}")
    cluster.apply(_hello_pod(name, env.images["hello"]), "-n", namespace)
    cluster.kubectl("wait", "-n", namespace, f"pod/{name}", "--for=condition=Ready", "--timeout=90s",
                    timeout=100)
    return cluster.get("pod", name, "-n", namespace)


def _container_pid(env: DevEnvironment, cluster: str, pod: dict) -> int:
    container_id = pod["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
    root = env.real_node_paths(cluster).runc_root / nodes.CRI_NAMESPACE
    state = subprocess.run([nodes.runc_binary(), "--root", str(root), "state", container_id],
                           capture_output=True, text=True, check=True)
    return json.loads(state.stdout)["pid"]


def test_a_pod_from_the_local_registry_runs_on_each_real_node_and_answers_at_its_pod_ip(dev_env, hub, edge_a):
    assert dev_env.images["hello"].startswith(dev_env.registry + "/edgeline/hello:")
    for cluster in (hub, edge_a):
        pod = _run_hello(cluster, dev_env, "real-hello")
        assert pod["spec"]["nodeName"] == dev_env.real_node(cluster.name)
        pod_ip = pod["status"]["podIP"]
        subnet = dev_env.cluster_addresses(cluster.name).pod_subnet
        assert pod_ip.rsplit(".", 1)[0] == subnet.rsplit(".", 1)[0], (pod_ip, subnet)
        with urllib.request.urlopen(f"http://{pod_ip}:8080/", timeout=5) as resp:
            assert resp.read().decode() == f"hello from {pod['metadata']['name']}\n"
        # The API server reaches the kubelet (logs) with its client certificate.
        logs = cluster.kubectl("logs", "-n", "real-hello", pod["metadata"]["name"]).stdout
        assert "listening on :8080" in logs
        cluster.kubectl("delete", "pod", "-n", "real-hello", pod["metadata"]["name"], "--wait=false")


_IN_POD_CHECK = """
import json, ssl, sys, urllib.request
url, ca, cert, key = sys.argv[1:5]
ctx = ssl.create_default_context(cafile=ca)
if cert:
    ctx.load_cert_chain(cert, key)
with urllib.request.urlopen(url, context=ctx, timeout=5) as resp:
    print(resp.read().decode())
"""


def test_pods_reach_their_api_server_by_in_cluster_config_and_the_edges_at_pod_visible_host(dev_env, hub, edge_a):
    """What the operator Pod does: in-cluster config (KUBERNETES_SERVICE_HOST, the `kubernetes`
    Service) to the hub, and the edges' API servers at pod_visible_host, TLS verified."""
    pod = _run_hello(hub, dev_env, "real-api")
    pid = _container_pid(dev_env, "hub", pod)
    environ = dict(line.split("=", 1) for line in
                   Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0") if "=" in line)
    assert environ["KUBERNETES_SERVICE_HOST"] == dev_env.cluster_addresses("hub").service_ip

    def in_pod(url: str, cluster: str, admin: bool) -> str:
        pki = STATE_DIR / cluster / "pki"
        cert, key = (str(pki / "admin.crt"), str(pki / "admin.key")) if admin else ("", "")
        proc = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable, "-c", _IN_POD_CHECK,
                               url, str(pki / "ca.crt"), cert, key], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    service = f"https://{environ['KUBERNETES_SERVICE_HOST']}:{environ['KUBERNETES_SERVICE_PORT']}"
    assert in_pod(service + "/readyz", "hub", admin=False).strip() == "ok"
    edge_config = yaml.safe_load(dev_env.pod_kubeconfig("edge-a").read_text())
    edge_server = edge_config["clusters"][0]["cluster"]["server"]
    assert edge_server.startswith(f"https://{dev_env.pod_visible_host}:")
    nodes_seen = json.loads(in_pod(edge_server + "/api/v1/nodes", "edge-a", admin=True))
    assert dev_env.real_node("edge-a") in {n["metadata"]["name"] for n in nodes_seen["items"]}
    hub.kubectl("delete", "namespace", "real-api", "--wait=false")


def test_pods_on_edge_a_fetch_from_a_host_server_at_pod_visible_host(dev_env, edge_a):
    """As the runtime fetches its model artifact from an HTTP server on the host."""
    body = b"model bytes " + uuid.uuid4().hex.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer((dev_env.pod_visible_host, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        pod = _run_hello(edge_a, dev_env, "real-fetch")
        pid = _container_pid(dev_env, "edge-a", pod)
        url = f"http://{dev_env.pod_visible_host}:{server.server_address[1]}/model.onnx"
        fetched = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable, "-c",
                                  "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen("
                                  "sys.argv[1], timeout=5).read().decode())", url],
                                 capture_output=True, text=True, timeout=30)
        assert fetched.returncode == 0, fetched.stderr
        assert fetched.stdout == body.decode()
    finally:
        server.shutdown()
        server.server_close()
    edge_a.kubectl("delete", "namespace", "real-fetch", "--wait=false")


def test_dev_status_lists_the_real_nodes_and_the_registry(dev_env):
    status = _edgeline("dev", "--state-dir", str(STATE_DIR), "status")
    assert status.returncode == 0, status.stdout + status.stderr
    runtime = "containerd://" + pinned_versions()["CONTAINERD_VERSION"].lstrip("v")
    for cluster in ("hub", "edge-a"):
        line = next(l for l in status.stdout.splitlines() if dev_env.real_node(cluster) in l)
        assert "Ready" in line and runtime in line, line
    registry_line = next(l for l in status.stdout.splitlines() if l.startswith("registry"))
    assert " up " in registry_line and dev_env.registry in registry_line and "hello=" in registry_line


def _mounted(state: Path) -> list[str]:
    return nodes.mounts_under(state)


@pytest.fixture
def short_tmp():
    # Unix socket paths (containerd's, the kubelet's) allow 107 bytes: pytest's tmp_path is too deep.
    path = Path(tempfile.mkdtemp(prefix="edl-", dir="/tmp"))
    yield path
    if not nodes.mounts_under(path):
        shutil.rmtree(path, ignore_errors=True)


def test_dev_up_is_idempotent_and_down_leaves_nothing_behind(short_tmp):
    """A second, independent environment next to the test session's own (other ports,
    another network slot), with a Pod on its edge-a real node when it goes down."""
    state = short_tmp / "dev"
    up = _edgeline("dev", "--state-dir", str(state), "up")
    assert up.returncode == 0, up.stderr
    assert (state / "hub.kubeconfig").exists() and (state / "edge-b.kubeconfig").exists()
    env = DevEnvironment(state)
    pids_before = sorted(env.leftover_processes())
    # 3 clusters x (etcd, apiserver, controller-manager, scheduler, kwok)
    # + 2 real nodes x (containerd, kubelet) + the registry
    assert len(pids_before) == 20, [Path(f"/proc/{p}/cmdline").read_bytes()[:80] for p in pids_before]
    slot = env._load_state()["network"]["slot"]
    bridges = env._load_state()["network"]["bridges"]
    assert all(network.link_exists(b) for b in bridges)

    again = _edgeline("dev", "--state-dir", str(state), "up")
    assert again.returncode == 0 and "already running" in again.stdout
    assert sorted(env.leftover_processes()) == pids_before

    edge = Cluster("edge-a", env.kubeconfig("edge-a"), env)
    pod = _run_hello(edge, env, "leftovers")
    container = _container_pid(env, "edge-a", pod)
    assert _mounted(state), "a running Pod has volumes and a root filesystem mounted"
    memory_cgroup = next(line.split(":", 2)[2] for line in Path(f"/proc/{container}/cgroup").read_text().splitlines()
                         if line.split(":")[1] == "memory")
    assert Path(f"/sys/fs/cgroup/memory{memory_cgroup}").is_dir()

    assert _edgeline("dev", "--state-dir", str(state), "status").returncode == 0
    down = _edgeline("dev", "--state-dir", str(state), "down")
    assert down.returncode == 0, down.stderr
    assert env.leftover_processes() == []
    assert processes.cmdline(container) is None, "the Pod's container still runs"
    assert not Path(f"/sys/fs/cgroup/memory{memory_cgroup}").exists(), "the container's cgroup is left"
    assert _mounted(state) == []
    assert not any(network.link_exists(b) for b in bridges)
    assert not network.service_rules_present(slot)
    status = _edgeline("dev", "--state-dir", str(state), "status")
    assert status.returncode == 1
