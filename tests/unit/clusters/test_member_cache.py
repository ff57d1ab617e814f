"""The watched view of one member cluster (clusters.member_cache) over a scripted client:
list, then watch from the list's resourceVersion; honest when the watch breaks; relists."""

import asyncio

import httpx2 as httpx
import functools
from lightkube.resources.apps_v1 import Deployment

from edgeline.clusters.member_cache import ClusterView, MemberViews


def _dep(name, rv, revision="r1"):
    return Deployment.from_dict({"metadata": {"name": name, "namespace": "site", "resourceVersion": str(rv),
                                              "labels": {"edgeline.io/revision": revision}},
                                 "spec": {"selector": {"matchLabels": {"a": "b"}},
                                          "template": {"metadata": {"labels": {"edgeline.io/revision": revision}}}}})


class _Listing:
    def __init__(self, items, rv):
        self._items, self.resourceVersion = items, rv

    def __aiter__(self):
        async def gen():
            for item in self._items:
                yield item
        return gen()


class ScriptedCluster:
    """Answers list with what `objects` holds; each watch plays the next script of events,
    then either waits forever or raises what the script ends with."""

    def __init__(self, objects, watches):
        self.objects, self.watches = objects, list(watches)
        self.lists, self.watch_versions = 0, []

    def list(self, kind, namespace=None, labels=None):
        self.lists += 1
        return _Listing(list(self.objects.values()), str(100 + self.lists))

    def watch(self, kind, namespace=None, labels=None, resource_version=None, server_timeout=None):
        self.watch_versions.append(resource_version)
        script = self.watches.pop(0) if self.watches else []

        async def gen():
            for step in script:
                if isinstance(step, Exception):
                    raise step
                if step == "pause":
                    await asyncio.sleep(0.05)
                    continue
                yield step
            await asyncio.Event().wait()
        return gen()


def _sync(test):
    """Runs an async test on a fresh event loop (the unit tests need no asyncio plugin)."""
    @functools.wraps(test)
    def run():
        asyncio.run(test())
    return run


async def _until(check, timeout=2.0):
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.005)


@_sync
async def test_the_view_answers_from_the_list_then_from_watch_events():
    cluster = ScriptedCluster({"a": _dep("a", 5)}, [["pause", ("MODIFIED", _dep("a", 7, "r2")),
                                                     ("ADDED", _dep("b", 8)), ("DELETED", _dep("a", 9))]])
    changes = []
    view = ClusterView("site-1", cluster, "site", lambda name, d: changes.append((name, d is not None)))
    assert not view.get("a").fresh and "not synced" in view.get("a").why
    view.start()
    await _until(lambda: view.get("a").fresh)
    assert view.get("a").deployment.metadata.resourceVersion == "5"
    assert cluster.watch_versions == ["101"]        # the watch starts where the list ended
    await _until(lambda: view.get("b").deployment is not None and view.get("a").deployment is None)
    assert view.get("a").fresh                      # known to be absent, not unknown
    assert ("a", False) in changes and ("b", True) in changes
    await view.stop()


@_sync
async def test_a_broken_watch_is_not_trusted_until_a_fresh_list():
    cluster = ScriptedCluster({"a": _dep("a", 5)}, [["pause", httpx.ConnectError("connection refused")], []])
    view = ClusterView("site-1", cluster, "site")
    view.start()
    await _until(lambda: cluster.lists == 1 and view.get("a").fresh)
    await _until(lambda: not view.get("a").fresh)
    assert "broken" in view.get("a").why and "connection refused" in view.get("a").why
    cluster.objects["a"] = _dep("a", 20, "r3")      # changed while nobody watched
    await _until(lambda: view.get("a").fresh, timeout=5)
    assert cluster.lists == 2 and view.get("a").deployment.metadata.resourceVersion == "20"
    await view.stop()


@_sync
async def test_a_write_answer_is_not_undone_by_an_older_watch_event():
    cluster = ScriptedCluster({"a": _dep("a", 5)}, [["pause", "pause", ("MODIFIED", _dep("a", 6, "old"))]])
    view = ClusterView("site-1", cluster, "site")
    view.start()
    await _until(lambda: view.get("a").fresh)
    view.remember(_dep("a", 9, "reverted"))
    await asyncio.sleep(0.2)
    assert view.get("a").deployment.metadata.labels["edgeline.io/revision"] == "reverted"
    await view.stop()


@_sync
async def test_the_view_relists_after_its_resync_period():
    cluster = ScriptedCluster({"a": _dep("a", 5)}, [])
    view = ClusterView("site-1", cluster, "site", resync_s=0.05)
    view.start()
    await _until(lambda: cluster.lists >= 3)
    assert view.get("a").fresh
    await view.stop()


@_sync
async def test_one_view_per_cluster_rebuilt_with_its_client():
    first, second = ScriptedCluster({}, []), ScriptedCluster({}, [])
    seen = []
    views = MemberViews(lambda cluster, name, d: seen.append((cluster, name)))
    view = views.view("site-1", first, "site")
    assert views.view("site-1", first, "site") is view
    replaced = views.view("site-1", second, "site")
    assert replaced is not view and replaced.client is second
    second.objects["x"] = _dep("x", 1)
    await _until(lambda: replaced.get("x").fresh and replaced.get("x").deployment is not None)
    assert ("site-1", "x") in seen
    await views.stop()
    assert views.peek("site-1") is None


def test_the_view_keeps_what_the_rollout_reads_and_not_the_pod_spec():
    from edgeline.clusters.member_cache import slim
    from edgeline.clusters.workloads import _state_of
    full = Deployment.from_dict({
        "metadata": {"name": "a", "namespace": "site", "resourceVersion": "7", "generation": 3,
                     "labels": {"edgeline.io/deployment": "d"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"edgeline.io/revision": "r2"}},
                              "spec": {"containers": [{"name": "runtime", "image": "x"}]}}},
        "status": {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 1,
                   "conditions": [{"type": "Progressing", "status": "False", "message": "deadline exceeded"}]}})
    kept = slim(full)
    assert _state_of(kept) == _state_of(full)
    assert _state_of(kept).message == "deadline exceeded" and _state_of(kept).revision == "r2"
    assert kept.spec.template.spec is None and kept.metadata.labels == {"edgeline.io/deployment": "d"}


def test_what_was_applied_is_not_sent_again_but_a_deployment_always_is():
    from edgeline.clusters.member_cache import Applied
    applied, client, other = Applied(), object(), object()
    config = {"kind": "ConfigMap", "metadata": {"name": "rt-abc", "namespace": "site"}, "data": {"a": "1"}}
    service = {"kind": "Service", "metadata": {"name": "rt", "namespace": "site"}, "spec": {"ports": [1]}}
    deployment = {"kind": "Deployment", "metadata": {"name": "rt", "namespace": "site"}, "spec": {"replicas": 1}}
    assert applied.changed(client, [config, service, deployment]) == [config, service, deployment]
    applied.note(client, [config, service, deployment])
    assert applied.changed(client, [config, service, deployment]) == [deployment]
    assert applied.changed(other, [config]) == [config]                  # another cluster's client
    moved = {**service, "spec": {"ports": [2]}}
    assert applied.changed(client, [moved]) == [moved]                   # changed content goes out
    applied.forget(client, "site", "ConfigMap", "rt-abc")               # deleted by the clean-up
    assert applied.changed(client, [config]) == [config]
    expired = Applied(ttl_s=0.0)
    expired.note(client, [service])
    assert expired.changed(client, [service]) == [service]


@_sync
async def test_a_silent_watch_is_not_trusted_once_the_probe_fails():
    """A frozen API server keeps the watch's connection open and sends nothing: only the probe notices."""
    cluster = ScriptedCluster({"a": _dep("a", 5)}, [[], []])
    view = ClusterView("site-1", cluster, "site")
    view.start()
    await _until(lambda: view.get("a").fresh)
    view.suspect("Unreachable: no answer within 5s")
    assert not view.get("a").fresh and "no answer within 5s" in view.get("a").why
    await _until(lambda: view.get("a").fresh, timeout=5)        # answering again: listed afresh
    assert cluster.lists == 2
    await view.stop()
