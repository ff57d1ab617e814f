"""The reference profile recorded with the MLModel: from the training step's outputs into the
candidate, a condition that says whether it is there, and into the runtime's configuration."""

import json

import pytest

from edgeline.api.datapipeline import MLModelTemplate, Run
from edgeline.api.edgedeployment import RevisionRef, Runtime
from edgeline.api.mlmodel import MLModelSpec, ReferenceProfileRef
from edgeline.domain import reference_profile
from edgeline.domain.candidates import candidate_model
from edgeline.render.runtime import LABEL_SHADOW_REVISION, Target, render

TEMPLATE = MLModelTemplate(from_step="train", model="detector")
RUN = Run(name="p-3", number=3, trigger="Alert", phase="Running", started_at="2026-11-25T10:00:00Z")
DIGEST = "sha256:" + "a" * 64
PROFILE = "sha256:" + "b" * 64
OUTPUTS = {"uri": "https://models/d.onnx", "sha256": DIGEST, "version": "2.0.0"}


def test_the_training_step_s_profile_becomes_the_candidate_s_reference_profile():
    action, problem = candidate_model("retrain", RUN, TEMPLATE, {
        **OUTPUTS, "referenceProfileUri": "https://models/d.profile.json", "referenceProfileSha256": "b" * 64})
    assert problem is None
    assert action.spec["referenceProfile"] == {"uri": "https://models/d.profile.json", "sha256": PROFILE}
    assert MLModelSpec.model_validate(action.spec).reference_profile.sha256 == PROFILE


def test_a_candidate_without_a_profile_is_made_without_one():
    action, _ = candidate_model("retrain", RUN, TEMPLATE, OUTPUTS)
    assert "referenceProfile" not in action.spec


@pytest.mark.parametrize("extra", [{"referenceProfileUri": "https://p.json"},
                                   {"referenceProfileUri": "https://p.json", "referenceProfileSha256": "nope"},
                                   {"referenceProfileSha256": "b" * 64}])
def test_half_a_profile_is_refused_with_the_reason(extra):
    action, problem = candidate_model("retrain", RUN, TEMPLATE, {**OUTPUTS, **extra})
    assert action is None and problem[0] == "InvalidOutputs" and "reference profile" in problem[1]


def test_the_condition_says_whether_drift_can_be_scored():
    spec = {"model": "d", "version": "1", "artifact": {"uri": "https://m/d.onnx"}}
    kind, status, reason, message = reference_profile.condition(MLModelSpec.model_validate(spec))
    assert (kind, status, reason) == ("ReferenceProfile", "False", "NoReferenceProfile")
    assert "without a drift score" in message
    spec["referenceProfile"] = {"uri": "https://m/p.json", "sha256": PROFILE}
    assert reference_profile.condition(MLModelSpec.model_validate(spec))[1:3] == ("True", "ReferenceProfileRecorded")


REV1 = RevisionRef(revision="r1", mlmodel="d-1", model="d", version="1.0.0", digest=DIGEST, uri="https://m/1.onnx",
                   runtime=Runtime())


def _config(objects):
    return next(o for o in objects if o["kind"] == "ConfigMap")["data"]


def test_the_runtime_gets_the_profile_only_when_the_model_has_one():
    plain = render("ns", "d", REV1, Target("edge-a", "w"))
    assert "EDGELINE_REFERENCE_PROFILE_URI" not in _config(plain)
    with_profile = render("ns", "d", REV1.model_copy(update={"reference_profile": ReferenceProfileRef(
        uri="https://m/p.json", sha256=PROFILE)}), Target("edge-a", "w"))
    data = _config(with_profile)
    assert (data["EDGELINE_REFERENCE_PROFILE_URI"], data["EDGELINE_REFERENCE_PROFILE_SHA256"]) == \
        ("https://m/p.json", PROFILE)
    assert with_profile[0]["metadata"]["name"] != plain[0]["metadata"]["name"]


def test_a_shadow_candidate_is_configured_by_digest_and_labelled_on_the_deployment():
    candidate = RevisionRef(revision="r2", mlmodel="d-2", model="d", version="2.0.0", digest=PROFILE,
                            uri="https://m/2.onnx", external_data={"w.bin": DIGEST},
                            reference_profile=ReferenceProfileRef(uri="https://m/p2.json", sha256=PROFILE))
    objects = render("ns", "d", REV1, Target("edge-a", "w"), shadow=candidate)
    data = _config(objects)
    assert data["EDGELINE_MODEL_URI"] == "https://m/1.onnx"          # what serves does not change
    assert (data["EDGELINE_SHADOW_MODEL_URI"], data["EDGELINE_SHADOW_MODEL_SHA256"],
            data["EDGELINE_SHADOW_MODEL_VERSION"]) == ("https://m/2.onnx", PROFILE, "2.0.0")
    assert json.loads(data["EDGELINE_SHADOW_MODEL_EXTERNAL_DATA"]) == {"w.bin": DIGEST}
    assert data["EDGELINE_SHADOW_REFERENCE_PROFILE_URI"] == "https://m/p2.json"
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert deployment["metadata"]["labels"][LABEL_SHADOW_REVISION] == "r2"
    assert deployment["metadata"]["labels"]["edgeline.io/revision"] == "r1"
    assert LABEL_SHADOW_REVISION not in next(o for o in render("ns", "d", REV1, Target("edge-a", "w"))
                                             if o["kind"] == "Deployment")["metadata"]["labels"]


def test_the_shadow_settings_are_reserved_names():
    from edgeline.api.reserved import reserved_env
    from edgeline.render.runtime import shadow_config

    candidate = RevisionRef(revision="r2", version="2.0.0", digest=PROFILE, uri="https://m/2.onnx")
    assert all(reserved_env(name) for name in shadow_config(candidate))
