"""DataPipeline Jobs on member clusters and the hub: create, read back (with the Pod's
termination message, where a step reports its outputs), delete a run's Jobs. Every call
uses the client's timeout, so one dead site never stalls the others; a Job is only ever
touched when its owner labels say it is this DataPipeline's."""

from __future__ import annotations

import httpx2 as httpx
from lightkube import ApiError, AsyncClient
from lightkube.codecs import from_dict
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod
from lightkube.types import CascadeType

from edgeline import FIELD_MANAGER
from edgeline.domain.pipeline import JobObservation
from edgeline.metrics import MEMBER_REQUESTS
from edgeline.clusters.workloads import namespace_object
from edgeline.render.jobs import LABEL_RUN, LABEL_UID

POD_JOB_LABEL = "batch.kubernetes.io/job-name"


class Unreachable(Exception):
    """The cluster did not answer (or answered with a server error); worth trying again."""


class Rejected(Exception):
    """The cluster refused the Job for good (forbidden, invalid); the message says why."""


def _problem(exc: Exception) -> Exception:
    if isinstance(exc, ApiError):
        code = exc.status.code or 0
        text = f"API error {code}: {exc.status.message}"
        return Rejected(text) if 400 <= code < 500 and code not in (408, 429) else Unreachable(text)
    return Unreachable(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


def _count(n: int = 1) -> None:
    MEMBER_REQUESTS.labels(purpose="jobs").inc(n)


def _ours(job: Job, uid: str) -> bool:
    return ((job.metadata.labels or {}) if job.metadata else {}).get(LABEL_UID) == uid


async def create(client: AsyncClient, namespace: str, job: dict, uid: str, pod_security: str = "restricted") -> bool:
    """Creates the Job (and its namespace when missing, labelled with the Pod Security level the
    EdgeCluster allows: the API server then enforces it too). True when it exists now as ours,
    also when an earlier operator created it; False when a Job of that name is someone else's."""
    name = job["metadata"]["name"]
    try:
        for _ in range(2):
            try:
                _count()
                await client.create(from_dict(job), namespace=namespace)
                return True
            except ApiError as exc:
                if exc.status.code == 409:
                    _count()
                    existing = await client.get(Job, name, namespace=namespace)
                    return _ours(existing, uid)
                if exc.status.code != 404:
                    raise
                # The namespace does not exist yet on that cluster.
                _count()
                await client.apply(from_dict(namespace_object(namespace, pod_security)), field_manager=FIELD_MANAGER)
        raise Unreachable(f"namespace {namespace} could not be created for Job {name}")
    except (ApiError, httpx.HTTPError, OSError) as exc:
        raise _problem(exc) from None


async def observe(client: AsyncClient, namespace: str, name: str, uid: str) -> JobObservation:
    try:
        _count()
        try:
            job = await client.get(Job, name, namespace=namespace)
        except ApiError as exc:
            if exc.status.code == 404:
                return JobObservation(exists=False)
            raise
        if not _ours(job, uid):
            return JobObservation(exists=True, foreign=True)
        conditions = {c.type: c for c in (job.status.conditions or [])} if job.status else {}
        done = conditions.get("Complete")
        failed = conditions.get("Failed")
        if done is not None and done.status == "True":
            terminated = await _terminated(client, namespace, name)
            return JobObservation(True, "Succeeded", termination_message=terminated.message if terminated else None)
        if failed is not None and failed.status == "True":
            terminated = await _terminated(client, namespace, name)
            return _failure(failed, terminated)
        return JobObservation(True, "Running")
    except (ApiError, httpx.HTTPError, OSError) as exc:
        raise _problem(exc) from None


def _failure(condition, terminated) -> JobObservation:
    reason = "DeadlineExceeded" if condition.reason == "DeadlineExceeded" else "JobFailed"
    if reason == "DeadlineExceeded" or terminated is None:
        message = condition.message or condition.reason or "the Job failed"
    else:
        said = (terminated.message or "").strip()
        message = f"exit code {terminated.exitCode}" + (f": {said[:512]}" if said else
                                                       f" ({terminated.reason})" if terminated.reason else "")
    return JobObservation(True, "Failed", reason=reason, message=message,
                          termination_message=terminated.message if terminated else None)


async def _terminated(client: AsyncClient, namespace: str, job: str):
    """The step container's terminated state in the Job's newest Pod (None when the Pod is gone)."""
    _count()
    pods = [p async for p in client.list(Pod, namespace=namespace, labels={POD_JOB_LABEL: job})]
    pods.sort(key=lambda p: p.metadata.creationTimestamp or 0, reverse=True)
    for pod in pods:
        for status in (pod.status.containerStatuses or []) if pod.status else []:
            if status.state and status.state.terminated:
                return status.state.terminated
    return None


async def delete_run(client: AsyncClient, namespace: str, run: str, uid: str, only: tuple[str, ...] = ()) -> int:
    """Deletes this DataPipeline's Jobs of one run (only the named ones when given), with
    their Pods. Returns how many were deleted."""
    try:
        _count()
        jobs = [j async for j in client.list(Job, namespace=namespace, labels={LABEL_RUN: run, LABEL_UID: uid})]
        deleted = 0
        for job in jobs:
            if only and job.metadata.name not in only:
                continue
            _count()
            try:
                await client.delete(Job, job.metadata.name, namespace=namespace, cascade=CascadeType.BACKGROUND)
                deleted += 1
            except ApiError as exc:
                if exc.status.code != 404:
                    raise
        return deleted
    except (ApiError, httpx.HTTPError, OSError) as exc:
        raise _problem(exc) from None
