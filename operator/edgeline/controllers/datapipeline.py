"""DataPipeline: one daemon per object runs the pipeline loop (docs/pipelines.md).

Each tick: read the object fresh, find a client for every cluster its steps name (the hub
for steps without a cluster), read the Jobs of running steps, let the pure
`domain.pipeline.decide` choose what happens next, carry out its actions (create Jobs,
delete Jobs, create the candidate MLModel) and write status once. Everything the next tick
needs is in status and Job and candidate names are deterministic, so a restarted operator
continues without creating a Job twice. What an action led to is the next tick's
observation (a refused Job or MLModel is remembered until then, in memory: after a restart
the create is simply tried again). The loop ticks fast while a run is on and slowly otherwise;
a change to the object (run-now, an alert annotation) wakes it at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass, field

import kopf
from lightkube import ApiError

from edgeline import GROUP, VERSION, metrics
from edgeline.api.datapipeline import DataPipeline, DataPipelineStatus
from edgeline.clusters import events, jobs
from edgeline.clusters.connections import ConnectionProblem, MemberClusters, hub_client
from edgeline.clusters.resources import RESOURCES, merge_patch, patch_status
from edgeline.controllers import alert_receipts, loop
from edgeline.controllers.indexes import ClusterEntry, client_for, hub_namespace
from edgeline.domain import candidates
from edgeline.domain.candidates import CreateModel, ModelObservation
from edgeline.domain.pipeline import (HUB, ClusterView, DeleteJobs, Inputs, JobObservation, ReceivedAlert,
                                      StartJob, cluster_key, decide)
from edgeline.domain.tenancy import HubNamespace, admits, effective_level
from edgeline.render.jobs import Owner, render_job
from edgeline.settings import get_settings

PLURAL = "datapipelines"
RUN_NOW = "edgeline.io/run-now"


@kopf.on.event(GROUP, VERSION, PLURAL)
def wake(memo: kopf.Memo, **_) -> None:
    loop.wake_on_event(memo)


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=5.0)
async def run_pipeline(body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, logger: logging.Logger,
                       cluster_index: kopf.Index, namespace_index: kopf.Index, **_) -> None:
    settings = get_settings()
    refused = _Refusals()
    await loop.run(PLURAL, body, stopped, logger,
                   lambda: reconcile(body, memo.member_clusters, cluster_index, logger, refused, namespace_index),
                   lambda phase: phase == "Running", settings.rollout_active_interval_s,
                   settings.rollout_idle_interval_s, memo)


@dataclass
class _Refusals:
    """Creates that were refused, kept until the next tick observes them (in memory: after a
    restart the create is tried again and refused again)."""

    jobs: dict[str, str] = field(default_factory=dict)                    # Job name -> the cluster's answer
    models: dict[str, tuple[str, str]] = field(default_factory=dict)      # MLModel name -> (reason, message)


class _Target:
    """Where a step's Jobs go: a client and a namespace, or why there is none."""

    def __init__(self, client=None, namespace: str = "", view: ClusterView = ClusterView(True),
                 missing: bool = False):
        self.client, self.namespace, self.view, self.missing = client, namespace, view, missing


async def _target(members: MemberClusters, cluster_index: kopf.Index, key: str, pipeline_namespace: HubNamespace
                  ) -> _Target:
    if key == HUB:
        return _Target(hub_client(), pipeline_namespace.name)
    entry: ClusterEntry | None = loop.first(cluster_index, key)
    if entry is None:
        return _Target(view=ClusterView(False, f"EdgeCluster {key} does not exist"), missing=True)
    refusal = admits(key, entry.facts.tenancy, pipeline_namespace, get_settings().tenancy_open_without_section)
    level = effective_level(entry.facts.tenancy)
    try:
        client = await client_for(members, key, entry)
    except ConnectionProblem as exc:
        return _Target(view=ClusterView(False, f"{exc.reason}: {exc.message}", pod_security=level))
    if not entry.facts.probed:
        return _Target(client, entry.namespace, ClusterView(False, f"EdgeCluster {key} has not been probed yet",
                                                            known=False, pod_security=level))
    if not entry.facts.reachable:
        return _Target(client, entry.namespace, ClusterView(
            False, f"EdgeCluster {key} is not reachable (see its Reachable condition)", pod_security=level))
    if refusal is not None:
        # No step starts there (domain.pipeline fails it); the client still deletes this pipeline's own Jobs.
        return _Target(client, entry.namespace, ClusterView(False, refusal.message, refusal=refusal,
                                                            pod_security=level))
    return _Target(client, entry.namespace, ClusterView(True, pod_security=level))


def _received_alerts(metadata: dict) -> list[tuple[str, ReceivedAlert]]:
    return [(r.annotation, ReceivedAlert(key=r.key, name=r.alert.name)) for r in alert_receipts.receipts(metadata)]


async def reconcile(body: kopf.Body, members: MemberClusters, cluster_index: kopf.Index,
                    logger: logging.Logger, refused: _Refusals, namespace_index: kopf.Index | None = None
                    ) -> str | None:
    snapshot = await loop.fresh_snapshot(PLURAL, DataPipeline.KIND, body)
    if snapshot is None:
        return None
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
        _target(members, cluster_index, k, hub_namespace(namespace_index or {}, namespace)) for k in sorted(keys)))))

    observed = await _observe_jobs(old_status, targets, owner, refused)
    models = await _observe_models(old_status, owner, refused)
    alerts = _received_alerts(meta)
    inputs = Inputs(name=name, namespace=namespace, generation=meta.get("generation"), spec=pipeline.spec,
                    status=old_status, now=now, clusters={k: t.view for k, t in targets.items()}, jobs=observed,
                    run_now=(meta.get("annotations") or {}).get(RUN_NOW), alerts=[a for _, a in alerts],
                    models=models)
    decision = decide(inputs)
    status = decision.status

    await _execute(decision, targets, owner, logger, refused)

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


async def _observe_jobs(status: DataPipelineStatus, targets: dict[str, _Target], owner: Owner,
                        refused: _Refusals) -> dict[str, JobObservation]:
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
    seen = {job: seen for _, job, seen in results if seen is not None}
    for job, observation in seen.items():
        why = refused.jobs.pop(job, None)
        if not observation.exists and why is not None:
            seen[job] = JobObservation(exists=False, refused=why)
    return seen


async def _observe_models(status: DataPipelineStatus, owner: Owner, refused: _Refusals
                          ) -> dict[str, ModelObservation]:
    """The candidate MLModels that runs wait for (all steps done, producedModel named)."""
    resource = RESOURCES["mlmodels"]
    seen = {}
    for run in status.runs:
        name = run.produced_model
        if run.phase != "Running" or not name:
            continue
        try:
            existing = (await hub_client().get(resource, name, namespace=owner.namespace)).to_dict()
        except ApiError as exc:
            if exc.status.code != 404:
                raise
            seen[name] = ModelObservation(exists=False, refused=refused.models.pop(name, None))
            continue
        seen[name] = ModelObservation(exists=True, ours=candidates.made_by(existing["metadata"], run.name,
                                                                           owner.uid))
    return seen


async def _execute(decision, targets: dict[str, _Target], owner: Owner, logger, refused: _Refusals) -> None:
    status = decision.status

    async def start(action: StartJob) -> None:
        target = targets[action.cluster]
        if target.client is None:
            return
        job = render_job(owner, action.run, action.step, action.attempt, action.job, target.namespace,
                         on_hub=action.cluster == HUB)
        try:
            if not await jobs.create(target.client, target.namespace, job, owner.uid,
                                     target.view.pod_security or "restricted"):
                logger.warning("Job %s exists on %s but is not ours", action.job, action.cluster or "the hub")
        except jobs.Rejected as exc:
            refused.jobs[action.job] = str(exc)     # the next tick fails the step (domain.pipeline)
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
        elif target is not None and target.missing:
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
            await _create_model(action, owner, refused)


async def _create_model(action: CreateModel, owner: Owner, refused: _Refusals) -> None:
    """Creates the candidate; the next tick looks for it (a 409 is then seen as ours or a
    conflict), and a refusal is remembered as that tick's observation."""
    body = candidates.manifest(action, owner.namespace, owner.name, owner.uid)
    try:
        await hub_client().create(RESOURCES["mlmodels"](body), namespace=owner.namespace)
    except ApiError as exc:
        code = exc.status.code or 0
        if code == 409:
            return
        if 400 <= code < 500:
            refused.models[action.name] = ("ModelRejected",
                                           f"the hub refused MLModel {action.name}: {exc.status.message}")
            return
        raise kopf.TemporaryError(f"cannot create MLModel {action.name}: {exc.status.message}", delay=5) from None


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
        target = await _target(memo.member_clusters, cluster_index, key, HubNamespace(namespace))
        if target.client is None:
            await events.warning(body, "JobsLeftBehind", f"Jobs of run {run} stay on {key}: {target.view.message}")
            continue
        try:
            await jobs.delete_run(target.client, target.namespace, run, owner.uid)
        except (jobs.Unreachable, jobs.Rejected) as exc:
            await events.warning(body, "JobsLeftBehind", f"Jobs of run {run} stay on {key}: {exc}")
