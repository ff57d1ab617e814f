"""The runtime objects a pull site runs: the same objects the hub renders for a push cluster
(render.runtime), except that the model comes from the site's cache (file://, on a hostPath
mounted read-only) instead of the WAN."""

from __future__ import annotations

from edgeline.api.edgedeployment import PlacementRequirements, RevisionRef
from edgeline.render.runtime import Target, render

CACHE_MOUNT = "/var/lib/edgeline-cache"
CACHE_VOLUME = "site-models"


def site_objects(deployment_namespace: str, deployment: str, revision: RevisionRef, target: Target,
                 requirements: PlacementRequirements | None, cache_host_dir: str, cached_relative: str
                 ) -> list[dict]:
    """`cached_relative`: the model's path below the cache folder (digest/model.onnx)."""
    local = revision.model_copy(update={"uri": f"file://{CACHE_MOUNT}/{cached_relative}"})
    objects = render(deployment_namespace, deployment, local, target, requirements)
    for obj in objects:
        if obj["kind"] != "Deployment":
            continue
        pod = obj["spec"]["template"]["spec"]
        pod["volumes"].append({"name": CACHE_VOLUME, "hostPath": {"path": cache_host_dir, "type": "Directory"}})
        for container in pod["containers"]:
            container["volumeMounts"].append({"name": CACHE_VOLUME, "mountPath": CACHE_MOUNT, "readOnly": True})
    return objects
