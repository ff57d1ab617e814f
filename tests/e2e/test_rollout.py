"""One EdgeDeployment on the hub becomes a running edge runtime on every cluster it selects,
wave by wave, and the hub tells the truth about each cluster."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.e2e.conftest import apply_sample_models, register_edge_cluster, runtime_configmaps, wait_for
from tests.helpers.manifests import SAMPLE_DIGESTS, edge_deployment


@pytest.fixture
def fleet(hub, edge_a, edge_b, operator, namespace):
    """Three EdgeClusters: two lines on edge-a (amd64, distinct namespaces, as several sites
    can share one API server) and an arm64 gateway on edge-b."""
    tag = "f" + uuid.uuid4().hex[:5]
    members = {f"{tag}-line-1": (edge_a, {"site": "hamburg", "line": "line-1"}),
               f"{tag}-line-2": (edge_a, {"site": "hamburg", "line": "line-2"}),
               f"{tag}-brno": (edge_b, {"site": "brno", "line": "assembly"})}
    for name, (member, labels) in members.items():
        register_edge_cluster(hub, name, member, {"edgeline.io/fleet": tag,
                                                  **{f"edgeline.io/{k}": v for k, v in labels.items()}},
                              stale_after=15)
    for name in members:
        hub.kubectl("wait", f"edgecluster/{name}", "--for=condition=Ready", "--timeout=60s")
    yield tag, {name: member for name, (member, _) in members.items()}
    # Deployments go first, while their clusters are still registered to clean up on.
    hub.kubectl("delete", "edgedeployments", "--all", "-n", namespace, "--timeout=60s", check=False)
    for name in members:
        hub.kubectl("delete", "edgecluster", name, "--wait=false", check=False)


def _deployment(namespace, tag, version="1.0.0", pilot_soak=0, max_unavailable=0, timeout=60):
    return edge_deployment(
        namespace, {"edgeline.io/fleet": tag}, version, requirements={"architectures": ["amd64", "arm64"]},
        runtime={"replicas": 2, "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}},
        rollout={"waves": [{"name": "pilot", "selector": {"matchLabels": {"edgeline.io/line": "line-1"}},
                            "soakSeconds": pilot_soak}],
                 "maxUnavailable": max_unavailable, "waveTimeoutSeconds": timeout})


def _status(hub, namespace) -> dict:
    return hub.get("edgedeployment", "detector", "-n", namespace).get("status") or {}


def _wait_phase(hub, namespace, phase, timeout=90):
    def reached():
        status = _status(hub, namespace)
        return status if status.get("phase") == phase else None
    return wait_for(reached, timeout=timeout, what=f"EdgeDeployment phase {phase} "
                                                   f"(last: {json.dumps(_status(hub, namespace))[:1500]})")


def _runtime_objects(member, cluster: str) -> dict:
    """The Deployment, the Service and the ConfigMap the Deployment uses now (with a Deployment
    present, older revisions' ConfigMaps its ReplicaSets still name are left out)."""
    ns = f"ns-{cluster}"
    found = member.get("deployments,configmaps,services", "-n", ns, "-l", "edgeline.io/deployment=detector")
    objects = [o for o in found["items"] if o["kind"] != "ConfigMap"]
    configs = runtime_configmaps(member, ns)
    has_deployment = any(o["kind"] == "Deployment" for o in objects)
    objects += configs[:1] if has_deployment else configs
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in objects}


def test_the_rollout_reaches_every_selected_cluster_with_the_right_model_and_hardware(hub, fleet, namespace,
                                                                                      model_url):
    tag, members = fleet
    apply_sample_models(hub, namespace, model_url)
    hub.apply(_deployment(namespace, tag))
    status = _wait_phase(hub, namespace, "Healthy")
    assert status["ready"] == "3/3" and status["readyClusters"] == 3
    assert [w for w in (c["wave"] for c in status["clusters"])].count("pilot") == 1
    assert {c["wave"] for c in status["clusters"]} == {"pilot", "rest"}
    assert all(c["phase"] == "Ready" and c["readyReplicas"] == 2 and c["stale"] is False for c in status["clusters"])
    revision = status["currentRevision"]["revision"]
    assert status["currentRevision"]["digest"] == SAMPLE_DIGESTS["1.0.0"]

    for cluster, member in members.items():
        objects = _runtime_objects(member, cluster)
        assert len(objects) == 3, objects.keys()
        config = next(o for k, o in objects.items() if k.startswith("ConfigMap/"))
        assert config["data"]["EDGELINE_MODEL_SHA256"] == SAMPLE_DIGESTS["1.0.0"]
        assert config["data"]["EDGELINE_MODEL_URI"].endswith("defect-detector-1.0.0.onnx")
        assert config["data"]["EDGELINE_CLUSTER"] == cluster
        pods = member.get("pods", "-n", f"ns-{cluster}", "-l", "edgeline.io/deployment=detector")["items"]
        assert len(pods) == 2 and all(p["status"]["phase"] == "Running" for p in pods)
        assert {p["metadata"]["labels"]["edgeline.io/revision"] for p in pods} == {revision}
        for pod in pods:
            node = member.get("node", pod["spec"]["nodeName"])
            expected = "arm64" if cluster.endswith("brno") else "amd64"
            assert node["metadata"]["labels"]["kubernetes.io/arch"] == expected
            assert "nvidia.com/gpu" not in json.dumps(node["spec"].get("taints", []))

    table = hub.kubectl("get", "edgedeployment", "detector", "-n", namespace).stdout
    assert "Healthy" in table and "3/3" in table and "1.0.0" in table
    reasons = [e["reason"] for e in hub.events("detector", namespace)]
    assert "RolloutStarted" in reasons and "RolloutComplete" in reasons
    # The MLModel says who runs it (written by the MLModel controller from the deployment's status).
    model = status["currentRevision"]["mlmodel"]
    used_by = wait_for(lambda: hub.get("mlmodel", model, "-n", namespace).get("status", {}).get("usedBy"),
                       timeout=30, what=f"MLModel {model} status.usedBy")
    assert used_by == [f"{namespace}/detector (current)"]


def test_a_new_model_rolls_out_wave_by_wave_and_rollback_to_returns(hub, fleet, namespace, model_url):
    tag, members = fleet
    apply_sample_models(hub, namespace, model_url)
    hub.apply(_deployment(namespace, tag))
    first = _wait_phase(hub, namespace, "Healthy")["currentRevision"]["revision"]

    hub.apply(_deployment(namespace, tag, version="2.0.0", pilot_soak=6))
    mid = wait_for(lambda: (s := _status(hub, namespace)).get("rollout", {}).get("soakUntil") and
                   s["rollout"]["revision"] != first and s, timeout=60, what="the pilot wave soaking")
    by_wave = {c["wave"]: c["revision"] for c in mid["clusters"]}
    second = mid["rollout"]["revision"]
    assert by_wave == {"pilot": second, "rest": first}, mid["clusters"]   # the rest waits for the pilot
    status = _wait_phase(hub, namespace, "Healthy")
    assert status["currentRevision"]["revision"] == second and status["ready"] == "3/3"
    assert [h["revision"]["revision"] for h in status["history"]] == [second, first]

    hub.kubectl("annotate", "edgedeployment", "detector", "-n", namespace, f"edgeline.io/rollback-to={first}")
    status = _wait_phase(hub, namespace, "RolledBack")
    assert status["currentRevision"]["revision"] == first and status["badRevisions"] == [second]
    for cluster, member in members.items():
        config = next(o for k, o in _runtime_objects(member, cluster).items() if k.startswith("ConfigMap/"))
        assert config["data"]["EDGELINE_MODEL_SHA256"] == SAMPLE_DIGESTS["1.0.0"]


def test_operator_killed_mid_wave_completes_after_restart_without_duplicates(hub, fleet, namespace, model_url,
                                                                            operator):
    tag, members = fleet
    apply_sample_models(hub, namespace, model_url)
    hub.apply(_deployment(namespace, tag, pilot_soak=8))
    wait_for(lambda: _status(hub, namespace).get("rollout", {}).get("soakUntil"), timeout=60,
             what="the pilot wave soaking")
    operator.kill()
    time.sleep(2)
    operator.start()
    status = _wait_phase(hub, namespace, "Healthy")
    assert status["ready"] == "3/3"
    for cluster, member in members.items():
        objects = _runtime_objects(member, cluster)
        assert sorted(k.split("/")[0] for k in objects) == ["ConfigMap", "Deployment", "Service"]
        sets = member.get("replicasets", "-n", f"ns-{cluster}", "-l", "edgeline.io/deployment=detector")["items"]
        assert len(sets) == 1, "re-applying after the restart must not have changed the Pod template"
    reasons = [e["reason"] for e in hub.events("detector", namespace)]
    assert reasons.count("RolloutComplete") == 1


def test_an_edge_api_server_that_stops_answering_goes_stale_and_converges_when_back(hub, fleet, namespace,
                                                                                  model_url, dev_env):
    tag, members = fleet
    apply_sample_models(hub, namespace, model_url)
    hub.apply(_deployment(namespace, tag, max_unavailable=1, timeout=20))
    _wait_phase(hub, namespace, "Healthy")
    brno = next(c for c in members if c.endswith("brno"))

    dev_env.freeze("edge-b")
    try:
        hub.apply(_deployment(namespace, tag, version="2.0.0", max_unavailable=1, timeout=20))
        # The link is down: the cluster is Unreachable at once and Stale after its 15 s.
        edge = wait_for(lambda: (c := hub.get("edgecluster", brno)).get("status", {}).get("stale") and c,
                        timeout=90, what="the frozen edge cluster going Stale")
        assert edge["status"]["reachable"] is False
        status = wait_for(lambda: (s := _status(hub, namespace)) and
                          {c["name"]: c for c in s.get("clusters", [])}.get(brno, {}).get("stale") and s,
                          timeout=60, what="the deployment marking the cluster stale")
        # maxUnavailable: 1 lets the others go on; the hub does not pretend brno is updated.
        status = wait_for(lambda: (s := _status(hub, namespace)).get("readyClusters") == 2 and
                          s["rollout"]["revision"] == s["desiredRevision"]["revision"] and
                          s.get("rollout", {}).get("completedAt") and s, timeout=90,
                          what="the other clusters on the new revision")
        states = {c["name"]: c for c in status["clusters"]}
        assert states[brno]["phase"] == "Unreachable" and status["phase"] == "Degraded"
        # The next tick after the EdgeCluster went Stale says why brno waits (no new revision starts there).
        state = wait_for(lambda: (c := {c["name"]: c for c in _status(hub, namespace)["clusters"]}[brno])
                         .get("message", "").startswith("ClusterStale: ") and c, timeout=30,
                         what=f"{brno} reported as ClusterStale")
        assert state["phase"] == "Unreachable"
    finally:
        dev_env.thaw("edge-b")
    status = _wait_phase(hub, namespace, "Healthy", timeout=120)
    assert status["ready"] == "3/3"
    config = next(o for k, o in _runtime_objects(members[brno], brno).items() if k.startswith("ConfigMap/"))
    assert config["data"]["EDGELINE_MODEL_SHA256"] == SAMPLE_DIGESTS["2.0.0"]


def test_deleting_the_deployment_removes_the_runtime_everywhere(hub, fleet, namespace, model_url):
    tag, members = fleet
    apply_sample_models(hub, namespace, model_url)
    hub.apply(_deployment(namespace, tag))
    _wait_phase(hub, namespace, "Healthy")
    model = _status(hub, namespace)["currentRevision"]["mlmodel"]
    wait_for(lambda: hub.get("mlmodel", model, "-n", namespace).get("status", {}).get("usedBy"), timeout=30,
             what=f"MLModel {model} status.usedBy naming the deployment")
    hub.kubectl("delete", "edgedeployment", "detector", "-n", namespace, "--timeout=60s")
    for cluster, member in members.items():
        assert _runtime_objects(member, cluster) == {}
    # The deleted deployment no longer uses the model.
    wait_for(lambda: hub.get("mlmodel", model, "-n", namespace).get("status", {}).get("usedBy") == [], timeout=30,
             what=f"MLModel {model} status.usedBy emptied after the deletion")


def test_a_cluster_unreachable_at_deletion_is_recorded_and_cleaned_when_back(hub, fleet, namespace, model_url,
                                                                             dev_env):
    tag, members = fleet
    apply_sample_models(hub, namespace, model_url)
    hub.apply(_deployment(namespace, tag))
    _wait_phase(hub, namespace, "Healthy")
    brno = next(c for c in members if c.endswith("brno"))
    dev_env.freeze("edge-b")
    try:
        hub.kubectl("delete", "edgedeployment", "detector", "-n", namespace, "--wait=false")
        state = wait_for(lambda: {c["name"]: c for c in _status(hub, namespace).get("clusters", [])}
                         .get(brno, {}).get("phase") == "Removing" and
                         {c["name"]: c for c in _status(hub, namespace)["clusters"]}[brno], timeout=60,
                         what="the unreachable cluster recorded as Removing")
        assert "waiting to remove" in state["message"]
        assert [c["name"] for c in _status(hub, namespace)["clusters"]] == [brno]   # the others are clean
    finally:
        dev_env.thaw("edge-b")
    wait_for(lambda: hub.kubectl("get", "edgedeployment", "detector", "-n", namespace, "--ignore-not-found")
             .stdout.strip() == "", timeout=90, what="the deletion to finish")
    assert _runtime_objects(members[brno], brno) == {}
