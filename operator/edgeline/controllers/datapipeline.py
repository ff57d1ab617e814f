"""DataPipeline: one daemon per object runs the pipeline loop (docs/pipelines.md).

Each tick: read the object fresh, find a client for every cluster its steps name (the hub
for steps without a cluster), read the Jobs of running steps, let the pure
`domain.pipeline.decide` choose what happens next, carry out its actions (create Jobs,
delete Jobs, create the candidate MLModel) and write status once. Everything the next tick
needs is in status and Job names are deterministic, so a restarted operator continues
without creating a Job twice. The loop ticks fast while a run is on and slowly otherwise;
a change to the object (run-now, an alert annotation) wakes it at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import kopf
from lightkube import ApiError

from edgeline import GROUP, VERSION, metrics
from edgeline.api.datapipeline import DataPipeline, DataPipelineStatus
from edgeline.clusters import events, jobs
from edgeline.clusters.connections import ConnectionProblem, MemberClusters, SecretRef, hub_client
from edgeline.clusters.resources import RESOURCES, merge_patch, patch_status, read
from edgeline.controllers import alert_receipts, loop
from edgeline.domain.pipeline import (HUB, ClusterView, CreateModel, DeleteJobs, Inputs, JobObservation,
                                      ReceivedAlert, StartJob, cluster_key, decide, summarize)
from edgeline.render.jobs import Owner, render_job
from edgeline.settings import get_settings

PLURAL = "datapipelines"
RUN_NOW = "edgeline.io/run-now"


@kopf.on.event(GROUP, VERSION, PLURAL)
def wake(memo: kopf.Memo, **_) -> None:
    loop.wake_on_event(memo)


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=5.0)
async def run_pipeline(body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, logger: logging.Logger,
                       cluster_index: kopf.Index, **_) -> None:
    settings = get_settings()
    await loop.run(PLURAL, body, stopped, logger, lambda: reconcile(body, memo.member_clusters, cluster_index, logger),
                   lambda phase: phase == "Running", settings.rollout_active_interval_s,
                   settings.rollout_idle_interval_s, memo)


class _Target:
    """Where a step's Jobs go: a client and a namespace, or why there is none."""

    def __init__(self, client=None, namespace: str = "", view: ClusterView = ClusterView(True)):
        self.client, self.namespace, self.view = client, namespace, view


async def _target(members: MemberClusters, cluster_index: kopf.Index, key: str, pipeline_namespace: str) -> _Target:
    if key == HUB:
        return _Target(hub_client(), pipeline_namespace)
    entry = loop.first(cluster_index, key)
    if entry is None:
        return _Target(view=ClusterView(False, f"EdgeCluster {key} does not exist"))
    secret_name, secret_key = entry["secret"]
    try:
        client = await members.client_for(key, SecretRef(get_settings().namespace, secret_name, secret_key),
                                          entry["namespace"])
    except ConnectionProblem as exc:
        return _Target(view=ClusterView(False, f"{exc.reason}: {exc.message}"))
    facts = entry["facts"]
    if not facts.probed:
        return _Target(client, entry["namespace"], ClusterView(False, f"EdgeCluster {key} has not been probed yet",
                                                               known=False))
    if not facts.reachable:
        return _Target(client, entry["namespace"], ClusterView(
            False, f"EdgeCluster {key} is not reachable (see its Reachable condition)"))
    return _Target(client, entry["namespace"])


def _received_alerts(metadata: dict) -> list[tuple[str, ReceivedAlert]]:
    return [(r.annotation, ReceivedAlert(key=r.key, name=r.alert.name)) for r in alert_receipts.receipts(metadata)]


async def reconcile(body: kopf.Body, members: MemberClusters, cluster_index: kopf.Index,
                    logger: logging.Logger) -> str | None:
    # Read fresh: the watch may not have delivered this loop's own last status write yet.
    fresh = await read(PLURAL, body.metadata["name"], body.metadata["namespace"])
    if fresh is None or fresh["metadata"].get("deletionTimestamp"):
        return None
    snapshot = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "DataPipeline", "metadata": fresh["metadata"],
                "spec": fresh.get("spec") or {}, "status": fresh.get("status") or {}}
    pipeline = DataPipeline.model_validate(snapshot)
    meta = snapshot["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    owner = Owner(namespace, name, meta["uid"])
    old_status = DataPipelineStatus.model_validate(snapshot["status"])
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)

    keys = {cluster_key(s) for s in pipeline.spec.steps}
    keys |= {s.cluster or HUB for r in old_status.runs if r.phase == "Running" for s in r.steps}
    keys |= {c for entry in old_status.cleanup for c in entry.clusters}
    targets = dict(zip(sorted(keys), await asyncio.gather(*(
        _target(members, cluster_index, k, namespace) for k in sorted(keys)))))

    observed = await _observe_jobs(old_status, targets, owner)
    alerts = _received_alerts(meta)
    inputs = Inputs(name=name, namespace=namespace, generation=meta.get("generation"), spec=pipeline.spec,
                    status=old_status, now=now, clusters={k: t.view for k, t in targets.items()}, jobs=observed,
                    run_now=(meta.get("annotations") or {}).get(RUN_NOW), alerts=[a for _, a in alerts])
    decision = decide(inputs)
    status = decision.status

    await _execute(decision, targets, owner, snapshot, logger)
    summarize(inputs, status)

    for event_type, reason, message in decision.events:
        await events.post(snapshot, event_type, reason, message)
    for result, seconds in decision.finished:
        metrics.PIPELINE_RUNS.labels(result=result).inc()
        metrics.PIPELINE_RUN_SECONDS.observe(seconds)
    patch = merge_patch(snapshot["status"], status.dump())
    if patch:
        await patch_status(PLURAL, name, namespace, patch)
    if alerts:
        # Only after status holds the receipts (handledAlerts): a crash in between starts no second run.
        await alert_receipts.remove(PLURAL, name, namespace, [key for key, _ in alerts])
    return status.phase


async def _observe_jobs(status: DataPipelineStatus, targets: dict[str, _Target], owner: Owner
                        ) -> dict[str, JobObservation]:
    wanted = [(s.cluster or HUB, s.job) for r in status.runs if r.phase == "Running" for s in r.steps
              if s.phase == "Running" and s.job]

    async def one(key: str, job: str):
        target = targets.get(key)
        if target is None or target.client is None or not target.view.reachable:
            return key, job, None
        try:
            return key, job, await jobs.observe(target.client, target.namespace, job, owner.uid)
        except (jobs.Unreachable, jobs.Rejected) as exc:
            target.view = ClusterView(False, str(exc))
            return key, job, None

    results = await asyncio.gather(*(one(k, j) for k, j in wanted))
    return {job: seen for _, job, seen in results if seen is not None}


async def _execute(decision, targets: dict[str, _Target], owner: Owner, snapshot: dict, logger) -> None:
    status = decision.status

    async def start(action: StartJob) -> None:
        target = targets[action.cluster]
        if target.client is None:
            return
        job = render_job(owner, action.run, action.step, action.attempt, action.job, target.namespace,
                         on_hub=action.cluster == HUB)
        try:
            if not await jobs.create(target.client, target.namespace, job, owner.uid):
                logger.warning("Job %s exists on %s but is not ours", action.job, action.cluster or "the hub")
        except jobs.Rejected as exc:
            state = _step(status, action.run, action.step.name)
            if state is not None:
                state.phase, state.reason = "Failed", "JobRejected"
                state.message = f"the cluster refused Job {action.job}: {exc}"
                decision.events.append(("Warning", "StepFailed", f"run {action.run} step {action.step.name}: "
                                                                 f"{state.message}"))
        except jobs.Unreachable as exc:
            # The next tick reads the Job: missing means it is created again under the same name.
            logger.warning("could not create Job %s on %s: %s", action.job, action.cluster or "the hub", exc)

    async def delete(action: DeleteJobs) -> None:
        target = targets.get(action.cluster)
        done = False
        if target is not None and target.client is not None:
            try:
                await jobs.delete_run(target.client, target.namespace, action.run, owner.uid, action.jobs)
                done = True
            except jobs.Unreachable as exc:
                logger.info("Jobs of %s on %s not deleted yet: %s", action.run, action.cluster or "the hub", exc)
            except jobs.Rejected as exc:
                decision.events.append(("Warning", "JobsLeftBehind", f"Jobs of run {action.run} on "
                                                                     f"{action.cluster or 'the hub'}: {exc}"))
                done = True
        elif target is not None and "does not exist" in (target.view.message or ""):
            decision.events.append(("Warning", "JobsLeftBehind", f"{target.view.message}; the Jobs of run "
                                                                 f"{action.run} there are left alone"))
            done = True
        if done:
            for entry in status.cleanup:
                if entry.run == action.run and tuple(entry.jobs) == action.jobs and action.cluster in entry.clusters:
                    entry.clusters.remove(action.cluster)
            status.cleanup = [e for e in status.cleanup if e.clusters]

    await asyncio.gather(*(start(a) for a in decision.actions if isinstance(a, StartJob)),
                         *(delete(a) for a in decision.actions if isinstance(a, DeleteJobs)))
    for action in decision.actions:
        if isinstance(action, CreateModel):
            await _create_model(decision, action, owner)


async def _create_model(decision, action: CreateModel, owner: Owner) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "MLModel",
            "metadata": {"name": action.name, "namespace": owner.namespace, "labels": action.labels,
                         "ownerReferences": [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "DataPipeline",
                                              "name": owner.name, "uid": owner.uid, "blockOwnerDeletion": False}]},
            "spec": action.spec}
    resource = RESOURCES["mlmodels"]
    problem = None
    try:
        await hub_client().create(resource(body), namespace=owner.namespace)
    except ApiError as exc:
        if exc.status.code == 409:
            existing = (await hub_client().get(resource, action.name, namespace=owner.namespace)).to_dict()
            refs = existing["metadata"].get("ownerReferences") or []
            same = (existing["metadata"].get("labels") or {}).get("edgeline.io/run") == action.run and \
                any(r.get("uid") == owner.uid for r in refs)
            if not same:
                problem = ("ModelConflict", f"MLModel {action.name} already exists and was not made by this run; "
                                            f"report another version from the step")
        elif 400 <= (exc.status.code or 0) < 500:
            problem = ("ModelRejected", f"the hub refused MLModel {action.name}: {exc.status.message}")
        else:
            raise kopf.TemporaryError(f"cannot create MLModel {action.name}: {exc.status.message}", delay=5) \
                from None
    if problem is None:
        return
    run = next((r for r in decision.status.runs if r.name == action.run), None)
    if run is None:
        return
    run.phase, run.reason, run.message, run.produced_model = "Failed", problem[0], problem[1], None
    decision.events[:] = [e for e in decision.events if not (e[1] == "RunSucceeded" and f"run {run.name} " in e[2])]
    decision.events.append(("Warning", "RunFailed", f"run {run.name} failed: {problem[0]}: {problem[1]}"))
    decision.finished[:] = [("Failed", s) if r == "Succeeded" else (r, s) for r, s in decision.finished]


def _step(status: DataPipelineStatus, run: str, step: str):
    for r in status.runs:
        if r.name == run:
            return next((s for s in r.steps if s.name == step), None)
    return None


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def clean_up(body: kopf.Body, name: str, namespace: str, memo: kopf.Memo, cluster_index: kopf.Index,
                   logger: logging.Logger, **_) -> None:
    """Delete the pipeline's Jobs on the clusters its runs used. Jobs on the hub go with the
    DataPipeline anyway (ownerReferences); a member cluster that does not answer keeps its
    Jobs, and an Event says so, rather than blocking the deletion for good."""
    status = DataPipelineStatus.model_validate(dict(body.get("status") or {}))
    owner = Owner(namespace, name, body.metadata["uid"])
    work = {(s.cluster or HUB, r.name) for r in status.runs for s in r.steps if (s.attempts or 0) > 0}
    work |= {(c, e.run) for e in status.cleanup for c in e.clusters}
    for key, run in sorted(work):
        if key == HUB:
            continue
        target = await _target(memo.member_clusters, cluster_index, key, namespace)
        if target.client is None:
            await events.warning(body, "JobsLeftBehind", f"Jobs of run {run} stay on {key}: {target.view.message}")
            continue
        try:
            await jobs.delete_run(target.client, target.namespace, run, owner.uid)
        except (jobs.Unreachable, jobs.Rejected) as exc:
            await events.warning(body, "JobsLeftBehind", f"Jobs of run {run} stay on {key}: {exc}")
