"""The EdgeDeployment loop's side of pull clusters (clusters.pull): observe through the site's
report and Lease, apply by publishing an assignment, remove by withdrawing it, and turn the
rollbacks a site did by itself into inputs of the rollout decision.

The loop calls these instead of the push calls when a cluster's connection.mode is pull; the
decision gets the same Observation and ActOutcome either way."""

from __future__ import annotations

import time

from edgeline.api.edgedeployment import EdgeDeployment, EdgeDeploymentStatus, RevisionRef
from edgeline.clusters import pull
from edgeline.clusters.connections import hub_client
from edgeline.controllers.indexes import ClusterEntry
from edgeline.domain.rollback import known_good
from edgeline.domain.rollout import ActOutcome, Observation
from edgeline.domain.site_reports import SiteRevert, WorkloadReport
from edgeline.render.runtime import object_name


def is_pull(entry: ClusterEntry | None) -> bool:
    return entry is not None and entry.mode == "pull"


async def observe(entry: ClusterEntry, cluster: str, namespace: str, name: str,
                  reports: dict[str, WorkloadReport]) -> Observation:
    observation, report = await pull.observe(hub_client(), cluster, object_name(namespace, name), entry.stale_after)
    if report is not None:
        reports[cluster] = report
    return observation


async def apply(entry: ClusterEntry, cluster: str, namespace: str, name: str, ed: EdgeDeployment,
                revision: RevisionRef, status: EdgeDeploymentStatus | None,
                reports: dict[str, WorkloadReport]) -> ActOutcome:
    # What the site falls back on by itself: the hub's own choice for a rollback of this revision.
    fallback = known_good(status, revision.revision) if status is not None else None
    assignment = pull.Assignment(
        deployment_namespace=namespace, deployment=name, object_name=object_name(namespace, name),
        target_namespace=entry.namespace, revision=revision, last_known_good=fallback,
        requirements=ed.spec.placement.requirements, rollback=ed.spec.rollback)
    try:
        await pull.publish(hub_client(), cluster, assignment)
    except pull.PullProblem as exc:
        return ActOutcome(cluster, revision.revision, time.time(), str(exc))
    return ActOutcome(cluster, revision.revision, pull.reached_at(reports.get(cluster), revision.revision))


async def remove(cluster: str, namespace: str, name: str) -> ActOutcome:
    try:
        await pull.withdraw(hub_client(), cluster, object_name(namespace, name))
    except pull.PullProblem as exc:
        return ActOutcome(cluster, None, time.time(), str(exc))
    return ActOutcome(cluster, None, time.time())


def site_rollbacks(reports: dict[str, WorkloadReport]) -> list[SiteRevert]:
    """Rollbacks the sites did on their own and still report (the decision skips recorded ones)."""
    return [SiteRevert(cluster, r) for cluster, report in sorted(reports.items()) for r in report.rollbacks]


async def acknowledge(reports: dict[str, WorkloadReport], namespace: str, name: str) -> None:
    """After status holds what the sites' rollbacks led to: they need not be reported again."""
    for cluster, report in reports.items():
        if report.rollbacks:
            await pull.acknowledge(hub_client(), cluster, object_name(namespace, name),
                                   [r.key for r in report.rollbacks])
