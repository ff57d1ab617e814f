"""Server-side apply of a rendered object as it is (a dict), without turning it into a
lightkube model and back: `from_dict` plus `to_dict` cost ~0.5 ms per cluster per
revision (docs/decisions.md, perf), more than sending the request. The answer is parsed
into lightkube's model only for the kinds whose answer someone reads (the Deployment,
for the cluster's watched view)."""

from __future__ import annotations

from lightkube import AsyncClient
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap, Namespace, Service
from lightkube.types import PatchType

from edgeline import FIELD_MANAGER

KINDS = {("v1", "ConfigMap"): ConfigMap, ("v1", "Service"): Service, ("v1", "Namespace"): Namespace,
         ("apps/v1", "Deployment"): Deployment}


def resource_of(obj: dict):
    """The lightkube resource class of a rendered object (KeyError for a kind it never renders)."""
    return KINDS[(obj["apiVersion"], obj["kind"])]


async def apply(client: AsyncClient, obj: dict, force: bool = True):
    """Server-side applies `obj` (a dict with apiVersion, kind and metadata) as Edgeline's
    field manager; returns the API server's answer as lightkube's model."""
    meta = obj["metadata"]
    return await client.patch(resource_of(obj), meta["name"], obj, namespace=meta.get("namespace"),
                              patch_type=PatchType.APPLY, field_manager=FIELD_MANAGER, force=force)
