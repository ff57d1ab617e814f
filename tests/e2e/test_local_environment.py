"""The local hybrid environment behaves like the clusters Edgeline meets in a factory."""

from __future__ import annotations

import subprocess
import sys

import yaml

from edgeline.devenv.environment import pinned_versions
from tests.e2e.conftest import ROOT, wait_for


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


def test_dev_up_is_idempotent_and_down_leaves_no_process(tmp_path):
    """A second, independent environment next to the test session's own (other ports)."""
    from edgeline.devenv.environment import DevEnvironment

    state = tmp_path / "dev"
    up = _edgeline("dev", "--state-dir", str(state), "up")
    assert up.returncode == 0, up.stderr
    assert (state / "hub.kubeconfig").exists() and (state / "edge-b.kubeconfig").exists()
    env = DevEnvironment(state)
    pids_before = sorted(env.leftover_processes())
    assert len(pids_before) == 15  # 3 clusters x (etcd, apiserver, controller-manager, scheduler, kwok)

    again = _edgeline("dev", "--state-dir", str(state), "up")
    assert again.returncode == 0 and "already running" in again.stdout
    assert sorted(env.leftover_processes()) == pids_before

    assert _edgeline("dev", "--state-dir", str(state), "status").returncode == 0
    down = _edgeline("dev", "--state-dir", str(state), "down")
    assert down.returncode == 0, down.stderr
    assert env.leftover_processes() == []
    status = _edgeline("dev", "--state-dir", str(state), "status")
    assert status.returncode == 1
