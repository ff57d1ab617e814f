"""A pull site whose cache is a PersistentVolumeClaim: the join prints the claim and runs the
agent beside the runtimes, the runtimes mount the claim read-only on the agent's node, and the
agent says which cache it has in its facts."""

import json

import pytest
import yaml

from edgeline.agent.bootstrap import (AGENT_NAMESPACE, PSA_ENFORCE, CacheClaim, hub_kubeconfig, parse_toleration,
                                      site_manifests, with_site_options)
from edgeline.agent.site import AgentConfig
from edgeline.agent.workload import CACHE_MOUNT, pinned_to_node, site_objects
from edgeline.api.edgedeployment import PlacementRequirements, RevisionRef
from edgeline.clusters import pull
from edgeline.clusters.probe import ClusterFacts
from edgeline.domain.site_cache import CLAIM, HOST_PATH, SiteCache
from edgeline.render.runtime import Target

REV = RevisionRef(revision="r1", version="1.0", digest="sha256:" + "c" * 64, uri="https://models.example/m.onnx")
NODE_FIELD = {"key": "metadata.name", "operator": "In", "values": ["node-1"]}


def _manifests(**options):
    config = yaml.safe_dump(hub_kubeconfig("line-7", "https://198.19.200.1:6443", "Q0E=", "tok",
                                           "edgeline-site-line-7"))
    return with_site_options(site_manifests("line-7", config, "alert-token", "localhost/edgeline-agent:dev"),
                             **options)


def _agent_pod(docs):
    return next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]


def _env(pod):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in pod["containers"][0]["env"]}


def test_without_a_claim_the_cache_stays_a_hostpath_in_the_agents_namespace():
    plain = site_manifests("line-7", "x", "t", "img")
    docs = _manifests(tolerations=[parse_toleration("dedicated=line:NoSchedule")])
    pod = _agent_pod(docs)
    assert [d["kind"] for d in docs] == [d["kind"] for d in plain]
    assert {d["metadata"].get("namespace") for d in docs} == {AGENT_NAMESPACE, None}
    assert {"name": "cache", "hostPath": {"path": "/var/lib/edgeline-agent", "type": "DirectoryOrCreate"}} \
        in pod["volumes"]
    assert _env(pod)["EDGELINE_AGENT_NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "line", "effect": "NoSchedule"}]
    assert "runAsUser" not in pod["securityContext"]          # root: it owns a root-owned folder of the node
    # A writable /tmp under the read-only root (lightkube writes the hub's CA to a temporary file).
    assert {"name": "tmp", "mountPath": "/tmp"} in pod["containers"][0]["volumeMounts"]
    # Each volume and mount once (the API server refuses a Deployment that names one twice).
    volumes = [v["name"] for v in pod["volumes"]]
    mounts = [m["mountPath"] for m in pod["containers"][0]["volumeMounts"]]
    assert len(volumes) == len(set(volumes)) and len(mounts) == len(set(mounts)), (volumes, mounts)
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


def test_with_a_claim_the_join_prints_it_and_the_agent_runs_beside_the_runtimes_at_restricted():
    docs = _manifests(claim=CacheClaim("models", "2Gi", "local-disk"), namespace="ns-line-7",
                      pod_security="restricted")
    kinds = [d["kind"] for d in docs]
    assert kinds.index("PersistentVolumeClaim") < kinds.index("Deployment")
    namespace = next(d for d in docs if d["kind"] == "Namespace")
    assert namespace["metadata"]["name"] == "ns-line-7"
    assert namespace["metadata"]["labels"][PSA_ENFORCE] == "restricted"
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {"ns-line-7", None}
    binding = next(d for d in docs if d["kind"] == "ClusterRoleBinding")
    assert binding["subjects"][0]["namespace"] == "ns-line-7"
    claim = next(d for d in docs if d["kind"] == "PersistentVolumeClaim")
    assert claim["metadata"] == {"name": "models", "namespace": "ns-line-7", "labels": claim["metadata"]["labels"]}
    assert claim["spec"] == {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}},
                             "storageClassName": "local-disk"}
    pod = _agent_pod(docs)
    assert {"name": "cache", "persistentVolumeClaim": {"claimName": "models"}} in pod["volumes"]
    assert not any("hostPath" in v for v in pod["volumes"])
    env = _env(pod)
    assert env["EDGELINE_AGENT_CACHE_CLAIM"] == "models" and "EDGELINE_AGENT_CACHE_HOST_DIR" not in env
    # What Pod Security restricted asks of a Pod.
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]["securityContext"]
    assert container["allowPrivilegeEscalation"] is False and container["capabilities"] == {"drop": ["ALL"]}
    yaml.safe_load_all(yaml.safe_dump_all(docs))


def test_without_a_storage_class_the_claim_takes_the_sites_default():
    docs = _manifests(claim=CacheClaim("models"), namespace="edge")
    claim = next(d for d in docs if d["kind"] == "PersistentVolumeClaim")
    assert "storageClassName" not in claim["spec"] and claim["spec"]["resources"]["requests"]["storage"] == "5Gi"


@pytest.mark.parametrize("text, expected", [
    ("dedicated=line:NoSchedule", {"key": "dedicated", "operator": "Equal", "value": "line", "effect": "NoSchedule"}),
    ("dedicated:NoExecute", {"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}),
    ("dedicated", {"key": "dedicated", "operator": "Exists"}),
    ("dedicated=", {"key": "dedicated", "operator": "Equal", "value": ""}),
])
def test_tolerations_use_the_taint_notation(text, expected):
    assert parse_toleration(text) == expected


@pytest.mark.parametrize("text", ["", "=x", "k=v:Sometimes"])
def test_a_malformed_toleration_is_refused(text):
    with pytest.raises(ValueError, match="KEY"):
        parse_toleration(text)


@pytest.mark.parametrize("affinity, expected_terms", [
    (None, [{"matchFields": [NODE_FIELD]}]),
    ({}, [{"matchFields": [NODE_FIELD]}]),
    # An architecture requirement stays; the node is added to the term (ANDed).
    ({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]}]}]}}},
     [{"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]}],
       "matchFields": [NODE_FIELD]}]),
    # Every ORed term gets it, and an earlier node pin is replaced, not doubled.
    ({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["old"]}]}, {"matchExpressions": []}]}}},
     [{"matchFields": [NODE_FIELD]}, {"matchExpressions": [], "matchFields": [NODE_FIELD]}]),
])
def test_runtimes_are_pinned_to_the_agents_node(affinity, expected_terms):
    pinned = pinned_to_node(affinity, "node-1")
    assert pinned["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] == \
        expected_terms


def test_pinning_keeps_other_affinities():
    other = {"podAntiAffinity": {"x": 1}, "nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}}
    pinned = pinned_to_node(other, "node-1")
    assert pinned["podAntiAffinity"] == {"x": 1}
    assert pinned["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"] == []
    assert other == {"podAntiAffinity": {"x": 1}, "nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}}


def test_a_runtime_mounts_the_claims_models_read_only_on_the_agents_node():
    objects = site_objects("ns", "d", REV, Target("line-7", "edge"), PlacementRequirements(architectures=["amd64"]),
                           "/unused", "c" * 64 + "/model.onnx", cache_claim="models", node="node-1")
    pod = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert {"name": "site-models", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}} \
        in pod["volumes"]
    assert not any("hostPath" in v for v in pod["volumes"])
    assert {"name": "site-models", "mountPath": CACHE_MOUNT, "readOnly": True, "subPath": "models"} \
        in pod["containers"][0]["volumeMounts"]
    [term] = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term["matchFields"] == [NODE_FIELD] and term["matchExpressions"][0]["key"] == "kubernetes.io/arch"
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    assert config["data"]["EDGELINE_MODEL_URI"] == f"file://{CACHE_MOUNT}/{'c' * 64}/model.onnx"


def test_a_hostpath_runtime_without_a_known_node_is_not_pinned():
    objects = site_objects("ns", "d", REV, Target("line-7", "edge"), None, "/var/lib/edgeline-agent/models",
                           "c" * 64 + "/model.onnx")
    pod = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert "affinity" not in pod
    assert {"name": "site-models", "hostPath": {"path": "/var/lib/edgeline-agent/models", "type": "Directory"}} \
        in pod["volumes"]


FACTS = ClusterFacts("v1.36.3", "kubernetes", 1, 1, ("amd64",), 2000, 2 ** 30, 0)


@pytest.mark.parametrize("config, expected", [
    (AgentConfig("line-7", None, "/var/lib/edgeline-agent"), SiteCache(HOST_PATH)),
    (AgentConfig("line-7", None, "/x", node="n1"), SiteCache(HOST_PATH, None, "n1")),
    (AgentConfig("line-7", None, "/x", cache_claim="models", node="n1"), SiteCache(CLAIM, "models", "n1")),
])
def test_the_agent_reports_its_cache_beside_the_facts_the_hub_reads(config, expected):
    text = pull.facts_json(FACTS, config.cache)
    assert SiteCache.from_dict(json.loads(text)[pull.CACHE_FACT]) == expected
    # The probe's facts still parse (the cache key is not one of them).
    data = json.loads(text)
    data.pop(pull.CACHE_FACT)
    assert json.loads(pull.facts_json(FACTS)) == data


class _Hub:
    """The two hub objects a pull probe reads: the Lease and the report."""

    def __init__(self, facts: str, renewed):
        from lightkube.models.coordination_v1 import LeaseSpec
        from lightkube.models.meta_v1 import ObjectMeta
        from lightkube.resources.coordination_v1 import Lease
        from lightkube.resources.core_v1 import ConfigMap

        self.objects = {Lease: Lease(metadata=ObjectMeta(name="l"), spec=LeaseSpec(renewTime=renewed)),
                        ConfigMap: ConfigMap(metadata=ObjectMeta(name="r"), data={pull.FACTS_KEY: facts})}

    async def get(self, kind, name, namespace=None):
        return self.objects[kind]


@pytest.mark.parametrize("cache", [None, SiteCache(CLAIM, "models", "node-1")])
def test_the_hub_reads_the_facts_and_the_cache_of_the_same_report(cache):
    import asyncio
    import datetime as dt

    now = dt.datetime(2026, 12, 6, 7, 0, tzinfo=dt.timezone.utc)
    hub = _Hub(pull.facts_json(FACTS, cache), now - dt.timedelta(seconds=5))
    facts, problem, _ = asyncio.run(pull.probe_site(hub, "line-7", 60, now))
    assert problem is None and facts == FACTS
    assert asyncio.run(pull.site_cache(hub, "line-7")) == (cache or SiteCache())
