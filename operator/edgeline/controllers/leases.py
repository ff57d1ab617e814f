"""Taking, renewing and releasing one coordination.k8s.io Lease: what leader election
(controllers.leadership) and the shards of EdgeClusters (controllers.sharding) share. The
decisions are domain.leases."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable

import httpx2 as httpx
from lightkube import ApiError
from lightkube.resources.coordination_v1 import Lease
from lightkube.types import PatchType

from edgeline.clusters.connections import lease_client
from edgeline.domain import leases

log = logging.getLogger(__name__)


class Elector:
    """Takes, renews and releases one Lease. Every API call has a deadline below the renew deadline."""

    def __init__(self, namespace: str, name: str, me: str, duration_s: int, renew_deadline_s: float,
                 retry_s: float, report: Callable[[int], object] = lambda held: None, role: str = "leads"):
        self.namespace, self.name, self.me = namespace, name, me
        self.report = report            # told 1 when we hold the Lease, 0 when we stop (a gauge's set)
        self.role = role                # for the log: "<me> now <role> (Lease ...)"
        self.duration_s, self.renew_deadline_s, self.retry_s = duration_s, renew_deadline_s, retry_s
        self._sighting: leases.Sighting | None = None
        self._renewed_at = 0.0
        self.leading = False

    async def try_once(self) -> bool:
        """One attempt to take or renew the Lease; True when we hold it now."""
        client = lease_client()
        try:
            async with asyncio.timeout(max(1.0, self.renew_deadline_s / 2)):
                try:
                    lease = (await client.get(Lease, self.name, namespace=self.namespace)).to_dict()
                except ApiError as exc:
                    if exc.status.code != 404:
                        raise
                    spec = leases.claimed(None, self.me, self.duration_s, dt.datetime.now(dt.timezone.utc))
                    await client.create(Lease.from_dict({"metadata": {"name": self.name, "namespace": self.namespace},
                                                         "spec": spec}), namespace=self.namespace)
                    return self._won(spec)
                record = leases.LeaseRecord.from_spec(lease.get("spec"))
                self._sighting = leases.observe(self._sighting, record, time.monotonic())
                if not leases.may_take(self._sighting, self.me, time.monotonic()):
                    if self.leading:
                        log.error("%s finds the Lease held by %s", self.me, record.holder)
                        self._renewed_at = 0.0        # someone else holds it: we lead no longer, at once
                    return self._lost_or_waiting()
                spec = leases.claimed(record, self.me, self.duration_s, dt.datetime.now(dt.timezone.utc))
                # replace carries the resourceVersion we read: a competing write in between is a 409.
                await client.replace(Lease.from_dict({**lease, "spec": spec}), namespace=self.namespace)
                return self._won(spec)
        except ApiError as exc:
            if exc.status.code != 409:
                log.warning("Lease %s/%s: %s", self.namespace, self.name, exc.status.message)
        except (TimeoutError, httpx.HTTPError, OSError) as exc:
            log.warning("Lease %s/%s not reachable: %s", self.namespace, self.name, type(exc).__name__)
        return self._lost_or_waiting()

    def _won(self, spec: dict) -> bool:
        now = time.monotonic()
        self._sighting = leases.Sighting(leases.LeaseRecord.from_spec(spec), now)
        self._renewed_at = now
        if not self.leading:
            log.info("%s now %s (Lease %s/%s)", self.me, self.role, self.namespace, self.name)
        self.leading = True
        self.report(1)
        return True

    def holds_now(self) -> bool:
        """Whether we may act as the holder at this moment: renewed within the renew deadline
        (a holder that cannot renew stops before anyone else may take the Lease)."""
        return self.leading and time.monotonic() - self._renewed_at < self.renew_deadline_s

    def holder_seen(self) -> str | None:
        """Who holds the Lease as we last read it; None when nobody does or, on our clock, it expired."""
        if self._sighting is None or not self._sighting.record.holder:
            return None
        record = self._sighting.record
        if record.holder != self.me and time.monotonic() - self._sighting.changed_at > record.duration_s:
            return None
        return record.holder

    async def look(self) -> dict | None:
        """Reads the Lease without writing it (updating what we have seen); its annotations, or
        None when it does not exist or cannot be read."""
        try:
            async with asyncio.timeout(max(1.0, self.renew_deadline_s / 2)):
                lease = (await lease_client().get(Lease, self.name, namespace=self.namespace)).to_dict()
        except ApiError as exc:
            if exc.status.code != 404:
                log.warning("Lease %s/%s: %s", self.namespace, self.name, exc.status.message)
            return None
        except (TimeoutError, httpx.HTTPError, OSError) as exc:
            log.warning("Lease %s/%s not reachable: %s", self.namespace, self.name, type(exc).__name__)
            return None
        record = leases.LeaseRecord.from_spec(lease.get("spec"))
        self._sighting = leases.observe(self._sighting, record, time.monotonic())
        return dict((lease.get("metadata") or {}).get("annotations") or {})

    async def annotate(self, key: str, value: str) -> None:
        """Writes one annotation on the Lease (a merge patch: it never touches the holder's spec)."""
        try:
            async with asyncio.timeout(max(1.0, self.renew_deadline_s / 2)):
                await lease_client().patch(Lease, self.name, {"metadata": {"annotations": {key: value}}},
                                         namespace=self.namespace, patch_type=PatchType.MERGE)
        except (ApiError, TimeoutError, httpx.HTTPError, OSError) as exc:
            log.warning("could not annotate the Lease %s/%s: %s", self.namespace, self.name, exc)

    def _lost_or_waiting(self) -> bool:
        return self.leading and time.monotonic() - self._renewed_at < self.renew_deadline_s

    async def acquire(self) -> None:
        """Returns once we lead."""
        holder = None
        while not await self.try_once():
            now_holder = self._sighting.record.holder if self._sighting else None
            if now_holder != holder:
                holder = now_holder
                log.info("waiting for the Lease %s/%s, held by %s", self.namespace, self.name, holder)
            await asyncio.sleep(self.retry_s)

    async def hold(self) -> None:
        """Renews until a renewal fails for longer than the renew deadline; then returns."""
        while True:
            await asyncio.sleep(self.retry_s)
            await self.try_once()
            if time.monotonic() - self._renewed_at >= self.renew_deadline_s:
                self.leading = False
                self.report(0)
                log.error("%s could not renew the Lease %s/%s for %.0f s: it stops leading", self.me,
                          self.namespace, self.name, self.renew_deadline_s)
                return

    async def release(self) -> None:
        if not self.leading or self._sighting is None:
            return
        self.leading = False
        self.report(0)
        try:
            async with asyncio.timeout(5):
                lease = (await lease_client().get(Lease, self.name, namespace=self.namespace)).to_dict()
                record = leases.LeaseRecord.from_spec(lease.get("spec"))
                if record.holder != self.me:
                    return
                spec = leases.released(record, dt.datetime.now(dt.timezone.utc))
                await lease_client().replace(Lease.from_dict({**lease, "spec": spec}), namespace=self.namespace)
                log.info("%s released the Lease %s/%s", self.me, self.namespace, self.name)
        except (ApiError, TimeoutError, httpx.HTTPError, OSError) as exc:
            log.warning("could not release the Lease (the next leader waits for it to expire): %s", exc)
