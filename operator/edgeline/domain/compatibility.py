"""Does an inspected model fit what its requirements promise? A chain of small checks,
each returning None or (reason, message), so conditions and webhooks word it alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from edgeline.domain.quantities import format_bytes, parse_quantity


@dataclass(frozen=True)
class ModelFacts:
    default_opset: int | None
    size_bytes: int


Problem = tuple[str, str]
Check = Callable[[ModelFacts, dict], "Problem | None"]


def opset_within_limit(facts: ModelFacts, requirements: dict) -> Problem | None:
    limit = requirements.get("maxOpset")
    if limit is not None and facts.default_opset is not None and facts.default_opset > limit:
        return ("OpsetTooNew", f"the model uses opset {facts.default_opset}, newer than maxOpset {limit}")
    return None


def fits_in_memory(facts: ModelFacts, requirements: dict) -> Problem | None:
    memory = requirements.get("memory")
    if memory is None:
        return None
    try:
        budget = parse_quantity(memory)
    except ValueError as exc:
        return ("RequirementsInvalid", str(exc))
    if facts.size_bytes > budget:
        return ("ModelTooLarge", f"the model's weights ({format_bytes(facts.size_bytes)}) exceed the memory "
                                 f"requirement {memory}")
    return None


CHECKS: list[Check] = [opset_within_limit, fits_in_memory]


def check_requirements(facts: ModelFacts, requirements: dict) -> list[Problem]:
    return [p for check in CHECKS if (p := check(facts, requirements))]
