"""Stages: what a model counts as (spec.stage, or a person's recorded promotion), and that a
pipeline's candidate never arrives above staging."""

import pytest

from edgeline.domain.stages import PROMOTE, PROMOTED_BY, at_least, capped_for_candidates, effective_stage


@pytest.mark.parametrize("case, spec_stage, annotations, stage, by", [
    ("no promotion", "staging", {}, "staging", None),
    ("promoted by a person", "staging", {PROMOTE: "production", PROMOTED_BY: "alice"}, "production", "alice"),
    ("a promotion without its actor is no promotion", "staging", {PROMOTE: "production"}, "staging", None),
    ("a promotion below the created stage changes nothing", "production",
     {PROMOTE: "staging", PROMOTED_BY: "alice"}, "production", None),
    ("an unknown stage is no promotion", "development", {PROMOTE: "gold", PROMOTED_BY: "alice"}, "development", None),
    ("no spec.stage counts as development", None, {}, "development", None),
])
def test_effective_stage(case, spec_stage, annotations, stage, by):
    result = effective_stage(spec_stage, annotations)
    assert (result.stage, result.promoted_by) == (stage, by), case


@pytest.mark.parametrize("stage, wanted, ok", [("production", "production", True), ("staging", "production", False),
                                               ("production", "staging", True), ("development", "staging", False),
                                               ("development", "development", True)])
def test_at_least(stage, wanted, ok):
    assert at_least(stage, wanted) is ok


@pytest.mark.parametrize("asked, given", [("development", "development"), ("staging", "staging"),
                                          ("production", "staging")])
def test_a_pipeline_candidate_never_arrives_above_staging(asked, given):
    assert capped_for_candidates(asked) == given
