from edgeline.api.edgedeployment import PlacementRequirements, RevisionRef, Runtime
from edgeline.render.runtime import Target, object_name, render

REV = RevisionRef(revision="abc1234567", mlmodel="detector-2.0.0", model="defect-detector", version="2.0.0",
                  digest="sha256:" + "e" * 64, uri="https://models.example/d.onnx", runtime=Runtime(replicas=3))


def _by_kind(objects):
    return {o["kind"]: o for o in objects}


def test_the_runtime_gets_the_model_uri_and_digest_and_every_object_names_its_deployment_and_revision():
    objects = _by_kind(render("factory", "detector", REV, Target("brno", "edgeline-assembly")))
    assert set(objects) == {"ConfigMap", "Deployment", "Service"}
    config = objects["ConfigMap"]["data"]
    assert config["EDGELINE_MODEL_SHA256"] == REV.digest and config["EDGELINE_MODEL_URI"] == REV.uri
    assert config["EDGELINE_CLUSTER"] == "brno"
    for obj in objects.values():
        assert obj["metadata"]["namespace"] == "edgeline-assembly"
        assert obj["metadata"]["labels"]["edgeline.io/revision"] == "abc1234567"
        assert obj["metadata"]["labels"]["edgeline.io/deployment"] == "detector"
    assert objects["Deployment"]["spec"]["replicas"] == 3


def test_the_selector_never_changes_between_revisions():
    other = REV.model_copy(update={"revision": "fff0000000"})
    first = _by_kind(render("factory", "detector", REV, Target("c", "ns")))["Deployment"]
    second = _by_kind(render("factory", "detector", other, Target("c", "ns")))["Deployment"]
    assert first["spec"]["selector"] == second["spec"]["selector"]
    assert "edgeline.io/revision" not in first["spec"]["selector"]["matchLabels"]


def test_hardware_placement_and_a_locked_down_container():
    gpu = REV.model_copy(update={"runtime": Runtime(execution_provider="CUDA")})
    pod = _by_kind(render("factory", "detector", gpu, Target("c", "ns"),
                          PlacementRequirements(architectures=["arm64"])))["Deployment"]["spec"]["template"]["spec"]
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    term = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
    assert term["matchExpressions"][0] == {"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]}
    security = pod["containers"][0]["securityContext"]
    assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
    assert pod["automountServiceAccountToken"] is False


def test_names_stay_within_kubernetes_limits_and_distinct():
    long = object_name("a" * 40, "b" * 40)
    assert len(long) <= 63 and long != object_name("a" * 40, "b" * 39 + "c")


# --- per-revision, immutable configuration ---------------------------------------------------

def _config_and_pod(revision, cluster="c"):
    objects = _by_kind(render("factory", "detector", revision, Target(cluster, "ns")))
    return objects["ConfigMap"], objects["Deployment"]["spec"]["template"]["spec"]


def test_the_configuration_is_immutable_and_the_pod_template_names_it():
    config, pod = _config_and_pod(REV)
    assert config["immutable"] is True
    assert pod["containers"][0]["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
    assert config["metadata"]["name"].startswith(object_name("factory", "detector") + "-")
    assert len(config["metadata"]["name"]) <= 63
    labels = config["metadata"]["labels"]
    assert labels["edgeline.io/component"] == "runtime-config"
    assert labels["app.kubernetes.io/instance"] == object_name("factory", "detector")
    assert labels["edgeline.io/deployment-namespace"] == "factory" and labels["edgeline.io/deployment"] == "detector"


def test_each_revision_has_its_own_configmap_and_the_same_revision_always_the_same_one():
    first, _ = _config_and_pod(REV)
    again, _ = _config_and_pod(REV.model_copy())
    newer, newer_pod = _config_and_pod(REV.model_copy(update={"revision": "fff0000000", "digest": "sha256:" + "f" * 64,
                                                             "version": "3.0.0"}))
    assert first == again                       # re-applying changes nothing, not even the name
    assert newer["metadata"]["name"] != first["metadata"]["name"]
    assert newer_pod["containers"][0]["envFrom"][0]["configMapRef"]["name"] == newer["metadata"]["name"]


def test_different_content_never_reuses_a_name_even_under_the_same_revision():
    # Two MLModels with the same bytes but another version share a revision; the ConfigMap's
    # content differs (EDGELINE_MODEL_VERSION), so its name must differ too: an immutable
    # ConfigMap cannot take new data.
    one, _ = _config_and_pod(REV)
    other, _ = _config_and_pod(REV.model_copy(update={"version": "2.0.1"}))
    assert one["metadata"]["name"] != other["metadata"]["name"]
    per_cluster, _ = _config_and_pod(REV, cluster="other")
    assert per_cluster["metadata"]["name"] != one["metadata"]["name"]


def test_a_failing_container_leaves_the_end_of_its_log_as_termination_message():
    _, pod = _config_and_pod(REV)
    assert pod["containers"][0]["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_tolerations_of_the_runtime_reach_the_pod_beside_the_gpu_one():
    from edgeline.api.edgedeployment import Toleration
    tainted = REV.model_copy(update={"runtime": Runtime(execution_provider="CUDA", tolerations=[
        Toleration(key="edgeline.io/real-node", value="true", effect="NoSchedule")])})
    pod = _by_kind(render("f", "d", tainted, Target("c", "ns")))["Deployment"]["spec"]["template"]["spec"]
    assert pod["tolerations"] == [
        {"key": "edgeline.io/real-node", "operator": "Equal", "value": "true", "effect": "NoSchedule"},
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    # Unset, the field leaves revisions of existing deployments as they were.
    assert "tolerations" not in Runtime().dump()


def test_names_of_different_namespace_name_pairs_never_collide():
    # a-b/c and a/b-c were both "a-b-c" before names carried a hash of namespace/name.
    assert object_name("a-b", "c") != object_name("a", "b-c")
    assert object_name("a-b", "c").startswith("a-b-c-")
    assert object_name("9lives", "x")[0].isalpha()       # a Service name starts with a letter
    assert len(object_name("n" * 63, "d" * 63)) <= 51


def test_every_object_carries_the_owner_uid_and_the_selector_includes_it():
    objects = _by_kind(render("factory", "detector", REV, Target("c", "ns"), owner_uid="uid-7"))
    for obj in objects.values():
        assert obj["metadata"]["labels"]["edgeline.io/owner-uid"] == "uid-7"
    assert objects["Deployment"]["spec"]["selector"]["matchLabels"]["edgeline.io/owner-uid"] == "uid-7"
    assert objects["Service"]["spec"]["selector"]["edgeline.io/owner-uid"] == "uid-7"
