"""Edgeline's objects on member clusters: server-side apply with one field manager,
readiness read back from the Deployment (and, while it is not ready, from its Pods'
containers and the end of a stuck container's log), removal, and the clean-up of the
per-revision ConfigMaps no ReplicaSet refers to any more. Every call has the client's
timeout, so one dead site never stalls the others."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass, field, replace

import httpx2 as httpx
from lightkube import ApiError, AsyncClient
from lightkube.resources.apps_v1 import Deployment, ReplicaSet
from lightkube.resources.core_v1 import ConfigMap, Pod, Service

from edgeline.clusters import ssa
from edgeline.clusters.member_cache import APPLIED
from edgeline.domain.runtime_health import ContainerFacts, needs_log
from edgeline.metrics import MEMBER_REQUESTS
from edgeline.render.runtime import (CONFIG_COMPONENT, LABEL_COMPONENT, LABEL_DEPLOYMENT, LABEL_NAMESPACE,
                                     LABEL_OWNER_UID, LABEL_REVISION, MANAGED_BY, legacy_object_name)
from edgeline.render.runtime import LABEL_SHADOW_REVISION

log = logging.getLogger(__name__)
RUNTIME_CONTAINER = "runtime"
LOG_TAIL_LINES = 20
# (client, namespace, name) whose unused ConfigMaps were cleaned up since the last apply.
# In memory only: after a restart every runtime is cleaned up once more, which is harmless.
_cleaned: set[tuple[int, str, str]] = set()
# (client, namespace, name) of Deployments seen unready: [generation, since, last Pod read, containers].
_unready: dict[tuple[int, str, str], list] = {}
PODS_AFTER_S = 3.0
PODS_EVERY_S = 5.0
# Clean-ups after a rollout (4-6 requests a cluster, all clusters turning ready within a second)
# run at most this many clusters at a time: unbounded, a thousand of them filled the event loop
# and the connection pools just when an alert's revert needed both (docs/decisions.md, perf).
CLEANUP_CONCURRENCY = 8
_cleanup_gate: asyncio.Semaphore | None = None
# What an older version left under the legacy name is looked for once per cluster, namespace and
# EdgeDeployment in a process's life (nothing writes legacy names any more), not after every rollout.
_legacy_checked: set[tuple[int, str, str, str]] = set()


@dataclass(frozen=True)
class WorkloadState:
    exists: bool
    revision: str | None = None
    replicas: int = 0
    ready_replicas: int = 0
    ready: bool = False
    message: str | None = None
    containers: tuple[ContainerFacts, ...] = field(default=())   # read only while not ready
    foreign: bool = False       # an object of that name exists but its owner uid is not ours
    shadow: str | None = None   # the candidate revision attached in shadow (render LABEL_SHADOW_REVISION)


@dataclass(frozen=True)
class RuntimeOwner:
    """The hub EdgeDeployment whose runtime objects these are (owner labels, legacy name)."""

    namespace: str
    name: str
    uid: str


PSA_ENFORCE = "pod-security.kubernetes.io/enforce"


class OwnedByAnother(Exception):
    """An object of our name exists on the member cluster but carries another owner's uid (or
    none): it is neither overwritten nor deleted (reason OwnedByAnother)."""

    reason = "OwnedByAnother"


def _owner_of(obj) -> str | None:
    return ((obj.metadata.labels or {}) if obj.metadata else {}).get(LABEL_OWNER_UID)


async def _existing(client: AsyncClient, kind, name: str, namespace: str):
    try:
        return await client.get(kind, name, namespace=namespace)
    except ApiError as exc:
        if exc.status.code == 404:
            return None
        raise


async def _check_owner(client: AsyncClient, kind, name: str, namespace: str, uid: str) -> None:
    _refuse_foreign(kind.__name__, name, namespace, await _existing(client, kind, name, namespace), uid)


def _refuse_foreign(kind: str, name: str, namespace: str, existing, uid: str) -> None:
    if existing is not None and _owner_of(existing) != uid:
        raise OwnedByAnother(f"{kind} {namespace}/{name} exists and belongs to "
                             f"{'owner uid ' + _owner_of(existing) if _owner_of(existing) else 'no Edgeline owner'}; "
                             f"it is left alone")


class Unreachable(Exception):
    """The member cluster did not answer (or refused us); the message says how."""


def _unreachable(exc: Exception) -> Unreachable:
    if isinstance(exc, ApiError):
        return Unreachable(f"API error {exc.status.code}: {exc.status.message}")
    return Unreachable(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


async def apply(client: AsyncClient, namespace: str, objects: list[dict], ensure_namespace: bool = True,
                pod_security: str = "restricted", view=None) -> None:
    """Namespace first (unless our objects already live there; labelled with the cluster's Pod
    Security level), then the objects in order. Raises OwnedByAnother, before writing anything,
    when the Deployment or Service of that name carries another owner uid than the objects.
    Objects this process applied unchanged a moment ago are not sent again (APPLIED). `view`: the
    cluster's watched view; while it is fresh, the Deployment's owner is read from it, not asked."""
    requested, objects = objects, APPLIED.changed(client, objects)     # not what is there already
    MEMBER_REQUESTS.labels(purpose="apply").inc(int(ensure_namespace) + len(objects))
    try:
        for obj in objects:
            uid = (obj["metadata"].get("labels") or {}).get(LABEL_OWNER_UID)
            if uid and obj["kind"] == "Deployment" and view is not None \
                    and (found := view.get(obj["metadata"]["name"])).fresh:
                _refuse_foreign("Deployment", obj["metadata"]["name"], namespace, found.deployment, uid)
            elif uid and obj["kind"] in ("Deployment", "Service"):
                MEMBER_REQUESTS.labels(purpose="apply").inc()
                await _check_owner(client, Deployment if obj["kind"] == "Deployment" else Service,
                                   obj["metadata"]["name"], namespace, uid)
        if ensure_namespace:
            await ssa.apply(client, namespace_object(namespace, pod_security), force=False)
        # The ConfigMap goes before the Deployment whose Pods read it; the Service is independent.
        ordered = [o for o in objects if o["kind"] != "Service"]
        services = [o for o in objects if o["kind"] == "Service"]

        async def in_order():
            for obj in ordered:
                await ssa.apply(client, obj)

        await asyncio.gather(in_order(), *(ssa.apply(client, o) for o in services))
    except (ApiError, httpx.HTTPError, OSError) as exc:
        raise _unreachable(exc) from None
    APPLIED.note(client, objects)
    for obj in requested:
        if obj["kind"] == "Deployment":
            _cleaned.discard((id(client), namespace, obj["metadata"]["name"]))


def namespace_object(namespace: str, pod_security: str = "restricted") -> dict:
    """The target namespace, with the Pod Security level the EdgeCluster allows enforced on it."""
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": {
        "app.kubernetes.io/managed-by": "edgeline", PSA_ENFORCE: pod_security}}}


async def observe(client: AsyncClient, namespace: str, name: str, owner: RuntimeOwner | None = None
                  ) -> WorkloadState:
    """With `owner`: a Deployment of that name with another owner uid reads as foreign (not ours,
    so not existing for the rollout, whose apply then refuses to write over it), and once ours is
    ready, the objects an older version left under the legacy name are removed."""
    MEMBER_REQUESTS.labels(purpose="observe").inc()
    try:
        deployment = await client.get(Deployment, name, namespace=namespace)
    except ApiError as exc:
        if exc.status.code == 404:
            return WorkloadState(exists=False)
        raise _unreachable(exc) from None
    except (httpx.HTTPError, OSError) as exc:
        raise _unreachable(exc) from None
    if owner is not None and _owner_of(deployment) != owner.uid:
        return _foreign(namespace, name)
    return await _read_around(client, namespace, name, deployment, owner=owner)


def _foreign(namespace: str, name: str) -> WorkloadState:
    return WorkloadState(exists=False, foreign=True,
                         message=f"Deployment {namespace}/{name} belongs to another owner; it is left alone")


async def observe_view(client: AsyncClient, view, namespace: str, name: str, owner: RuntimeOwner | None = None
                       ) -> WorkloadState:
    """Like `observe`, with the Deployment taken from the cluster's watched view
    (clusters.member_cache) while that view is fresh: no request at all for a settled
    runtime. A view that is not synced, or whose watch is broken, is not trusted: the
    cluster is asked directly, which answers or fails honestly."""
    found = view.get(name) if view is not None else None
    if found is None or not found.fresh:
        return await observe(client, namespace, name, owner)
    if found.deployment is None:
        return WorkloadState(exists=False)
    if owner is not None and _owner_of(found.deployment) != owner.uid:
        return _foreign(namespace, name)
    return await _read_around(client, namespace, name, found.deployment, complete=False, owner=owner)


async def _read_around(client: AsyncClient, namespace: str, name: str, deployment: Deployment,
                       complete: bool = True, owner: RuntimeOwner | None = None) -> WorkloadState:
    """What a Deployment's state needs beyond the Deployment: its Pods while it is not ready,
    the clean-up of unused ConfigMaps once after it is (and of what an older version left under
    the legacy name)."""
    state = _state_of(deployment)
    key = (id(client), namespace, name)
    try:
        if not state.ready:
            return replace(state, containers=await _containers_now_and_then(client, namespace, deployment, key))
        _unready.pop(key, None)
        if key not in _cleaned:
            global _cleanup_gate
            _cleanup_gate = _cleanup_gate or asyncio.Semaphore(CLEANUP_CONCURRENCY)
            async with _cleanup_gate:
                # Rolled out: the ReplicaSets that will stay are known, so are the ConfigMaps they need.
                if not complete:        # the watched view keeps no Pod spec; the clean-up needs it
                    MEMBER_REQUESTS.labels(purpose="cleanup").inc()
                    deployment = await client.get(Deployment, name, namespace=namespace)
                await remove_unused_configs(client, namespace, deployment)
                legacy = (id(client), namespace, owner.namespace, owner.name) if owner is not None else None
                if legacy is not None and legacy not in _legacy_checked:
                    await remove_legacy(client, namespace, owner)
                    _legacy_checked.add(legacy)
            _cleaned.add(key)
    except (ApiError, httpx.HTTPError, OSError) as exc:
        raise _unreachable(exc) from None
    return state


async def _containers_now_and_then(client: AsyncClient, namespace: str, deployment: Deployment,
                                   key: tuple[int, str, str]) -> tuple[ContainerFacts, ...]:
    """The Pods of a Deployment that is not ready, read only once it has stayed so for
    PODS_AFTER_S and then every PODS_EVERY_S: a rollout makes every Deployment unready for a
    moment, and a Pod list per cluster per tick was most of a thousand-cluster rollout's
    requests (docs/decisions.md, scale). What does not pass by itself is seen seconds later."""
    now = time.monotonic()
    generation = deployment.metadata.generation
    seen = _unready.get(key)
    if seen is None or seen[0] != generation:
        seen = _unready[key] = [generation, now, None, ()]
    if now - seen[1] >= PODS_AFTER_S and (seen[2] is None or now - seen[2] >= PODS_EVERY_S):
        seen[3] = await _containers(client, namespace, deployment)
        seen[2] = now
    return seen[3]


async def _containers(client: AsyncClient, namespace: str, deployment: Deployment) -> tuple[ContainerFacts, ...]:
    """The runtime container of each of the Deployment's Pods, and the end of the log of the
    first one that runs but stays unready (the runtime logs why it refuses a model)."""
    MEMBER_REQUESTS.labels(purpose="observe").inc()
    selector = dict(deployment.spec.selector.matchLabels or {})
    pods = [p async for p in client.list(Pod, namespace=namespace, labels=selector)]
    facts = [_container_of(p) for p in sorted(pods, key=lambda p: p.metadata.name)]
    now = dt.datetime.now(dt.timezone.utc)
    for index, container in enumerate(facts):
        if needs_log(container, now):
            facts[index] = replace(container, log_tail=await _log_tail(client, namespace, container.pod))
            break
    return tuple(facts)


def _container_of(pod: Pod) -> ContainerFacts:
    labels = pod.metadata.labels or {}
    spec = next((c for c in pod.spec.containers if c.name == RUNTIME_CONTAINER), pod.spec.containers[0])
    status = pod.status
    unschedulable = None
    for cond in (status.conditions or []) if status else []:
        if cond.type == "PodScheduled" and cond.status == "False" and cond.reason == "Unschedulable":
            unschedulable = cond.message or cond.reason
    found = next((c for c in (status.containerStatuses or []) if c.name == spec.name), None) if status else None
    if found is None:
        return ContainerFacts(pod=pod.metadata.name, revision=labels.get(LABEL_REVISION), image=spec.image or "",
                              unschedulable=unschedulable)
    state, last = found.state, found.lastState
    waiting = state.waiting if state else None
    running = state.running if state else None
    ended = last.terminated if last else None
    if ended is None and state and state.terminated:
        ended = state.terminated
    return ContainerFacts(
        pod=pod.metadata.name, revision=labels.get(LABEL_REVISION), image=spec.image or found.image or "",
        ready=bool(found.ready), restarts=found.restartCount or 0,
        waiting_reason=waiting.reason if waiting else None, waiting_message=waiting.message if waiting else None,
        running_since=running.startedAt if running else None,
        last_exit_code=ended.exitCode if ended else None, last_reason=ended.reason if ended else None,
        last_message=ended.message if ended else None, unschedulable=unschedulable)


async def _log_tail(client: AsyncClient, namespace: str, pod: str) -> str | None:
    MEMBER_REQUESTS.labels(purpose="logs").inc()
    try:
        return "".join([line async for line in client.log(pod, namespace=namespace, container=RUNTIME_CONTAINER,
                                                          tail_lines=LOG_TAIL_LINES)])
    except ApiError as exc:
        # No log to read (a node without a kubelet log endpoint, a container just replaced, or no
        # pods/log permission): the cluster's status then says only that the Pod is not ready.
        log.info("no log of Pod %s/%s: %s", namespace, pod, exc.status.message)
        return None


async def remove_unused_configs(client: AsyncClient, namespace: str, deployment: Deployment) -> list[str]:
    """Deletes the runtime ConfigMaps of this Deployment that neither its Pod template nor any
    ReplicaSet it owns refers to. Found by the Deployment's labels, checked by owner: a
    ConfigMap whose name merely looks like ours is never touched. Returns the deleted names."""
    MEMBER_REQUESTS.labels(purpose="cleanup").inc(2)
    selector = dict(deployment.spec.selector.matchLabels or {})
    if not selector:
        return []
    configs = [c async for c in client.list(ConfigMap, namespace=namespace,
                                             labels={**selector, "app.kubernetes.io/managed-by": MANAGED_BY})]
    uid = deployment.metadata.uid
    owned = [rs async for rs in client.list(ReplicaSet, namespace=namespace, labels=selector)
             if any(ref.uid == uid and ref.controller for ref in rs.metadata.ownerReferences or [])]
    used = _configs_used(deployment.spec.template.spec)
    for rs in owned:
        used |= _configs_used(rs.spec.template.spec if rs.spec and rs.spec.template else None)
    name = deployment.metadata.name
    deleted = []
    for config in configs:
        cname = config.metadata.name
        ours = (config.metadata.labels or {}).get(LABEL_COMPONENT) == CONFIG_COMPONENT or cname == name
        if not ours or cname in used:
            continue
        MEMBER_REQUESTS.labels(purpose="cleanup").inc()
        await _delete_if_present(client, ConfigMap, cname, namespace)
        APPLIED.forget(client, namespace, "ConfigMap", cname)
        deleted.append(cname)
    if deleted:
        log.info("deleted runtime ConfigMaps no ReplicaSet of %s/%s uses: %s", namespace, name, ", ".join(deleted))
    return deleted


def _configs_used(pod_spec) -> set[str]:
    if pod_spec is None:
        return set()
    used = set()
    for container in [*(pod_spec.containers or []), *(pod_spec.initContainers or [])]:
        for source in container.envFrom or []:
            if source.configMapRef is not None:
                used.add(source.configMapRef.name)
        for env in container.env or []:
            if env.valueFrom is not None and env.valueFrom.configMapKeyRef is not None:
                used.add(env.valueFrom.configMapKeyRef.name)
    for volume in pod_spec.volumes or []:
        if volume.configMap is not None:
            used.add(volume.configMap.name)
    return used


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
                         ready_replicas=ready_n, ready=ready, message=message,
                         shadow=labels.get(LABEL_SHADOW_REVISION))


async def _delete_if_present(client: AsyncClient, kind, name: str, namespace: str) -> None:
    try:
        await client.delete(kind, name, namespace=namespace)
    except ApiError as exc:
        if exc.status.code != 404:  # already gone is what we wanted
            raise


async def remove(client: AsyncClient, namespace: str, name: str, owner: RuntimeOwner | None = None) -> list[str]:
    """The Deployment and Service by name, then every runtime ConfigMap of theirs, found by
    the instance and managed-by labels Edgeline puts on them (the per-revision ones and the
    single ConfigMap that versions before per-revision ConfigMaps created). With `owner`, only
    objects labelled with its uid go, plus what an older version left under the legacy name;
    returns the objects left alone because another owner's uid is on them."""
    MEMBER_REQUESTS.labels(purpose="remove").inc(3)
    left: list[str] = []
    try:
        for kind in (Deployment, Service):
            if owner is not None:
                existing = await _existing(client, kind, name, namespace)
                if existing is None:
                    continue
                if _owner_of(existing) != owner.uid:
                    left.append(f"{kind.__name__} {namespace}/{name}")
                    continue
            await _delete_if_present(client, kind, name, namespace)
            APPLIED.forget(client, namespace, kind.__name__, name)
        labels = {"app.kubernetes.io/instance": name, "app.kubernetes.io/managed-by": MANAGED_BY}
        if owner is not None:
            labels[LABEL_OWNER_UID] = owner.uid
        configs = [c.metadata.name async for c in client.list(ConfigMap, namespace=namespace, labels=labels)]
        for config in configs:
            MEMBER_REQUESTS.labels(purpose="remove").inc()
            await _delete_if_present(client, ConfigMap, config, namespace)
            APPLIED.forget(client, namespace, "ConfigMap", config)
        if owner is not None:
            await remove_legacy(client, namespace, owner)
        _cleaned.discard((id(client), namespace, name))
        _unready.pop((id(client), namespace, name), None)
    except (ApiError, httpx.HTTPError, OSError) as exc:
        raise _unreachable(exc) from None
    return left


def _legacy_ours(obj, owner: RuntimeOwner) -> bool:
    """An object from before owner uids: ours when its labels name exactly this namespace/name
    (the collision of `a-b/c` and `a/b-c` under one legacy name is told apart by these labels)."""
    labels = (obj.metadata.labels or {}) if obj.metadata else {}
    return (labels.get("app.kubernetes.io/managed-by") == MANAGED_BY and labels.get(LABEL_NAMESPACE) == owner.namespace
            and labels.get(LABEL_DEPLOYMENT) == owner.name and labels.get(LABEL_OWNER_UID) in (None, owner.uid))


async def remove_legacy(client: AsyncClient, namespace: str, owner: RuntimeOwner) -> list[str]:
    """Deletes what a version before collision-free names put on the cluster for this
    EdgeDeployment under `<namespace>-<name>` (migration, docs/decisions.md); only objects whose
    labels name this very EdgeDeployment. Returns the deleted objects."""
    legacy = legacy_object_name(owner.namespace, owner.name)
    deleted = []
    MEMBER_REQUESTS.labels(purpose="cleanup").inc(3)
    for kind in (Deployment, Service):
        existing = await _existing(client, kind, legacy, namespace)
        if existing is not None and _legacy_ours(existing, owner):
            await _delete_if_present(client, kind, legacy, namespace)
            deleted.append(f"{kind.__name__} {legacy}")
    async for config in client.list(ConfigMap, namespace=namespace, labels={
            "app.kubernetes.io/instance": legacy, "app.kubernetes.io/managed-by": MANAGED_BY}):
        if _legacy_ours(config, owner):
            await _delete_if_present(client, ConfigMap, config.metadata.name, namespace)
            deleted.append(f"ConfigMap {config.metadata.name}")
    if deleted:
        log.info("removed the pre-tenancy objects of %s/%s from %s: %s", owner.namespace, owner.name, namespace,
                 ", ".join(deleted))
    return deleted
