"""The revert fast path of an EdgeDeployment (docs/rollback.md): when an alert arrives, its
revert is written to every affected cluster at once, started by the receiver itself rather
than by the deployment's next tick (which may be busy with a thousand clusters); the tick
that follows observes, decides, records the rollback with the time of these writes as its
latency, and repairs whatever the fast path could not reach. What to write is the pure
`domain.fast_revert.revert_writes`; how, `clusters.revert`.

Restart-safe: the alert is on the object (an annotation) before anything is written, and a
tick that finds a receipt no fast path handled in this process runs the fast path first.
A tick's own writes and the fast path's never interleave (one lock per deployment), and a
tick waits for a fast path in flight before it observes."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from edgeline.api.edgedeployment import EdgeDeployment, EdgeDeploymentStatus
from edgeline.clusters.connections import MemberClusters
from edgeline.clusters.revert import changed_objects, write_all, write_one
from edgeline.controllers.indexes import ClusterEntry, client_for
from edgeline.domain.fast_revert import revert_writes
from edgeline.domain.rollback import Alert
from edgeline.domain.rollout import ActOutcome
from edgeline.domain.variants import Runs, pick
from edgeline.render.runtime import LABEL_REVISION, Target, object_name, render

log = logging.getLogger(__name__)


@dataclass
class FastPath:
    """In memory, per EdgeDeployment: what the fast path did that no tick has recorded yet."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)     # member-cluster writes of this deployment
    outcomes: dict[str, ActOutcome] = field(default_factory=dict)
    handled: set[str] = field(default_factory=set)               # receipt keys (alert_receipts.Receipt.key)
    task: asyncio.Task | None = None
    runner: Callable[[list[Alert], dict | None], Awaitable[None]] | None = None


_paths: dict[tuple[str, str], FastPath] = {}


def path(namespace: str, name: str) -> FastPath:
    return _paths.setdefault((namespace, name), FastPath())


def forget(namespace: str, name: str) -> None:
    _paths.pop((namespace, name), None)


def trigger(namespace: str, name: str, alerts: list[tuple[str, Alert]], written: dict | None = None) -> bool:
    """Called by the receiver once the alerts are on the object: starts the fast path now.
    `alerts`: (receipt key, alert); `written`: the object as the receiver's write left it (the
    API server's answer to it, as fresh as a read), or None to read it. False when this
    deployment has no loop in this process."""
    fast = _paths.get((namespace, name))
    if fast is None or fast.runner is None:
        return False
    fast.handled.update(key for key, _ in alerts)
    previous = fast.task

    async def run() -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        await fast.runner([alert for _, alert in alerts], written)
    fast.task = asyncio.get_running_loop().create_task(run(), name=f"fast-revert-{namespace}/{name}")
    return True


def snapshot_of(obj: dict, kind: str) -> dict | None:
    """An object the API server answered with, as loop.fresh_snapshot gives it (None when it is going)."""
    if obj["metadata"].get("deletionTimestamp"):
        return None
    return {"apiVersion": obj.get("apiVersion"), "kind": kind, "metadata": obj["metadata"],
            "spec": obj.get("spec") or {}, "status": obj.get("status") or {}}


async def settled(fast: FastPath) -> None:
    """Waits for a fast path in flight (its failure is logged, never raised into the tick)."""
    task = fast.task
    if task is not None:
        for result in await asyncio.gather(task, return_exceptions=True):
            if isinstance(result, Exception):
                log.warning("fast revert failed (the tick reverts instead): %s", result)


def merged(tick: dict[str, ActOutcome], fast: dict[str, ActOutcome]) -> dict[str, ActOutcome]:
    """The last tick's outcomes and the fast path's, the newer one per cluster."""
    out = dict(tick)
    for cluster, outcome in fast.items():
        if cluster not in out or out[cluster].at <= outcome.at:
            out[cluster] = outcome
    return out


async def revert_now(members: MemberClusters, known: dict[str, ClusterEntry], ed: EdgeDeployment,
                     status: EdgeDeploymentStatus, alerts: list[Alert], namespace: str, name: str,
                     now: dt.datetime, concurrency: int, owner_uid: str = "") -> dict[str, ActOutcome]:
    """The outcomes of the writes that succeeded (the tick's decision reads them as the
    time each cluster was reverted); failed ones are left to the full reconcile. The objects
    are rendered exactly as the tick would: with the owner's uid and each cluster's variant."""
    writes = revert_writes(ed.spec.rollback, status, alerts, now, _running(members, status, namespace, name))
    jobs = {}
    revision = {}
    for write in writes:
        for cluster in write.clusters:
            entry = known.get(cluster)
            if entry is None or entry.mode == "pull":     # a pull site's revert is its assignment: the tick's
                continue

            async def job(cluster=cluster, entry=entry, write=write) -> None:
                client = await client_for(members, cluster, entry)
                target = Target(cluster, entry.namespace)
                requirements = ed.spec.placement.requirements
                objects = changed_objects(
                    render(namespace, name, write.bad, target, requirements,
                           variant=_variant(write.bad, entry), owner_uid=owner_uid),
                    render(namespace, name, write.target, target, requirements,
                           variant=_variant(write.target, entry), owner_uid=owner_uid))
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


def _variant(revision, entry: ClusterEntry):
    """The variant of `revision` the cluster gets, picked as the rollout picks it (domain.variants)."""
    if revision is None or not revision.variants:
        return None
    return pick(revision.variants, entry.facts, Runs.of(revision.runtime)).variant


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
