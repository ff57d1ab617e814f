"""The agent's state file, its assignment format, the site objects and the join bootstrap."""

import yaml

from edgeline.agent import cache, state
from edgeline.agent.bootstrap import (AGENT, AGENT_NAMESPACE, CA_CONFIGMAP, TLS_SECRET, hub_kubeconfig,
                                      site_manifests)
from edgeline.agent.workload import CACHE_MOUNT, artifact_of, site_objects
from edgeline.api.edgedeployment import RevisionRef, RollbackPolicy, VariantRef
from edgeline.clusters import pull
from edgeline.domain.site_reports import SiteRollback
from edgeline.render.runtime import LABEL_OWNER_UID, Target

REV = RevisionRef(revision="r1", version="1.0", digest="sha256:" + "c" * 64, uri="https://models.example/m.onnx")


def test_the_state_survives_a_restart(tmp_path):
    kept = state.SiteState(assignments={"o": "{}"}, running={"o": state.Running(REV, 12.5, "edge-ns")},
                           reverted={"o": {"bad": "r1"}},
                           rollbacks={"o": [SiteRollback("A", {}, "f", "s", 1.0, "bad", "r1", 2.0)]})
    state.save(tmp_path / "state.json", kept)
    assert state.load(tmp_path / "state.json") == kept
    assert state.load(tmp_path / "missing.json") == state.SiteState()


def test_an_assignment_survives_the_round_trip():
    a = pull.Assignment("ns", "d", "ns-d", "edgeline-workloads", REV, RevisionRef(revision="r0"), None,
                        RollbackPolicy(scope="Deployment"))
    assert pull.Assignment.from_json(a.to_json()) == a
    cm = pull.assignment_configmap("line-7", a)
    assert cm["metadata"]["namespace"] == "edgeline-site-line-7" and cm["metadata"]["name"] == "assignment-ns-d"


ARM = VariantRef(name="arm", uri="https://models.example/m-arm.onnx", digest="sha256:" + "d" * 64,
                 architecture="arm64")


def test_an_assignment_carries_the_owner_and_each_revisions_variant():
    good = RevisionRef(revision="r0", digest="sha256:" + "e" * 64, uri="https://models.example/old.onnx")
    a = pull.Assignment("ns", "d", "ns-d", "edgeline-workloads", REV, good, owner_uid="uid-1", variant=ARM,
                        pod_security="baseline")
    back = pull.Assignment.from_json(a.to_json())
    assert back == a
    assert back.variant_of(REV) == ARM and back.variant_of(good) is None
    # The site caches the variant's artifact for the assigned revision, the plain one for the other.
    assert artifact_of(REV, back.variant_of(REV)).digest == ARM.digest
    assert artifact_of(good, back.variant_of(good)).digest == good.digest


def test_a_site_runtime_carries_the_owner_uid_and_runs_the_variant_from_the_cache():
    objects = site_objects("ns", "d", REV, Target("line-7", "edge"), None, "/var/lib/edgeline-agent/models",
                           "d" * 64 + "/model.onnx", variant=ARM, owner_uid="uid-1")
    assert all(o["metadata"]["labels"][LABEL_OWNER_UID] == "uid-1" for o in objects)
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    assert config["data"]["EDGELINE_MODEL_URI"] == f"file://{CACHE_MOUNT}/{'d' * 64}/model.onnx"
    assert config["data"]["EDGELINE_MODEL_VARIANT"] == "arm"


def test_site_namespaces_stay_valid_names():
    long = pull.site_namespace("a" * 80)
    assert len(long) <= 63 and long.startswith("edgeline-site-")
    assert pull.site_namespace("line.7") != pull.site_namespace("line-7")


def test_the_site_role_writes_only_the_report_and_the_lease_and_asks_tokens_for_itself():
    role = next(o for o in pull.site_objects("line-7") if o["kind"] == "Role")
    writes = [r for r in role["rules"] if set(r["verbs"]) & {"update", "patch", "create", "delete"}]
    assert all(r.get("resourceNames") in ([pull.REPORT], [pull.LEASE], [pull.AGENT]) for r in writes)
    creates = [r for r in role["rules"] if "create" in r["verbs"]]
    assert creates == [{"apiGroups": [""], "resources": ["serviceaccounts/token"], "resourceNames": [pull.AGENT],
                        "verbs": ["create"]}]


def test_a_site_runtime_reads_its_model_from_the_cache():
    objects = site_objects("ns", "d", REV, Target("line-7", "edge"), None, "/var/lib/edgeline-agent/models",
                           "c" * 64 + "/model.onnx")
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    assert config["data"]["EDGELINE_MODEL_URI"] == f"file://{CACHE_MOUNT}/{'c' * 64}/model.onnx"
    pod = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert pod["containers"][0]["envFrom"][0]["configMapRef"]["name"] == config["metadata"]["name"]
    assert {"name": "site-models", "mountPath": CACHE_MOUNT, "readOnly": True} in pod["containers"][0]["volumeMounts"]


def test_the_cache_keeps_only_verified_artifacts(tmp_path):
    model = tmp_path / "src.onnx"
    model.write_bytes(b"not really onnx but bytes with a digest")
    digest = cache.sha256_of(model)[0]
    rev = RevisionRef(revision="r", digest=digest, uri=model.as_uri())
    root = tmp_path / "cache"
    path = cache.ensure(root, rev)
    assert path.read_bytes() == model.read_bytes() and cache.cached(root, rev) == path
    model.unlink()      # the WAN is gone: the cache still has it
    assert cache.ensure(root, rev) == path
    wrong = RevisionRef(revision="w", digest="sha256:" + "0" * 64, uri=(tmp_path / "cache").as_uri() + "/x")
    try:
        cache.ensure(root, wrong)
        raise AssertionError("a missing artifact must not count as cached")
    except cache.CacheMiss:
        pass
    assert cache.prune(root, {digest}) == []
    assert cache.prune(root, set()) == [digest.removeprefix("sha256:")]


def test_the_join_bootstrap_is_applyable_yaml():
    config = hub_kubeconfig("line-7", "https://198.19.200.1:6443", "Q0E=", "tok", "edgeline-site-line-7")
    text = yaml.safe_dump(config)
    docs = site_manifests("line-7", text, "alert-token", "localhost/edgeline-agent:dev")
    kinds = [d["kind"] for d in docs]
    assert kinds[0] == "Namespace" and "Deployment" in kinds and "Secret" in kinds
    yaml.safe_load_all(yaml.safe_dump_all(docs))


def test_the_agent_may_write_only_its_own_secrets_and_ca_configmap_in_its_namespace():
    docs = site_manifests("line-7", "{}", "alert-token", "localhost/edgeline-agent:dev")
    role = next(d for d in docs if d["kind"] == "Role")
    assert role["metadata"]["namespace"] == AGENT_NAMESPACE
    assert all(r.get("resourceNames") and "create" not in r["verbs"] and "delete" not in r["verbs"]
               for r in role["rules"])
    named = {(r["resources"][0], n) for r in role["rules"] for n in r["resourceNames"]}
    assert named == {("secrets", AGENT), ("secrets", TLS_SECRET), ("configmaps", CA_CONFIGMAP)}
    # The objects it writes exist before it starts: join prints them empty.
    printed = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("Secret", AGENT), ("Secret", TLS_SECRET), ("ConfigMap", CA_CONFIGMAP)} <= printed
    # Documents come before what uses them: the Role before the Deployment.
    kinds = [d["kind"] for d in docs]
    assert kinds.index("RoleBinding") < kinds.index("Deployment")
