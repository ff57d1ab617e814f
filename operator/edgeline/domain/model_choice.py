"""Which MLModel an EdgeDeployment deploys: the pinned one, or the newest Ready version of
a logical model at or above the stage the deployment asks for (modelRef.minStage). A model
that is not Ready is never deployed; the reason says why."""

from __future__ import annotations

from dataclasses import dataclass

from edgeline.api.edgedeployment import ModelRef, VariantRef
from edgeline.domain.stages import at_least


@dataclass(frozen=True)
class ModelSummary:
    name: str
    model: str
    version: str
    phase: str | None
    digest: str | None
    uri: str
    created: str = ""
    external_data: tuple[tuple[str, str], ...] = ()  # (path, sha256) of ONNX external data files
    stage: str = "development"                       # effective stage (domain.stages)
    variants: tuple[VariantRef, ...] = ()            # default first (domain.variants.variants_of)
    has_variants: bool = False                       # spec.variants is not empty
    variants_digest: str | None = None               # status.variantsDigest
    metrics: tuple[tuple[str, float], ...] = ()      # spec.metrics, for approvers
    made_by: tuple[str, ...] = ()                    # creator and promoter, as the API server recorded (domain.authors)
    reference_profile: tuple[str, str] | None = None  # spec.referenceProfile (uri, sha256), for the drift score


@dataclass(frozen=True)
class Choice:
    model: ModelSummary | None
    reason: str
    message: str


def choose(ref: ModelRef, models: list[ModelSummary]) -> Choice:
    if ref.follow == "Pinned":
        found = next((m for m in models if m.name == ref.name), None)
        if found is None:
            return Choice(None, "ModelNotFound", f"MLModel {ref.name} does not exist in this namespace")
        if found.phase != "Ready" or not found.digest:
            return Choice(None, "ModelNotReady",
                          f"MLModel {ref.name} is {found.phase or 'not validated yet'}; only Ready models are deployed")
        return Choice(found, "ModelReady", f"MLModel {found.name} ({found.model} {found.version}) is Ready")
    ready = [m for m in models if m.model == ref.model and m.phase == "Ready" and m.digest]
    if not ready:
        return Choice(None, "NoReadyVersion", f"no Ready MLModel of model {ref.model} in this namespace")
    staged = [m for m in ready if at_least(m.stage, ref.min_stage)]
    newest_ready = max(ready, key=_age)
    if not staged:
        return Choice(None, "NoVersionAtStage",
                      f"no Ready MLModel of model {ref.model} is at stage {ref.min_stage} or above (newest: "
                      f"{newest_ready.version}, {newest_ready.stage}); promote one with `edgeline promote`")
    newest = max(staged, key=_age)
    message = f"newest Ready {ref.min_stage} version of {ref.model} is {newest.version} ({newest.name})"
    if newest_ready is not newest:
        message += (f"; {newest_ready.version} ({newest_ready.stage}) is not followed until it is promoted to "
                    f"{ref.min_stage}")
    return Choice(newest, "ModelReady", message)


def _age(m: ModelSummary) -> tuple[str, str]:
    return m.created, m.name
