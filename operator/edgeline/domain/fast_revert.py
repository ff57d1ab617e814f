"""The revert fast path: which clusters an alert's rollback must be written to right now,
before the rest of the tick observes, decides and writes status (docs/rollback.md).

The verdict is the one `rollout.decide` reaches (the same `rollback.alert_verdicts` on the
same recorded status), so the fast path never reverts what the full decision would not; it
only narrows the writes to the clusters that run, or are getting, the bad revision. The full
reconcile follows in the same tick and records the rollback (its latency included), marks
the bad revision, and repairs whatever the fast path could not reach.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from edgeline.api.edgedeployment import EdgeDeploymentStatus, RevisionRef, RollbackPolicy
from edgeline.domain.rollback import Alert, alert_verdicts


@dataclass(frozen=True)
class RevertWrite:
    """Put `target` back on `clusters` in place of `bad`."""

    alert: str
    bad: RevisionRef
    target: RevisionRef
    clusters: tuple[str, ...]


def revert_writes(policy: RollbackPolicy, status: EdgeDeploymentStatus, alerts: list[Alert],
                  now: dt.datetime, running: dict[str, str | None] | None = None) -> list[RevertWrite]:
    """At most one write set per bad revision: like `decide`, the first alert that reverts the
    rollout wins (a cluster-scoped alert adds its cluster to it). `running`: the revision each
    cluster runs as its watched view shows it now (None: nothing there); a cluster missing from
    it counts with what status recorded, which lags an apply by one tick."""
    running = running or {}
    progress = status.rollout
    if progress is None or progress.target is None or progress.reason == "Rollback" or not alerts:
        return []
    bad = progress.target
    verdicts = alert_verdicts(policy, status, alerts, now)
    writes: list[RevertWrite] = []
    seen: set[str] = set()
    for request in verdicts.automatic:
        if request.target.revision == bad.revision:
            continue
        wanted = set(request.clusters) if request.clusters else None
        now_running = {c.name: running.get(c.name, c.revision) for c in status.clusters}
        clusters = tuple(name for name, revision in now_running.items()
                         if (wanted is None or name in wanted) and name not in seen
                         # A cluster that never got anything, or runs the target already, needs no write.
                         and revision is not None and revision != request.target.revision)
        seen.update(clusters)
        if clusters:
            writes.append(RevertWrite(request.alert, bad, request.target, clusters))
        if wanted is None:
            break       # the whole deployment goes back; later alerts change nothing
    return writes
