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
