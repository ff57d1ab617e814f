"""EdgeCluster: probe each registered cluster and tell the truth about it in status.

A timer per EdgeCluster reads its kubeconfig Secret (through edgeline.clusters), asks
the cluster for its version and nodes with a deadline, and writes what it saw. The
judgement (Reachable, Stale, Ready) is the pure `domain.cluster_health.assess`.
"""

from __future__ import annotations

import datetime as dt
import logging

import kopf

from edgeline import GROUP, VERSION, timestamps
from edgeline.api.conditions import set_condition
from edgeline.api.edgecluster import EdgeCluster
from edgeline.clusters import events, pull
from edgeline.clusters.connections import ConnectionProblem, MemberClusters, SecretRef, hub_client
from edgeline.clusters.probe import ClusterFacts, probe
from edgeline.controllers import loop
from edgeline.domain.cluster_health import assess
from edgeline.domain.quantities import format_bytes
from edgeline.render.runtime import LABEL_DEPLOYMENT, LABEL_NAMESPACE
from edgeline.settings import get_settings

PLURAL = "edgeclusters"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


@kopf.on.startup()
async def _member_clusters(memo: kopf.Memo, **_) -> None:
    memo.member_clusters = MemberClusters(request_timeout_s=get_settings().cluster_probe_timeout_s)
    # A change the watch of a member cluster sees wakes the EdgeDeployment it belongs to.
    memo.member_clusters.views.set_on_change(_wake_owner)


def _wake_owner(cluster: str, name: str, deployment) -> None:
    labels = (deployment.metadata.labels or {}) if deployment is not None else {}
    owner, namespace = labels.get(LABEL_DEPLOYMENT), labels.get(LABEL_NAMESPACE)
    if owner and namespace:
        loop.wake("edgedeployments", namespace, owner)


@kopf.timer(GROUP, VERSION, PLURAL, interval=get_settings().cluster_probe_interval_s, sharp=True)
async def probe_cluster(body: kopf.Body, name: str, memo: kopf.Memo, patch: kopf.Patch,
                        logger: logging.Logger, **_) -> None:
    settings = get_settings()
    cluster = EdgeCluster.model_validate(dict(body))
    status = dict(body.get("status") or {})
    now = _now()
    facts: ClusterFacts | None = None
    problem: ConnectionProblem | None = None
    heard: dt.datetime | None = None      # pull: when the site's agent last renewed its Lease
    if cluster.spec.connection.mode == "pull":
        # The hub never calls a pull site: its Lease and report say everything (clusters.pull).
        facts, problem, heard = await _probe_pull_site(name, cluster.spec.stale_after_seconds, now, memo)
    else:
        ref = cluster.spec.connection.kubeconfig_secret_ref
        try:
            if ref is None:
                raise ConnectionProblem("KubeconfigSecretRefMissing", "a push cluster needs "
                                        "connection.kubeconfigSecretRef")
            secret = SecretRef(settings.namespace, ref.name, ref.key)
            # The Secret is read again often enough that a rotated kubeconfig shows well within the
            # cluster's stale time, not on every probe: a thousand probes every 10 s were 100 hub reads a second.
            client = await memo.member_clusters.client_for(
                name, secret, cluster.spec.target_namespace,
                max_age_s=min(30.0, cluster.spec.stale_after_seconds / 4))
            facts = await probe(client, settings.cluster_probe_timeout_s)
        except ConnectionProblem as exc:
            problem = exc
            view = memo.member_clusters.views.peek(name)
            if view is not None:     # its watch may be silent rather than broken (a frozen server)
                view.suspect(f"{exc.reason}: {exc.message}")

    health = assess(
        probe_ok=facts is not None,
        problem_reason=problem.reason if problem else None,
        problem_message=problem.message if problem else None,
        ready_nodes=facts.ready_nodes if facts else 0,
        node_count=facts.node_count if facts else 0,
        previous_heartbeat=heard if cluster.spec.connection.mode == "pull"
        else timestamps.parse(status.get("lastHeartbeat")),
        now=now,
        stale_after=dt.timedelta(seconds=cluster.spec.stale_after_seconds),
    )

    new = {"observedGeneration": body.metadata.get("generation"), "reachable": health.reachable,
           "stale": health.stale}
    if facts:
        new.update(
            kubernetesVersion=facts.kubernetes_version,
            distribution=facts.distribution,
            nodeCount=facts.node_count,
            architectures=list(facts.architectures),
            allocatable={
                "cpu": f"{facts.cpu_millicores // 1000}" if facts.cpu_millicores % 1000 == 0
                else f"{facts.cpu_millicores}m",
                "memory": format_bytes(facts.memory_bytes),
                "gpu": facts.gpus,
            },
        )
        previous = timestamps.parse(status.get("lastHeartbeat"))
        # Rewriting the heartbeat on every probe would cost a status write per cluster per
        # interval; it moves when something changed or it is getting old.
        changed = any(status.get(k) != v for k, v in new.items())
        if changed or previous is None or (now - previous).total_seconds() >= settings.cluster_heartbeat_write_s:
            new["lastHeartbeat"] = timestamps.format(now)
    if heard is not None and cluster.spec.connection.mode == "pull":
        # The site's own renewal, not the hub's look; written as seldom as a push cluster's heartbeat.
        previous = timestamps.parse(status.get("lastHeartbeat"))
        changed = any(status.get(k) != v for k, v in new.items() if k != "lastHeartbeat")
        if changed or previous is None or (heard - previous).total_seconds() >= settings.cluster_heartbeat_write_s:
            new["lastHeartbeat"] = timestamps.format(heard)
        else:
            new.pop("lastHeartbeat", None)

    conditions = list(status.get("conditions") or [])
    generation = body.metadata.get("generation")
    for ctype, verdict in (("Reachable", health.reachable_condition), ("Stale", health.stale_condition),
                           ("Ready", health.ready_condition)):
        conditions = set_condition(conditions, ctype, verdict.status, verdict.reason, verdict.message,
                                   generation=generation, now=now)
    new["phase"] = "Ready" if health.ready_condition.status == "True" else (
        "Stale" if health.stale else "Unreachable" if not health.reachable else "NotReady")
    new["conditions"] = conditions

    # One Event per change of verdict, not per probe.
    before = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    verdict = health.ready_condition
    if (before.get("status"), before.get("reason")) != (verdict.status, verdict.reason):
        post = events.normal if verdict.status == "True" else events.warning
        await post(body, verdict.reason, verdict.message)
    if health.stale and not status.get("stale") and status.get("lastHeartbeat"):
        await events.warning(body, "Stale", health.stale_condition.message)

    for key, value in new.items():
        if status.get(key) != value:
            patch.status[key] = value


async def _probe_pull_site(name: str, stale_after: int, now: dt.datetime, memo: kopf.Memo):
    prepared = memo.setdefault("pull_sites_prepared", set())
    if name not in prepared:
        try:
            await pull.ensure_site(hub_client(), name)
            prepared.add(name)
        except pull.PullProblem as exc:
            return None, ConnectionProblem("HubError", str(exc)), None
    return await pull.probe_site(hub_client(), name, stale_after, now)


@kopf.on.delete(GROUP, VERSION, PLURAL, optional=True)
async def forget_cluster(name: str, memo: kopf.Memo, **_) -> None:
    await memo.member_clusters.forget(name)


@kopf.on.cleanup()
async def stop_member_views(memo: kopf.Memo, **_) -> None:
    members = memo.get("member_clusters")
    if members is not None:
        await members.views.stop()
