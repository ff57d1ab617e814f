"""MLModel: fetch the artifact, verify its digest, inspect it, and record what was found.

The spec is immutable, so validation runs once per generation: a model whose status
already holds a verdict for its generation is left alone (also after a restart), and
one caught half-way (phase Validating) is validated again from the start, a bounded
number of times (status.validation.unfinished), so that a model which takes the operator
down with it cannot keep it in a crash loop.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import time

import kopf
from lightkube import ApiError
from lightkube.resources.core_v1 import Secret

from edgeline import GROUP, VERSION, metrics, timestamps
from edgeline.api.conditions import set_condition
from edgeline.domain import reference_profile
from edgeline.api.mlmodel import MLModel
from edgeline.artifacts.errors import ArtifactError, CredentialsUnavailable, ValidationAbandoned
from edgeline.artifacts.policy import check_credentials
from edgeline.artifacts.validation import ValidationOutcome, fetch_and_inspect, prepare_scratch
from edgeline.clusters import events
from edgeline.clusters.connections import hub_client
from edgeline.clusters.resources import patch_status
from edgeline.controllers.loop import first
from edgeline.domain.compatibility import ModelFacts, check_requirements
from edgeline.domain.quantities import format_bytes
from edgeline.domain.stages import PROMOTE, PROMOTED_BY, effective_stage
from edgeline.domain.used_by import writes
from edgeline.domain.variants import DEFAULT, signature_problems, variants_digest, variants_of
from edgeline.settings import get_settings

PLURAL = "mlmodels"
FINISHED = ("Ready", "Invalid")
# Transient failures (a stalled server, a 503) are retried with a growing delay.
RETRY_DELAYS_S = (10, 30, 60, 120, 300)

def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


class Verdict:
    """Collects the conditions of one validation, then renders the status."""

    def __init__(self, body: kopf.Body):
        self.generation = body.metadata.get("generation")
        self.conditions = list((body.get("status") or {}).get("conditions") or [])
        self.fields: dict = {}

    def set(self, ctype: str, status: str, reason: str, message: str) -> None:
        self.conditions = set_condition(self.conditions, ctype, status, reason, message,
                                        generation=self.generation, now=_now())

    def status(self, phase: str) -> dict:
        return {"observedGeneration": self.generation, "phase": phase, "conditions": self.conditions,
                **self.fields}


async def _credentials(namespace: str, secret_name: str | None, uri: str) -> dict | None:
    """The data of the credentials Secret, if `check_credentials` lets it be used."""
    if not secret_name:
        return None
    check_credentials(uri, namespace, secret_name, None, None)  # before the Secret is read at all
    try:
        secret = await hub_client().get(Secret, secret_name, namespace=namespace)
    except ApiError as exc:
        raise CredentialsUnavailable(
            f"cannot read the artifact credentials Secret {namespace}/{secret_name}: {exc.status.message}") from None
    check_credentials(uri, namespace, secret_name, secret.type, secret.metadata.labels or {})
    return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}


@kopf.on.startup()
async def prepare_scratch_folder(logger: logging.Logger, **_) -> None:
    settings = get_settings()
    try:
        report = prepare_scratch(settings)
    except OSError as exc:
        logger.error(f"the artifact scratch folder {settings.artifact_dir} cannot be used: {exc}; "
                     "model validations will fail with StorageFailed")
        return
    metrics.SCRATCH_FREE.set(report.free_bytes)
    metrics.SCRATCH_NEEDED.set(report.needed_bytes)
    if report.removed:
        logger.info(f"removed {report.removed} unfinished validation folder(s) from {settings.artifact_dir}")
    if not report.sufficient:
        logger.error(
            f"the artifact scratch folder {settings.artifact_dir} has {format_bytes(report.free_bytes)} free, but "
            f"{settings.validation_concurrency} validations at once of up to "
            f"{format_bytes(settings.artifact_max_bytes)} each need {format_bytes(report.needed_bytes)}: enlarge the volume, or lower "
            "EDGELINE_VALIDATION_CONCURRENCY or EDGELINE_ARTIFACT_MAX_BYTES; large models may fail with StorageFailed")


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
async def validate_model(body: kopf.Body, name: str, namespace: str, retry: int,
                         logger: logging.Logger, **_) -> None:
    status = body.get("status") or {}
    if status.get("observedGeneration") == body.metadata.get("generation") and status.get("phase") in FINISHED:
        return  # this generation has its verdict already

    model = MLModel.model_validate(dict(body))
    settings = get_settings()
    verdict = Verdict(body)
    verdict.set(*reference_profile.condition(model.spec))
    attempts = status.get("validation") or {}
    unfinished = attempts.get("unfinished", 0) if attempts.get("generation") == verdict.generation else 0
    if unfinished >= settings.validation_max_attempts:
        # Every earlier attempt ended with the operator itself (an OOM kill, a node lost): not again.
        error = ValidationAbandoned(f"validation of this model was started {unfinished} times and never finished "
                                    "(the operator stopped during each); it is not tried again")
        await _invalid(body, name, namespace, verdict, ValidationOutcome(error=error), None)
        return

    # Users watching `kubectl get -w` see the work start; a restart from here redoes it, a bounded few times.
    verdict.set("Ready", "False", "Validating", "fetching and inspecting the artifact")
    verdict.fields["validation"] = {"generation": verdict.generation, "unfinished": unfinished + 1,
                                    "startedAt": timestamps.format(_now())}
    await patch_status(PLURAL, name, namespace, verdict.status("Validating"))
    verdict.fields["validation"] = {"generation": verdict.generation, "unfinished": 0,
                                    "startedAt": verdict.fields["validation"]["startedAt"]}

    started = time.monotonic()
    artifact = model.spec.artifact
    try:
        credentials = await _credentials(namespace, artifact.credentials_secret_ref.name
                                         if artifact.credentials_secret_ref else None, artifact.uri)
    except ArtifactError as exc:
        outcome = ValidationOutcome(error=exc)
    else:
        outcome = await fetch_and_inspect(artifact.uri, artifact.sha256, settings=settings, credentials=credentials,
                                          external_data={f.path: f.sha256 for f in artifact.external_data})
    metrics.MLMODEL_VALIDATION_SECONDS.observe(time.monotonic() - started)

    if outcome.fetch:
        metrics.ARTIFACT_BYTES_FETCHED.inc(outcome.fetch.size_bytes)
        verdict.fields["artifact"] = {"digest": outcome.fetch.sha256, "sizeBytes": outcome.fetch.size_bytes,
                                      "fetchedAt": timestamps.format(_now())}

    if outcome.error and outcome.error.transient:
        delay = RETRY_DELAYS_S[min(retry, len(RETRY_DELAYS_S) - 1)]
        message = f"{outcome.error.message} (retrying in {delay}s)"
        verdict.set("ArtifactVerified", "False", outcome.error.reason, message)
        verdict.set("Ready", "False", outcome.error.reason, message)
        await patch_status(PLURAL, name, namespace, verdict.status("Pending"))
        await events.warning(body, outcome.error.reason, message)
        metrics.MLMODEL_VALIDATIONS.labels(result="retry").inc()
        raise kopf.TemporaryError(message, delay=delay)

    if outcome.error:
        await _invalid(body, name, namespace, verdict, outcome, artifact.sha256)
        return

    verdict.set("ArtifactVerified", "True", "DigestVerified", _verified_message(outcome.fetch, artifact.sha256))
    verdict.fields["inspection"] = outcome.inspection.to_status()
    requirements = model.spec.requirements.dump() if model.spec.requirements else {}
    facts = ModelFacts(outcome.inspection.default_opset(), outcome.inspection.size_bytes)
    problems = check_requirements(facts, requirements)
    if problems:
        reason = problems[0][0]
        message = "; ".join(m for _, m in problems)
        verdict.set("Validated", "False", reason, message)
        verdict.set("Ready", "False", reason, message)
        await patch_status(PLURAL, name, namespace, verdict.status("Invalid"))
        await events.warning(body, reason, message)
        metrics.MLMODEL_VALIDATIONS.labels(result="invalid").inc()
        return

    reference = outcome.inspection.to_status()
    found = [{"name": DEFAULT, "digest": outcome.fetch.sha256, "sizeBytes": outcome.inspection.size_bytes,
              "opset": outcome.inspection.default_opset()}]
    for variant in model.spec.variants:
        # Every variant is fetched and validated like the default, and must take and give the same.
        failed = await _validate_variant(variant, namespace, settings, reference, requirements, found)
        if failed is None:
            continue
        transient, reason, message = failed
        verdict.set("Validated", "False", reason, message)
        verdict.set("Ready", "False", reason, message)
        if transient:
            delay = RETRY_DELAYS_S[min(retry, len(RETRY_DELAYS_S) - 1)]
            message = f"{message} (retrying in {delay}s)"
            verdict.set("Ready", "False", reason, message)
            await patch_status(PLURAL, name, namespace, verdict.status("Pending"))
            await events.warning(body, reason, message)
            metrics.MLMODEL_VALIDATIONS.labels(result="retry").inc()
            raise kopf.TemporaryError(message, delay=delay)
        await patch_status(PLURAL, name, namespace, verdict.status("Invalid"))
        await events.warning(body, reason, message)
        metrics.MLMODEL_VALIDATIONS.labels(result="invalid").inc()
        return
    verdict.fields["variants"] = found
    verdict.fields["variantsDigest"] = variants_digest(variants_of(model.spec.dump(), {"variants": found}))

    summary = _summary(reference) + (f"; {len(found)} variants: {', '.join(f['name'] for f in found)}"
                                     if len(found) > 1 else "")
    verdict.set("Validated", "True", "InspectionPassed", summary)
    verdict.set("Ready", "True", "Validated", summary)
    await patch_status(PLURAL, name, namespace, verdict.status("Ready"))
    await events.normal(body, "Validated", summary)
    metrics.MLMODEL_VALIDATIONS.labels(result="ready").inc()


async def _validate_variant(variant, namespace: str, settings, reference: dict, requirements: dict,
                            found: list[dict]) -> tuple[bool, str, str] | None:
    """Fetch, verify and inspect one variant; append what was found to `found`. Returns
    (transient, reason, message) when it keeps the model from being Ready."""
    artifact = variant.artifact
    try:
        credentials = await _credentials(namespace, artifact.credentials_secret_ref.name
                                         if artifact.credentials_secret_ref else None, artifact.uri)
    except ArtifactError as exc:
        return exc.transient, exc.reason, f"variant {variant.name}: {exc.message}"
    outcome = await fetch_and_inspect(artifact.uri, artifact.sha256, settings=settings, credentials=credentials,
                                      external_data={f.path: f.sha256 for f in artifact.external_data})
    if outcome.fetch:
        metrics.ARTIFACT_BYTES_FETCHED.inc(outcome.fetch.size_bytes)
    if outcome.error:
        return outcome.error.transient, outcome.error.reason, f"variant {variant.name}: {outcome.error.message}"
    problems = check_requirements(ModelFacts(outcome.inspection.default_opset(), outcome.inspection.size_bytes),
                                  requirements)
    if problems:
        return False, problems[0][0], f"variant {variant.name}: " + "; ".join(m for _, m in problems)
    mismatch = signature_problems(reference, variant.name, outcome.inspection.to_status())
    if mismatch:
        return False, "VariantSignatureMismatch", "variants must take and give the same tensors: " + \
            "; ".join(mismatch)
    found.append({"name": variant.name, "digest": outcome.fetch.sha256, "sizeBytes": outcome.inspection.size_bytes,
                  "opset": outcome.inspection.default_opset()})
    return None


async def _invalid(body: kopf.Body, name: str, namespace: str, verdict: Verdict, outcome: ValidationOutcome,
                   expected: str | None) -> None:
    failed_step = "Validated" if outcome.fetch else "ArtifactVerified"
    if failed_step == "Validated":
        verdict.set("ArtifactVerified", "True", "DigestVerified", _verified_message(outcome.fetch, expected))
    verdict.set(failed_step, "False", outcome.error.reason, outcome.error.message)
    verdict.set("Ready", "False", outcome.error.reason, outcome.error.message)
    await patch_status(PLURAL, name, namespace, verdict.status("Invalid"))
    await events.warning(body, outcome.error.reason, outcome.error.message)
    metrics.MLMODEL_VALIDATIONS.labels(result="invalid").inc()


def _verified_message(fetch, expected: str | None) -> str:
    size = format_bytes(fetch.size_bytes)
    if expected:
        return f"{size} fetched; sha256 matches {expected}"
    return f"{size} fetched; sha256 {fetch.sha256} (no digest in the spec to compare with)"


def _summary(inspection: dict) -> str:
    opsets = ", ".join(f"{o.get('domain') or 'ai.onnx'} {o['version']}" for o in inspection.get("opsetImports", []))
    ins = ", ".join(i["name"] for i in inspection.get("inputs", []))
    outs = ", ".join(o["name"] for o in inspection.get("outputs", []))
    return (f"ONNX IR {inspection.get('irVersion')}, opset {opsets}; inputs {ins}; outputs {outs}; "
            f"{inspection.get('parameterCount', 0):,} parameters")


@kopf.on.event(GROUP, VERSION, "edgedeployments")
@kopf.on.event(GROUP, VERSION, PLURAL)
async def record_users(namespace: str, usage_index: kopf.Index, recorded_users_index: kopf.Index,
                       logger: logging.Logger, **_) -> None:
    """Keep status.usedBy of the namespace's MLModels in step with the EdgeDeployments' status
    (the indexes are updated before this runs, also for a deleted deployment). Only models whose
    recorded usedBy differs are patched, so the model's own event ends here."""
    wanted = {key[1]: list(usage_index[key]) for key in usage_index if key[0] == namespace}
    recorded = {key[1]: value for key in recorded_users_index if key[0] == namespace
                if (value := first(recorded_users_index, key)) is not None}
    for model, used_by in writes(wanted, recorded).items():
        if model not in recorded:
            continue        # no such MLModel (yet): its own creation event brings it here
        try:
            await patch_status(PLURAL, model, namespace, {"usedBy": used_by})
        except ApiError as exc:
            if exc.status.code != 404:
                raise
            logger.debug(f"MLModel {namespace}/{model} is gone; its usedBy is not written")


@kopf.on.event(GROUP, VERSION, PLURAL)
async def record_stage(body: kopf.Body, name: str, namespace: str, type: str | None, logger: logging.Logger,
                       **_) -> None:
    """status.stage and status.promotion from spec.stage and the promotion record (annotations
    the `edgeline-promotions` admission policy guards); an Event when a promotion is first seen."""
    if type == "DELETED" or body.metadata.get("deletionTimestamp"):
        return
    status = body.get("status") or {}
    annotations = dict(body.metadata.get("annotations") or {})
    stage = effective_stage((body.get("spec") or {}).get("stage"), annotations)
    recorded = status.get("promotion") or {}
    promotion = None
    if stage.promoted_by:
        same = recorded.get("stage") == stage.stage and recorded.get("by") == stage.promoted_by
        promotion = {"stage": stage.stage, "by": stage.promoted_by,
                     "at": recorded.get("at") if same else timestamps.format(_now())}
    if status.get("stage") == stage.stage and (recorded or None) == promotion:
        return
    try:
        await patch_status(PLURAL, name, namespace, {"stage": stage.stage, "promotion": promotion})
    except ApiError as exc:
        if exc.status.code != 404:
            raise
        return
    if promotion and promotion != recorded:
        await events.normal(body, "Promoted", f"promoted to {stage.stage} by {stage.promoted_by} "
                                              f"({PROMOTE}/{PROMOTED_BY})")
