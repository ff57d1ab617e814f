"""What the agent reads from its hub namespace each cycle, in one list of that namespace's
ConfigMaps: the assignments (label `edgeline.io/assignment=true`) and its own report with the hub's
acknowledgements. One list instead of a list of the assignments plus a get of the report: a third
fewer requests per idle site (bench/agent/bench_idle_sites.py; docs/decisions.md, idle-sites), and
the assignments and the acknowledgements come from the same resourceVersion."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from edgeline.clusters import pull


@dataclass(frozen=True)
class HubSnapshot:
    assignments: dict[str, str]                 # object name -> the assignment's JSON
    report: dict[str, str] | None               # the report's data; None: the hub has not made it (yet)
    unreadable: tuple[tuple[str, str], ...] = ()    # (ConfigMap, why): assignments that do not parse


def from_configmaps(items: Iterable[Any]) -> HubSnapshot:
    """Splits a list of the site namespace's ConfigMaps (lightkube ConfigMap objects)."""
    assignments: dict[str, str] = {}
    unreadable: list[tuple[str, str]] = []
    report: dict[str, str] | None = None
    for cm in items:
        if cm.metadata.name == pull.REPORT:
            report = dict(cm.data or {})
            continue
        if (cm.metadata.labels or {}).get(pull.LABEL_ASSIGNMENT) != "true":
            continue
        text = (cm.data or {}).get(pull.ASSIGNMENT_KEY)
        if not text:
            continue
        try:
            # The hub rewrites the terms (checks, schedule) without a new assignment: one document here.
            text = pull.with_terms(text, (cm.data or {}).get(pull.TERMS_KEY))
            assignments[pull.Assignment.from_json(text).object_name] = text
        except (ValueError, KeyError, TypeError) as exc:
            unreadable.append((cm.metadata.name, str(exc)))
    return HubSnapshot(assignments, report, tuple(unreadable))
