"""One watched view per member cluster: Edgeline's runtime Deployments in the cluster's
target namespace, kept current by a list and then a watch from the list's resourceVersion.

Every EdgeDeployment on that cluster reads its Deployment from here instead of GETting it
every tick, so the idle load on a member API server is one watch, whatever the number of
deployments. The watch runs over the cluster's one client (clusters.connections), the same
one the probe and the applies use.

Honest staleness: the view answers only while it is synced and its watch is alive. While the
watch is broken (the cluster went away, a 410 Gone, a bad certificate) `get` says so and the
caller reads the cluster directly, which tells the truth or fails: a broken watch never serves
what the cluster looked like minutes ago. The view lists again after every break and every
`resync_s` (a full relist corrects whatever a watch could have missed).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx2 as httpx
from lightkube import ApiError, AsyncClient
from lightkube.models.apps_v1 import DeploymentSpec
from lightkube.models.core_v1 import PodTemplateSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment

from edgeline.metrics import MEMBER_REQUESTS

log = logging.getLogger(__name__)
MANAGED = {"app.kubernetes.io/managed-by": "edgeline"}
RESYNC_S = 600.0
RETRY_MAX_S = 30.0

OnChange = Callable[[str, Deployment | None], None]


@dataclass(frozen=True)
class Lookup:
    """What the view knows about one Deployment (`slim`: no Pod spec). `fresh` False: ask the
    cluster instead (`why` says why: not listed yet, watch broken since ..., ...)."""

    fresh: bool
    deployment: Deployment | None = None
    why: str | None = None


def slim(deployment: Deployment) -> Deployment:
    """What the rollout reads of a Deployment (revision, replicas, status, owner labels), not the
    whole Pod template: a thousand clusters times ten deployments of full objects would hold
    80 MB (docs/decisions.md, scale). `spec.template.spec` is absent: whoever needs it (the
    clean-up of unused ConfigMaps) reads the Deployment from the cluster."""
    meta, spec = deployment.metadata, deployment.spec
    template = spec.template.metadata if spec and spec.template else None
    return Deployment(
        metadata=ObjectMeta(name=meta.name, namespace=meta.namespace, uid=meta.uid, generation=meta.generation,
                            resourceVersion=meta.resourceVersion, labels=meta.labels),
        spec=DeploymentSpec(selector=spec.selector, replicas=spec.replicas,
                            template=PodTemplateSpec(metadata=ObjectMeta(labels=template.labels if template else None)))
        if spec else None,
        status=deployment.status)


def _newer_or_same(new: Deployment, old: Deployment | None) -> bool:
    """Kubernetes calls resourceVersion opaque, but etcd-backed servers count up: a write's own
    answer must not be undone by an older watch event that arrives after it."""
    if old is None:
        return True
    try:
        return int(new.metadata.resourceVersion or 0) >= int(old.metadata.resourceVersion or 0)
    except ValueError:
        return True


class ClusterView:
    """Edgeline's Deployments in one namespace of one member cluster."""

    def __init__(self, cluster: str, client: AsyncClient, namespace: str, on_change: OnChange | None = None,
                 resync_s: float = RESYNC_S):
        self.cluster = cluster
        self.client = client
        self.namespace = namespace
        self._on_change = on_change
        self._resync_s = resync_s
        self._objects: dict[str, Deployment] = {}
        self._synced = False
        self._broken: tuple[float, str] | None = None   # since when, why
        self._task: asyncio.Task | None = None
        self.lists = 0          # how many times the view listed (first sync, resyncs, recoveries)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"member-view-{self.cluster}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):   # noqa: BLE001 - stopping; the reason was logged
                pass
            self._task = None

    def get(self, name: str) -> Lookup:
        if self._broken is not None:
            since, why = self._broken
            return Lookup(False, why=f"watch of {self.cluster} broken for {time.monotonic() - since:.0f}s: {why}")
        if not self._synced:
            return Lookup(False, why=f"watch of {self.cluster} not synced yet")
        return Lookup(True, self._objects.get(name))

    def suspect(self, why: str) -> None:
        """The cluster stopped answering elsewhere (its probe failed). A watch over a connection
        to a server that froze sees no error, only silence: the view stops answering now and
        starts over, listing again once the cluster answers."""
        if self._broken is not None:
            return
        self._broken = (time.monotonic(), why)
        self._synced = False
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.start()

    def remember(self, deployment: Deployment) -> None:
        """A write's answer (the object as the server stored it): seen before its watch event."""
        self._put(deployment)

    def forget(self, name: str) -> None:
        if self._objects.pop(name, None) is not None and self._on_change:
            self._on_change(name, None)

    def _put(self, deployment: Deployment) -> None:
        deployment = slim(deployment)
        name = deployment.metadata.name
        if _newer_or_same(deployment, self._objects.get(name)):
            self._objects[name] = deployment
            if self._on_change:
                self._on_change(name, deployment)

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self._list_and_watch()
                failures = 0
            except asyncio.CancelledError:
                raise
            except (ApiError, httpx.HTTPError, OSError, ValueError) as exc:
                failures += 1
                why = exc.status.message if isinstance(exc, ApiError) else (str(exc) or type(exc).__name__)
                if self._broken is None:
                    self._broken = (time.monotonic(), why.splitlines()[0][:200] if why else "error")
                    log.info("watch of Edgeline's objects on %s broke: %s", self.cluster, why)
                delay = min(RETRY_MAX_S, 0.5 * 2 ** min(failures, 6)) * random.uniform(0.8, 1.2)
                await asyncio.sleep(delay)

    async def _list_and_watch(self) -> None:
        MEMBER_REQUESTS.labels(purpose="watch").inc()
        listing = self.client.list(Deployment, namespace=self.namespace, labels=MANAGED)
        found = {d.metadata.name: d async for d in listing}
        version = listing.resourceVersion
        self.lists += 1
        gone = set(self._objects) - set(found)
        self._objects = {}
        for deployment in found.values():
            self._put(deployment)
        for name in gone:
            if self._on_change:
                self._on_change(name, None)
        self._synced, self._broken = True, None
        # A full relist every resync_s (with jitter, so that a thousand views do not relist at once).
        deadline = self._resync_s * random.uniform(0.9, 1.1)
        try:
            async with asyncio.timeout(deadline):
                async for kind, obj in self.client.watch(Deployment, namespace=self.namespace, labels=MANAGED,
                                                         resource_version=version,
                                                         server_timeout=int(min(deadline, 300))):
                    if kind == "DELETED":
                        self.forget(obj.metadata.name)
                    elif kind in ("ADDED", "MODIFIED"):
                        self._put(obj)
        except TimeoutError:
            return


class MemberViews:
    """The views of every member cluster, rebuilt when the cluster's client is."""

    def __init__(self, on_change: Callable[[str, str, Deployment | None], None] | None = None,
                 resync_s: float = RESYNC_S):
        self._views: dict[str, ClusterView] = {}
        self._on_change = on_change
        self._resync_s = resync_s

    def set_on_change(self, on_change: Callable[[str, str, Deployment | None], None]) -> None:
        self._on_change = on_change

    def view(self, cluster: str, client: AsyncClient, namespace: str) -> ClusterView:
        """The view for this cluster over this client (started on first use)."""
        view = self._views.get(cluster)
        if view is not None and view.client is client and view.namespace == namespace:
            return view
        if view is not None:
            asyncio.get_running_loop().create_task(view.stop())
        callback = None
        if self._on_change is not None:
            notify = self._on_change

            def callback(name: str, deployment: Deployment | None, _cluster=cluster) -> None:
                notify(_cluster, name, deployment)
        view = self._views[cluster] = ClusterView(cluster, client, namespace, callback, self._resync_s)
        view.start()
        return view

    def peek(self, cluster: str) -> ClusterView | None:
        return self._views.get(cluster)

    async def forget(self, cluster: str) -> None:
        view = self._views.pop(cluster, None)
        if view is not None:
            await view.stop()

    async def stop(self) -> None:
        for cluster in list(self._views):
            await self.forget(cluster)


class Applied:
    """What this process server-side applied to member clusters, by content: an object whose
    content it applied there before (and has not deleted since) is not sent again. A rollout
    then writes the Deployment and the new revision's ConfigMap, not the unchanged Service,
    and a revert writes only the Deployment while the restored ConfigMap is still there.
    Deployments are always sent (see `changed`).
    In memory: after a restart everything is applied once more. Entries expire after `ttl_s`,
    so whatever someone changed by hand behind Edgeline's back is put right on a later apply."""

    def __init__(self, ttl_s: float = 600.0):
        self._ttl = ttl_s
        self._seen: dict[tuple, tuple[str, float]] = {}

    @staticmethod
    def _key(client, obj: dict) -> tuple:
        meta = obj.get("metadata") or {}
        return id(client), meta.get("namespace"), obj.get("kind"), meta.get("name")

    @staticmethod
    def _digest(obj: dict) -> str:
        return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()

    def unchanged(self, client, obj: dict) -> bool:
        seen = self._seen.get(self._key(client, obj))
        return seen is not None and time.monotonic() - seen[1] < self._ttl and seen[0] == self._digest(obj)

    def changed(self, client, objects: list[dict]) -> list[dict]:
        """`objects` less those applied before. A Deployment always stays: the rollout applies
        one only when what it observed there differs, and the observation is the truth."""
        return [o for o in objects if o.get("kind") == "Deployment" or not self.unchanged(client, o)]

    def note(self, client, objects: list[dict]) -> None:
        now = time.monotonic()
        for obj in objects:
            self._seen[self._key(client, obj)] = (self._digest(obj), now)

    def forget(self, client, namespace: str, kind: str, name: str) -> None:
        self._seen.pop((id(client), namespace, kind, name), None)

    def forget_client(self, client) -> None:
        for key in [k for k in self._seen if k[0] == id(client)]:
            del self._seen[key]


APPLIED = Applied()
