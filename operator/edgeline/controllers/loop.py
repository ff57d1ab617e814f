"""The per-object loop that EdgeDeployments and DataPipelines share: tick, then sleep until
the interval passes or something wakes the object (a change seen by the watch, an alert).

Wake-ups are a cache of asyncio Events, never state: the object itself carries what
happened, so a loop that misses a wake-up finds it on its next tick.

A tick that fails is retried with exponential backoff (domain.backoff), and the object says
so: a `Reconciled` condition with status False, reason ReconcileFailed and the error's class
and message, plus a Warning Event that is counted while it repeats. The first good tick
removes the condition again. During backoff only the timer (or the end of the object) ends
the wait, so the loop's own status write cannot wake it into a tight retry loop."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable

import kopf
from lightkube import ApiError

from edgeline import GROUP, VERSION
from edgeline.api.conditions import get_condition, set_condition
from edgeline.clusters import events
from edgeline.clusters.connections import ConnectionProblem
from edgeline.clusters.resources import patch_status, read
from edgeline.domain.backoff import retry_delay

CONDITION = "Reconciled"
FAILED = "ReconcileFailed"
RETRY_CAP_S = 60.0
_EXPECTED = (kopf.TemporaryError, ConnectionProblem, OSError, ApiError)
_events: dict[tuple[str, str, str], asyncio.Event] = {}


def wake(plural: str, namespace: str, name: str) -> None:
    event = _events.get((plural, namespace, name))
    if event is not None:
        event.set()


async def fresh_snapshot(plural: str, kind: str, body: kopf.Body) -> dict | None:
    """The object as the API server has it now (None when it is gone or going), as a body with
    apiVersion and kind. A tick reads fresh because the watch may not have delivered the
    loop's own last status write yet, and deciding on an older status could repeat or undo a step."""
    fresh = await read(plural, body.metadata["name"], body.metadata["namespace"])
    if fresh is None or fresh["metadata"].get("deletionTimestamp"):
        return None
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": fresh["metadata"],
            "spec": fresh.get("spec") or {}, "status": fresh.get("status") or {}}


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
    failures = 0
    try:
        while not stopped:
            memo.wake.clear()
            phase = None
            try:
                phase = await tick()
            except Exception as exc:  # a bug must not stop this object's loop for good
                failures += 1
                delay = retry_delay(failures, active_interval_s, RETRY_CAP_S)
                if isinstance(exc, _EXPECTED):
                    logger.warning("%s tick failed (%d in a row), retrying in %.0f s: %s",
                                   plural, failures, delay, exc)
                else:
                    logger.exception("%s tick failed unexpectedly (%d in a row); retrying in %.0f s",
                                     plural, failures, delay)
                await _report_failure(plural, body, exc, failures, delay, logger)
            else:
                if failures:
                    await _clear_failure(plural, body, logger)
                failures, delay = 0, active_interval_s if active(phase) else idle_interval_s
            waiters = [asyncio.ensure_future(stopped.wait())]
            if not failures:
                waiters.append(asyncio.ensure_future(memo.wake.wait()))
            await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
    finally:
        _events.pop(key, None)


def failure_message(exc: Exception) -> str:
    """The error's class and what it says, for people (never a traceback)."""
    if isinstance(exc, ApiError):
        detail = f"{exc.status.code} {exc.status.message}"
    else:
        detail = str(exc) or "no details"
    detail = detail if len(detail) <= 800 else detail[:800] + "..."     # a condition message has a limit
    if not isinstance(exc, _EXPECTED):
        return f"unexpected {type(exc).__name__}: {detail} (a bug: the operator log has the traceback)"
    return f"{type(exc).__name__}: {detail}"


async def _report_failure(plural: str, body: kopf.Body, exc: Exception, failures: int, delay: float,
                          logger: logging.Logger) -> None:
    name, namespace = body.metadata["name"], body.metadata["namespace"]
    message = failure_message(exc)
    try:
        fresh = await read(plural, name, namespace)
        if fresh is None or fresh["metadata"].get("deletionTimestamp"):
            return
        conditions = set_condition(
            list((fresh.get("status") or {}).get("conditions") or []), CONDITION, "False", FAILED,
            f"{message}; {failures} failed tick(s) in a row, next try in {delay:.0f} s",
            generation=fresh["metadata"].get("generation"), now=dt.datetime.now(dt.timezone.utc))
        await patch_status(plural, name, namespace, {"conditions": conditions})
        # The same message again raises the Event's count instead of adding an Event.
        await events.warning(body, FAILED, message)
    except _EXPECTED as report_exc:
        logger.warning("could not report the failed tick on %s/%s: %s", namespace, name, report_exc)


async def _clear_failure(plural: str, body: kopf.Body, logger: logging.Logger) -> None:
    name, namespace = body.metadata["name"], body.metadata["namespace"]
    try:
        fresh = await read(plural, name, namespace)
        conditions = list(((fresh or {}).get("status") or {}).get("conditions") or [])
        if fresh is None or get_condition(conditions, CONDITION) is None:
            return
        await patch_status(plural, name, namespace,
                           {"conditions": [c for c in conditions if c.get("type") != CONDITION]})
        logger.info("%s ticks succeed again", plural)
    except _EXPECTED as exc:
        logger.warning("could not clear %s on %s/%s: %s", CONDITION, namespace, name, exc)


def wake_on_event(memo: kopf.Memo) -> None:
    event = memo.get("wake")
    if event is not None:
        event.set()
