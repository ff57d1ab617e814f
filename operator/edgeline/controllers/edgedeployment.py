"""EdgeDeployment: one daemon per object runs the rollout loop.

Each tick: resolve the model, place the deployment on EdgeClusters, split them into waves,
observe every cluster concurrently (each call with a deadline), let the pure
`domain.rollout.decide` choose the next step (status, conditions and phase included), carry
out its actions, and write that status once. Everything the next tick needs is in status,
so a restarted operator simply continues; what the actions came to (an apply that failed,
when a revert reached a cluster) is the next tick's observation.
The daemon ticks fast while a rollout moves and slowly when all is quiet; any change to
the object wakes it at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass

import kopf

from edgeline import GROUP, VERSION, metrics
from edgeline.api.edgedeployment import EdgeDeployment, EdgeDeploymentStatus, RevisionRef
from edgeline.api.mlmodel import ReferenceProfileRef
from edgeline.clusters import events, workloads
from edgeline.clusters.connections import ConnectionProblem, MemberClusters
from edgeline.clusters.resources import merge_patch, patch_status
from edgeline.controllers import alert_receipts, fast_revert, loop, pull_sites, shard_work, sharding
from edgeline.controllers import analysis as checks
from edgeline.controllers import shadow as shadow_reads
from edgeline.controllers.indexes import ClusterEntry, client_for, hub_namespace, known_clusters
from edgeline.controllers.line_consent import line_facts
from edgeline.domain import authors as spec_authors
from edgeline.domain import shadow
from edgeline.domain.analysis import Context
from edgeline.domain.approval_policy import effective_policy
from edgeline.domain.approval_status import counted_records, gate
from edgeline.domain.approvals import records_for
from edgeline.domain.deployment_conditions import Verdict
from edgeline.domain.model_choice import choose
from edgeline.domain.placement import place
from edgeline.domain.revisions import revision_of
from edgeline.domain.rollout import ActOutcome, Apply, Inputs, Observation, Remove, decide
from edgeline.domain.sharding import split as split_actions
from edgeline.domain.runtime_health import classify
from edgeline.domain.waves import plan_waves
from edgeline.domain.tenancy import effective_level
from edgeline.render.runtime import Target, object_name, render
from edgeline.settings import get_settings

PLURAL = "edgedeployments"
PAUSE = "edgeline.io/pause"
ROLLBACK_TO = "edgeline.io/rollback-to"
ACTIVE = ("Progressing", "Pending")


@kopf.on.event(GROUP, VERSION, PLURAL)
def wake(memo: kopf.Memo, **_) -> None:
    loop.wake_on_event(memo)


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=5.0)
async def run_rollout(body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, logger: logging.Logger,
                      cluster_index: kopf.Index, model_index: kopf.Index, check_template_index: kopf.Index,
                      namespace_index: kopf.Index, approval_policy_index: kopf.Index,
                      approval_index: kopf.Index, **_) -> None:
    settings = get_settings()
    approvals = ApprovalInputs(approval_policy_index, namespace_index, approval_index)
    # What the last tick's actions came to: the next tick's observation (in memory; after a
    # restart the clusters are simply observed and the actions repeated where needed).
    outcomes: dict[str, ActOutcome] = {}
    namespace, name = body.metadata["namespace"], body.metadata["name"]
    fast = fast_revert.path(namespace, name)

    async def revert_at_once(alerts, written=None) -> None:
        """The receiver's fast path: the alert's revert, written now (controllers.fast_revert)."""
        started = time.time()
        async with fast.lock:
            locked = time.time()
            snapshot = fast_revert.snapshot_of(written, EdgeDeployment.KIND) if written else \
                await loop.fresh_snapshot(PLURAL, EdgeDeployment.KIND, body)
            if snapshot is not None:
                read = time.time()
                written = await fast_revert.revert_now(
                    # Sharded: only the clusters whose shards this replica holds (the rest by hand-off).
                    memo.member_clusters, sharding.held_only(known_clusters(cluster_index)),
                    EdgeDeployment.model_validate(snapshot),
                    EdgeDeploymentStatus.model_validate(snapshot["status"]), alerts, namespace, name,
                    dt.datetime.now(dt.timezone.utc), settings.revert_concurrency, snapshot["metadata"]["uid"])
                fast.outcomes.update(written)
                received = min(a.received_at for a in alerts)
                logger.info("fast revert: %d cluster(s) written %.0f ms after receipt (to the start %.0f ms, "
                            "waiting for the lock %.0f ms, reading the object %.0f ms, writing %.0f ms)",
                            len(written), (time.time() - received) * 1000, (started - received) * 1000,
                            (locked - started) * 1000, (read - locked) * 1000, (time.time() - read) * 1000)
    fast.runner = revert_at_once
    try:
        await loop.run(PLURAL, body, stopped, logger,
                       lambda: reconcile(body, memo.member_clusters, cluster_index, model_index, logger, outcomes,
                                         check_template_index, fast, namespace_index, approvals),
                       # Look again soon after an apply, to report what it came to (a revert's latency).
                       lambda phase: phase in ACTIVE or any(o.revision and not o.error for o in outcomes.values()),
                       settings.rollout_active_interval_s,
                       settings.rollout_idle_interval_s, memo)
    finally:
        fast_revert.forget(namespace, name)
        shard_work.forget(namespace, name)


async def reconcile(body: kopf.Body, members: MemberClusters, cluster_index: kopf.Index,
                    model_index: kopf.Index, logger: logging.Logger,
                    outcomes: dict[str, ActOutcome] | None = None,
                    check_template_index: kopf.Index | None = None,
                    fast: fast_revert.FastPath | None = None,
                    namespace_index: kopf.Index | None = None,
                    approvals: ApprovalInputs | None = None) -> str | None:
    """observe -> decide -> act -> write status once. `outcomes` carries what this tick's
    actions came to into the next tick; `fast`, what the revert fast path wrote."""
    outcomes = {} if outcomes is None else outcomes
    fast = fast or fast_revert.FastPath()
    await fast_revert.settled(fast)
    snapshot = await loop.fresh_snapshot(PLURAL, EdgeDeployment.KIND, body)
    if snapshot is None:
        return None
    ed = EdgeDeployment.model_validate(snapshot)
    meta = snapshot["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    owner = workloads.RuntimeOwner(namespace, name, meta["uid"])
    annotations = meta.get("annotations") or {}
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    old_status = EdgeDeploymentStatus.model_validate(snapshot["status"])

    # --- an alert's revert first, to every affected cluster at once (fast path), then the full tick
    receipts = alert_receipts.receipts(meta)
    if any(r.key not in fast.handled for r in receipts):     # e.g. received before a restart
        async with fast.lock:
            fast.outcomes.update(await fast_revert.revert_now(
                members, sharding.held_only(known_clusters(cluster_index)), ed, old_status, [r.alert for r in receipts], namespace,
                name, now, get_settings().revert_concurrency, meta["uid"]))
        fast.handled.update(r.key for r in receipts)

    # --- observe
    choice = choose(ed.spec.model_ref, list(model_index.get(namespace, [])))
    desired = None
    if choice.model is not None:
        variants = choice.model.has_variants
        desired = RevisionRef(
            revision=revision_of(choice.model.digest, choice.model.uri, ed.spec.runtime,
                                 dict(choice.model.external_data),
                                 choice.model.variants_digest if variants else None,
                                 # An approval covers where and how it rolls out, too.
                                 covers={"placement": ed.spec.placement.dump(), "rollout": ed.spec.rollout.dump()}),
            mlmodel=choice.model.name, model=choice.model.model, version=choice.model.version,
            digest=choice.model.digest, uri=choice.model.uri, runtime=ed.spec.runtime,
            external_data=dict(choice.model.external_data) or None,
            reference_profile=ReferenceProfileRef(uri=choice.model.reference_profile[0],
                                                  sha256=choice.model.reference_profile[1])
            if choice.model.reference_profile else None,
            variants=list(choice.model.variants) if variants else None,
            variants_digest=choice.model.variants_digest if variants else None)
    known = known_clusters(cluster_index)
    placement = place(ed.spec.placement, [entry.facts for entry in known.values()],
                      choice.model.variants if choice.model else (), ed.spec.runtime,
                      namespace=hub_namespace(namespace_index or {}, namespace),
                      open_without_section=get_settings().tenancy_open_without_section)
    waves = plan_waves(ed.spec.rollout, list(placement.selected), {n: known[n].facts.labels
                                                                   for n in placement.selected})
    approvals = approvals or ApprovalInputs({}, {}, {})
    policy = effective_policy(
        {key: spec for key in approvals.policies if (spec := loop.first(approvals.policies, key)) is not None},
        loop.first(approvals.namespaces, namespace) or {},
        [known[c].facts.labels for c in [*placement.selected, *(e.name for e in placement.excluded)] if c in known],
        ed.spec.approval)
    written_by = spec_authors.parse(annotations.get(spec_authors.AUTHORS))
    # Everyone who changed the spec since the revision last approved was rolled out.
    authors = spec_authors.authors_since(written_by, old_status.rollout.generation if old_status.rollout else None)
    # A newer MLModel that LatestReady follows is a change by whoever created (or promoted) it.
    authors = spec_authors.with_model_authors(
        authors, ed.spec.model_ref.follow == "LatestReady", choice.model.name if choice.model else None,
        choice.model.made_by if choice.model else (),
        old_status.rollout.target.mlmodel if old_status.rollout and old_status.rollout.target else None)
    author = spec_authors.last_author(written_by)
    records = counted_records(records_for(list(approvals.objects.get((namespace, name), [])), meta.get("uid", "")),
                              old_status.rollbacks)
    approval = gate(policy.approval, records, desired, old_status.bad_revisions, now, authors)
    to_observe = set(placement.selected) | {c.name for c in old_status.clusters}

    def ours(cluster: str) -> bool:
        # Pull sites are served on the hub (their assignments and reports): always by the leader.
        entry = known.get(cluster)
        return sharding.holds(cluster) or (entry is not None and entry.mode == "pull")
    site_reports: dict = {}     # pull clusters' reports (clusters.pull), by cluster
    observations = dict(await asyncio.gather(*(
        _observe(members, known.get(c), c, owner, site_reports) for c in sorted(to_observe) if ours(c))))
    # Sharded: the clusters of other replicas' shards, as their holders reported them (controllers.shard_work).
    remote, reported = shard_work.remote_observations(snapshot["status"], to_observe - observations.keys(),
                                                      namespace, name)
    observations.update(remote)
    lines = await line_facts(known, to_observe, now)
    # The wave's metric checks that are due: queried now, judged by decide().
    resolved = checks.checks_of(ed.spec, namespace, check_template_index)
    context = Context(name, namespace, ed.spec.rollout.wave_timeout_seconds)
    measured = await checks.measurements(resolved, old_status, waves, context, known, now, site_reports)
    # A candidate in shadow: where it runs, and how it compares (domain.shadow, controllers.shadow).
    shadow_clusters = shadow.clusters_of(ed.spec.shadow, list(placement.selected),
                                         {n: known[n].facts.labels for n in placement.selected})
    compared = await shadow_reads.comparisons(old_status, namespace, name, known, now)

    # --- decide
    decision = decide(Inputs(
        spec=ed.spec, status=old_status, desired=desired, waves=waves, excluded=list(placement.excluded),
        observations=observations, stale_after={c: entry.stale_after for c, entry in known.items()},
        approved=approval.approved, approvals=records, reapproved=approval.reapproved,
        paused=annotations.get(PAUSE, "").lower() == "true", rollback_to=annotations.get(ROLLBACK_TO), now=now,
        alerts=[r.alert for r in receipts], outcomes={**fast_revert.merged(outcomes, fast.outcomes), **reported},
        author=author,
        policy=policy, authors=authors,
        model=Verdict(choice.model is not None, choice.reason, choice.message), generation=meta.get("generation"),
        stale={e.name: e.message for e in placement.stale}, lines=lines,
        facts={c: entry.facts for c, entry in known.items()},
        model_metrics=dict(choice.model.metrics) if choice.model else {},
        model_stage=choice.model.stage if choice.model else None,
        checks=resolved, measurements=measured, context=context,
        site_rollbacks=pull_sites.site_rollbacks(site_reports),
        shadow_clusters=shadow_clusters, shadow_comparisons=compared))

    # --- act
    outcomes.clear()
    split = split_actions(decision.actions, ours)
    # What each pull site measures and respects besides its revision (controllers.pull_sites).
    site_terms = {c: pull_sites.terms_for(known[c], c, resolved, waves, decision.status, context)
                  for c in to_observe if pull_sites.is_pull(known.get(c))}
    async with fast.lock:
        outcomes.update(await _execute(members, known, split.local, owner, ed, observations,
                                       decision.status, site_reports, site_terms))
    await pull_sites.refresh_terms(site_reports, site_terms, namespace, name)
    for outcome in outcomes.values():
        if outcome.error and workloads.OwnedByAnother.reason in outcome.error:
            await events.warning(snapshot, workloads.OwnedByAnother.reason, f"EdgeCluster {outcome.cluster}: "
                                                                           f"{outcome.error}")

    # --- say what happened (Events first: whoever sees the new status finds its Events), write status once
    for event_type, reason, message in decision.events:
        await events.post(snapshot, event_type, reason, message)
        if reason in ("RolloutComplete", "RollbackComplete"):
            metrics.ROLLOUTS.labels(result=reason).inc()
    for record in decision.rollbacks_applied:
        metrics.ROLLBACKS.labels(reason="alert" if record.mode == "Automatic" else "manual").inc()
        if record.mode == "Automatic" and record.latency_ms is not None:
            metrics.ROLLBACK_LATENCY.observe(record.latency_ms / 1000)
    shadow_reads.export_pending_metrics(namespace, name, decision.status)
    patch = merge_patch(snapshot["status"], shard_work.status_with_handoff(decision.status,
                                                                          shard_work.handoff(split.handed_off)))
    if patch:
        await patch_status(PLURAL, name, namespace, patch)
    # Only after status holds the outcome: a crash in between repeats an idempotent decision.
    await alert_receipts.remove(PLURAL, name, namespace, [r.annotation for r in receipts])
    await pull_sites.acknowledge(site_reports, namespace, name)
    fast.handled.difference_update(r.key for r in receipts)
    if decision.rollbacks_applied:
        fast.outcomes.clear()
    return decision.status.phase


@dataclass(frozen=True)
class ApprovalInputs:
    """The kopf indexes that the gate reads (namespaces: controllers.indexes.namespace_index)."""

    policies: kopf.Index | dict
    namespaces: kopf.Index | dict
    objects: kopf.Index | dict


async def _observe(members: MemberClusters, entry: ClusterEntry | None, cluster: str,
                   owner: workloads.RuntimeOwner, site_reports: dict | None = None) -> tuple[str, Observation]:
    if entry is None:
        return cluster, Observation(cluster, reachable=False, message=f"EdgeCluster {cluster} does not exist")
    if pull_sites.is_pull(entry):
        return cluster, await pull_sites.observe(entry, cluster, owner, {} if site_reports is None else site_reports)
    try:
        client = await client_for(members, cluster, entry)
        # The cluster's watched view (one watch per cluster, shared by every deployment).
        view = members.views.view(cluster, client, entry.namespace)
        state = await workloads.observe_view(client, view, entry.namespace,
                                             object_name(owner.namespace, owner.name), owner)
    except ConnectionProblem as exc:
        return cluster, Observation(cluster, reachable=False, message=f"{exc.reason}: {exc.message}")
    except workloads.Unreachable as exc:
        return cluster, Observation(cluster, reachable=False, message=str(exc))
    return cluster, Observation(cluster, reachable=True, exists=state.exists, revision=state.revision,
                                ready_replicas=state.ready_replicas, replicas=state.replicas, ready=state.ready,
                                message=state.message, problem=classify(state.containers, state.revision),
                                shadow=state.shadow)


async def _execute(members: MemberClusters, known: dict[str, ClusterEntry], actions, owner: workloads.RuntimeOwner,
                   ed: EdgeDeployment, observations: dict[str, Observation], status: EdgeDeploymentStatus | None = None,
                   site_reports: dict | None = None, site_terms: dict | None = None) -> dict[str, ActOutcome]:
    namespace, name = owner.namespace, owner.name

    async def one(action: Apply | Remove) -> ActOutcome:
        revision = action.revision.revision if isinstance(action, Apply) else None
        entry = known.get(action.cluster)
        if entry is None:
            return ActOutcome(action.cluster, revision, time.time(),
                              None if isinstance(action, Remove) else "EdgeCluster does not exist")
        if pull_sites.is_pull(entry):
            if isinstance(action, Apply):
                return await pull_sites.apply(entry, action, owner, ed, status, site_reports or {},
                                              (site_terms or {}).get(action.cluster))
            return await pull_sites.remove(action.cluster, owner)
        try:
            client = await client_for(members, action.cluster, entry)
            if isinstance(action, Apply):
                objects = render(namespace, name, action.revision, Target(action.cluster, entry.namespace),
                                 ed.spec.placement.requirements, variant=action.variant, owner_uid=owner.uid,
                                 shadow=action.shadow, shadow_variant=action.shadow_variant)
                seen = observations.get(action.cluster)
                await workloads.apply(client, entry.namespace, objects, ensure_namespace=not (seen and seen.exists),
                                      pod_security=effective_level(entry.facts.tenancy),
                                      view=members.views.peek(action.cluster))
            else:
                left = await workloads.remove(client, entry.namespace, object_name(namespace, name), owner)
                if left:
                    raise workloads.OwnedByAnother(f"{', '.join(left)} belong to another owner; left alone")
        except workloads.OwnedByAnother as exc:
            return ActOutcome(action.cluster, revision, time.time(), f"{exc.reason}: {exc}")
        except ConnectionProblem as exc:
            return ActOutcome(action.cluster, revision, time.time(), f"{exc.reason}: {exc.message}")
        except workloads.Unreachable as exc:
            verb = "apply" if isinstance(action, Apply) else "remove"
            return ActOutcome(action.cluster, revision, time.time(), f"could not {verb}: {exc}")
        metrics.CLUSTER_WRITES.labels(cluster=action.cluster, action=type(action).__name__.lower()).inc()
        return ActOutcome(action.cluster, revision, time.time())

    return {outcome.cluster: outcome for outcome in await asyncio.gather(*(one(a) for a in actions))}


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def clean_up(body: kopf.Body, name: str, namespace: str, memo: kopf.Memo, cluster_index: kopf.Index,
                   logger: logging.Logger, **_) -> None:
    """Remove Edgeline's objects from every cluster that has them. A cluster that does not
    answer keeps the deletion pending (the finalizer stays), and status says which one."""
    status = EdgeDeploymentStatus.model_validate(dict(body.get("status") or {}))
    pending = []
    for state in status.clusters:
        entry = loop.first(cluster_index, state.name)
        if entry is None:
            # Without its EdgeCluster there are no credentials to reach it: say so, loudly.
            await events.warning(body, "RuntimeLeftBehind",
                                 f"EdgeCluster {state.name} no longer exists; the runtime objects "
                                 f"{object_name(namespace, name)} stay on that cluster")
            continue
        if pull_sites.is_pull(entry):
            outcome = await pull_sites.remove(state.name, workloads.RuntimeOwner(namespace, name, body.metadata.uid))
            if outcome.error:
                pending.append((state.name, outcome.error))
            continue
        try:
            client = await client_for(memo.member_clusters, state.name, entry)
            left = await workloads.remove(client, entry.namespace, object_name(namespace, name),
                                          workloads.RuntimeOwner(namespace, name, body.metadata.uid))
            if left:
                await events.warning(body, workloads.OwnedByAnother.reason,
                                     f"EdgeCluster {state.name}: {', '.join(left)} belong to another owner; "
                                     f"left alone")
        except (ConnectionProblem, workloads.Unreachable) as exc:
            pending.append((state.name, str(exc)))
    if pending:
        waiting = dict(pending)
        clusters = [s.model_copy(update={"phase": "Removing", "message": f"waiting to remove: {waiting[s.name]}"})
                    for s in status.clusters if s.name in waiting]
        await patch_status(PLURAL, name, namespace, {"clusters": [c.dump() for c in clusters]})
        raise kopf.TemporaryError(f"cannot remove the runtime from {', '.join(n for n, _ in pending)} yet; "
                                  f"retrying (remove the finalizer by hand for a decommissioned site)", delay=15)
