"""Shadow runs (docs/analysis.md#shadow-runs): while a revision waits for approval, the clusters
spec.shadow names run it beside the served revision. The runtime there mirrors each answered
request to the candidate off the request path and discards its answers; Edgeline reads how the
two compare from Prometheus and shows it to approvers in status.pendingApproval.shadow.

Pure functions: which clusters, which actions (the served revision applied again with the
candidate attached, or without it once the wait is over), the PromQL that reads the comparison
and the comparison that the answers make. domain.rollout.decide() calls them.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass

from edgeline.api.edgedeployment import RevisionRef, VariantRef
from edgeline.api.shadow import Shadow, ShadowComparison, ShadowStatus
from edgeline.domain.selectors import matches
from edgeline.timestamps import format as iso

AWAITING = "AwaitingApproval"


def clusters_of(shadow: Shadow | None, selected: list[str], labels: dict[str, dict[str, str]]) -> list[str]:
    """The selected clusters spec.shadow names or selects (a shadow never reaches a cluster the
    deployment does not run on: it is a copy of that cluster's live traffic)."""
    if shadow is None:
        return []
    named = set(shadow.clusters)
    return sorted(c for c in selected if c in named or
                  (shadow.cluster_selector is not None and matches(shadow.cluster_selector, labels.get(c, {}))))


def candidate_of(shadow: Shadow | None, held_reason: str | None, desired: RevisionRef | None,
                 goal: RevisionRef | None) -> RevisionRef | None:
    """The revision to run in shadow: the desired one while it awaits approval, if spec.shadow
    is set and it differs from what is served."""
    if shadow is None or held_reason != AWAITING or desired is None or goal is None:
        return None
    return desired if desired.revision != goal.revision else None


@dataclass(frozen=True)
class ClusterView:
    """What decide() knows of one cluster, for the shadow."""

    name: str
    reachable: bool
    exists: bool
    revision: str | None      # the served revision its Deployment runs
    shadow: str | None        # the candidate revision attached to it, if any
    ready: bool


@dataclass(frozen=True)
class ShadowApply:
    """Apply `revision` (the served one) to `cluster` with `shadow` attached (None: detached)."""

    cluster: str
    revision: RevisionRef
    variant: VariantRef | None
    shadow: RevisionRef | None
    shadow_variant: VariantRef | None


def plan(candidate: RevisionRef | None, goal: RevisionRef | None, chosen: list[str], views: dict[str, ClusterView],
         busy: set[str], variant: Callable[[str, RevisionRef], tuple[bool, VariantRef | None]],
         may_change: Callable[[str], bool]) -> list[ShadowApply]:
    """Attach the candidate on the chosen clusters that run the goal and are ready; detach it
    wherever it is attached and should not be (approved, withdrawn, a cluster no longer chosen).
    `busy`: clusters the rollout already changes this tick (left alone: their new revision comes
    without a shadow). `variant(cluster, revision)` -> (fits, variant). `may_change`: the
    cluster's windows and line consent (attaching restarts the runtime Pods)."""
    if goal is None:
        return []
    out = []
    for name in sorted(set(chosen) | {n for n, v in views.items() if v.shadow}):
        view = views.get(name)
        if view is None or name in busy or not view.reachable or not view.exists or view.revision != goal.revision:
            continue
        wanted = candidate if candidate is not None and name in chosen else None
        if (wanted.revision if wanted else None) == view.shadow:
            continue
        if wanted is not None and not view.ready:
            continue        # not while the served revision is still coming up
        fits, goal_variant = variant(name, goal)
        if not fits:
            continue
        shadow_variant = None
        if wanted is not None:
            fits, shadow_variant = variant(name, wanted)
            if not fits:
                continue    # no variant of the candidate fits this cluster
        if not may_change(name):
            continue
        out.append(ShadowApply(name, goal, goal_variant, wanted, shadow_variant))
    return out


# -- reading the comparison from Prometheus --------------------------------------------------------

def _selector(namespace: str, deployment: str, cluster: str, **more: str) -> str:
    labels = {"namespace": namespace, "deployment": deployment, "cluster": cluster, **more}
    return ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def queries(namespace: str, deployment: str, cluster: str, candidate_version: str,
            current_version: str) -> dict[str, str]:
    """Instant PromQL queries, one figure each, over the runtime's shadow series since the
    candidate was attached (counters and histograms from the runtime's start)."""
    shadow = _selector(namespace, deployment, cluster, shadow_version=candidate_version)
    served = _selector(namespace, deployment, cluster, version=current_version)
    out = {f"requests.{o}": f'sum(edgeline_runtime_shadow_requests_total{{{shadow},role="shadow",outcome="{o}"}})'
           for o in ("agree", "disagree", "failed", "dropped")}
    for role in ("shadow", "live"):
        for q in (0.5, 0.95):
            out[f"latency.{role}.{q}"] = (f"histogram_quantile({q}, sum by (le) (edgeline_runtime_shadow_inference_"
                                          f'seconds_bucket{{{shadow},role="{role}"}}))')
    for kind in ("input", "prediction"):
        out[f"drift.shadow.{kind}"] = f'max(edgeline_runtime_shadow_drift_score{{{shadow},kind="{kind}"}})'
        out[f"drift.live.{kind}"] = f'max(edgeline_runtime_drift_score{{{served},kind="{kind}"}})'
    out["state"] = f'max(edgeline_runtime_shadow_ready{{{shadow},state="Failed"}}) * 2 + ' \
                   f'max(edgeline_runtime_shadow_ready{{{shadow},state="Ready"}})'
    return out


def comparison(cluster: str, answers: dict[str, tuple[float, ...] | str], now: dt.datetime) -> ShadowComparison:
    """The figures of one cluster from the queries' answers (values, or an error message)."""
    errors = sorted({a for a in answers.values() if isinstance(a, str)})

    def value(key: str) -> float | None:
        got = answers.get(key)
        if isinstance(got, tuple) and got and not math.isnan(got[0]) and not math.isinf(got[0]):
            return got[0]
        return None

    def count(key: str) -> int | None:
        v = value(key)
        return int(round(v)) if v is not None else None

    agree, disagree = count("requests.agree"), count("requests.disagree")
    compared = (agree or 0) + (disagree or 0) if agree is not None or disagree is not None else None
    state = value("state")
    ms = {k: round(v * 1000, 3) if (v := value(k)) is not None else None
          for k in ("latency.shadow.0.5", "latency.shadow.0.95", "latency.live.0.5", "latency.live.0.95")}
    drift_of = {role: {kind: round(v, 4) for kind in ("input", "prediction")
                       if (v := value(f"drift.{role}.{kind}")) is not None} for role in ("shadow", "live")}
    message = None
    if errors:
        message = "; ".join(errors)[:500]
    elif state is None:
        message = "no shadow series yet: the runtime Pods with the candidate are starting or not scraped yet"
    elif state >= 2:
        message = "the candidate failed to load in the runtime (its log says why: shadow_failed)"
    elif not compared:
        message = "no mirrored request compared yet"
    return ShadowComparison(
        cluster=cluster, requests=compared,
        agreement=round(agree / compared, 4) if compared else None,
        failed=count("requests.failed"), dropped=count("requests.dropped"),
        candidate_p50_ms=ms["latency.shadow.0.5"], candidate_p95_ms=ms["latency.shadow.0.95"],
        current_p50_ms=ms["latency.live.0.5"], current_p95_ms=ms["latency.live.0.95"],
        candidate_drift=drift_of["shadow"] or None, current_drift=drift_of["live"] or None,
        state=None if state is None else ("Failed" if state >= 2 else "Ready" if state >= 1 else "Loading"),
        measured_at=iso(now), message=message)


def status_of(previous: ShadowStatus | None, candidate: RevisionRef | None, current: RevisionRef | None,
              chosen: list[str], comparisons: list[ShadowComparison], now: dt.datetime) -> ShadowStatus | None:
    """status.pendingApproval.shadow: the candidate, where it runs, since when, and the latest
    comparison per cluster (an older one is kept when no fresh one was read this tick)."""
    if candidate is None or not chosen:
        return None
    same = previous is not None and previous.revision == candidate.revision
    fresh = {c.cluster: c for c in comparisons}
    kept = {c.cluster: c for c in previous.comparisons} if same else {}
    return ShadowStatus(revision=candidate.revision, version=candidate.version,
                        current_version=current.version if current else None, clusters=list(chosen),
                        since=previous.since if same else iso(now),
                        comparisons=[fresh.get(c) or kept[c] for c in chosen if c in fresh or c in kept])
