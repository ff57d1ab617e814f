"""Edgeline's own resources on the hub, as lightkube generic resources, and the status
writes that cannot wait for the end of a kopf handler (e.g. "Validating")."""

from __future__ import annotations

from lightkube.generic_resource import create_global_resource, create_namespaced_resource
from lightkube.types import PatchType

from edgeline import GROUP, VERSION
from edgeline.clusters.connections import hub_client

RESOURCES = {
    "mlmodels": create_namespaced_resource(GROUP, VERSION, "MLModel", "mlmodels"),
    "edgedeployments": create_namespaced_resource(GROUP, VERSION, "EdgeDeployment", "edgedeployments"),
    "datapipelines": create_namespaced_resource(GROUP, VERSION, "DataPipeline", "datapipelines"),
    "edgeclusters": create_global_resource(GROUP, VERSION, "EdgeCluster", "edgeclusters"),
    "approvals": create_namespaced_resource(GROUP, VERSION, "Approval", "approvals"),
    "approvalpolicies": create_global_resource(GROUP, VERSION, "ApprovalPolicy", "approvalpolicies"),
}


async def patch_status(plural: str, name: str, namespace: str | None, status: dict) -> None:
    """A merge patch of the status subresource. Lists in it (conditions) are replaced
    whole, so only the one controller that owns a kind's status calls this."""
    resource = RESOURCES[plural]
    await hub_client().patch(resource.Status, name, {"status": status}, namespace=namespace,
                             patch_type=PatchType.MERGE)


async def read(plural: str, name: str, namespace: str | None) -> dict | None:
    """A fresh read from the API server (not a watch cache), or None when it is gone."""
    from lightkube import ApiError

    try:
        obj = await hub_client().get(RESOURCES[plural], name, namespace=namespace)
    except ApiError as exc:
        if exc.status.code == 404:
            return None
        raise
    return obj.to_dict()


def merge_patch(old: dict, new: dict) -> dict:
    """The JSON merge patch (RFC 7386) that turns `old` into `new`: keys that disappeared
    are sent as null, so that nothing stale survives in status."""
    patch = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            nested = merge_patch(before, value)
            if nested:
                patch[key] = nested
        elif value != before:
            patch[key] = value
    return patch


async def read_secret(name: str) -> dict[str, bytes] | None:
    """A Secret in the operator's namespace, decoded, or None when it does not exist."""
    import base64

    from lightkube import ApiError
    from lightkube.resources.core_v1 import Secret

    from edgeline.settings import get_settings

    try:
        found = await hub_client().get(Secret, name, namespace=get_settings().namespace)
    except ApiError as exc:
        if exc.status.code == 404:
            return None
        raise
    return {k: base64.b64decode(v) for k, v in (found.data or {}).items()}


async def create_secret_once(name: str, data: dict[str, bytes]) -> dict[str, bytes]:
    """Create a Secret in the operator's namespace; when another replica won the race, use theirs."""
    import base64

    from lightkube import ApiError
    from lightkube.codecs import from_dict

    from edgeline.settings import get_settings

    body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": get_settings().namespace,
                         "labels": {"app.kubernetes.io/part-of": "edgeline"}},
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}
    try:
        await hub_client().create(from_dict(body))
    except ApiError as exc:
        if exc.status.code != 409:
            raise
        return await read_secret(name)
    return data
