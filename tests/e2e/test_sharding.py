"""Two operator replicas with two shards of EdgeClusters (chart: replicaCount 2, sharding.shards 2):
each replica holds one shard Lease and writes only to the clusters of its shard, while the
leader alone decides the rollout; an alert reverts the clusters of both shards; killing a
replica mid-rollout hands its shard to the other, and the rollout completes."""

from __future__ import annotations

import json
import re
import urllib.request
import uuid
import zlib

import pytest

from tests.e2e.conftest import (OPERATOR_NAMESPACE, STATE_DIR, OperatorProcess, apply_sample_models,
                                register_edge_cluster, wait_for)
from tests.helpers.artifact_server import serve
from tests.helpers.manifests import SAMPLE_MODELS, edge_deployment

LEADER_LEASE = "edgeline-operator-leader"
SHARDS = 2
REVISION = "edgeline.io/revision"


def shard_of(cluster: str) -> int:
    """The documented assignment (docs/install.md): crc32 of the EdgeCluster's name mod shards."""
    return zlib.crc32(cluster.encode()) % SHARDS


@pytest.fixture(scope="module")
def model_url():
    with serve(SAMPLE_MODELS) as url:
        yield url


def lease_holder(hub, name: str) -> str | None:
    found = hub.kubectl("get", "lease", name, "-n", OPERATOR_NAMESPACE, "-o", "json", check=False)
    return (json.loads(found.stdout).get("spec") or {}).get("holderIdentity") if found.returncode == 0 else None


def shard_holders(hub) -> list[str | None]:
    return [lease_holder(hub, f"edgeline-shard-{i}") for i in range(SHARDS)]


def scrape(op: OperatorProcess) -> str:
    try:
        with urllib.request.urlopen(op.metrics_url, timeout=5) as response:
            return response.read().decode()
    except OSError:
        return ""


def writes_by_cluster(op: OperatorProcess) -> dict[str, float]:
    """edgeline_cluster_writes_total{action="apply"} of this replica, per EdgeCluster."""
    found = {}
    for line in scrape(op).splitlines():
        match = re.match(r'edgeline_cluster_writes_total\{(.*)\} (\S+)', line)
        if match and 'action="apply"' in match.group(1):
            cluster = re.search(r'cluster="([^"]+)"', match.group(1)).group(1)
            found[cluster] = float(match.group(2))
    return found


class Replica:
    def __init__(self, hub, name: str):
        log = STATE_DIR / f"operator-{name}.log"
        log.unlink(missing_ok=True)
        self.name = name
        self.process = OperatorProcess(hub.kubeconfig, log, extra_env={
            "EDGELINE_LEADER_IDENTITY": name, "EDGELINE_SHARDS": str(SHARDS)})


@pytest.fixture
def replicas(hub, operator):
    """The session's operator stopped (it releases the leader Lease); two sharded replicas instead,
    each holding one shard once they have balanced."""
    operator.stop()
    started = [Replica(hub, "shard-replica-a"), Replica(hub, "shard-replica-b")]
    for replica in started:
        replica.process.start()
    names = {r.name for r in started}
    wait_for(lambda: lease_holder(hub, LEADER_LEASE) in names and sorted(h or "" for h in shard_holders(hub)) ==
             sorted(names), timeout=90, what=f"one shard each (holders: {shard_holders(hub)})")
    yield {r.name: r for r in started}
    for replica in started:
        replica.process.stop()         # releases what it holds
    operator.start()
    wait_for(lambda: lease_holder(hub, LEADER_LEASE) not in names, timeout=60,
             what="the session's operator leading again")


@pytest.fixture
def fleet(hub, edge_a, namespace):
    """Four EdgeClusters on edge-a, two in each shard."""
    tag = "s" + uuid.uuid4().hex[:5]
    names: list[str] = []
    per_shard = {i: 0 for i in range(SHARDS)}
    for index in range(1, 40):
        name = f"{tag}-line-{index}"
        if per_shard[shard_of(name)] < 2:
            per_shard[shard_of(name)] += 1
            names.append(name)
        if len(names) == 4:
            break
    for name in names:
        register_edge_cluster(hub, name, edge_a, {"edgeline.io/fleet": tag, "edgeline.io/line": name})
    for name in names:
        hub.kubectl("wait", f"edgecluster/{name}", "--for=condition=Ready", "--timeout=90s", timeout=120)
    yield tag, names
    hub.kubectl("delete", "edgedeployments", "--all", "-n", namespace, "--timeout=120s", check=False, timeout=150)
    for name in names:
        hub.kubectl("delete", "edgecluster", name, "--wait=false", check=False)


def _status(hub, namespace) -> dict:
    return hub.get("edgedeployment", "detector", "-n", namespace).get("status") or {}


def _wait(hub, namespace, check, what, timeout=180) -> dict:
    return wait_for(lambda: (s := _status(hub, namespace)) and check(s) and s, timeout=timeout,
                    what=f"{what} (last: {json.dumps(_status(hub, namespace))[:1500]})")


def running(edge, cluster: str) -> str | None:
    """The revision the runtime's Pod template carries on the member cluster."""
    found = edge.get("deployments", "-n", f"ns-{cluster}", "-l", "edgeline.io/deployment=detector")["items"]
    return found[0]["spec"]["template"]["metadata"]["labels"].get(REVISION) if found else None


def _clusters_of(holder: str, hub, names) -> set[str]:
    holders = shard_holders(hub)
    return {n for n in names if holders[shard_of(n)] == holder}


def test_each_replica_writes_only_to_its_shard_and_an_alert_reverts_both_shards(hub, edge_a, replicas, fleet,
                                                                                  namespace, model_url):
    tag, names = fleet
    leader = lease_holder(hub, LEADER_LEASE)
    follower = next(n for n in replicas if n != leader)
    apply_sample_models(hub, namespace, model_url)
    rollback = {"mode": "Automatic", "scope": "Deployment", "guardSeconds": 600,
                "alertMatchers": [{"name": "severity", "value": "critical"}]}
    hub.apply(edge_deployment(namespace, {"edgeline.io/fleet": tag}, "1.0.0", rollback=rollback))
    good = _wait(hub, namespace, lambda s: s.get("phase") == "Healthy" and s.get("ready") == "4/4",
                 "1.0.0 on all four clusters")["currentRevision"]
    hub.apply(edge_deployment(namespace, {"edgeline.io/fleet": tag}, "2.0.0", rollback=rollback))
    bad = _wait(hub, namespace, lambda s: s.get("phase") == "Healthy" and s["currentRevision"]["version"] == "2.0.0"
                and s.get("ready") == "4/4", "2.0.0 on all four clusters")["currentRevision"]
    assert {running(edge_a, n) for n in names} == {bad["revision"]}

    # Each replica wrote to the clusters of its own shard and to no other; together, to all four.
    for name, replica in replicas.items():
        own = _clusters_of(name, hub, names)
        assert len(own) == 2, f"{name} holds the shard of {own}"
        written = {c for c in writes_by_cluster(replica.process) if c in names}
        assert written == own, f"{name} wrote to {written}, its shard holds {own}"
    # The follower did its part through the hand-off: it reported its clusters in status.
    reports = _status(hub, namespace).get("shardReports") or {}
    assert {r["holder"] for r in reports.values()} == {follower}
    assert {c["name"] for r in reports.values() for c in r["clusters"]} == _clusters_of(follower, hub, names)

    # An alert (received by the follower) reverts every cluster of both shards.
    assert replicas[follower].process.post_runtime_alert(namespace, names[0], bad["revision"]) == 200
    status = _wait(hub, namespace, lambda s: s.get("phase") == "RolledBack" and s.get("ready") == "4/4",
                   "the rollback on all four clusters")
    assert status["currentRevision"]["revision"] == good["revision"] and len(status["rollbacks"]) == 1
    assert set(status["rollbacks"][0]["clusters"]) == set(names)
    assert {running(edge_a, n) for n in names} == {good["revision"]}
    assert not status.get("handoff"), "nothing is left to hand off once every cluster runs the revert"


def test_killing_a_replica_mid_rollout_moves_its_shard_and_the_rollout_completes(hub, edge_a, replicas, fleet,
                                                                                  namespace, model_url):
    tag, names = fleet
    leader = lease_holder(hub, LEADER_LEASE)
    victim = next(n for n in replicas if n != leader)
    victims_clusters = _clusters_of(victim, hub, names)
    # The pilot wave is one cluster of the leader's own shard; the victim's clusters come later.
    pilot = sorted(set(names) - victims_clusters)[0]
    apply_sample_models(hub, namespace, model_url, versions=("1.0.0",))
    hub.apply(edge_deployment(namespace, {"edgeline.io/fleet": tag}, "1.0.0", rollout={
        "waves": [{"name": "pilot", "selector": {"matchLabels": {"edgeline.io/line": pilot}}, "soakSeconds": 15}]}))
    _wait(hub, namespace, lambda s: (s.get("rollout") or {}).get("soakUntil"), "the pilot wave soaking")
    assert all(running(edge_a, n) is None for n in victims_clusters), "the victim's clusters wait for wave 2"

    replicas[victim].process.kill()
    wait_for(lambda: shard_holders(hub) == [leader] * SHARDS, timeout=90,
             what=f"{leader} taking {victim}'s shard (holders: {shard_holders(hub)})")
    status = _wait(hub, namespace, lambda s: s.get("phase") == "Healthy" and s.get("ready") == "4/4",
                   "the rollout completed after the kill")
    revision = status["currentRevision"]["revision"]
    assert {running(edge_a, n) for n in names} == {revision}
    # The survivor wrote to the victim's clusters itself; the victim never did (it was killed before wave 2).
    assert victims_clusters <= set(writes_by_cluster(replicas[leader].process))
    log = replicas[leader].process.log.read_text(errors="replace")
    assert re.search(rf"{leader} now holds shard {shard_of(next(iter(victims_clusters)))}", log)
    reasons = [e["reason"] for e in hub.events("detector", namespace)]
    assert reasons.count("RolloutComplete") == 1


def test_killing_the_leader_mid_rollout_the_other_replica_leads_holds_both_shards_and_completes(
        hub, edge_a, replicas, fleet, namespace, model_url):
    tag, names = fleet
    leader = lease_holder(hub, LEADER_LEASE)
    survivor = next(n for n in replicas if n != leader)
    leaders_clusters = _clusters_of(leader, hub, names)
    # The pilot wave is one cluster of the survivor's shard (written by it through the hand-off); the
    # leader's own clusters come in wave 2, after the kill.
    pilot = sorted(set(names) - leaders_clusters)[0]
    apply_sample_models(hub, namespace, model_url, versions=("1.0.0",))
    hub.apply(edge_deployment(namespace, {"edgeline.io/fleet": tag}, "1.0.0", rollout={
        "waves": [{"name": "pilot", "selector": {"matchLabels": {"edgeline.io/line": pilot}}, "soakSeconds": 15}]}))
    _wait(hub, namespace, lambda s: (s.get("rollout") or {}).get("soakUntil"), "the pilot wave soaking")
    assert writes_by_cluster(replicas[survivor].process).get(pilot), "the pilot was written by its shard's holder"
    assert all(running(edge_a, n) is None for n in leaders_clusters)

    replicas[leader].process.kill()
    wait_for(lambda: lease_holder(hub, LEADER_LEASE) == survivor and shard_holders(hub) == [survivor] * SHARDS,
             timeout=90, what=f"{survivor} leading and holding both shards (holders: {shard_holders(hub)})")
    status = _wait(hub, namespace, lambda s: s.get("phase") == "Healthy" and s.get("ready") == "4/4",
                   "the rollout completed by the new leader")
    assert {running(edge_a, n) for n in names} == {status["currentRevision"]["revision"]}
    assert leaders_clusters <= set(writes_by_cluster(replicas[survivor].process))
    assert not status.get("handoff")
    reasons = [e["reason"] for e in hub.events("detector", namespace)]
    assert reasons.count("RolloutComplete") == 1
