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
