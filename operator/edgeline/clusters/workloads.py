"""Edgeline's objects on member clusters: server-side apply with one field manager,
readiness read back from the Deployment, removal. Every call has the client's timeout,
so one dead site never stalls the others."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx2 as httpx
from lightkube import ApiError, AsyncClient
from lightkube.codecs import from_dict
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap, Service

from edgeline import FIELD_MANAGER
from edgeline.metrics import MEMBER_REQUESTS
from edgeline.render.runtime import LABEL_REVISION


@dataclass(frozen=True)
class WorkloadState:
    exists: bool
    revision: str | None = None
    replicas: int = 0
    ready_replicas: int = 0
    ready: bool = False
    message: str | None = None


class Unreachable(Exception):
    """The member cluster did not answer (or refused us); the message says how."""


def _unreachable(exc: Exception) -> Unreachable:
    if isinstance(exc, ApiError):
        return Unreachable(f"API error {exc.status.code}: {exc.status.message}")
    return Unreachable(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


async def apply(client: AsyncClient, namespace: str, objects: list[dict], ensure_namespace: bool = True) -> None:
    """Namespace first (unless our objects already live there), then the objects in order."""
    MEMBER_REQUESTS.labels(purpose="apply").inc(int(ensure_namespace) + len(objects))
    try:
        if ensure_namespace:
            await client.apply(from_dict({"apiVersion": "v1", "kind": "Namespace", "metadata": {
                "name": namespace, "labels": {"app.kubernetes.io/managed-by": "edgeline"}}}),
                field_manager=FIELD_MANAGER)
        # The ConfigMap goes before the Deployment whose Pods read it; the Service is independent.
        ordered = [o for o in objects if o["kind"] != "Service"]
        services = [o for o in objects if o["kind"] == "Service"]

        async def in_order():
            for obj in ordered:
                await client.apply(from_dict(obj), field_manager=FIELD_MANAGER, force=True)

        await asyncio.gather(in_order(), *(client.apply(from_dict(o), field_manager=FIELD_MANAGER, force=True)
                                           for o in services))
    except (ApiError, httpx.HTTPError, OSError) as exc:
        raise _unreachable(exc) from None


async def observe(client: AsyncClient, namespace: str, name: str) -> WorkloadState:
    MEMBER_REQUESTS.labels(purpose="observe").inc()
    try:
        deployment = await client.get(Deployment, name, namespace=namespace)
    except ApiError as exc:
        if exc.status.code == 404:
            return WorkloadState(exists=False)
        raise _unreachable(exc) from None
    except (httpx.HTTPError, OSError) as exc:
        raise _unreachable(exc) from None
    return _state_of(deployment)


def _state_of(deployment: Deployment) -> WorkloadState:
    spec, status = deployment.spec, deployment.status
    labels = (spec.template.metadata.labels or {}) if spec.template.metadata else {}
    wanted = spec.replicas if spec.replicas is not None else 1
    ready_n = (status.readyReplicas or 0) if status else 0
    current = (status.observedGeneration or 0) >= (deployment.metadata.generation or 0) if status else False
    updated = (status.updatedReplicas or 0) if status else 0
    total = (status.replicas or 0) if status else 0
    ready = current and updated >= wanted and ready_n >= wanted and total == wanted
    message = None
    for cond in (status.conditions or []) if status else []:
        if cond.type == "ReplicaFailure" and cond.status == "True":
            message = cond.message
        if cond.type == "Progressing" and cond.status == "False":
            message = cond.message
    return WorkloadState(exists=True, revision=labels.get(LABEL_REVISION), replicas=wanted,
                         ready_replicas=ready_n, ready=ready, message=message)


async def remove(client: AsyncClient, namespace: str, name: str) -> None:
    MEMBER_REQUESTS.labels(purpose="remove").inc(3)
    try:
        for kind in (Deployment, Service, ConfigMap):
            try:
                await client.delete(kind, name, namespace=namespace)
            except ApiError as exc:
                if exc.status.code != 404:
                    raise
    except (ApiError, httpx.HTTPError, OSError) as exc:
        raise _unreachable(exc) from None
