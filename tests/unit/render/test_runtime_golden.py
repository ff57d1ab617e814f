"""The golden sample reaches the runtime through the revision's ConfigMap, and a deployment
without one keeps exactly the objects and revision it had before the field existed."""

from edgeline.api.edgedeployment import GoldenSampleRef, RevisionRef, Runtime
from edgeline.domain.revisions import revision_of
from edgeline.render.runtime import Target, render
from edgeline.runtime.config import RuntimeConfig

DIGEST = "sha256:" + "e" * 64
GOLDEN = GoldenSampleRef(uri="https://models.example/golden-2.0.0.json", sha256="sha256:" + "a" * 64)


def _config(runtime: Runtime) -> dict:
    rev = RevisionRef(revision="r", digest=DIGEST, uri="https://models.example/d.onnx", runtime=runtime)
    return next(o for o in render("factory", "detector", rev, Target("brno", "ns")) if o["kind"] == "ConfigMap")


def test_the_golden_sample_is_in_the_configmap_and_the_runtime_reads_it(monkeypatch):
    config = _config(Runtime(golden_sample=GOLDEN))
    assert config["data"]["EDGELINE_GOLDEN_SAMPLE_URI"] == GOLDEN.uri
    assert config["data"]["EDGELINE_GOLDEN_SAMPLE_SHA256"] == GOLDEN.sha256
    for key, value in config["data"].items():
        monkeypatch.setenv(key, value)
    read = RuntimeConfig()
    assert (read.golden_sample_uri, read.golden_sample_sha256) == (GOLDEN.uri, GOLDEN.sha256)


def test_without_a_golden_sample_nothing_changes_and_a_new_one_is_a_new_revision():
    assert not any(k.startswith("EDGELINE_GOLDEN") for k in _config(Runtime())["data"])
    plain = revision_of(DIGEST, "u", Runtime())
    assert plain == revision_of(DIGEST, "u", Runtime.model_validate({}))
    assert revision_of(DIGEST, "u", Runtime(golden_sample=GOLDEN)) != plain
    assert _config(Runtime())["metadata"]["name"] != _config(Runtime(golden_sample=GOLDEN))["metadata"]["name"]
