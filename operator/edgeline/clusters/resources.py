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
}


async def patch_status(plural: str, name: str, namespace: str | None, status: dict) -> None:
    """A merge patch of the status subresource. Lists in it (conditions) are replaced
    whole, so only the one controller that owns a kind's status calls this."""
    resource = RESOURCES[plural]
    await hub_client().patch(resource.Status, name, {"status": status}, namespace=namespace,
                             patch_type=PatchType.MERGE)
