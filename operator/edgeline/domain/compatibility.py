"""Does an inspected model fit what its requirements promise? A chain of small checks, each
returning None or (reason, message); the MLModel controller words its Ready condition with them.
Admission does not call them: the facts come from inspecting the fetched file, which an API
request does not carry. Pure: plain values in, plain values out.

Requirements come as the camelCase dict of MLModel.spec.requirements: maxOpset, memory,
accelerator, minRuntimeVersion. Every problem is reported, not only the first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import ROUND_CEILING
from typing import Callable

from edgeline.domain.quantities import format_bytes, parse_quantity

ACCELERATORS = ("cpu", "gpu", "npu")
_VERSION = re.compile(r"^v?\d+(\.\d+){0,2}([-+][0-9A-Za-z.-]+)?$")


@dataclass(frozen=True)
class ModelFacts:
    """What inspection found that requirements can be held against."""

    default_opset: int | None
    size_bytes: int  # the file plus its external data: what a runtime has to load
    opsets: dict[str, int] = field(default_factory=dict)  # domain -> version, "" for the default
    parameter_count: int = 0


def memory_bytes(quantity: str | int) -> int:
    """A memory quantity (512Mi, 2Gi, 1.5G, 1e9, 1048576) in whole bytes, rounded up.
    Raises ValueError for junk, negatives and units that are not memory (500m)."""
    value = parse_quantity(quantity)
    if value < 0:
        raise ValueError(f"{quantity!r} is negative")
    if isinstance(quantity, str) and quantity.strip().endswith("m"):
        raise ValueError(f"{quantity!r} is in thousandths: write memory as 512Mi, 2Gi or bytes")
    return int(value.to_integral_value(rounding=ROUND_CEILING))


Problem = tuple[str, str]
Check = Callable[[ModelFacts, dict], "Problem | None"]


def opset_within_limit(facts: ModelFacts, requirements: dict) -> Problem | None:
    limit = requirements.get("maxOpset")
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        return ("RequirementsInvalid", f"maxOpset must be a positive whole number, not {limit!r}")
    if facts.default_opset is not None and facts.default_opset > limit:
        return ("OpsetTooNew", f"the model uses ONNX opset {facts.default_opset}, newer than maxOpset {limit} "
                               f"that its runtime supports")
    return None


def fits_in_memory(facts: ModelFacts, requirements: dict) -> Problem | None:
    memory = requirements.get("memory")
    if memory is None:
        return None
    try:
        budget = memory_bytes(memory)
    except ValueError as exc:
        return ("RequirementsInvalid", f"memory: {exc}")
    if facts.size_bytes > budget:
        return ("ModelTooLarge", f"the model's weights ({format_bytes(facts.size_bytes)}) do not fit in the "
                                 f"memory requirement of {memory}")
    return None


def accelerator_known(facts: ModelFacts, requirements: dict) -> Problem | None:
    accelerator = requirements.get("accelerator")
    if accelerator is not None and accelerator not in ACCELERATORS:
        return ("RequirementsInvalid", f"accelerator must be one of {', '.join(ACCELERATORS)}, not {accelerator!r}")
    return None


def runtime_version_valid(facts: ModelFacts, requirements: dict) -> Problem | None:
    version = requirements.get("minRuntimeVersion")
    if version is not None and not _VERSION.match(str(version)):
        return ("RequirementsInvalid", f"minRuntimeVersion must look like 1.17 or 1.17.3, not {version!r}")
    return None


CHECKS: list[Check] = [opset_within_limit, fits_in_memory, accelerator_known, runtime_version_valid]


def check_requirements(facts: ModelFacts, requirements: dict | None) -> list[Problem]:
    """Every problem, in the order of CHECKS; empty when the model fits."""
    return [problem for check in CHECKS if (problem := check(facts, requirements or {}))]


# --- runtime side: which onnxruntime serves the model, and which opsets it implements ------------

# onnxruntime release (major, minor) -> newest default-domain ONNX opset it implements (the version
# matrix onnxruntime publishes with its releases). A release newer than the table is taken to
# implement at least the last row; an older one than the first is not supported by Edgeline.
ORT_MAX_OPSET: dict[tuple[int, int], int] = {
    (1, 13): 17, (1, 14): 18, (1, 15): 19, (1, 16): 19, (1, 17): 20, (1, 18): 21, (1, 19): 21, (1, 20): 21,
    (1, 21): 22, (1, 22): 22, (1, 23): 23,
}
# Edgeline's own runtime image installs the `runtime` extra, which asks for onnxruntime>=1.18
# (pyproject.toml); that floor is what a deployment of that image can count on.
OWN_IMAGE_ONNXRUNTIME = "1.18"
OWN_IMAGE_REPOSITORY = "edgeline/edge-runtime"


def version_tuple(text: str) -> tuple[int, ...]:
    """"v1.18.2" -> (1, 18, 2); raises ValueError for anything else."""
    core = str(text).strip().lstrip("v").split("-")[0].split("+")[0]
    return tuple(int(part) for part in core.split("."))


def max_opset(onnxruntime: str) -> int | None:
    """Newest opset the onnxruntime release implements; None for a release older than the table."""
    release = version_tuple(onnxruntime)[:2]
    known = [v for k, v in ORT_MAX_OPSET.items() if k <= release]
    if not known:
        return None
    return known[-1]


def runtime_onnxruntime(image: str, declared: str | None) -> str | None:
    """The onnxruntime version a runtime image brings: what the deployment declares, or the
    floor of Edgeline's own image (whichever registry it was pushed to); None when unknown."""
    if declared:
        return declared
    repository = image.rsplit("@", 1)[0]
    if ":" in repository.rsplit("/", 1)[-1]:
        repository = repository.rsplit(":", 1)[0]
    if repository == OWN_IMAGE_REPOSITORY or repository.endswith("/" + OWN_IMAGE_REPOSITORY):
        return OWN_IMAGE_ONNXRUNTIME
    return None
