"""Leader election on a coordination.k8s.io Lease (kopf's peering is not leader election).

Every replica serves what must answer whoever calls: the admission webhook, the alert
receiver, /metrics and a liveness endpoint. Only the replica holding the Lease runs kopf,
i.e. every controller (rollouts, pipelines, probes, model validation, deletions). An alert
that reaches a replica that is not the leader is still acted on: the receiver writes it onto
the object (controllers.alerts), and the leader's watch wakes that object's loop.

A leader renews the Lease every retry period; when it cannot renew within the renew deadline
it stops kopf and the process exits (exit code 1), so that a leader which lost the Lease never
goes on acting (the Pod restarts as a follower). A leader that stops on purpose releases the
Lease, so the next one takes over at once; a killed one is replaced once the lease duration
has passed on the follower's clock (domain.leases). Decisions: domain.leases."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import urlparse

import httpx2 as httpx
import kopf
from aiohttp import web
from lightkube import ApiError
from lightkube.resources.coordination_v1 import Lease

from edgeline import metrics, webserver
from edgeline.clusters.connections import hub_client
from edgeline.domain import leases
from edgeline.settings import get_settings

log = logging.getLogger(__name__)
LOST = 1        # exit code of a leader that lost its Lease


def identity() -> str:
    """Unique per process: two replicas on one host (or a restarted container) never share it."""
    configured = get_settings().leader_identity
    return configured or f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class Elector:
    """Takes, renews and releases one Lease. Every API call has a deadline below the renew deadline."""

    def __init__(self, namespace: str, name: str, me: str, duration_s: int, renew_deadline_s: float,
                 retry_s: float):
        self.namespace, self.name, self.me = namespace, name, me
        self.duration_s, self.renew_deadline_s, self.retry_s = duration_s, renew_deadline_s, retry_s
        self._sighting: leases.Sighting | None = None
        self._renewed_at = 0.0
        self.leading = False

    async def try_once(self) -> bool:
        """One attempt to take or renew the Lease; True when we hold it now."""
        client = hub_client()
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
            log.info("%s now leads (Lease %s/%s)", self.me, self.namespace, self.name)
        self.leading = True
        metrics.LEADER.set(1)
        return True

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
                metrics.LEADER.set(0)
                log.error("%s could not renew the Lease %s/%s for %.0f s: it stops leading", self.me,
                          self.namespace, self.name, self.renew_deadline_s)
                return

    async def release(self) -> None:
        if not self.leading or self._sighting is None:
            return
        self.leading = False
        metrics.LEADER.set(0)
        try:
            async with asyncio.timeout(5):
                lease = (await hub_client().get(Lease, self.name, namespace=self.namespace)).to_dict()
                record = leases.LeaseRecord.from_spec(lease.get("spec"))
                if record.holder != self.me:
                    return
                spec = leases.released(record, dt.datetime.now(dt.timezone.utc))
                await hub_client().replace(Lease.from_dict({**lease, "spec": spec}), namespace=self.namespace)
                log.info("%s released the Lease %s/%s", self.me, self.namespace, self.name)
        except (ApiError, TimeoutError, httpx.HTTPError, OSError) as exc:
            log.warning("could not release the Lease (the next leader waits for it to expire): %s", exc)


async def _serve_health(liveness: str | None) -> web.AppRunner | None:
    """kopf serves the liveness endpoint while we lead; until then, this one does (a follower is alive)."""
    if not liveness:
        return None
    url = urlparse(liveness)
    app = web.Application()
    app.router.add_get(url.path or "/healthz", lambda _: web.json_response({"leader": False}))
    return await webserver.start(app, url.hostname or "0.0.0.0", url.port or 8080, shutdown_timeout=1.0)


async def _serve_shared(memo: kopf.Memo) -> None:
    """What every replica serves, started by the same functions kopf's startup runs in the leader
    (each starts once per process: they skip what the memo says is already running)."""
    from edgeline.controllers import alerts

    logger = logging.getLogger("edgeline.replica")
    metrics.serve(get_settings().metrics_port)
    await alerts.start_receiver(memo=memo, logger=logger)


async def _stop_shared(memo: kopf.Memo) -> None:
    await webserver.stop(memo.get("alerts_runner"))


async def run(start_operator: Callable[[asyncio.Event | None, kopf.Memo], Awaitable[None]],
              liveness: str | None) -> int:
    """Serves what every replica serves, waits for the Lease, then runs kopf while leading.
    Returns the process's exit code."""
    settings = get_settings()
    memo = kopf.Memo()
    if not settings.leader_election:
        await start_operator(None, memo)
        return 0
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await _serve_shared(memo)
    health = await _serve_health(liveness)
    metrics.LEADER.set(0)
    elector = Elector(settings.namespace, settings.leader_lease_name, identity(), settings.leader_lease_duration_s,
                      settings.leader_renew_deadline_s, settings.leader_retry_period_s)
    log.info("replica %s serves the webhook and the alert receiver; waiting to lead", elector.me)
    acquiring = asyncio.ensure_future(elector.acquire())
    stop_wait = asyncio.ensure_future(stopping.wait())
    await asyncio.wait({acquiring, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    if not acquiring.done():
        acquiring.cancel()
        await webserver.stop(health)
        await _stop_shared(memo)
        return 0
    stop_wait.cancel()
    await webserver.stop(health)
    # kopf installs its own handlers for SIGTERM/SIGINT and stops itself on them.
    kopf_stop = asyncio.Event()
    operating = asyncio.ensure_future(start_operator(kopf_stop, memo))
    holding = asyncio.ensure_future(elector.hold())
    await asyncio.wait({operating, holding}, return_when=asyncio.FIRST_COMPLETED)
    if holding.done():
        kopf_stop.set()
        try:
            await asyncio.wait_for(operating, timeout=30)
        except TimeoutError:
            log.error("kopf did not stop within 30 s after the Lease was lost; exiting anyway")
        return LOST
    holding.cancel()
    await elector.release()
    operating.result()          # an error that ended kopf ends the process with it
    return 0
