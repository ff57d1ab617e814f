"""The runtime objects a pull site runs: the same objects the hub renders for a push cluster
(render.runtime: owner labels, the cluster's variant), except that the model comes from the
site's cache (file://, on a hostPath mounted read-only) instead of the WAN."""

from __future__ import annotations

from edgeline.api.edgedeployment import PlacementRequirements, RevisionRef, VariantRef
from edgeline.render.runtime import Target, render

CACHE_MOUNT = "/var/lib/edgeline-cache"
CACHE_VOLUME = "site-models"


def artifact_of(revision: RevisionRef, variant: VariantRef | None) -> RevisionRef:
    """The revision as the site caches it: with the variant's artifact when the site runs a variant."""
    if variant is None or not variant.uri:
        return revision
    return revision.model_copy(update={"uri": variant.uri, "digest": variant.digest,
                                       "external_data": variant.external_data})


def site_objects(deployment_namespace: str, deployment: str, revision: RevisionRef, target: Target,
                 requirements: PlacementRequirements | None, cache_host_dir: str, cached_relative: str,
                 variant: VariantRef | None = None, owner_uid: str = "") -> list[dict]:
    """`cached_relative`: the model's path below the cache folder (digest/model.onnx)."""
    local_uri = f"file://{CACHE_MOUNT}/{cached_relative}"
    if variant is not None and variant.uri:
        variant = variant.model_copy(update={"uri": local_uri})
    local = revision.model_copy(update={"uri": local_uri})
    objects = render(deployment_namespace, deployment, local, target, requirements, variant=variant,
                     owner_uid=owner_uid)
    for obj in objects:
        if obj["kind"] != "Deployment":
            continue
        pod = obj["spec"]["template"]["spec"]
        pod["volumes"].append({"name": CACHE_VOLUME, "hostPath": {"path": cache_host_dir, "type": "Directory"}})
        for container in pod["containers"]:
            container["volumeMounts"].append({"name": CACHE_VOLUME, "mountPath": CACHE_MOUNT, "readOnly": True})
    return objects
