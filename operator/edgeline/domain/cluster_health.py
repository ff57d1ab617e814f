"""How healthy a member cluster is, from its latest probe and what was seen before.

Status must never claim what the operator has not seen recently: a cluster that does
not answer is Reachable=False at once and Stale=True once its last heartbeat is older
than the cluster's staleAfterSeconds; its facts are kept but marked stale.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    """One condition's worth of judgement."""

    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str


@dataclass(frozen=True)
class ClusterHealth:
    reachable: bool
    stale: bool
    last_heartbeat: dt.datetime | None
    reachable_condition: Verdict
    stale_condition: Verdict
    ready_condition: Verdict


def assess(
    *,
    probe_ok: bool,
    problem_reason: str | None,
    problem_message: str | None,
    ready_nodes: int,
    node_count: int,
    previous_heartbeat: dt.datetime | None,
    now: dt.datetime,
    stale_after: dt.timedelta,
) -> ClusterHealth:
    if probe_ok:
        reachable = Verdict("True", "ProbeSucceeded", f"the API server answered; {ready_nodes}/{node_count} nodes Ready")
        stale = Verdict("False", "RecentlySeen", "facts in status were observed by the latest probe")
        if node_count and ready_nodes == 0:
            ready = Verdict("False", "NoReadyNodes", f"none of the {node_count} nodes is Ready")
        elif node_count == 0:
            ready = Verdict("False", "NoNodes", "the cluster has no nodes to run workloads")
        else:
            ready = Verdict("True", "ClusterReady", reachable.message)
        return ClusterHealth(True, False, now, reachable, stale, ready)

    reason = problem_reason or "Unreachable"
    message = problem_message or "the cluster did not answer"
    reachable = Verdict("False", reason, message)
    if previous_heartbeat is None:
        stale_verdict = Verdict("True", "NeverSeen", "the cluster has not answered since it was registered")
        is_stale = True
    elif now - previous_heartbeat >= stale_after:
        age = int((now - previous_heartbeat).total_seconds())
        stale_verdict = Verdict("True", "HeartbeatTooOld",
                                f"last heartbeat {age}s ago (stale after {int(stale_after.total_seconds())}s)")
        is_stale = True
    else:
        age = int((now - previous_heartbeat).total_seconds())
        stale_verdict = Verdict("False", "RecentlySeen", f"last heartbeat {age}s ago")
        is_stale = False
    ready = Verdict("False", reason, message)
    return ClusterHealth(False, is_stale, previous_heartbeat, reachable, stale_verdict, ready)
