"""Splitting the selected clusters into ordered waves.

By selector: a cluster belongs to the first wave whose selector matches it; clusters that
no wave picks form a last wave named `rest`. By percentage: cumulative shares of the
selected clusters in name order, rounded up, so that 10 % of 3 clusters is 1 cluster.
No waves: one wave named `all`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgeline.api.edgedeployment import Rollout
from edgeline.domain.selectors import matches


@dataclass(frozen=True)
class WavePlan:
    name: str
    clusters: tuple[str, ...]
    soak_seconds: int


def plan_waves(rollout: Rollout, selected: list[str], labels: dict[str, dict[str, str]]) -> list[WavePlan]:
    ordered = sorted(selected)
    if not rollout.waves:
        return [WavePlan("all", tuple(ordered), rollout.soak_seconds)]
    plans: list[WavePlan] = []
    if rollout.waves[0].selector is not None:
        left = list(ordered)
        for wave in rollout.waves:
            mine = [c for c in left if matches(wave.selector, labels.get(c, {}))]
            left = [c for c in left if c not in mine]
            plans.append(_plan(wave, mine, rollout))
        if left:
            plans.append(WavePlan("rest", tuple(left), rollout.soak_seconds))
        return plans
    done = 0
    for wave in rollout.waves:
        upto = min(len(ordered), math.ceil(len(ordered) * wave.percentage / 100))
        plans.append(_plan(wave, ordered[done:upto], rollout))
        done = max(done, upto)
    return plans


def _plan(wave, clusters, rollout: Rollout) -> WavePlan:
    soak = wave.soak_seconds if wave.soak_seconds is not None else rollout.soak_seconds
    return WavePlan(wave.name, tuple(clusters), soak)
