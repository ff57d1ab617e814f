"""Wake an EdgeDeployment's loop at once (e.g. when an alert arrives), in this process.

A cache of asyncio Events, never state: the object itself carries what happened, so a
loop that misses a wake-up still finds it on its next tick."""

from __future__ import annotations

import asyncio

_events: dict[tuple[str, str], asyncio.Event] = {}


def register(namespace: str, name: str, event: asyncio.Event) -> None:
    _events[(namespace, name)] = event


def unregister(namespace: str, name: str) -> None:
    _events.pop((namespace, name), None)


def wake(namespace: str, name: str) -> None:
    event = _events.get((namespace, name))
    if event is not None:
        event.set()
