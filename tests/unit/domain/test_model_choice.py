"""Which MLModel an EdgeDeployment deploys: the pinned one when Ready, or the newest Ready version."""

import pytest

from edgeline.api.edgedeployment import ModelRef
from edgeline.domain.model_choice import ModelSummary, choose


def _model(name, version, phase="Ready", digest="sha256:x", model="detector", created="2026-11-25T10:00:00Z",
           stage="production"):
    return ModelSummary(name=name, model=model, version=version, phase=phase, digest=digest,
                        uri=f"https://models.example/{name}.onnx", created=created, stage=stage)


V1 = _model("detector-1", "1.0.0", created="2026-11-01T00:00:00Z")
V2 = _model("detector-2", "2.0.0", created="2026-11-02T00:00:00Z")
V3_VALIDATING = _model("detector-3", "3.0.0", phase="Validating", digest=None, created="2026-11-03T00:00:00Z")
V4_INVALID = _model("detector-4", "4.0.0", phase="Invalid", created="2026-11-04T00:00:00Z")
OTHER = _model("camera-9", "9.0.0", model="camera", created="2026-11-09T00:00:00Z")
ALL = [V1, V2, V3_VALIDATING, V4_INVALID, OTHER]
PINNED = ModelRef.model_validate
LATEST = ModelRef(model="detector", follow="LatestReady")
LATEST_STAGING = ModelRef(model="detector", follow="LatestReady", minStage="staging")
STAGING_3 = _model("detector-s3", "3.0.0", created="2026-11-03T00:00:00Z", stage="staging")


@pytest.mark.parametrize("case, ref, models, chosen, reason, words", [
    ("pinned and Ready", PINNED({"name": "detector-1"}), ALL, V1, "ModelReady", "detector 1.0.0"),
    ("pinned but missing", PINNED({"name": "nope"}), ALL, None, "ModelNotFound", "nope does not exist"),
    ("pinned while still validating", PINNED({"name": "detector-3"}), ALL, None, "ModelNotReady", "is Validating"),
    ("pinned but Invalid", PINNED({"name": "detector-4"}), ALL, None, "ModelNotReady", "is Invalid"),
    ("pinned, never validated", PINNED({"name": "x"}), [_model("x", "1", phase=None, digest=None)], None,
     "ModelNotReady", "not validated yet"),
    ("pinned, Ready without a digest", PINNED({"name": "x"}), [_model("x", "1", digest=None)], None,
     "ModelNotReady", "only Ready models"),
    ("latest: the newest Ready version, not newer unready ones or other models", LATEST, ALL, V2, "ModelReady",
     "newest Ready production version of detector is 2.0.0"),
    ("latest: order of listing does not matter", LATEST, list(reversed(ALL)), V2, "ModelReady", "2.0.0"),
    ("latest: same creation time, the name decides", LATEST,
     [_model("detector-a", "1"), _model("detector-b", "2")], _model("detector-b", "2"), "ModelReady", "detector-b"),
    ("latest: nothing Ready", LATEST, [V3_VALIDATING, V4_INVALID, OTHER], None, "NoReadyVersion",
     "no Ready MLModel of model detector"),
    ("latest: no models at all", LATEST, [], None, "NoReadyVersion", "detector"),
])
def test_choose(case, ref, models, chosen, reason, words):
    choice = choose(ref, models)
    assert (choice.model, choice.reason) == (chosen, reason), case
    assert words in choice.message, (case, choice.message)
