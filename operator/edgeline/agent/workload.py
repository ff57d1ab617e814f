"""The runtime objects a pull site runs: the same objects the hub renders for a push cluster
(render.runtime: owner labels, the cluster's variant), except that the model comes from the
site's cache (file://, mounted read-only: a hostPath of the node, or the agent's
PersistentVolumeClaim) instead of the WAN, and that the Pods are pinned to the agent's node when
it is known (the cache is on that node's disk, or on a ReadWriteOnce claim attached there)."""

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
                 variant: VariantRef | None = None, owner_uid: str = "", cache_claim: str | None = None,
                 node: str | None = None) -> list[dict]:
    """`cached_relative`: the model's path below the cache folder (digest/model.onnx).
    `cache_claim`: the cache is this PersistentVolumeClaim (its `models` folder), not `cache_host_dir`.
    `node`: the node of the agent's Pod, where the runtime Pods must run to see the cache."""
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
        mount = {"name": CACHE_VOLUME, "mountPath": CACHE_MOUNT, "readOnly": True}
        if cache_claim:
            # Pod Security admits a claim at every level; the hostPath below needs privileged.
            pod["volumes"].append({"name": CACHE_VOLUME,
                                   "persistentVolumeClaim": {"claimName": cache_claim, "readOnly": True}})
            mount["subPath"] = CLAIM_MODELS
        else:
            pod["volumes"].append({"name": CACHE_VOLUME, "hostPath": {"path": cache_host_dir, "type": "Directory"}})
        for container in pod["containers"]:
            container["volumeMounts"].append(mount)
        if node:
            pod["affinity"] = pinned_to_node(pod.get("affinity"), node)
    return objects


CLAIM_MODELS = "models"     # the claim holds the agent's whole folder (state.json too): runtimes see the models only


def pinned_to_node(affinity: dict | None, node: str) -> dict:
    """`affinity` with every required node term also demanding the node named `node` (terms are
    ORed, the expressions and fields of a term ANDed), or one such term if there was none. By
    name (matchFields metadata.name), not by the hostname label, which may differ from it."""
    affinity = dict(affinity or {})
    node_affinity = dict(affinity.get("nodeAffinity") or {})
    required = dict(node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    field = {"key": "metadata.name", "operator": "In", "values": [node]}
    terms = [dict(t) for t in required.get("nodeSelectorTerms") or []] or [{}]
    for term in terms:
        term["matchFields"] = [*(f for f in term.get("matchFields") or [] if f.get("key") != "metadata.name"), field]
    required["nodeSelectorTerms"] = terms
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = required
    affinity["nodeAffinity"] = node_affinity
    return affinity
