"""Which MLModel an EdgeDeployment deploys: the pinned one, or the newest Ready version of
a logical model. A model that is not Ready is never deployed; the reason says why."""

from __future__ import annotations

from dataclasses import dataclass

from edgeline.api.edgedeployment import ModelRef


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
    newest = max(ready, key=lambda m: (m.created, m.name))
    return Choice(newest, "ModelReady", f"newest Ready version of {ref.model} is {newest.version} ({newest.name})")
