"""Conditions the Kubernetes way, shared by all kinds.

lastTransitionTime changes only when a condition's status changes; observedGeneration
is always the generation the verdict was made for.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from edgeline import timestamps
from edgeline.api.base import ApiModel


class Condition(ApiModel):
    type: str = Field(description="Kind of condition, e.g. Ready", max_length=64)
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown")
    reason: str = Field(description="Why, in one CamelCase word", pattern=r"^[A-Za-z][A-Za-z0-9]*$", max_length=128)
    message: str = Field("", description="Why, for a person", max_length=4096)
    last_transition_time: str = Field(description="When status last changed (RFC 3339)")
    observed_generation: int | None = Field(None, description="Generation of the spec this verdict is about")


def set_condition(conditions: list[dict], ctype: str, status: str, reason: str, message: str, *,
                  generation: int | None, now: dt.datetime) -> list[dict]:
    """Returns a new list with `ctype` set; the others are kept as they were."""
    result = []
    found = False
    for existing in conditions:
        if existing.get("type") != ctype:
            result.append(existing)
            continue
        found = True
        changed = existing.get("status") != status
        result.append(Condition(
            type=ctype, status=status, reason=reason, message=message,
            last_transition_time=timestamps.format(now) if changed else existing.get("lastTransitionTime", timestamps.format(now)),
            observed_generation=generation,
        ).dump())
    if not found:
        result.append(Condition(type=ctype, status=status, reason=reason, message=message,
                                last_transition_time=timestamps.format(now), observed_generation=generation).dump())
    return result


def get_condition(conditions: list[dict], ctype: str) -> dict | None:
    return next((c for c in conditions if c.get("type") == ctype), None)
