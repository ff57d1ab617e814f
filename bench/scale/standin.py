"""SIMULATION: stand-in member clusters for the scale bench, many in one process.

Not Kubernetes. One aiohttp server answers, under /c/<id>/, the requests Edgeline sends to a
member cluster's API server for the objects it uses: GET /version, list Nodes, server-side
apply (PATCH application/apply-patch+yaml) of Namespaces, ConfigMaps, Services and
Deployments, get / list (equality label selectors) / watch (from a resourceVersion, with
replay) / delete, an empty list of Pods, and a ReplicaSet per Pod template of a Deployment
(the newest three kept, as a Deployment with revisionHistoryLimit 2 keeps them). A Deployment reports itself ready
`--ready-delay` seconds after its spec changes, as a controller-manager and kubelet would
with a Pod that starts at once. Nothing is persisted, nothing is validated beyond JSON.

It exists to see past what 2 cores can host: real member clusters cost ~550 MB and a share
of the CPU each; this costs a few kB per cluster. It counts requests per cluster and verb,
and keeps for each Deployment the time its Pod-template revision last changed (the edge
side of a revert).

GET /stats -> {"requests": {verb: n}, "clusters": n, "watches": n}
GET /stats/revision?label=<revision>&prefix=<name prefix> -> {"clusters": n, "first": epoch, "last": epoch}
  (over the Deployments whose template runs <revision> now: when each got it)
Run: python bench/scale/standin.py --port 18080
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import time

import yaml
from aiohttp import web

REVISION = "edgeline.io/revision"
PLURALS = {"namespaces": ("v1", "Namespace"), "configmaps": ("v1", "ConfigMap"), "services": ("v1", "Service"),
           "deployments": ("apps/v1", "Deployment"), "pods": ("v1", "Pod"), "replicasets": ("apps/v1", "ReplicaSet")}
HISTORY = 500


class Cluster:
    def __init__(self, ready_delay: float):
        self.version = 0
        self.objects: dict[tuple[str, str, str], dict] = {}      # (plural, namespace, name)
        self.events: collections.deque = collections.deque(maxlen=HISTORY)   # (rv, plural, ns, type, obj)
        self.watchers: list[tuple[str, str | None, dict, asyncio.Queue]] = []
        self.ready_delay = ready_delay
        self.revision_at: dict[str, tuple[str | None, float]] = {}   # Deployment -> (template revision, since)

    def _bump(self, obj: dict) -> dict:
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        return obj

    def _emit(self, plural: str, namespace: str, kind: str, obj: dict) -> None:
        self.events.append((self.version, plural, namespace, kind, obj))
        for w_plural, w_ns, selector, queue in self.watchers:
            if w_plural == plural and (w_ns is None or w_ns == namespace) and _matches(obj, selector):
                queue.put_nowait((kind, obj))

    def apply(self, plural: str, namespace: str, name: str, body: dict) -> dict:
        key = (plural, namespace, name)
        old = self.objects.get(key)
        api_version, kind = PLURALS[plural]
        obj = {"apiVersion": api_version, "kind": kind, **{k: v for k, v in body.items() if k != "status"}}
        meta = dict(body.get("metadata") or {})
        meta.update(name=name, uid=(old or {}).get("metadata", {}).get("uid") or f"uid-{name}-{self.version}",
                    creationTimestamp=(old or {}).get("metadata", {}).get("creationTimestamp") or _now())
        if namespace:
            meta["namespace"] = namespace
        generation = (old or {}).get("metadata", {}).get("generation", 0)
        changed = old is None or old.get("spec") != obj.get("spec")
        meta["generation"] = generation + 1 if changed else generation
        obj["metadata"] = meta
        if plural == "deployments":
            obj["status"] = (old or {}).get("status") or {"observedGeneration": 0}
            revision = (((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}).get(
                "labels", {}).get(REVISION)
            if self.revision_at.get(name, (None,))[0] != revision:
                self.revision_at[name] = (revision, time.time())
            if changed:
                asyncio.get_running_loop().call_later(self.ready_delay, self._ready, key, meta["generation"])
                self._replica_set(namespace, name, meta["uid"], obj["spec"])
        if old is not None and not changed and old.get("metadata", {}).get("labels") == meta.get("labels"):
            return old
        self.objects[key] = self._bump(obj)
        self._emit(plural, namespace, "MODIFIED" if old else "ADDED", obj)
        return obj

    def _replica_set(self, namespace: str, name: str, uid: str, spec: dict) -> None:
        """As the Deployment controller: one ReplicaSet per Pod template, the newest three kept
        (revisionHistoryLimit 2), so Edgeline's clean-up keeps the ConfigMaps they name."""
        template = spec.get("template") or {}
        rs_name = f"{name}-{abs(hash(json.dumps(template, sort_keys=True))) % 10**10}"
        owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": uid, "controller": True}
        self.objects.pop(("replicasets", namespace, rs_name), None)
        self.objects[("replicasets", namespace, rs_name)] = self._bump({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": rs_name, "namespace": namespace, "ownerReferences": [owner],
                         "labels": dict((spec.get("selector") or {}).get("matchLabels") or {})},
            "spec": {"selector": spec.get("selector") or {}, "template": template}})
        mine = [k for k, o in self.objects.items() if k[0] == "replicasets" and k[1] == namespace
                and o["metadata"]["ownerReferences"][0]["uid"] == uid]
        for old in mine[:-3]:
            del self.objects[old]

    def _ready(self, key, generation: int) -> None:
        obj = self.objects.get(key)
        if obj is None or obj["metadata"]["generation"] != generation:
            return
        replicas = (obj.get("spec") or {}).get("replicas", 1)
        obj = {**obj, "metadata": dict(obj["metadata"]),
               "status": {"observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas,
                          "readyReplicas": replicas, "availableReplicas": replicas,
                          "conditions": [{"type": "Available", "status": "True"}]}}
        self.objects[key] = self._bump(obj)
        self._emit(key[0], key[1], "MODIFIED", obj)

    def delete(self, plural: str, namespace: str, name: str) -> dict | None:
        obj = self.objects.pop((plural, namespace, name), None)
        if obj is not None:
            self.version += 1
            self._emit(plural, namespace, "DELETED", obj)
        return obj

    def listing(self, plural: str, namespace: str | None, selector: dict) -> list[dict]:
        return [o for (p, ns, _), o in self.objects.items()
                if p == plural and (namespace is None or ns == namespace) and _matches(o, selector)]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _selector(text: str | None) -> dict:
    out = {}
    for part in (text or "").split(","):
        if "=" in part:
            key, value = part.split("=", 1)
            out[key.rstrip("=").rstrip("!")] = value.lstrip("=")
    return out


def _matches(obj: dict, selector: dict) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def _status(code: int, reason: str, message: str) -> web.Response:
    return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                              "reason": reason, "code": code}, status=code)


NODE = {"metadata": {"name": "standin-node", "labels": {"kubernetes.io/arch": "amd64"}},
        "status": {"allocatable": {"cpu": "4", "memory": "8Gi"},
                   "nodeInfo": {"architecture": "amd64", "kubeletVersion": "v1.35.0-standin", "bootID": "b",
                                "containerRuntimeVersion": "standin", "kernelVersion": "6", "kubeProxyVersion": "",
                                "machineID": "m", "operatingSystem": "linux", "osImage": "standin",
                                "systemUUID": "u"},
                   "conditions": [{"type": "Ready", "status": "True"}]}}


class StandIn:
    def __init__(self, ready_delay: float):
        self.clusters: dict[str, Cluster] = collections.defaultdict(lambda: Cluster(ready_delay))
        self.requests: collections.Counter = collections.Counter()
        self.watches = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 2**20)
        app.router.add_get("/stats", self.stats)
        app.router.add_get("/stats/revision", self.revision_stats)
        app.router.add_route("*", "/c/{cluster}/{path:.*}", self.handle)
        return app

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({"requests": dict(self.requests), "clusters": len(self.clusters),
                                  "watches": self.watches})

    async def revision_stats(self, request: web.Request) -> web.Response:
        label, prefix = request.query["label"], request.query.get("prefix", "")
        times = [t for c in self.clusters.values() for name, (rev, t) in c.revision_at.items()
                 if rev == label and name.startswith(prefix)]
        return web.json_response({"clusters": len(times), "first": min(times, default=None),
                                  "last": max(times, default=None)})

    async def handle(self, request: web.Request) -> web.StreamResponse:
        cluster = self.clusters[request.match_info["cluster"]]
        parts = [p for p in request.match_info["path"].split("/") if p]
        watch = request.query.get("watch") in ("true", "1")
        verb = {"GET": "watch" if watch else "get", "PATCH": "apply", "DELETE": "delete"}.get(request.method,
                                                                                           request.method.lower())
        self.requests[verb] += 1
        if parts == ["version"]:
            return web.json_response({"major": "1", "minor": "35", "gitVersion": "v1.35.0-standin"})
        # /api/v1/... or /apis/<group>/<version>/...
        rest = parts[2:] if parts[:1] == ["api"] else parts[3:] if parts[:1] == ["apis"] else None
        if rest is None:
            return _status(404, "NotFound", "the stand-in serves only what Edgeline uses")
        if rest == ["nodes"]:
            return web.json_response({"kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": [NODE]})
        namespace = None
        if rest[:1] == ["namespaces"] and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        elif rest[:1] == ["namespaces"]:
            rest = ["namespaces", *rest[1:]]
            namespace = ""
        plural, name = rest[0], (rest[1] if len(rest) > 1 else None)
        if plural not in PLURALS:
            return _status(404, "NotFound", f"{plural} is not served by the stand-in")
        if len(rest) > 2 and rest[2] == "log":
            return web.Response(text="")
        namespace = namespace if plural != "namespaces" else ""
        if request.method == "PATCH" and name:
            raw = await request.read()
            try:
                body = json.loads(raw)
            except ValueError:
                body = yaml.safe_load(raw)
            return web.json_response(cluster.apply(plural, namespace or "", name, body))
        if request.method == "DELETE" and name:
            gone = cluster.delete(plural, namespace or "", name)
            return web.json_response(gone) if gone else _status(404, "NotFound", f"{plural} {name} not found")
        if request.method == "GET" and name:
            obj = cluster.objects.get((plural, namespace or "", name))
            return web.json_response(obj) if obj else _status(404, "NotFound", f'{plural} "{name}" not found')
        if request.method == "GET" and watch:
            return await self._watch(request, cluster, plural, namespace)
        if request.method == "GET":
            api_version, kind = PLURALS[plural]
            items = cluster.listing(plural, namespace, _selector(request.query.get("labelSelector")))
            return web.json_response({"kind": f"{kind}List", "apiVersion": api_version,
                                      "metadata": {"resourceVersion": str(cluster.version)}, "items": items})
        return _status(405, "MethodNotAllowed", request.method)

    async def _watch(self, request, cluster: Cluster, plural: str, namespace: str | None) -> web.StreamResponse:
        selector = _selector(request.query.get("labelSelector"))
        since = int(request.query.get("resourceVersion") or 0)
        timeout = float(request.query.get("timeoutSeconds") or 300)
        queue: asyncio.Queue = asyncio.Queue()
        if since and cluster.events and cluster.events[0][0] > since + 1 and len(cluster.events) == HISTORY:
            return _status(410, "Expired", "too old resource version")
        for rv, p, ns, kind, obj in list(cluster.events):
            if rv > since and p == plural and (namespace is None or ns == namespace) and _matches(obj, selector):
                queue.put_nowait((kind, obj))
        watcher = (plural, namespace, selector, queue)
        cluster.watchers.append(watcher)
        self.watches += 1
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    kind, obj = await queue.get()
                    await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
        except (TimeoutError, ConnectionResetError):
            pass
        finally:
            cluster.watchers.remove(watcher)
            self.watches -= 1
        return response


def kubeconfig(port: int, cluster: str) -> dict:
    """A kubeconfig that points a client at stand-in cluster `cluster`."""
    return {"apiVersion": "v1", "kind": "Config", "current-context": "standin",
            "clusters": [{"name": "standin", "cluster": {"server": f"http://127.0.0.1:{port}/c/{cluster}"}}],
            "users": [{"name": "standin", "user": {"token": "standin"}}],
            "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "standin"}}]}


def main() -> None:
    parser = argparse.ArgumentParser(description="SIMULATION: stand-in member clusters")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ready-delay", type=float, default=0.5)
    args = parser.parse_args()
    web.run_app(StandIn(args.ready_delay).app(), host="127.0.0.1", port=args.port, print=None,
                access_log=None, backlog=4096)


if __name__ == "__main__":
    main()
