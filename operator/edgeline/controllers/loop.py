"""The per-object loop that EdgeDeployments and DataPipelines share: tick, then sleep until
the interval passes or something wakes the object (a change seen by the watch, an alert).

Wake-ups are a cache of asyncio Events, never state: the object itself carries what
happened, so a loop that misses a wake-up finds it on its next tick."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import kopf
from lightkube import ApiError

from edgeline.clusters.connections import ConnectionProblem

_events: dict[tuple[str, str, str], asyncio.Event] = {}


def wake(plural: str, namespace: str, name: str) -> None:
    event = _events.get((plural, namespace, name))
    if event is not None:
        event.set()


def first(index: kopf.Index, key):
    """The one value a kopf index holds for `key`, or None."""
    for value in index.get(key, []):
        return value
    return None


async def run(plural: str, body: kopf.Body, stopped: kopf.DaemonStopped, logger: logging.Logger,
              tick: Callable[[], Awaitable[str | None]], active: Callable[[str | None], bool],
              active_interval_s: float, idle_interval_s: float, memo: kopf.Memo) -> None:
    """Runs `tick` until the object goes away; `tick` returns the phase it left the object in."""
    key = (plural, body.metadata["namespace"], body.metadata["name"])
    memo.wake = _events[key] = asyncio.Event()
    try:
        while not stopped:
            memo.wake.clear()
            phase = None
            try:
                phase = await tick()
            except (kopf.TemporaryError, ConnectionProblem, OSError, ApiError) as exc:
                logger.warning("%s tick failed, retrying: %s", plural, exc)
            except Exception:  # a bug must not stop this object's loop for good
                logger.exception("%s tick failed unexpectedly; retrying", plural)
            waiters = [asyncio.ensure_future(memo.wake.wait()), asyncio.ensure_future(stopped.wait())]
            await asyncio.wait(waiters, timeout=active_interval_s if active(phase) else idle_interval_s,
                               return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
    finally:
        _events.pop(key, None)


def wake_on_event(memo: kopf.Memo) -> None:
    event = memo.get("wake")
    if event is not None:
        event.set()
