"""A cluster's runtime serves the variant chosen for it: its artifact, its architecture, its
execution provider; without a variant the revision renders as before."""

from edgeline.api.edgedeployment import RevisionRef, Runtime, VariantRef
from edgeline.render.runtime import Target, render

REV = RevisionRef(revision="r1", mlmodel="m", model="detector", version="1", digest="sha256:" + "1" * 64,
                  uri="https://m/fp32.onnx", runtime=Runtime())
INT8 = VariantRef(name="arm64-int8", uri="https://m/int8.onnx", digest="sha256:" + "2" * 64, architecture="arm64",
                  external_data={"w.bin": "sha256:" + "3" * 64})
FP16 = VariantRef(name="gpu-fp16", uri="https://m/fp16.onnx", digest="sha256:" + "4" * 64, accelerator="gpu",
                  execution_provider="CUDA")


def _objects(variant):
    config, deployment, _ = render("ns", "detector", REV, Target("edge-b", "w"), None, variant)
    return config["data"], deployment["spec"]["template"]["spec"], deployment["metadata"]["labels"]


def test_the_variant_artifact_and_architecture_reach_the_cluster():
    data, pod, labels = _objects(INT8)
    assert (data["EDGELINE_MODEL_URI"], data["EDGELINE_MODEL_SHA256"], data["EDGELINE_MODEL_VARIANT"]) == \
        ("https://m/int8.onnx", "sha256:" + "2" * 64, "arm64-int8")
    assert '"w.bin"' in data["EDGELINE_MODEL_EXTERNAL_DATA"]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]}]}]
    assert labels["edgeline.io/revision"] == "r1"           # one revision, whatever the variant


def test_a_gpu_variant_asks_for_a_gpu_and_its_execution_provider():
    data, pod, _ = _objects(FP16)
    assert data["EDGELINE_EXECUTION_PROVIDER"] == "CUDA"
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_without_a_variant_nothing_changes():
    data, pod, _ = _objects(None)
    assert data["EDGELINE_MODEL_URI"] == "https://m/fp32.onnx" and "EDGELINE_MODEL_VARIANT" not in data
    assert "affinity" not in pod
