"""EdgeDeployment: one daemon per object runs the rollout loop.

Each tick: resolve the model, place the deployment on EdgeClusters, split them into waves,
observe every cluster concurrently (each call with a deadline), let the pure
`domain.rollout.decide` choose the next step, carry out its actions, and write status.
Everything the next tick needs is in status, so a restarted operator simply continues.
The daemon ticks fast while a rollout moves and slowly when all is quiet; any change to
the object wakes it at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from dataclasses import dataclass

import kopf
from lightkube.types import PatchType

from edgeline import GROUP, VERSION, metrics
from edgeline.api.conditions import Condition, set_condition
from edgeline.api.edgedeployment import (ApprovalRecord, EdgeDeployment, EdgeDeploymentStatus, PendingApproval,
                                         RevisionRef, RollbackRecord)
from edgeline.clusters import events, workloads
from edgeline.clusters.connections import ConnectionProblem, MemberClusters, SecretRef
from edgeline.clusters.connections import hub_client
from edgeline.clusters.resources import RESOURCES, merge_patch, patch_status, read
from edgeline.controllers import loop
from edgeline.controllers.alerts import ANNOTATION_PREFIX
from edgeline.domain.rollback import Alert, decide_rollback
from edgeline.controllers.admission import signing_key
from edgeline.domain import admission
from edgeline.domain.approvals import is_approved, valid_approvers
from edgeline.domain.model_choice import ModelSummary, choose
from edgeline.domain.placement import ClusterFacts, place
from edgeline.domain.revisions import revision_of
from edgeline.domain.runtime_health import classify
from edgeline.domain.rollout import Apply, AutoRollback, Inputs, Observation, Remove, decide, iso
from edgeline.domain.waves import plan_waves
from edgeline.render.runtime import Target, object_name, render
from edgeline.settings import get_settings

PLURAL = "edgedeployments"
PAUSE = "edgeline.io/pause"
ROLLBACK_TO = "edgeline.io/rollback-to"
ACTIVE = ("Progressing", "Pending")


# --- what the hub knows, kept current by kopf's watches (a cache, never the state) -------

@kopf.index(GROUP, VERSION, "edgeclusters")
def cluster_index(name: str, meta: kopf.Meta, spec: kopf.Spec, status: kopf.Status, **_):
    allocatable = status.get("allocatable") or {}
    return {name: {
        "facts": ClusterFacts(
            name=name, labels=dict(meta.get("labels") or {}), tier=spec.get("tier", "edge"),
            architectures=tuple(status.get("architectures") or ()), gpus=int(allocatable.get("gpu") or 0),
            memory=allocatable.get("memory"), reachable=bool(status.get("reachable")),
            stale=bool(status.get("stale")), probed=bool(status.get("kubernetesVersion"))),
        "secret": (spec.get("connection", {}).get("kubeconfigSecretRef", {}).get("name"),
                   spec.get("connection", {}).get("kubeconfigSecretRef", {}).get("key", "kubeconfig")),
        "namespace": spec.get("targetNamespace", "edgeline-workloads"),
        "stale_after": int(spec.get("staleAfterSeconds", 300)),
    }}


@kopf.index(GROUP, VERSION, "mlmodels")
def model_index(namespace: str, name: str, meta: kopf.Meta, spec: kopf.Spec, status: kopf.Status, **_):
    artifact = status.get("artifact") or {}
    return {namespace: ModelSummary(
        name=name, model=spec.get("model", ""), version=spec.get("version", ""), phase=status.get("phase"),
        digest=artifact.get("digest"), uri=(spec.get("artifact") or {}).get("uri", ""),
        created=meta.get("creationTimestamp", ""))}


# --- the loop ---------------------------------------------------------------------------------

@kopf.on.event(GROUP, VERSION, PLURAL)
def wake(memo: kopf.Memo, **_) -> None:
    loop.wake_on_event(memo)


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=5.0)
async def run_rollout(body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, logger: logging.Logger,
                      cluster_index: kopf.Index, model_index: kopf.Index, **_) -> None:
    settings = get_settings()
    await loop.run(PLURAL, body, stopped, logger,
                   lambda: reconcile(body, memo.member_clusters, cluster_index, model_index, logger),
                   lambda phase: phase in ACTIVE, settings.rollout_active_interval_s,
                   settings.rollout_idle_interval_s, memo)


async def reconcile(body: kopf.Body, members: MemberClusters, cluster_index: kopf.Index,
                    model_index: kopf.Index, logger: logging.Logger) -> str | None:
    # Read fresh: the watch may not have delivered this loop's own last status write yet,
    # and deciding on an older status could repeat or undo a step.
    fresh = await read(PLURAL, body.metadata["name"], body.metadata["namespace"])
    if fresh is None or fresh["metadata"].get("deletionTimestamp"):
        return None
    snapshot = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "EdgeDeployment", "metadata": fresh["metadata"],
                "spec": fresh.get("spec") or {}, "status": fresh.get("status") or {}}
    ed = EdgeDeployment.model_validate(snapshot)
    namespace, name = snapshot["metadata"]["namespace"], snapshot["metadata"]["name"]
    annotations = snapshot["metadata"].get("annotations") or {}
    generation = snapshot["metadata"].get("generation")
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    old_status = EdgeDeploymentStatus.model_validate(snapshot["status"])

    choice = choose(ed.spec.model_ref, list(model_index.get(namespace, [])))
    desired = None
    if choice.model is not None:
        desired = RevisionRef(
            revision=revision_of(choice.model.digest, choice.model.uri, ed.spec.runtime),
            mlmodel=choice.model.name, model=choice.model.model, version=choice.model.version,
            digest=choice.model.digest, uri=choice.model.uri, runtime=ed.spec.runtime)

    known = {key: loop.first(cluster_index, key) for key in cluster_index}
    placement = place(ed.spec.placement, [entry["facts"] for entry in known.values() if entry])
    labels = {n: known[n]["facts"].labels for n in placement.selected}
    waves = plan_waves(ed.spec.rollout, list(placement.selected), labels)

    records, forged = _approvals(fresh, old_status)
    if forged:
        await events.warning(snapshot, "ApprovalRecordRejected",
                             f"{forged} approval record(s) in edgeline.io/approvals do not carry a valid signature; "
                             "they are ignored")
    author = admission.author(admission_key(), fresh) if admission_key() else None
    approved = desired is not None and is_approved(ed.spec.approval, records, desired.revision, now, author)

    to_observe = set(placement.selected) | {c.name for c in old_status.clusters}
    observations = dict(await asyncio.gather(*(
        _observe(members, known.get(c), c, namespace, name) for c in sorted(to_observe))))

    alerts = _pending_alerts(snapshot["metadata"])
    auto, notes = _rollback_requests(ed, old_status, alerts, now)

    decision = decide(Inputs(
        spec=ed.spec, status=old_status, desired=desired, waves=waves, excluded=list(placement.excluded),
        observations=observations, stale_after={c: (known[c] or {}).get("stale_after", 300) for c in known if known[c]},
        approved=approved, approvals=records,
        reapproved=desired is not None and desired.revision in old_status.bad_revisions and ed.spec.approval.required
        and approved, paused=annotations.get(PAUSE, "").lower() == "true",
        rollback_to=annotations.get(ROLLBACK_TO), now=now, auto_rollbacks=auto))
    decision.events.extend(notes)

    failures = await _execute(members, known, decision.actions, namespace, name, ed, observations)
    status = decision.status
    for state in status.clusters:
        if state.name in failures:
            state.message = failures[state.name]
            state.phase = "Unreachable"

    _rollback_latency(status, old_status, decision, failures, alerts)
    _approval_status(ed, status, desired, decision.held_reason, approved, records, author, now)
    status.observed_generation = generation
    status.conditions = [Condition.model_validate(c) for c in _conditions(
        [c.dump() for c in old_status.conditions], status, choice, decision, generation, now)]

    for event_type, reason, message in decision.events:
        await events.post(snapshot, event_type, reason, message)
        if reason in ("RolloutComplete", "RollbackComplete"):
            metrics.ROLLOUTS.labels(result=reason).inc()
    patch = merge_patch(snapshot["status"], status.dump())
    if patch:
        await patch_status(PLURAL, name, namespace, patch)
    if alerts:
        # Only after status holds the outcome: a crash in between repeats an idempotent decision.
        await hub_client().patch(RESOURCES[PLURAL], name, {"metadata": {"annotations": {
            a.annotation: None for a in alerts}}}, namespace=namespace, patch_type=PatchType.MERGE)
    return status.phase


@dataclass(frozen=True)
class _ReceivedAlert:
    annotation: str
    alert: Alert


def _pending_alerts(metadata: dict) -> list[_ReceivedAlert]:
    found = []
    for key, value in (metadata.get("annotations") or {}).items():
        if not key.startswith(ANNOTATION_PREFIX):
            continue
        try:
            data = json.loads(value)
            alert = Alert(name=data["name"], labels=dict(data["labels"]), fingerprint=data["fingerprint"],
                          starts_at=data.get("startsAt", ""), received_at=float(data["receivedAt"]))
        except (ValueError, KeyError, TypeError):
            alert = Alert(name="unreadable", labels={}, fingerprint=key, starts_at="", received_at=0.0)
        found.append(_ReceivedAlert(key, alert))
    return sorted(found, key=lambda r: r.alert.received_at)


def _rollback_requests(ed, status, alerts, now) -> tuple[list[AutoRollback], list[tuple[str, str, str]]]:
    requests, notes = [], []
    for received in alerts:
        alert = received.alert
        verdict = decide_rollback(ed.spec.rollback, status, alert, now)
        if verdict.action == "revert":
            requests.append(AutoRollback(alert.name, verdict.target, verdict.clusters,
                                         _precise(alert.received_at)))
        elif verdict.action == "propose":
            status.rollbacks.insert(0, RollbackRecord(alert=alert.name, from_revision=status.rollout.revision,
                                                      to_revision=verdict.target.revision,
                                                      clusters=list(verdict.clusters or []),
                                                      received_at=_precise(alert.received_at), mode="Proposed"))
            notes.append(("Warning", verdict.reason, verdict.message))
        else:
            notes.append(("Normal", "AlertIgnored", f"{alert.name}: {verdict.message}"))
    return requests, notes


def _precise(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def _rollback_latency(status, old_status, decision, failures, alerts) -> None:
    """An automatic rollback is applied when every affected cluster runs the restored revision
    or took it in this tick; its latency counts from the alert's arrival at the receiver."""
    applied = {a.cluster for a in decision.actions if isinstance(a, Apply) and a.cluster not in failures}
    running = {c.name: c.revision for c in status.clusters}
    known = {(r.alert, r.received_at) for r in old_status.rollbacks}
    for record in status.rollbacks:
        if record.applied_at or record.mode not in ("Automatic", "Manual"):
            continue
        done = all(c in applied or running.get(c) == record.to_revision for c in record.clusters)
        if not done:
            continue
        finished = time.time()
        record.applied_at = _precise(finished)
        received = _parse_precise(record.received_at)
        if received is not None:
            record.latency_ms = int((finished - received) * 1000)
        if (record.alert, record.received_at) not in known:
            metrics.ROLLBACKS.labels(reason="alert" if record.mode == "Automatic" else "manual").inc()
        if record.mode == "Automatic" and record.latency_ms is not None:
            metrics.ROLLBACK_LATENCY.observe(record.latency_ms / 1000)


def _parse_precise(text: str | None) -> float | None:
    if not text:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return dt.datetime.strptime(text, fmt).replace(tzinfo=dt.timezone.utc).timestamp()
        except ValueError:
            continue
    return None


async def _observe(members: MemberClusters, entry: dict | None, cluster: str, namespace: str,
                   name: str) -> tuple[str, Observation]:
    if entry is None:
        return cluster, Observation(cluster, reachable=False, message=f"EdgeCluster {cluster} does not exist")
    try:
        client = await _client(members, cluster, entry)
        state = await workloads.observe(client, entry["namespace"], object_name(namespace, name))
    except ConnectionProblem as exc:
        return cluster, Observation(cluster, reachable=False, message=f"{exc.reason}: {exc.message}")
    except workloads.Unreachable as exc:
        return cluster, Observation(cluster, reachable=False, message=str(exc))
    return cluster, Observation(cluster, reachable=True, exists=state.exists, revision=state.revision,
                                ready_replicas=state.ready_replicas, replicas=state.replicas, ready=state.ready,
                                message=state.message, problem=classify(state.containers, state.revision))


async def _client(members: MemberClusters, cluster: str, entry: dict):
    secret_name, key = entry["secret"]
    ref = SecretRef(get_settings().namespace, secret_name, key)
    return await members.client_for(cluster, ref, entry["namespace"])


async def _execute(members, known, actions, namespace, name, ed, observations) -> dict[str, str]:
    async def one(action) -> tuple[str, str | None]:
        entry = known.get(action.cluster)
        if entry is None:
            return action.cluster, None if isinstance(action, Remove) else "EdgeCluster does not exist"
        try:
            client = await _client(members, action.cluster, entry)
            if isinstance(action, Apply):
                objects = render(namespace, name, action.revision, Target(action.cluster, entry["namespace"]),
                                 ed.spec.placement.requirements)
                seen = observations.get(action.cluster)
                await workloads.apply(client, entry["namespace"], objects,
                                      ensure_namespace=not (seen and seen.exists))
            else:
                await workloads.remove(client, entry["namespace"], object_name(namespace, name))
        except ConnectionProblem as exc:
            return action.cluster, f"{exc.reason}: {exc.message}"
        except workloads.Unreachable as exc:
            return action.cluster, f"could not {'apply' if isinstance(action, Apply) else 'remove'}: {exc}"
        return action.cluster, None

    results = await asyncio.gather(*(one(a) for a in actions))
    return {cluster: problem for cluster, problem in results if problem}


def admission_key() -> bytes | None:
    try:
        return signing_key()
    except RuntimeError:
        return None


def _approvals(obj: dict, status: EdgeDeploymentStatus) -> tuple[list[ApprovalRecord], int]:
    """Signed approval records that count. A revision that was rolled back needs approvals
    given after its rollback; status is never read as a source of approvals."""
    key = admission_key()
    if key is None:
        return [], 0
    raw, forged = admission.approval_records(key, obj)
    rolled_back_at: dict[str, float] = {}
    for record in status.rollbacks:
        when = _parse_precise(record.received_at)
        if when is not None and record.mode in ("Automatic", "Manual"):
            rolled_back_at[record.from_revision] = max(rolled_back_at.get(record.from_revision, 0.0), when)
    records = [ApprovalRecord(revision=r["revision"], user=r["user"], groups=r.get("groups", []), at=r["at"])
               for r in raw if (_parse_precise(r.get("at")) or 0.0) > rolled_back_at.get(r.get("revision"), -1.0)]
    return records, forged


def _approval_status(ed, status, desired, held, approved, records, author, now) -> None:
    policy = ed.spec.approval
    if not policy.required:
        status.approval = "NotRequired"
        status.pending_approval = None
        return
    if desired is None:
        return
    if held in ("AwaitingApproval", "RolledBack"):
        pending = status.pending_approval
        if pending is None or pending.revision.revision != desired.revision:
            pending = PendingApproval(revision=desired, requested_at=iso(now), needed=policy.min_approvers,
                                      runtime_change=_runtime_change(status.current_revision, desired))
        pending.needed = policy.min_approvers
        pending.requested_by = author
        pending.approvals = [r for r in records if r.revision == desired.revision]
        status.pending_approval = pending
        have = len(valid_approvers(policy, pending.approvals, desired.revision, now, author))
        status.approval = f"Pending {have}/{policy.min_approvers}"
    elif approved:
        status.approval = "Approved"
        status.pending_approval = None


def _runtime_change(current: RevisionRef | None, desired: RevisionRef) -> str | None:
    if current is None or current.runtime is None or desired.runtime is None:
        return None
    before, after = current.runtime.dump(), desired.runtime.dump()
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return ("runtime fields changed: " + ", ".join(changed)) if changed else "model only"


def _conditions(conditions, status, choice, decision, generation, now):
    def put(ctype, ok, reason, message):
        nonlocal conditions
        conditions = set_condition(conditions, ctype, "True" if ok else "False", reason, message,
                                   generation=generation, now=now)

    put("ModelResolved", choice.model is not None, choice.reason, choice.message)
    if decision.held_reason == "AwaitingApproval":
        put("Approved", False, "AwaitingApproval", f"revision {status.desired_revision.revision} waits for approval")
    elif status.approval in ("Approved", "NotRequired"):
        put("Approved", True, status.approval, "the revision being rolled out is approved"
            if status.approval == "Approved" else "the approval policy does not require approval")
    progress = status.rollout
    phase = status.phase
    put("Progressing", phase == "Progressing", phase or "Pending",
        f"wave {progress.wave_name} of revision {progress.revision}" if phase == "Progressing" and progress
        else f"phase {phase}")
    if progress and progress.failed_message:
        put("Available", False, "WaveFailed", progress.failed_message)
    else:
        put("Available", (status.ready_clusters or 0) > 0 or status.total_clusters == 0,
            "ClustersReady" if status.ready_clusters else "NoClusterReady", f"{status.ready} clusters ready")
    ready = phase in ("Healthy", "RolledBack") and status.ready_clusters == status.total_clusters
    message = f"{status.ready} clusters run revision {progress.revision}" if progress and progress.revision else \
        choice.message
    if decision.held_reason:
        message = f"{decision.held_reason}: " + message
    put("Ready", ready, phase or "Pending", message)
    return conditions


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
        try:
            client = await _client(memo.member_clusters, state.name, entry)
            await workloads.remove(client, entry["namespace"], object_name(namespace, name))
        except (ConnectionProblem, workloads.Unreachable) as exc:
            pending.append((state.name, str(exc)))
    if pending:
        waiting = dict(pending)
        clusters = [s.model_copy(update={"phase": "Removing", "message": f"waiting to remove: {waiting[s.name]}"})
                    for s in status.clusters if s.name in waiting]
        await patch_status(PLURAL, name, namespace, {"clusters": [c.dump() for c in clusters]})
        raise kopf.TemporaryError(f"cannot remove the runtime from {', '.join(n for n, _ in pending)} yet; "
                                  f"retrying (remove the finalizer by hand for a decommissioned site)", delay=15)
