"""Sharded operation (controllers.sharding): the hand-off between the EdgeDeployment's single
writer (the leader's rollout loop) and the holders of its clusters' shards.

- The leader observes and writes only the clusters whose shards it holds. For the others it
  reads what their holders reported (`status.shardReports[<shard>]`, each shard's entry
  written by its holder alone) and writes what `decide()` chose for them into
  `status.handoff` (written by the leader alone). decide() is level-triggered: it asks for the
  same write every tick until the cluster is seen running it, so a hand-off lost with a killed
  replica is simply carried out by the next holder.
- Every replica that does not lead runs `work`: each round it lists the EdgeDeployments,
  carries out the hand-offs for the clusters it holds (the same render and apply as the
  leader's own writes) and reports what those clusters run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time

from edgeline.api.edgedeployment import EdgeDeployment, EdgeDeploymentStatus, RevisionRef, VariantRef
from edgeline.clusters import workloads
from edgeline.clusters.connections import MemberClusters, hub_client
from edgeline.clusters.resources import RESOURCES, merge_patch, patch_status
from edgeline import metrics
from edgeline.controllers import alert_receipts, fast_revert
from edgeline.controllers import sharding as shard_leases
from edgeline.controllers.indexes import ClusterEntry, cluster_index
from edgeline.domain import sharding
from edgeline.domain.rollout import ActOutcome, Apply, Observation, Remove
from edgeline.settings import get_settings

log = logging.getLogger(__name__)
PLURAL = "edgedeployments"


def report_max_age_s() -> float:
    """A report older than this says nothing: twice the lease duration (its holder is gone or stuck)."""
    return 2.0 * get_settings().leader_lease_duration_s


# --- the leader's side ------------------------------------------------------------------------------

_applied_seen: dict[tuple[str, str], dict[str, float]] = {}


def remote_observations(status: dict, clusters, namespace: str, name: str
                        ) -> tuple[dict[str, Observation], dict[str, ActOutcome]]:
    """Observations of `clusters` (in shards this replica does not hold) as their holders reported
    them, and the outcomes of their writes that this deployment's loop has not seen yet."""
    shards = shard_leases.active()
    reports = status.get("shardReports") or {}
    now = time.time()
    seen = _applied_seen.setdefault((namespace, name), {})
    observations, outcomes = {}, {}
    for cluster in clusters:
        shard = shards.shard(cluster) if shards else 0
        report = reports.get(str(shard)) or {}
        entry = next((c for c in report.get("clusters") or [] if c.get("name") == cluster), None)
        observations[cluster] = sharding.reported_observation(cluster, entry, now, report_max_age_s(), shard)
        outcome = sharding.reported_outcome(cluster, entry)
        if outcome is not None and seen.get(cluster) != outcome.at:
            seen[cluster] = outcome.at
            outcomes[cluster] = outcome
    return observations, outcomes


def handoff(actions) -> list[dict] | None:
    """The status.handoff entries for actions on clusters in shards this replica does not hold."""
    if shard_leases.active() is None:
        return None
    out = []
    for action in actions:
        if isinstance(action, Apply):
            out.append({"cluster": action.cluster, "action": "Apply", "revision": action.revision.dump(),
                        **({"variant": action.variant.dump()} if action.variant is not None else {}),
                        **({"shadow": action.shadow.dump()} if action.shadow is not None else {}),
                        **({"shadowVariant": action.shadow_variant.dump()}
                           if action.shadow_variant is not None else {})})
        else:
            out.append({"cluster": action.cluster, "action": "Remove"})
    return sorted(out, key=lambda h: h["cluster"]) or None


def forget(namespace: str, name: str) -> None:
    _applied_seen.pop((namespace, name), None)


# --- the side of a replica that does not lead ---------------------------------------------------------

async def work(shards: shard_leases.Shards, members: MemberClusters) -> None:
    """Until cancelled: hand-offs carried out and clusters reported, every shard_work_interval_s."""
    from edgeline.controllers.edgedeployment import _execute, _observe

    outcomes: dict[tuple[str, str, str], ActOutcome] = {}
    reported: dict[tuple[str, str, int], tuple[float, list]] = {}
    reverted: set[tuple[str, str, str]] = set()
    while True:
        try:
            await _round(shards, members, _execute, _observe, outcomes, reported, reverted)
        except Exception:  # noqa: BLE001 - a bad round must not end the worker; the next one retries
            log.exception("shard work round failed; retrying")
        await asyncio.sleep(get_settings().shard_work_interval_s)


async def _round(shards, members, execute, observe, outcomes, reported, reverted) -> None:
    held = set(shards.held())
    if not held:
        return
    client = hub_client()
    known = {}
    async for obj in client.list(RESOURCES["edgeclusters"]):
        body = obj.to_dict()
        meta = body["metadata"]
        if shards.shard(meta["name"]) in held:
            known.update(cluster_index(name=meta["name"], meta=meta, spec=body.get("spec") or {},
                                       status=body.get("status") or {}))
    deployments = [obj.to_dict() async for obj in client.list(RESOURCES[PLURAL], namespace="*")]
    await asyncio.gather(*(_one(d, shards, held, known, members, execute, observe, outcomes, reported, reverted)
                           for d in deployments if not d["metadata"].get("deletionTimestamp")))


async def _one(body: dict, shards, held: set[int], known: dict[str, ClusterEntry], members, execute, observe,
               outcomes, reported, reverted) -> None:
    meta, status = body["metadata"], body.get("status") or {}
    namespace, name = meta["namespace"], meta["name"]
    handed = [h for h in status.get("handoff") or [] if shards.holds(h["cluster"])]
    clusters = {c["name"] for c in status.get("clusters") or []} | {h["cluster"] for h in handed}
    mine = sorted(c for c in clusters if shards.holds(c))
    if not mine and not any(str(i) in (status.get("shardReports") or {}) for i in held):
        return
    owner = workloads.RuntimeOwner(namespace, name, meta["uid"])
    observations = dict(await asyncio.gather(*(observe(members, known.get(c), c, owner) for c in mine)))
    receipts = alert_receipts.receipts(meta)
    if receipts:
        # An alert the leader has not recorded yet: its revert, written now to the clusters we hold
        # (controllers.fast_revert, as the leader does for its own), and no hand-off meanwhile: the
        # leader's next tick hands off what the rollback decides.
        fresh = [r for r in receipts if (namespace, name, r.key) not in reverted]
        if fresh:
            reverted.update((namespace, name, r.key) for r in fresh)
            done = await fast_revert.revert_now(
                members, {c: known[c] for c in mine if c in known}, EdgeDeployment.model_validate({**body, "status": {}}),
                EdgeDeploymentStatus.model_validate(status), [r.alert for r in fresh], namespace, name,
                dt.datetime.now(dt.timezone.utc), get_settings().revert_concurrency, meta["uid"])
            for cluster, outcome in done.items():
                outcomes[(namespace, name, cluster)] = outcome
                metrics.CLUSTER_WRITES.labels(cluster=cluster, action="revert").inc()
            observations.update(dict(await asyncio.gather(*(observe(members, known.get(c), c, owner)
                                                            for c in done))))
        handed = []
    if handed:
        ed = EdgeDeployment.model_validate({**body, "status": {}})
        actions = [Apply(h["cluster"], RevisionRef.model_validate(h["revision"]),
                         VariantRef.model_validate(h["variant"]) if h.get("variant") else None,
                         # A candidate in shadow travels with it (else the holder would detach it).
                         RevisionRef.model_validate(h["shadow"]) if h.get("shadow") else None,
                         VariantRef.model_validate(h["shadowVariant"]) if h.get("shadowVariant") else None)
                   if h["action"] == "Apply" else Remove(h["cluster"]) for h in handed]
        done = await execute(members, known, actions, owner, ed, observations)
        for cluster, outcome in done.items():
            outcomes[(namespace, name, cluster)] = outcome
            if outcome.error:
                log.warning("%s/%s on %s: %s", namespace, name, cluster, outcome.error)
        # What the write came to is reported at once (the leader records a revert's time from it).
        observations.update(dict(await asyncio.gather(*(observe(members, known.get(c), c, owner) for c in done))))
    now = time.time()
    patch = {}
    for shard in sorted(held):
        entries = [sharding.report_of(observations[c], outcomes.get((namespace, name, c)), now)
                   for c in mine if shards.shard(c) == shard]
        old = (status.get("shardReports") or {}).get(str(shard))
        if not entries and old is None:
            continue
        content = [{k: v for k, v in e.items() if k != "observedAt"} for e in entries]
        last = reported.get((namespace, name, shard))
        if last is not None and last[1] == content and now - last[0] < report_max_age_s() / 4 and \
                (old or {}).get("holder") == shards.me:
            continue
        patch[str(shard)] = {"holder": shards.me, "clusters": entries}
        reported[(namespace, name, shard)] = (now, content)
    if patch:
        before = {k: (status.get("shardReports") or {}).get(k) or {} for k in patch}
        await patch_status(PLURAL, name, namespace, {"shardReports": merge_patch(before, patch)})


def status_with_handoff(status: EdgeDeploymentStatus, entries: list[dict] | None) -> dict:
    """The status the leader writes: decide()'s, plus the hand-off of this tick."""
    dumped = status.dump()
    if entries:
        dumped["handoff"] = entries
    else:
        dumped.pop("handoff", None)
    return dumped
