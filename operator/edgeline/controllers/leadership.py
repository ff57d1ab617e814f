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
import logging
import os
import signal
import socket
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import urlparse

import kopf
from aiohttp import web

from edgeline import metrics, webserver
from edgeline.controllers import shard_work, sharding
from edgeline.controllers.leases import Elector
from edgeline.settings import get_settings

log = logging.getLogger(__name__)
LOST = 1        # exit code of a leader that lost its Lease


def identity() -> str:
    """Unique per process: two replicas on one host (or a restarted container) never share it."""
    configured = get_settings().leader_identity
    return configured or f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


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
                      settings.leader_renew_deadline_s, settings.leader_retry_period_s, report=metrics.LEADER.set)
    log.info("replica %s serves the webhook and the alert receiver; waiting to lead", elector.me)
    shards = sharding.configure(elector.me)
    try:
        return await _lead(elector, start_operator, memo, stopping, health, shards)
    finally:
        if shards is not None:
            await shards.release_all()


async def _lead(elector: Elector, start_operator, memo: kopf.Memo, stopping: asyncio.Event, health,
                shards: sharding.Shards | None) -> int:
    # Sharded (controllers.sharding): every replica holds shard Leases; until it leads, it does the
    # per-cluster work of its shards that the leader hands off (controllers.shard_work).
    background = []
    if shards is not None:
        from edgeline.clusters.connections import MemberClusters

        background.append(asyncio.ensure_future(shards.run()))
        background.append(asyncio.ensure_future(shard_work.work(
            shards, MemberClusters(request_timeout_s=get_settings().cluster_probe_timeout_s))))
    try:
        return await _lead_kopf(elector, start_operator, memo, stopping, health, background[1:])
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)


async def _lead_kopf(elector: Elector, start_operator, memo: kopf.Memo, stopping: asyncio.Event, health,
                     follower_work: list[asyncio.Future]) -> int:
    acquiring = asyncio.ensure_future(elector.acquire())
    stop_wait = asyncio.ensure_future(stopping.wait())
    await asyncio.wait({acquiring, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    if not acquiring.done():
        acquiring.cancel()
        await webserver.stop(health)
        await _stop_shared(memo)
        return 0
    stop_wait.cancel()
    for task in follower_work:          # the leader's own loops do its shards' work from now on
        task.cancel()
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
