"""Events on hub objects, written directly: kopf posts only warnings for us (its own
INFO chatter must not become Events), and outcome Events of type Normal matter too.

Events go through the events.k8s.io API and are counted the way client-go's recorder counts
them: the first report of a (object, type, reason, message) creates an Event with a
deterministic name; each repeat raises that Event's `series.count` and `lastObservedTime`
instead of creating another object. A problem that stays for an hour is one Event that
`kubectl describe` shows as "x720", not 720 Events.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import socket
from collections import OrderedDict

from lightkube import ApiError
from lightkube.models.core_v1 import ObjectReference
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.events_v1 import Event
from lightkube.types import PatchType

from edgeline import timestamps
from edgeline.clusters.connections import hub_client

log = logging.getLogger(__name__)
CONTROLLER = "edgeline.io/operator"
_INSTANCE = f"edgeline-{socket.gethostname()}"[:128]
# Event name -> the count last written. Only a cache: after a restart the Event itself tells.
_counts: OrderedDict[str, int] = OrderedDict()
_REMEMBERED = 4096


def event_name(body, event_type: str, reason: str, message: str) -> str:
    """One name per object, type, reason and message: a repeat finds the Event it repeats."""
    meta = body["metadata"]
    key = "\0".join([body["kind"], meta.get("namespace") or "", meta["name"], meta.get("uid") or "",
                     event_type, reason, message])
    return f"{meta['name'][:200]}.{hashlib.sha256(key.encode()).hexdigest()[:16]}"


async def _count_again(client, name: str, namespace: str, count: int, now: dt.datetime) -> None:
    series = {"count": count + 1, "lastObservedTime": timestamps.format_micro(now)}
    await client.patch(Event, name, {"series": series}, namespace=namespace, patch_type=PatchType.MERGE)
    _remember(name, count + 1)


def _remember(name: str, count: int) -> None:
    _counts[name] = count
    _counts.move_to_end(name)
    while len(_counts) > _REMEMBERED:
        _counts.popitem(last=False)


async def post(body, event_type: str, reason: str, message: str, action: str = "Reconcile") -> None:
    meta = body["metadata"]
    namespace = meta.get("namespace") or "default"  # cluster-scoped objects' Events live in default
    name = event_name(body, event_type, reason, message)
    # MicroTime needs its fraction: a whole second would be written without one and refused.
    now = dt.datetime.now(dt.timezone.utc)
    now = now.replace(microsecond=now.microsecond or 1)
    client = hub_client()
    try:
        count = _counts.get(name)
        if count is not None:
            try:
                await _count_again(client, name, namespace, count, now)
                return
            except ApiError as exc:
                if exc.status.code != 404:
                    raise
                # The Event expired (the API server keeps Events for an hour by default): start again.
        event = Event(
            metadata=ObjectMeta(name=name, namespace=namespace),
            regarding=ObjectReference(apiVersion=body["apiVersion"], kind=body["kind"], name=meta["name"],
                                      namespace=meta.get("namespace"), uid=meta.get("uid")),
            type=event_type, reason=reason, note=message[:1024], action=action, eventTime=now,
            reportingController=CONTROLLER, reportingInstance=_INSTANCE)
        try:
            await client.create(event, namespace=namespace)
            _remember(name, 1)
        except ApiError as exc:
            if exc.status.code != 409:
                raise
            # Posted before this process started (a restart): count on from what it says.
            existing = await client.get(Event, name, namespace=namespace)
            count = existing.series.count if existing.series else 1
            await _count_again(client, name, namespace, count, now)
    except ApiError as exc:
        # An Event is worth less than the reconcile that wants to post it.
        log.warning("could not post Event %s on %s: %s", reason, meta["name"], exc.status.message)


async def normal(body, reason: str, message: str) -> None:
    await post(body, "Normal", reason, message)


async def warning(body, reason: str, message: str) -> None:
    await post(body, "Warning", reason, message)
