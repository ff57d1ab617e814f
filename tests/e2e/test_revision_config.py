"""Each revision's runtime configuration is its own immutable ConfigMap: a Pod of the old
revision that comes back mid-rollout (its container restarted, or the Pod replaced) gets the
old revision's model, never the new one; ConfigMaps no ReplicaSet uses any more are removed.

Here on kwok nodes the Pod spec is what shows it; tests/e2e/test_real_containers.py restarts
a real container mid-rollout and asks it what it serves."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.e2e.conftest import apply_sample_models, register_edge_cluster, runtime_configmaps, wait_for
from tests.helpers.manifests import SAMPLE_DIGESTS


@pytest.fixture
def line(hub, edge_a, operator, namespace):
    name = "rc" + uuid.uuid4().hex[:6]
    register_edge_cluster(hub, name, edge_a, {"edgeline.io/line": name})
    hub.kubectl("wait", f"edgecluster/{name}", "--for=condition=Ready", "--timeout=60s")
    yield name
    hub.kubectl("delete", "edgedeployments", "--all", "-n", namespace, "--timeout=60s", check=False)
    hub.kubectl("delete", "edgecluster", name, "--wait=false", check=False)


def _deployment(namespace, line, version, node_selector=None, port=8080):
    runtime = {"replicas": 2, "port": port}
    if node_selector:
        runtime["nodeSelector"] = node_selector
    return {"apiVersion": "edgeline.io/v1alpha1", "kind": "EdgeDeployment",
            "metadata": {"name": "detector", "namespace": namespace},
            "spec": {"modelRef": {"name": f"detector-{version}"},
                     "placement": {"clusterSelector": {"matchLabels": {"edgeline.io/line": line}},
                                   "requirements": {"architectures": ["amd64"]}},
                     "runtime": runtime, "rollout": {"waveTimeoutSeconds": 600},
                     "approval": {"required": False}}}


def _status(hub, namespace) -> dict:
    return hub.get("edgedeployment", "detector", "-n", namespace).get("status") or {}


def _healthy_on(hub, namespace, version) -> dict:
    return wait_for(lambda: (s := _status(hub, namespace)).get("phase") == "Healthy" and
                    s["currentRevision"]["version"] == version and s, timeout=120,
                    what=f"Healthy on {version} (last: {json.dumps(_status(hub, namespace))[:1200]})")


def _pods(edge, ns, revision) -> list[dict]:
    return edge.get("pods", "-n", ns, "-l", f"edgeline.io/deployment=detector,edgeline.io/revision={revision}")["items"]


def _config_of(pod) -> str:
    return pod["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"]


def _names_used_by_replicasets(edge, ns) -> set[str]:
    sets = edge.get("replicasets", "-n", ns, "-l", "edgeline.io/deployment=detector")["items"]
    return {_config_of(rs["spec"]["template"]) for rs in sets}


def test_an_old_pod_that_comes_back_mid_rollout_keeps_its_revisions_model(hub, edge_a, namespace, line, model_url):
    ns = f"ns-{line}"
    apply_sample_models(hub, namespace, model_url)
    hub.apply(_deployment(namespace, line, "1.0.0"))
    old = _healthy_on(hub, namespace, "1.0.0")["currentRevision"]["revision"]
    old_pods = _pods(edge_a, ns, old)
    assert len(old_pods) == 2
    old_config = _config_of(old_pods[0])

    # Given a rollout to 2.0.0 that cannot finish (its Pods fit no node), so the old Pods keep serving.
    hub.apply(_deployment(namespace, line, "2.0.0", node_selector={"edgeline.io/no-such-node": "true"}))
    mid = wait_for(lambda: (s := _status(hub, namespace)) and s.get("rollout", {}).get("revision") not in (None, old)
                   and {c["name"]: c for c in s.get("clusters", [])}.get(line, {}).get("reason") == "Unschedulable"
                   and s, timeout=90, what="the new revision's Pods reported Unschedulable")
    new = mid["rollout"]["revision"]
    assert "no node can run the runtime Pod" in {c["name"]: c for c in mid["clusters"]}[line]["message"]
    new_pods = wait_for(lambda: _pods(edge_a, ns, new), timeout=30, what="a Pod of the new revision")
    new_config = _config_of(new_pods[0])
    assert new_config != old_config

    # When a Pod of the old revision comes back (replaced by its ReplicaSet; a restarted
    # container reads the same reference) ...
    victim = old_pods[0]["metadata"]["name"]
    edge_a.kubectl("delete", "pod", victim, "-n", ns, "--wait=true", "--timeout=60s")
    back = wait_for(lambda: [p for p in _pods(edge_a, ns, old) if p["metadata"]["name"] != old_pods[1]["metadata"]
                             ["name"] and p["metadata"]["name"] != victim and p["status"].get("phase") == "Running"],
                    timeout=60, what="the old revision's Pod back")

    # ... then it reads the old revision's configuration, which nobody can have changed.
    assert _config_of(back[0]) == old_config
    configs = {c["metadata"]["name"]: c for c in runtime_configmaps(edge_a, ns)}
    assert configs[old_config]["data"]["EDGELINE_MODEL_SHA256"] == SAMPLE_DIGESTS["1.0.0"]
    assert configs[new_config]["data"]["EDGELINE_MODEL_SHA256"] == SAMPLE_DIGESTS["2.0.0"]
    assert configs[old_config]["immutable"] is True and configs[new_config]["immutable"] is True
    tamper = edge_a.kubectl("patch", "configmap", old_config, "-n", ns, "--type=merge",
                            "-p", json.dumps({"data": {"EDGELINE_MODEL_SHA256": SAMPLE_DIGESTS["2.0.0"]}}),
                            check=False)
    assert tamper.returncode != 0 and "immutable" in tamper.stderr

    # The rollout goes through once it can; ConfigMaps stay while a ReplicaSet names them ...
    hub.apply(_deployment(namespace, line, "2.0.0"))
    _healthy_on(hub, namespace, "2.0.0")
    assert {c["metadata"]["name"] for c in runtime_configmaps(edge_a, ns)} == _names_used_by_replicasets(edge_a, ns)
    assert old_config in _names_used_by_replicasets(edge_a, ns)

    # ... and go once none does (the Deployment keeps two old ReplicaSets: the 1.0.0 one goes
    # with the next revision, and with it its ConfigMap).
    hub.apply(_deployment(namespace, line, "2.0.0", port=8081))
    status = _healthy_on(hub, namespace, "2.0.0")
    assert status["currentRevision"]["runtime"]["port"] == 8081
    wait_for(lambda: old_config not in {c["metadata"]["name"] for c in runtime_configmaps(edge_a, ns)},
             timeout=30, what=f"ConfigMap {old_config} removed once no ReplicaSet uses it")
    left = {c["metadata"]["name"] for c in runtime_configmaps(edge_a, ns)}
    assert left == _names_used_by_replicasets(edge_a, ns)
    # The two 2.0.0 revisions differ only in where their Pods go, not in what the runtime reads:
    # they share one ConfigMap, which stays with their ReplicaSets.
    assert new_config in left and len(left) == 2


def test_deleting_the_deployment_removes_every_revisions_configmap(hub, edge_a, namespace, line, model_url):
    ns = f"ns-{line}"
    apply_sample_models(hub, namespace, model_url)
    hub.apply(_deployment(namespace, line, "1.0.0"))
    _healthy_on(hub, namespace, "1.0.0")
    hub.apply(_deployment(namespace, line, "2.0.0"))
    _healthy_on(hub, namespace, "2.0.0")
    assert len(runtime_configmaps(edge_a, ns)) == 2
    # Someone else's ConfigMap with a name like ours is not Edgeline's to delete.
    lookalike = runtime_configmaps(edge_a, ns)[0]["metadata"]["name"] + "-x"
    edge_a.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": lookalike, "namespace": ns},
                  "data": {"owner": "someone else"}})
    hub.kubectl("delete", "edgedeployment", "detector", "-n", namespace, "--timeout=60s")
    assert runtime_configmaps(edge_a, ns) == []
    assert edge_a.get("configmap", lookalike, "-n", ns)["data"] == {"owner": "someone else"}
