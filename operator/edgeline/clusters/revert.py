"""The writes of a revert (the fast path, domain.fast_revert): only the objects whose
rendering differs between the bad and the restored revision, server-side applied, every
cluster at once within a bound. The Service of a revision rarely differs, so a revert is
usually the restored revision's ConfigMap and the Deployment: two requests, sent together.

The restored revision's ConfigMap is named by its content and normally still exists (the
Deployment keeps two old ReplicaSets, and the ConfigMaps they name stay): when this process
applied it and has not deleted it since (member_cache.APPLIED), it is not sent again, so a
revert is one request per cluster. Otherwise it is sent together with the Deployment rather
than first: the kubelet retries a Pod whose ConfigMap is missing, which it is for one round
trip; the Pod template, what decides what runs, is never held back by a request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx2 as httpx
from lightkube import ApiError, AsyncClient
from lightkube.codecs import from_dict
from lightkube.resources.apps_v1 import Deployment

from edgeline import FIELD_MANAGER
from edgeline.clusters.connections import ConnectionProblem
from edgeline.clusters.member_cache import APPLIED
from edgeline.metrics import MEMBER_REQUESTS


@dataclass(frozen=True)
class Written:
    cluster: str
    at: float                   # epoch seconds when the last write of this cluster returned
    error: str | None = None


def changed_objects(bad: list[dict], good: list[dict]) -> list[dict]:
    """The restored revision's objects that differ from the bad revision's (by kind)."""
    before = {o["kind"]: o for o in bad}
    return [o for o in good if before.get(o["kind"]) != o]


async def write_one(client: AsyncClient, objects: list[dict],
                    remember: Callable[[Deployment], None] | None = None) -> None:
    """Applies `objects` concurrently; the Deployment's answer goes to `remember` (the
    cluster's watched view), so the tick that follows sees the revert without waiting for
    its watch event."""
    objects = APPLIED.changed(client, objects)     # the restored ConfigMap is usually still there
    MEMBER_REQUESTS.labels(purpose="revert").inc(len(objects))

    async def one(obj: dict):
        applied = await client.apply(from_dict(obj), field_manager=FIELD_MANAGER, force=True)
        APPLIED.note(client, [obj])
        if remember is not None and isinstance(applied, Deployment):
            remember(applied)

    await asyncio.gather(*(one(o) for o in objects))


async def write_all(jobs: dict[str, Callable[[], Awaitable[None]]], concurrency: int) -> dict[str, Written]:
    """Runs every cluster's writes with at most `concurrency` clusters in flight."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def run(cluster: str, job: Callable[[], Awaitable[None]]) -> Written:
        async with gate:
            try:
                await job()
            except (ApiError, httpx.HTTPError, OSError, ConnectionProblem) as exc:
                why = f"API error {exc.status.code}: {exc.status.message}" if isinstance(exc, ApiError) \
                    else f"{exc.reason}: {exc.message}" if isinstance(exc, ConnectionProblem) \
                    else (str(exc) or type(exc).__name__)
                return Written(cluster, time.time(), why)
            return Written(cluster, time.time())

    done = await asyncio.gather(*(run(c, j) for c, j in jobs.items()))
    return {w.cluster: w for w in done}
