"""Tenants on one hub cannot reach each other's lines: an EdgeCluster admits only the hub
namespaces its owner lists; objects on member clusters have collision-free names and owner
uids, and nothing of another owner is overwritten or deleted; pipeline steps run under the
Pod Security level the cluster allows, and asking for more is refused with a clear message."""

from __future__ import annotations

import json
import uuid

import pytest

from edgeline.render.runtime import legacy_object_name, object_name
from tests.e2e.conftest import apply_sample_models, register_edge_cluster, wait_for
from tests.helpers.artifact_server import serve
from tests.helpers.manifests import SAMPLE_MODELS, edge_deployment

KWOK_OK = {"kwok.edgeline.io/exit-code": "0"}


@pytest.fixture(scope="module")
def model_url():
    with serve(SAMPLE_MODELS) as url:
        yield url


@pytest.fixture
def lines(hub, edge_a, operator, namespace):
    """Two lines on edge-a: `mine` admits this test's namespace, `theirs` admits only another team's."""
    tag = "t" + uuid.uuid4().hex[:5]
    names = {"mine": f"{tag}-mine", "theirs": f"{tag}-theirs"}
    register_edge_cluster(hub, names["mine"], edge_a, {"edgeline.io/fleet": tag},
                          tenancy={"namespaces": [namespace]})
    register_edge_cluster(hub, names["theirs"], edge_a, {"edgeline.io/fleet": tag},
                          tenancy={"namespaces": ["another-team"]})
    for name in names.values():
        hub.kubectl("wait", f"edgecluster/{name}", "--for=condition=Ready", "--timeout=60s")
    yield tag, names
    hub.kubectl("delete", "edgedeployments,datapipelines", "--all", "-n", namespace, "--timeout=60s", check=False)
    for name in names.values():
        hub.kubectl("delete", "edgecluster", name, "--wait=false", check=False)


def _status(hub, kind, name, namespace) -> dict:
    return hub.get(kind, name, "-n", namespace).get("status") or {}


def _wait_status(hub, kind, name, namespace, check, what, timeout=90):
    def reached():
        status = _status(hub, kind, name, namespace)
        return status if check(status) else None
    return wait_for(reached, timeout=timeout,
                    what=f"{what} (last: {json.dumps(_status(hub, kind, name, namespace))[:1500]})")


def _runtime_deployments(member, cluster: str, namespace: str) -> list[dict]:
    return member.get("deployments", "-n", f"ns-{cluster}", "-l",
                      f"edgeline.io/deployment-namespace={namespace}")["items"]


def test_another_tenant_cannot_place_onto_a_cluster_that_does_not_admit_it(hub, edge_a, lines, namespace,
                                                                           model_url):
    tag, names = lines
    apply_sample_models(hub, namespace, model_url, versions=("1.0.0",))
    hub.apply(edge_deployment(namespace, {"edgeline.io/fleet": tag}))
    status = _wait_status(hub, "edgedeployment", "detector", namespace, lambda s: s.get("phase") == "Healthy",
                          "the deployment Healthy on the one line that admits it")
    assert status["ready"] == "1/1" and [c["name"] for c in status["clusters"]] == [names["mine"]]
    [excluded] = status["excluded"]
    assert excluded["name"] == names["theirs"] and excluded["reason"] == "NamespaceNotAllowed"
    assert f"does not admit namespace {namespace}" in excluded["message"]
    events = [e for e in hub.events("detector", namespace) if e["reason"] == "NamespaceNotAllowed"]
    assert len(events) == 1 and names["theirs"] in events[0]["message"]
    assert _runtime_deployments(edge_a, names["theirs"], namespace) == []
    assert len(_runtime_deployments(edge_a, names["mine"], namespace)) == 1
    # The namespace Edgeline's objects go to enforces the cluster's Pod Security level.
    labels = edge_a.get("namespace", f"ns-{names['mine']}")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.fixture
def two_tenants(hub):
    """Hub namespaces X-b and X, whose EdgeDeployments c and b-c had the same name on a member
    cluster before names carried a hash: X-b-c."""
    base = "n" + uuid.uuid4().hex[:5]
    spaces = [f"{base}-b", base]
    for space in spaces:
        hub.apply({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": space, "labels": {"edgeline.io/tenant-test": base}}})
    yield base, spaces
    for space in spaces:
        hub.kubectl("delete", "edgedeployments", "--all", "-n", space, "--timeout=60s", check=False)
        hub.kubectl("delete", "namespace", space, "--wait=false", check=False)


def test_a_name_collision_no_longer_overwrites_and_another_owners_object_is_left_alone(
        hub, edge_a, two_tenants, operator, model_url):
    base, (first_ns, second_ns) = two_tenants
    cluster = f"{base}-shared"
    register_edge_cluster(hub, cluster, edge_a, {"edgeline.io/fleet": base},
                          tenancy={"namespaceSelector": {"matchLabels": {"edgeline.io/tenant-test": base}}})
    try:
        hub.kubectl("wait", f"edgecluster/{cluster}", "--for=condition=Ready", "--timeout=60s")
        assert legacy_object_name(first_ns, "c") == legacy_object_name(second_ns, "b-c")     # the old collision
        for space in (first_ns, second_ns):
            apply_sample_models(hub, space, model_url, versions=("1.0.0",))
        hub.apply([edge_deployment(first_ns, {"edgeline.io/fleet": base}, name="c"),
                   edge_deployment(second_ns, {"edgeline.io/fleet": base}, name="b-c")])
        for space, name in ((first_ns, "c"), (second_ns, "b-c")):
            _wait_status(hub, "edgedeployment", name, space, lambda s: s.get("phase") == "Healthy",
                         f"{space}/{name} Healthy")
        ns = f"ns-{cluster}"
        for space, name in ((first_ns, "c"), (second_ns, "b-c")):
            runtime = edge_a.get("deployment", object_name(space, name), "-n", ns)
            uid = hub.get("edgedeployment", name, "-n", space)["metadata"]["uid"]
            assert runtime["metadata"]["labels"]["edgeline.io/owner-uid"] == uid
            assert runtime["metadata"]["labels"]["edgeline.io/deployment-namespace"] == space

        # Deleting one tenant's deployment removes its runtime only.
        hub.kubectl("delete", "edgedeployment", "c", "-n", first_ns, "--timeout=60s")
        assert edge_a.kubectl("get", "deployment", object_name(first_ns, "c"), "-n", ns, check=False).returncode != 0
        edge_a.get("deployment", object_name(second_ns, "b-c"), "-n", ns)

        # Someone else's object under the name an EdgeDeployment would use is neither overwritten nor adopted.
        squatter = object_name(first_ns, "squat")
        edge_a.apply({"apiVersion": "v1", "kind": "Service", "metadata": {
            "name": squatter, "namespace": ns, "labels": {"edgeline.io/owner-uid": "someone-else"}},
            "spec": {"selector": {"app": "theirs"}, "ports": [{"port": 9, "targetPort": 9}]}})
        hub.apply(edge_deployment(first_ns, {"edgeline.io/fleet": base}, name="squat"))
        wait_for(lambda: [e for e in hub.events("squat", first_ns) if e["reason"] == "OwnedByAnother"],
                 timeout=90, what="an OwnedByAnother Warning on the deployment whose name is taken")
        service = edge_a.get("service", squatter, "-n", ns)
        assert service["spec"]["selector"] == {"app": "theirs"}
        assert service["metadata"]["labels"]["edgeline.io/owner-uid"] == "someone-else"
        assert edge_a.kubectl("get", "deployment", squatter, "-n", ns, check=False).returncode != 0
    finally:
        for space in (first_ns, second_ns):
            hub.kubectl("delete", "edgedeployments", "--all", "-n", space, "--timeout=60s", check=False)
        hub.kubectl("delete", "edgecluster", cluster, "--wait=false", check=False)


def test_objects_left_under_the_old_name_are_removed_once_the_new_runtime_is_ready(hub, edge_a, lines, namespace,
                                                                                   model_url):
    """Upgrade: a version before collision-free names left `<namespace>-detector` on the line."""
    tag, names = lines
    ns, legacy = f"ns-{names['mine']}", legacy_object_name(namespace, "detector")
    labels = {"app.kubernetes.io/managed-by": "edgeline", "app.kubernetes.io/instance": legacy,
              "edgeline.io/deployment-namespace": namespace, "edgeline.io/deployment": "detector"}
    edge_a.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    edge_a.apply([
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{legacy}-0123456789", "namespace": ns,
                                                               "labels": {**labels, "edgeline.io/component":
                                                                          "runtime-config"}}, "data": {}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": legacy, "namespace": ns, "labels": labels},
         "spec": {"selector": labels, "ports": [{"port": 8080, "targetPort": 8080}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": legacy, "namespace": ns,
                                                                     "labels": labels},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
             "metadata": {"labels": labels},
             "spec": {"containers": [{"name": "runtime", "image": "edgeline/runtime:old"}]}}}},
    ])
    apply_sample_models(hub, namespace, model_url, versions=("1.0.0",))
    hub.apply(edge_deployment(namespace, {"edgeline.io/fleet": tag}))
    _wait_status(hub, "edgedeployment", "detector", namespace, lambda s: s.get("phase") == "Healthy",
                 "the deployment Healthy under its new name")

    def legacy_gone():
        found = edge_a.get("deployments,services,configmaps", "-n", ns, "-l", f"app.kubernetes.io/instance={legacy}")
        return not found["items"]
    wait_for(legacy_gone, timeout=60, what=f"the pre-tenancy objects {legacy} removed")
    edge_a.get("deployment", object_name(namespace, "detector"), "-n", ns)


def _pipeline(namespace, name, cluster, pod_security=None):
    step = {"name": "collect", "cluster": cluster, "image": "example/collector:1", "podAnnotations": KWOK_OK}
    if pod_security:
        step["podSecurity"] = pod_security
    return {"apiVersion": "edgeline.io/v1alpha1", "kind": "DataPipeline",
            "metadata": {"name": name, "namespace": namespace}, "spec": {"steps": [step]}}


def test_pipeline_steps_are_refused_at_admission_on_clusters_that_do_not_allow_them(hub, lines, namespace):
    _, names = lines

    def refused(manifest, words):
        proc = hub.apply(manifest, check=False)
        return proc.returncode != 0 and words in proc.stderr and proc.stderr
    privileged = wait_for(lambda: refused(_pipeline(namespace, "priv", names["mine"], "privileged"),
                                          "asks for more Pod Security"),
                          timeout=30, what="the tenancy admission policy refusing a privileged step")
    assert f"EdgeCluster {names['mine']} allows (at most restricted" in privileged
    foreign = refused(_pipeline(namespace, "foreign", names["theirs"]), "does not admit namespace")
    assert foreign and f"EdgeCluster {names['theirs']} does not admit namespace {namespace}" in foreign
    assert hub.kubectl("get", "datapipeline", "priv", "foreign", "-n", namespace, check=False).returncode != 0


def test_steps_run_restricted_and_a_cluster_that_stops_admitting_refuses_the_next_step(hub, edge_a, lines,
                                                                                       namespace):
    _, names = lines
    hub.apply(_pipeline(namespace, "collect", names["mine"]))
    hub.kubectl("annotate", "--overwrite", "datapipeline", "collect", "-n", namespace, "edgeline.io/run-now=1")
    _wait_status(hub, "datapipeline", "collect", namespace, lambda s: s.get("phase") == "Succeeded",
                 "the restricted step's run")
    [job] = edge_a.get("jobs", "-n", f"ns-{names['mine']}", "-l", "edgeline.io/pipeline=collect")["items"]
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["seccompProfile"]["type"] == \
        "RuntimeDefault"
    assert pod["containers"][0]["securityContext"] == {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                                                       "capabilities": {"drop": ["ALL"]}}

    # The cluster's owner takes the namespace off the list; the pipeline (admitted earlier) runs again.
    hub.kubectl("patch", "edgecluster", names["mine"], "--type=merge", "-p",
                json.dumps({"spec": {"tenancy": {"namespaces": ["another-team"]}}}))
    hub.kubectl("annotate", "--overwrite", "datapipeline", "collect", "-n", namespace, "edgeline.io/run-now=2")
    status = _wait_status(hub, "datapipeline", "collect", namespace,
                          lambda s: s.get("runCounter") == 2 and s.get("phase") == "Failed",
                          "the second run refused")
    step = status["runs"][0]["steps"][0]
    assert step["reason"] == "NamespaceNotAllowed" and f"does not admit namespace {namespace}" in step["message"]
    jobs = edge_a.get("jobs", "-n", f"ns-{names['mine']}", "-l", "edgeline.io/pipeline=collect")["items"]
    assert [j["metadata"]["name"] for j in jobs] == [job["metadata"]["name"]]       # no second Job
