"""Model variants: which artifact each cluster gets from its probed facts, why, and which
clusters none fits; whether variants agree on their tensors; the digest that covers them all;
and how the choice reaches the rollout (one Apply per cluster with its variant) and status."""

import datetime as dt

import pytest

from edgeline.api.edgedeployment import (EdgeDeploymentSpec, EdgeDeploymentStatus, Placement, RevisionRef, Runtime,
                                         VariantRef)
from edgeline.domain.compatibility import max_opset, runtime_onnxruntime
from edgeline.domain.placement import ClusterFacts, place
from edgeline.domain.rollout import Apply, Inputs, Observation, decide
from edgeline.domain.variants import Runs, pick, signature_problems, variants_digest, variants_of
from edgeline.domain.waves import WavePlan

AMD64 = ClusterFacts("edge-a", {"site": "x"}, architectures=("amd64",), gpus=0, memory="8Gi", probed=True,
                     reachable=True)
AMD64_GPU = ClusterFacts("edge-gpu", {"site": "x"}, architectures=("amd64",), gpus=1, memory="16Gi", probed=True,
                         reachable=True)
ARM64 = ClusterFacts("edge-b", {"site": "x"}, architectures=("arm64",), memory="4Gi", probed=True, reachable=True)
ARMV7 = ClusterFacts("edge-c", {"site": "x"}, architectures=("arm",), memory="1Gi", probed=True, reachable=True)
UNPROBED = ClusterFacts("edge-new", {"site": "x"})

FP32 = VariantRef(name="default", uri="https://m/fp32.onnx", digest="sha256:" + "1" * 64, architecture="amd64",
                  accelerator="cpu", opset=17, size_bytes=40_000_000)
INT8 = VariantRef(name="arm64-int8", uri="https://m/int8.onnx", digest="sha256:" + "2" * 64, architecture="arm64",
                  accelerator="cpu", opset=17, size_bytes=10_000_000)
FP16 = VariantRef(name="gpu-fp16", uri="https://m/fp16.onnx", digest="sha256:" + "3" * 64, accelerator="gpu",
                  execution_provider="CUDA", opset=17, size_bytes=20_000_000)
GENERIC = VariantRef(name="default", uri="https://m/any.onnx", digest="sha256:" + "4" * 64, accelerator="cpu",
                     opset=17)
RUNS = Runs("1.20")


@pytest.mark.parametrize("case, variants, cluster, runs, chosen, reason, words", [
    ("amd64 CPU gets the amd64 build", [FP32, INT8, FP16], AMD64, RUNS, "default", "VariantChosen", "built for amd64"),
    ("arm64 gateway gets the int8 build", [FP32, INT8, FP16], ARM64, RUNS, "arm64-int8", "VariantChosen",
     "built for arm64"),
    ("a GPU wins over the CPU build on a GPU cluster", [FP32, INT8, FP16], AMD64_GPU, RUNS, "gpu-fp16",
     "VariantChosen", "uses the cluster's GPU (1 allocatable); best of 2"),
    ("an architecture-specific build wins over a generic one", [GENERIC, INT8], ARM64, RUNS, "arm64-int8",
     "VariantChosen", "arm64"),
    ("generic build where nothing more specific fits", [GENERIC, INT8], AMD64, RUNS, "default", "VariantChosen",
     "generic build"),
    ("no variant fits: every variant says why", [FP32, INT8, FP16], ARMV7, RUNS, None, "NoVariantFits",
     "default: built for amd64; nodes are arm | arm64-int8: built for arm64; nodes are arm | gpu-fp16: needs a GPU"),
    ("not probed yet: unknown, not a mismatch", [FP32, INT8], UNPROBED, RUNS, None, "NotProbedYet", "not been reached"),
    ("runtime too old for the variant", [VariantRef(name="default", min_runtime_version="1.21")], AMD64, RUNS, None,
     "RuntimeTooOld", "needs onnxruntime 1.21; the runtime has 1.20"),
    ("runtime new enough", [VariantRef(name="default", min_runtime_version="1.18.1")], AMD64, RUNS, "default",
     "VariantChosen", ""),
    ("runtime of a custom image unknown", [VariantRef(name="default", min_runtime_version="1.18")], AMD64, Runs(None),
     None, "RuntimeVersionUnknown", "spec.runtime.onnxruntimeVersion"),
    ("opset newer than the runtime implements", [VariantRef(name="default", opset=22)], AMD64, RUNS, None,
     "OpsetNotSupported", "uses opset 22; onnxruntime 1.20 implements up to 21"),
    ("opset within the runtime", [VariantRef(name="default", opset=21)], AMD64, RUNS, "default", "VariantChosen", ""),
    ("model memory above allocatable", [VariantRef(name="default", memory="6Gi")], ARM64, RUNS, None,
     "NotEnoughMemory", "needs 6Gi; allocatable memory is 4Gi"),
    ("model size above allocatable", [VariantRef(name="default", size_bytes=2 * 2**30)], ARMV7, RUNS, None,
     "NotEnoughMemory", "needs 2Gi; allocatable memory is 1Gi"),
    ("a GPU model on a cluster without GPUs", [VariantRef(name="default", accelerator="gpu")], AMD64, RUNS, None,
     "NoGPU", "no allocatable GPU"),
    ("an NPU model: Edgeline finds no NPUs", [VariantRef(name="default", accelerator="npu")], AMD64_GPU, RUNS, None,
     "NoNPU", "NPU"),
])
def test_pick(case, variants, cluster, runs, chosen, reason, words):
    result = pick(variants, cluster, runs)
    assert (result.variant.name if result.variant else None, result.reason) == (chosen, reason), case
    assert words in result.message, (case, result.message)


@pytest.mark.parametrize("image, declared, version", [
    ("ghcr.io/edgeline/edge-runtime:0.1.0", None, "1.18"),
    ("127.0.0.1:5000/edgeline/edge-runtime:dev", None, "1.18"),
    ("registry.example/edgeline/edge-runtime@sha256:" + "a" * 64, None, "1.18"),
    ("registry.example/other/runtime:1", None, None),
    ("registry.example/other/runtime:1", "1.22.1", "1.22.1"),
])
def test_runtime_onnxruntime_of_the_image(image, declared, version):
    assert runtime_onnxruntime(image, declared) == version


@pytest.mark.parametrize("version, opset", [("1.12", None), ("1.13.1", 17), ("1.17", 20), ("1.18.0", 21),
                                            ("1.20", 21), ("1.21", 22), ("1.23.2", 23), ("1.32.0", 23)])
def test_opset_table(version, opset):
    assert max_opset(version) == opset


def _io(inputs, outputs):
    return {"inputs": [{"name": n, "elemType": t, "shape": s} for n, t, s in inputs],
            "outputs": [{"name": n, "elemType": t, "shape": s} for n, t, s in outputs]}


REF = _io([("x", "FLOAT", ["batch", "3"])], [("y", "FLOAT", ["batch", "4"])])


@pytest.mark.parametrize("case, other, words", [
    ("same tensors", REF, None),
    ("a symbolic dimension fits a fixed one", _io([("x", "FLOAT", ["1", "3"])], [("y", "FLOAT", ["?", "4"])]), None),
    ("another input name", _io([("input", "FLOAT", ["batch", "3"])], [("y", "FLOAT", ["batch", "4"])]),
     "inputs of int8 are input, the default's are x"),
    ("another dtype", _io([("x", "FLOAT16", ["batch", "3"])], [("y", "FLOAT", ["batch", "4"])]),
     "input x of int8 is FLOAT16, the default's is FLOAT"),
    ("another rank", _io([("x", "FLOAT", ["batch", "3", "1"])], [("y", "FLOAT", ["batch", "4"])]),
     "input x of int8 has shape [batch, 3, 1]"),
    ("a fixed dimension differs", _io([("x", "FLOAT", ["batch", "3"])], [("y", "FLOAT", ["batch", "5"])]),
     "output y of int8 has shape [batch, 5], the default's is [batch, 4]"),
    ("an extra output", _io([("x", "FLOAT", ["batch", "3"])], [("y", "FLOAT", ["batch", "4"]), ("z", "FLOAT", [])]),
     "outputs of int8 are y, z"),
])
def test_signature_agreement(case, other, words):
    found = signature_problems(REF, "int8", other)
    assert (words is None) == (not found), (case, found)
    if words:
        assert any(words in p for p in found), (case, found)


SPEC = {"artifact": {"uri": "https://m/fp32.onnx"}, "platform": {"architecture": "amd64"},
        "requirements": {"minRuntimeVersion": "1.17", "memory": "512Mi", "accelerator": "cpu"},
        "variants": [{"name": "arm64-int8", "artifact": {"uri": "https://m/int8.onnx"},
                      "platform": {"architecture": "arm64", "minRuntimeVersion": "1.18"}}]}
STATUS = {"artifact": {"digest": "sha256:" + "1" * 64},
          "variants": [{"name": "default", "digest": "sha256:" + "1" * 64, "opset": 17, "sizeBytes": 100},
                       {"name": "arm64-int8", "digest": "sha256:" + "2" * 64, "opset": 17, "sizeBytes": 50}]}


def test_variants_of_an_mlmodel_default_first_with_the_model_wide_requirements():
    default, int8 = variants_of(SPEC, STATUS)
    assert (default.name, default.uri, default.architecture, default.min_runtime_version, default.opset) == \
        ("default", "https://m/fp32.onnx", "amd64", "1.17", 17)
    assert (int8.name, int8.architecture, int8.min_runtime_version, int8.memory, int8.digest) == \
        ("arm64-int8", "arm64", "1.18", "512Mi", "sha256:" + "2" * 64)


def test_the_variants_digest_changes_with_any_variant_and_not_with_order():
    variants = variants_of(SPEC, STATUS)
    digest = variants_digest(variants)
    assert digest.startswith("sha256:") and digest == variants_digest(list(reversed(variants)))
    other_bytes = [variants[0], variants[1].model_copy(update={"digest": "sha256:" + "9" * 64})]
    other_platform = [variants[0], variants[1].model_copy(update={"architecture": "arm"})]
    assert len({digest, variants_digest(other_bytes), variants_digest(other_platform)}) == 3


def test_placement_excludes_a_cluster_no_variant_fits_with_the_reason():
    placement = Placement.model_validate({"clusterSelector": {"matchLabels": {"site": "x"}}})
    result = place(placement, [AMD64, ARM64, ARMV7], (FP32, INT8), Runtime())
    assert result.selected == ("edge-a", "edge-b")
    assert [(e.name, e.reason) for e in result.excluded] == [("edge-c", "NoVariantFits")]
    assert "nodes are arm" in result.excluded[0].message


def test_placement_without_variants_holds_the_model_requirements_against_the_cluster():
    placement = Placement.model_validate({"clusterSelector": {"matchLabels": {"site": "x"}}})
    gpu_model = (VariantRef(name="default", accelerator="gpu"),)
    result = place(placement, [AMD64, AMD64_GPU], gpu_model, Runtime())
    assert result.selected == ("edge-gpu",)
    assert [(e.name, e.reason) for e in result.excluded] == [("edge-a", "NoGPU")]


T0 = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.timezone.utc)
REV = RevisionRef(revision="vvvv000001", mlmodel="m-1", version="1", digest=FP32.digest, uri=FP32.uri,
                  runtime=Runtime(), variants=[FP32, INT8], variants_digest="sha256:" + "f" * 64)


def _spec():
    return EdgeDeploymentSpec.model_validate({
        "modelRef": {"name": "m-1"}, "placement": {"clusterSelector": {"matchLabels": {"site": "x"}}},
        "approval": {"required": False}, "rollout": {"waveTimeoutSeconds": 60}})


def test_each_cluster_is_applied_its_variant_and_status_says_which_and_why():
    observations = {n: Observation(n, reachable=True) for n in ("edge-a", "edge-b")}
    d = decide(Inputs(spec=_spec(), status=EdgeDeploymentStatus(), desired=REV,
                      waves=[WavePlan("all", ("edge-a", "edge-b"), 0)], excluded=[], observations=observations,
                      stale_after={}, approved=True, paused=False, rollback_to=None, now=T0,
                      facts={"edge-a": AMD64, "edge-b": ARM64}))
    applied = {a.cluster: a.variant.name for a in d.actions if isinstance(a, Apply)}
    assert applied == {"edge-a": "default", "edge-b": "arm64-int8"}
    states = {c.name: (c.variant, c.variant_reason) for c in d.status.clusters}
    assert states["edge-b"][0] == "arm64-int8" and "built for arm64" in states["edge-b"][1]
    assert states["edge-a"][0] == "default" and "built for amd64" in states["edge-a"][1]


def test_a_revision_without_variants_is_applied_as_before():
    legacy = REV.model_copy(update={"variants": None, "variants_digest": None})
    d = decide(Inputs(spec=_spec(), status=EdgeDeploymentStatus(), desired=legacy,
                      waves=[WavePlan("all", ("edge-a",), 0)], excluded=[],
                      observations={"edge-a": Observation("edge-a", reachable=True)}, stale_after={}, approved=True,
                      paused=False, rollback_to=None, now=T0, facts={"edge-a": AMD64}))
    assert [(a.cluster, a.variant) for a in d.actions] == [("edge-a", None)]
    assert d.status.clusters[0].variant is None


def test_pending_approval_shows_the_model_metrics_and_stage():
    spec = _spec().model_copy(update={"approval": _spec().approval.model_copy(
        update={"required": True, "approver_groups": ["qa"]})})
    d = decide(Inputs(spec=spec, status=EdgeDeploymentStatus(), desired=REV, waves=[WavePlan("all", ("edge-a",), 0)],
                      excluded=[], observations={"edge-a": Observation("edge-a", reachable=True)}, stale_after={},
                      approved=False, paused=False, rollback_to=None, now=T0, facts={"edge-a": AMD64},
                      model_metrics={"accuracy": 0.97, "f1": 0.91}, model_stage="production"))
    assert d.status.pending_approval is not None
    assert d.status.pending_approval.metrics == {"accuracy": 0.97, "f1": 0.91}
    assert d.status.pending_approval.stage == "production"
