"""The candidate MLModel a successful DataPipeline run hands to validation: built from the
outputs of the `produces.fromStep` step, created by the controller, and recognised as this
run's own when the controller looks for it on the next tick."""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgeline import API_VERSION
from edgeline import timestamps
from edgeline.api.datapipeline import MLModelTemplate, Run
from edgeline.domain.stages import capped_for_candidates

DIGEST = re.compile(r"^(sha256:)?([a-f0-9]{64})$")
VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
RUN_LABEL = "edgeline.io/run"
PIPELINE_LABEL = "edgeline.io/pipeline"


@dataclass(frozen=True)
class CreateModel:
    """Action: create the candidate MLModel `name` (the run waits until it is seen)."""

    run: str
    name: str
    spec: dict
    labels: dict[str, str]


@dataclass(frozen=True)
class ModelObservation:
    """The candidate MLModel as the hub shows it. `ours`: made by this run of this pipeline
    (another object of that name is a conflict). `refused`: (reason, message) when it does
    not exist because the hub refused to create it on the last attempt."""

    exists: bool
    ours: bool = True
    refused: tuple[str, str] | None = None


def candidate_model(pipeline: str, run: Run, template: MLModelTemplate, outputs: dict[str, str]
                    ) -> tuple[CreateModel | None, tuple[str, str] | None]:
    """The MLModel a successful run hands to validation: outputs uri and sha256 (and
    optionally version; otherwise <run date>-<run number>), metric.* outputs as metrics,
    referenceProfileUri and referenceProfileSha256 as spec.referenceProfile.
    Returns the action, or (reason, message) of why the outputs make no valid MLModel."""
    missing = [k for k in ("uri", "sha256") if not outputs.get(k)]
    if missing:
        return None, ("OutputsMissing", f"produces needs outputs uri and sha256 from step {template.from_step}; "
                                        f"missing: {', '.join(missing)} (reported: "
                                        f"{', '.join(sorted(outputs)) or 'nothing'})")
    digest = DIGEST.match(outputs["sha256"].strip().lower())
    if not digest:
        return None, ("InvalidOutputs", f"output sha256 of step {template.from_step} is not a sha256 digest: "
                                        f"{outputs['sha256'][:80]!r}")
    started = timestamps.parse(run.started_at)
    version = outputs.get("version") or f"{started.strftime('%Y%m%d') if started else '0'}-{run.number}"
    name = f"{template.model}-{version.lower().replace('_', '-').replace('+', '-')}"
    if not VERSION.match(version) or len(version) > 63 or len(name) > 253 or not DNS_SUBDOMAIN.match(name):
        return None, ("InvalidOutputs", f"output version {version[:80]!r} of step {template.from_step} does not "
                                        f"make a valid MLModel name ({name[:80]})")
    metrics: dict[str, float] = {}
    for key, value in outputs.items():
        if key.startswith("metric.") and len(key) > 7:
            try:
                metrics[key[7:]] = float(value)
            except ValueError:
                continue                    # a metric that is no number is not shown to approvers
    spec: dict = {"model": template.model, "version": version, "format": "onnx",
                  # At most staging: a person promotes it (domain.stages), a pipeline never does.
                  "stage": capped_for_candidates(template.stage),
                  "artifact": {"uri": outputs["uri"], "sha256": f"sha256:{digest.group(2)}"},
                  "description": f"Candidate produced by DataPipeline {pipeline} run {run.name}"}
    if metrics:
        spec["metrics"] = metrics
    profile = DIGEST.match((outputs.get("referenceProfileSha256") or "").strip().lower())
    if outputs.get("referenceProfileUri") and profile:
        # The training step's profile of its data, for the drift score (docs/pipelines.md).
        spec["referenceProfile"] = {"uri": outputs["referenceProfileUri"], "sha256": f"sha256:{profile.group(2)}"}
    elif outputs.get("referenceProfileUri") or outputs.get("referenceProfileSha256"):
        return None, ("InvalidOutputs", f"step {template.from_step} reports a reference profile without a valid "
                                        "referenceProfileUri and referenceProfileSha256 (sha256 digest)")
    if template.max_opset:
        spec["requirements"] = {"maxOpset": template.max_opset}
    labels = {**template.labels, PIPELINE_LABEL: pipeline, RUN_LABEL: run.name}
    return CreateModel(run=run.name, name=name, spec=spec, labels=labels), None


def manifest(action: CreateModel, namespace: str, pipeline: str, pipeline_uid: str) -> dict:
    """The MLModel object to create, owned by the DataPipeline (deleting the pipeline keeps
    no candidate waiting for a deletion it blocks)."""
    return {"apiVersion": API_VERSION, "kind": "MLModel",
            "metadata": {"name": action.name, "namespace": namespace, "labels": action.labels,
                         "ownerReferences": [{"apiVersion": API_VERSION, "kind": "DataPipeline", "name": pipeline,
                                              "uid": pipeline_uid, "blockOwnerDeletion": False}]},
            "spec": action.spec}


def made_by(metadata: dict, run: str, pipeline_uid: str) -> bool:
    """Whether an existing MLModel is the candidate of `run` of the pipeline with that uid."""
    owners = metadata.get("ownerReferences") or []
    return (metadata.get("labels") or {}).get(RUN_LABEL) == run and \
        any(ref.get("uid") == pipeline_uid for ref in owners)
