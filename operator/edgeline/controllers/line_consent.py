"""What the rollout needs to know about each cluster's schedule and line (docs/line-schedules.md):
the EdgeCluster's maintenance windows and, where the cluster asks for the line's consent, the
line-idle Lease its MES/PLC bridge holds in the operator's namespace.

Only the bridge's identity may write that Lease (a Role with resourceNames, docs), so the
signal's author is whoever the API server authenticated, never a field someone typed. The
decision itself is `domain.windows`; this module only reads.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from lightkube import ApiError
from pydantic import ValidationError
from lightkube.resources.coordination_v1 import Lease

from edgeline.api.edgecluster import LINE_IDLE_LEASE_PREFIX, Maintenance
from edgeline.clusters.connections import hub_client
from edgeline.controllers.indexes import ClusterEntry
from edgeline.domain import windows
from edgeline.settings import get_settings

log = logging.getLogger(__name__)


def lease_name(cluster: str) -> str:
    return LINE_IDLE_LEASE_PREFIX + cluster


async def line_facts(known: dict[str, ClusterEntry], clusters, now: dt.datetime) -> dict[str, windows.LineFacts]:
    """LineFacts for every cluster in `clusters` that declares windows or asks for consent."""
    declared, facts = {}, {}
    for name in clusters:
        entry = known.get(name)
        if entry is None or not entry.maintenance:
            continue
        try:
            declared[name] = Maintenance.model_validate(entry.maintenance)
        except ValidationError as exc:
            # The CRD schema should have refused it; held rather than changed at any time.
            facts[name] = windows.LineFacts(error=str(exc.errors()[0].get("msg")))
    leases = dict(await asyncio.gather(*(_idle(name, now) for name, m in declared.items() if m.line_consent)))
    for name, maintenance in declared.items():
        consent = maintenance.line_consent
        idle, since = leases.get(name, (False, None))
        facts[name] = windows.LineFacts(
            windows=windows.windows_of(maintenance.windows),
            consent=windows.LineConsent(consent.timeout_seconds, consent.on_timeout) if consent else None,
            idle=idle, idle_since=since, rollbacks_wait=maintenance.rollbacks == "RespectSchedule")
    return facts


async def _idle(cluster: str, now: dt.datetime) -> tuple[str, tuple[bool, dt.datetime | None]]:
    try:
        lease = await hub_client().get(Lease, lease_name(cluster), namespace=get_settings().namespace)
    except ApiError as exc:
        if exc.status.code != 404:
            # Unreadable counts as busy: the rollout waits, and the log says why.
            log.warning("cannot read the line-idle Lease of %s: %s", cluster, exc.status.message)
        return cluster, (False, None)
    spec = lease.spec
    return cluster, windows.line_idle(spec.holderIdentity, spec.acquireTime, spec.renewTime,
                                      spec.leaseDurationSeconds, now)
