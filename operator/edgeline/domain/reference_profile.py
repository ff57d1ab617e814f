"""Whether an MLModel carries the reference profile its runtimes score drift against: a model
without one is served, without a drift score, and says so in a condition."""

from __future__ import annotations

from edgeline.api.mlmodel import MLModelSpec

CONDITION = "ReferenceProfile"


def condition(spec: MLModelSpec) -> tuple[str, str, str, str]:
    """(type, status, reason, message) of the ReferenceProfile condition."""
    if spec.reference_profile is None:
        return (CONDITION, "False", "NoReferenceProfile",
                "spec.referenceProfile is empty: runtimes serve this version without a drift score "
                "(edgeline_runtime_drift_reference{state=\"missing\"}); the training step writes one beside the model "
                "(python -m edgeline.runtime.quality)")
    return (CONDITION, "True", "ReferenceProfileRecorded",
            f"runtimes score drift against {spec.reference_profile.uri} ({spec.reference_profile.sha256[:19]}...)")
