"""Model stages and promotions. spec.stage is what an MLModel was created as (a pipeline's
candidate arrives as staging); a person moves it up with a promotion record: the annotations
`edgeline.io/promote` (the stage) and `edgeline.io/promoted-by` (who), which the admission
policy `edgeline-promotions` lets only a user with the `promote` verb on mlmodels set, and only
with their own name as the API server authenticated it. Pure: plain values in, plain values out.
"""

from __future__ import annotations

from dataclasses import dataclass

STAGES = ("development", "staging", "production")
PROMOTE = "edgeline.io/promote"
PROMOTED_BY = "edgeline.io/promoted-by"


def rank(stage: str | None) -> int:
    """development 0, staging 1, production 2; anything else counts as development."""
    return STAGES.index(stage) if stage in STAGES else 0


@dataclass(frozen=True)
class Stage:
    stage: str
    promoted_by: str | None = None      # set when a promotion raised the stage


def effective_stage(spec_stage: str | None, annotations: dict[str, str] | None) -> Stage:
    """The stage a model counts as: its spec.stage, or a higher one a person promoted it to. A
    promotion without its `promoted-by` (which the policy demands) is no promotion."""
    annotations = annotations or {}
    created = spec_stage if spec_stage in STAGES else "development"
    promoted, by = annotations.get(PROMOTE), annotations.get(PROMOTED_BY)
    if promoted in STAGES and by and rank(promoted) > rank(created):
        return Stage(promoted, by)
    return Stage(created)


def at_least(stage: str | None, wanted: str) -> bool:
    return rank(stage) >= rank(wanted)


def capped_for_candidates(stage: str) -> str:
    """The stage a pipeline's candidate is created with: at most staging, so that a retrained
    model never reaches a production line without a person's promotion."""
    return stage if rank(stage) <= rank("staging") else "staging"
