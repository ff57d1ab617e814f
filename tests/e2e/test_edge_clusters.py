"""A platform engineer registers cloud and edge clusters and sees the truth about them."""

from __future__ import annotations

import json
import uuid

import pytest
import yaml

from tests.e2e.conftest import OPERATOR_NAMESPACE, wait_for


def register(hub, name: str, secret: str, tier: str = "edge", labels: dict | None = None,
             stale_after: int = 300) -> None:
    hub.apply({
        "apiVersion": "edgeline.io/v1alpha1", "kind": "EdgeCluster",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"tier": tier,
                 "connection": {"kubeconfigSecretRef": {"name": secret}},
                 "staleAfterSeconds": stale_after},
    })


def kubeconfig_secret(hub, name: str, kubeconfig_text: str) -> None:
    hub.apply({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": name, "namespace": OPERATOR_NAMESPACE},
               "stringData": {"kubeconfig": kubeconfig_text}})


def condition(obj: dict, ctype: str) -> dict:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == ctype), {})


@pytest.fixture
def cluster_name(hub):
    name = f"line-{uuid.uuid4().hex[:6]}"
    yield name
    hub.kubectl("delete", "edgecluster", name, "--wait=false", check=False)


def test_an_arm64_k3s_site_is_probed_and_ready(hub, edge_b, operator, cluster_name):
    kubeconfig_secret(hub, f"{cluster_name}-kubeconfig", edge_b.kubeconfig.read_text())
    register(hub, cluster_name, f"{cluster_name}-kubeconfig", labels={"edgeline.io/site": "plant-brno",
                                                                      "edgeline.io/line": "assembly"})

    hub.kubectl("wait", f"edgecluster/{cluster_name}", "--for=condition=Ready", "--timeout=60s")
    status = hub.get("edgecluster", cluster_name)["status"]
    assert status["reachable"] is True and status["stale"] is False
    assert status["distribution"] == "k3s"
    assert status["kubernetesVersion"] == "v1.36.3"
    assert status["architectures"] == ["arm64"]
    assert status["nodeCount"] == 2 and status["allocatable"]["gpu"] == 0
    assert status["lastHeartbeat"]
    # kubectl get shows site and line from the labels that placement selects on.
    table = hub.kubectl("get", "edgecluster", cluster_name).stdout.splitlines()
    assert table[0].split()[:4] == ["NAME", "TIER", "SITE", "LINE"]
    assert table[1].split()[:4] == [cluster_name, "edge", "plant-brno", "assembly"]


def test_a_gpu_site_reports_its_gpu(hub, edge_a, operator, cluster_name):
    kubeconfig_secret(hub, f"{cluster_name}-kubeconfig", edge_a.kubeconfig.read_text())
    register(hub, cluster_name, f"{cluster_name}-kubeconfig")
    hub.kubectl("wait", f"edgecluster/{cluster_name}", "--for=condition=Ready", "--timeout=60s")
    status = hub.get("edgecluster", cluster_name)["status"]
    assert status["allocatable"]["gpu"] == 1
    assert status["architectures"] == ["amd64"]


def test_a_missing_kubeconfig_secret_is_a_clear_condition_not_a_crash(hub, operator, cluster_name):
    register(hub, cluster_name, "no-such-secret")

    def not_ready():
        obj = hub.get("edgecluster", cluster_name)
        ready = condition(obj, "Ready")
        return obj if ready.get("status") == "False" else None

    obj = wait_for(not_ready, timeout=60, what="Ready=False on an EdgeCluster without its Secret")
    assert condition(obj, "Reachable")["reason"] == "KubeconfigSecretNotFound"
    assert "no-such-secret" in condition(obj, "Reachable")["message"]
    assert obj["status"]["stale"] is True  # never seen: nothing in status is current
    events = wait_for(lambda: hub.events(cluster_name), timeout=30, what="an Event about the EdgeCluster")
    assert any(e["reason"] == "KubeconfigSecretNotFound" and e["type"] == "Warning" for e in events)


def test_a_cluster_that_stops_answering_becomes_unreachable_then_stale(hub, edge_a, operator, cluster_name):
    # A kubeconfig for edge-a whose server is a port nobody listens on, after a first
    # successful probe through the real one.
    secret = f"{cluster_name}-kubeconfig"
    kubeconfig_secret(hub, secret, edge_a.kubeconfig.read_text())
    register(hub, cluster_name, secret, stale_after=20)
    hub.kubectl("wait", f"edgecluster/{cluster_name}", "--for=condition=Ready", "--timeout=60s")

    dead = yaml.safe_load(edge_a.kubeconfig.read_text())
    dead["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    kubeconfig_secret(hub, secret, yaml.safe_dump(dead))

    def unreachable():
        obj = hub.get("edgecluster", cluster_name)
        return obj if obj["status"].get("reachable") is False else None

    obj = wait_for(unreachable, timeout=60, what="Reachable=False")
    assert condition(obj, "Reachable")["reason"] == "Unreachable"
    assert obj["status"]["stale"] is False  # seen moments ago
    obj = wait_for(lambda: (o := hub.get("edgecluster", cluster_name))["status"].get("stale") and o,
                   timeout=60, what="Stale=True after staleAfterSeconds")
    assert condition(obj, "Stale")["reason"] == "HeartbeatTooOld"

    kubeconfig_secret(hub, secret, edge_a.kubeconfig.read_text())
    hub.kubectl("wait", f"edgecluster/{cluster_name}", "--for=condition=Ready", "--timeout=60s")
    assert hub.get("edgecluster", cluster_name)["status"]["stale"] is False
