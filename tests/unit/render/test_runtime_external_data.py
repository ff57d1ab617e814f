"""External data digests travel from the MLModel to the runtime, and are part of the revision."""

from __future__ import annotations

from edgeline.api.edgedeployment import RevisionRef, Runtime
from edgeline.domain.revisions import revision_of
from edgeline.render.runtime import Target, render
from edgeline.runtime.config import RuntimeConfig

WEIGHTS = {"weights.bin": "sha256:" + "5" * 64}
REV = RevisionRef(revision="abc1234567", mlmodel="detector-2.0.0", digest="sha256:" + "e" * 64,
                  uri="https://models.example/d.onnx", runtime=Runtime(), external_data=WEIGHTS)


def test_the_runtime_reads_the_digests_the_operator_renders():
    config = next(o for o in render("factory", "detector", REV, Target("c", "ns")) if o["kind"] == "ConfigMap")
    runtime = RuntimeConfig(**{key.removeprefix("EDGELINE_").lower(): value
                               for key, value in config["data"].items() if value})
    assert runtime.model_external_data == WEIGHTS
    plain = REV.model_copy(update={"external_data": None})
    config = next(o for o in render("factory", "detector", plain, Target("c", "ns")) if o["kind"] == "ConfigMap")
    assert config["data"]["EDGELINE_MODEL_EXTERNAL_DATA"] == ""


def test_other_external_data_is_another_revision_and_none_keeps_the_old_hash():
    runtime = Runtime()
    base = revision_of("sha256:" + "e" * 64, "https://m/d.onnx", runtime)
    assert revision_of("sha256:" + "e" * 64, "https://m/d.onnx", runtime, {}) == base
    with_weights = revision_of("sha256:" + "e" * 64, "https://m/d.onnx", runtime, WEIGHTS)
    other = revision_of("sha256:" + "e" * 64, "https://m/d.onnx", runtime, {"weights.bin": "sha256:" + "6" * 64})
    assert len({base, with_weights, other}) == 3
