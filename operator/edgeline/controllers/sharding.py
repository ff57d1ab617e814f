"""Shards of EdgeClusters across operator replicas: holding the shard Leases (the leader
election's Elector, controllers.leases), and who may touch which cluster now.

With `shards` = 1 (the default) nothing here runs and every replica `holds` every cluster:
the leader does all the work, as without sharding. With N > 1 every replica, leader or not,
holds some of the Leases `edgeline-shard-<i>` (domain.sharding.plan: its fair share; a
killed replica's shards are taken once their Leases expire), and only the holder of a
cluster's shard observes that cluster and writes to it. The leader's deployment loop hands
off what it decided for the other clusters in status (controllers.shard_work)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from edgeline import metrics
from edgeline.controllers.leases import Elector
from edgeline.domain import sharding
from edgeline.settings import get_settings

log = logging.getLogger(__name__)
WANTED_BY = "edgeline.io/wanted-by"


class Shards:
    """The shard Leases as one replica holds them."""

    def __init__(self, namespace: str, me: str, count: int, duration_s: int, renew_deadline_s: float,
                 retry_s: float, prefix: str = sharding.LEASE_PREFIX):
        self.me, self.count, self.duration_s, self.retry_s = me, count, duration_s, retry_s
        self.electors = [Elector(namespace, sharding.lease_name(i, prefix), me, duration_s, renew_deadline_s, retry_s,
                                 report=metrics.SHARD_HELD.labels(shard=str(i)).set, role=f"holds shard {i}")
                         for i in range(count)]

    def shard(self, cluster: str) -> int:
        return sharding.shard_of(cluster, self.count)

    def holds(self, cluster: str) -> bool:
        return self.electors[self.shard(cluster)].holds_now()

    def held(self) -> list[int]:
        return [i for i, e in enumerate(self.electors) if e.holds_now()]

    async def round(self) -> sharding.Plan:
        """Reads every shard Lease, then renews, takes, hands over or asks, as domain.sharding.plan says."""
        notes = await asyncio.gather(*(e.look() for e in self.electors))
        now = dt.datetime.now(dt.timezone.utc).timestamp()
        views = [sharding.ShardView(i, e.holder_seen(), sharding.wanter((n or {}).get(WANTED_BY), now,
                                                                        self.duration_s))
                 for i, (e, n) in enumerate(zip(self.electors, notes))]
        plan = sharding.plan(self.me, views)
        for i in plan.release:
            log.info("%s hands shard %d to %s", self.me, i, views[i].wanted_by)
            await self.electors[i].release()
        await asyncio.gather(*(self.electors[i].try_once() for i in (*plan.keep, *plan.take)))
        if plan.want is not None:
            await self.electors[plan.want].annotate(WANTED_BY, sharding.wanted_value(self.me, now))
        return plan

    async def run(self) -> None:
        while True:
            await self.round()
            await asyncio.sleep(self.retry_s)

    async def release_all(self) -> None:
        await asyncio.gather(*(e.release() for e in self.electors))


_shards: Shards | None = None


def configure(me: str) -> Shards | None:
    """Sets this process's shards up (None with one shard: every cluster is ours)."""
    global _shards
    settings = get_settings()
    if settings.shards <= 1:
        _shards = None
        return None
    _shards = Shards(settings.namespace, me, settings.shards, settings.leader_lease_duration_s,
                     settings.leader_renew_deadline_s, settings.leader_retry_period_s, settings.shard_lease_prefix)
    return _shards


def active() -> Shards | None:
    return _shards


def holds(cluster: str) -> bool:
    """Whether this replica may observe and write to `cluster` now."""
    return _shards is None or _shards.holds(cluster)


def held_only(known: dict) -> dict:
    """The entries of `known` (cluster -> anything) whose shard this replica holds now."""
    return known if _shards is None else {c: v for c, v in known.items() if _shards.holds(c)}
