"""The candidate MLModel a run hands to validation."""

import pytest

from edgeline.api.datapipeline import MLModelTemplate, Run
from edgeline.domain.candidates import candidate_model, made_by, manifest

DIGEST = "sha256:" + "e" * 64
TEMPLATE = MLModelTemplate(from_step="train", model="detector", max_opset=17, labels={"team": "vision"})
RUN = Run(name="p-3", number=3, trigger="Manual", phase="Running", started_at="2026-11-25T10:00:00Z")


def test_outputs_make_the_model_with_metrics_labels_and_requirements():
    model, problem = candidate_model("p", RUN, TEMPLATE, {"uri": "http://m/x.onnx", "sha256": "E" * 64,
                                                          "metric.precision": "0.97", "metric.bad": "x"})
    assert problem is None and model.name == "detector-20261125-3" and model.run == "p-3"
    assert model.spec == {"model": "detector", "version": "20261125-3", "format": "onnx", "stage": "staging",
                          "artifact": {"uri": "http://m/x.onnx", "sha256": DIGEST},
                          "description": "Candidate produced by DataPipeline p run p-3",
                          "metrics": {"precision": 0.97}, "requirements": {"maxOpset": 17}}
    assert model.labels == {"team": "vision", "edgeline.io/pipeline": "p", "edgeline.io/run": "p-3"}


@pytest.mark.parametrize("outputs, name, reason, words", [
    ({"uri": "u", "sha256": DIGEST, "version": "2.1.0+RC1"}, "detector-2.1.0-rc1", None, None),
    ({"uri": "u", "sha256": DIGEST, "version": "v_2"}, "detector-v-2", None, None),
    ({"uri": "u"}, None, "OutputsMissing", "missing: sha256 (reported: uri)"),
    ({}, None, "OutputsMissing", "missing: uri, sha256 (reported: nothing)"),
    ({"uri": "u", "sha256": "md5:abc"}, None, "InvalidOutputs", "is not a sha256 digest"),
    ({"uri": "u", "sha256": DIGEST, "version": "-bad"}, None, "InvalidOutputs", "does not make a valid MLModel name"),
    ({"uri": "u", "sha256": DIGEST, "version": "9" * 64}, None, "InvalidOutputs", "does not make a valid"),
])
def test_outputs_that_make_no_valid_model_say_why(outputs, name, reason, words):
    model, problem = candidate_model("p", RUN, TEMPLATE, outputs)
    if reason is None:
        assert problem is None and model.name == name
    else:
        assert model is None and problem[0] == reason and words in problem[1]


def test_the_manifest_is_owned_by_the_pipeline_and_recognised_as_this_runs_own():
    model, _ = candidate_model("p", RUN, TEMPLATE, {"uri": "u", "sha256": DIGEST})
    body = manifest(model, "ns", "p", "uid-1")
    assert body["kind"] == "MLModel" and body["metadata"]["namespace"] == "ns"
    assert body["metadata"]["ownerReferences"] == [{"apiVersion": "edgeline.io/v1alpha1", "kind": "DataPipeline",
                                                    "name": "p", "uid": "uid-1", "blockOwnerDeletion": False}]
    assert made_by(body["metadata"], "p-3", "uid-1")
    assert not made_by(body["metadata"], "p-4", "uid-1")             # another run of the same pipeline
    assert not made_by(body["metadata"], "p-3", "uid-2")             # a pipeline of that name, recreated
    assert not made_by({"name": "detector-20261125-3"}, "p-3", "uid-1")


def test_a_production_template_still_makes_a_staging_candidate():
    template = TEMPLATE.model_copy(update={"stage": "production"})
    model, problem = candidate_model("p", RUN, template, {"uri": "http://m/x.onnx", "sha256": DIGEST})
    assert problem is None and model.spec["stage"] == "staging"
