"""Events on hub objects, written directly: kopf posts only warnings for us (its own
INFO chatter must not become Events), and outcome Events of type Normal matter too."""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from lightkube import ApiError
from lightkube.models.core_v1 import EventSource, ObjectReference
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Event

from edgeline.clusters.connections import hub_client

log = logging.getLogger(__name__)


async def post(body, event_type: str, reason: str, message: str) -> None:
    meta = body["metadata"]
    namespace = meta.get("namespace") or "default"  # cluster-scoped objects' Events live in default
    now = dt.datetime.now(dt.timezone.utc)
    event = Event(
        metadata=ObjectMeta(name=f"{meta['name']}.{uuid.uuid4().hex[:12]}", namespace=namespace),
        involvedObject=ObjectReference(apiVersion=body["apiVersion"], kind=body["kind"], name=meta["name"],
                                       namespace=meta.get("namespace"), uid=meta.get("uid")),
        reason=reason, message=message[:1024], type=event_type,
        source=EventSource(component="edgeline"), firstTimestamp=now, lastTimestamp=now, count=1,
    )
    try:
        await hub_client().create(event, namespace=namespace)
    except ApiError as exc:
        # An Event is worth less than the reconcile that wants to post it.
        log.warning("could not post Event %s on %s: %s", reason, meta["name"], exc.status.message)


async def normal(body, reason: str, message: str) -> None:
    await post(body, "Normal", reason, message)


async def warning(body, reason: str, message: str) -> None:
    await post(body, "Warning", reason, message)
