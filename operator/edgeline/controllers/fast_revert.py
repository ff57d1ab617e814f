"""The revert fast path of an EdgeDeployment's tick (docs/rollback.md): when alerts arrived,
their revert is written to every affected cluster at once, before the tick observes
anything; the tick's full reconcile follows and records it. What to write is the pure
`domain.fast_revert.revert_writes`; how, `clusters.revert`."""

from __future__ import annotations

import datetime as dt
import logging

from edgeline.api.edgedeployment import EdgeDeployment, EdgeDeploymentStatus
from edgeline.clusters.connections import MemberClusters
from edgeline.clusters.revert import changed_objects, write_all, write_one
from edgeline.controllers.indexes import ClusterEntry, client_for
from edgeline.domain.fast_revert import revert_writes
from edgeline.domain.rollback import Alert
from edgeline.domain.rollout import ActOutcome
from edgeline.render.runtime import LABEL_REVISION, Target, object_name, render

log = logging.getLogger(__name__)


async def revert_now(members: MemberClusters, known: dict[str, ClusterEntry], ed: EdgeDeployment,
                     status: EdgeDeploymentStatus, alerts: list[Alert], namespace: str, name: str,
                     now: dt.datetime, concurrency: int) -> dict[str, ActOutcome]:
    """The outcomes of the writes that succeeded (the tick's decision reads them as the
    time each cluster was reverted); failed ones are left to the full reconcile."""
    writes = revert_writes(ed.spec.rollback, status, alerts, now, _running(members, status, namespace, name))
    jobs = {}
    revision = {}
    for write in writes:
        for cluster in write.clusters:
            entry = known.get(cluster)
            if entry is None:
                continue

            async def job(cluster=cluster, entry=entry, write=write) -> None:
                client = await client_for(members, cluster, entry)
                target = Target(cluster, entry.namespace)
                requirements = ed.spec.placement.requirements
                objects = changed_objects(render(namespace, name, write.bad, target, requirements),
                                          render(namespace, name, write.target, target, requirements))
                view = members.views.peek(cluster)
                await write_one(client, objects, view.remember if view is not None else None)
            jobs[cluster] = job
            revision[cluster] = write.target.revision
    if not jobs:
        return {}
    written = await write_all(jobs, concurrency)
    failed = {c: w.error for c, w in written.items() if w.error}
    if failed:
        log.warning("fast revert of %s/%s did not reach %d cluster(s) (the full reconcile retries): %s",
                    namespace, name, len(failed), "; ".join(f"{c}: {e}" for c, e in sorted(failed.items())[:5]))
    return {c: ActOutcome(c, revision[c], w.at) for c, w in written.items() if not w.error}


def _running(members: MemberClusters, status: EdgeDeploymentStatus, namespace: str, name: str
             ) -> dict[str, str | None]:
    """What each cluster runs as its watched view shows it (only fresh views; no request)."""
    running: dict[str, str | None] = {}
    workload = object_name(namespace, name)
    for cluster in status.clusters:
        view = members.views.peek(cluster.name)
        found = view.get(workload) if view is not None else None
        if found is None or not found.fresh:
            continue
        deployment = found.deployment
        template = deployment.spec.template.metadata if deployment is not None and deployment.spec else None
        running[cluster.name] = (template.labels or {}).get(LABEL_REVISION) if template else None
    return running
