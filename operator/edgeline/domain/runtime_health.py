"""Why a runtime on a member cluster is not ready, from what its Pods' containers show.

`edgeline.clusters.workloads` reads the containers of the runtime Pods (and, for a container
that runs but stays unready, the end of its log); `classify` turns that into at most one
problem per cluster, in the words a person on the line understands. A fatal problem is one
that waiting will not fix: the rollout fails the cluster's wave at once instead of waiting
for the wave's deadline. Nothing is undone by that: the Pods keep trying, and a wave whose
clusters turn ready goes on.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

# The kubelet's waiting reasons of a container whose image does not arrive.
IMAGE_PULL_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
# Waiting reasons of a container that cannot be created or started as specified.
CONFIG_REASONS = frozenset({"CreateContainerConfigError", "CreateContainerError", "RunContainerError",
                            "StartError"})
# A running, unready container's log is read once it has run this long: the runtime needs a
# moment to fetch and verify, and reading logs of every starting Pod would cost for nothing.
LOG_AFTER_SECONDS = 5
LAST_LOG_LIMIT = 512


@dataclass(frozen=True)
class ContainerFacts:
    """The runtime container of one Pod, as its Pod status shows it."""

    pod: str
    revision: str | None = None             # the Pod's edgeline.io/revision label
    image: str = ""
    ready: bool = False
    restarts: int = 0
    waiting_reason: str | None = None
    waiting_message: str | None = None
    running_since: dt.datetime | None = None
    last_exit_code: int | None = None       # of the previous run, when it ended
    last_reason: str | None = None          # e.g. Error, OOMKilled
    last_message: str | None = None         # its termination message (the end of its log after an error)
    unschedulable: str | None = None        # the scheduler's message while no node fits
    log_tail: str | None = None             # the end of the running container's log, when it was read


@dataclass(frozen=True)
class RuntimeProblem:
    reason: str                 # CamelCase: ImagePullFailed, CrashLoopBackOff, ModelRejected, ...
    message: str
    pod: str
    fatal: bool = False         # waiting will not fix it: the wave fails now
    restarts: int | None = None
    last_log: str | None = None


def needs_log(container: ContainerFacts, now: dt.datetime) -> bool:
    """Whether to read the end of this container's log: it runs, is not ready, and has had
    time to say why."""
    if container.ready or container.running_since is None:
        return False
    return (now - container.running_since).total_seconds() >= LOG_AFTER_SECONDS


def classify(containers: list[ContainerFacts], revision: str | None) -> RuntimeProblem | None:
    """The most telling problem among the Pods of `revision` (Pods of other revisions are
    on their way out), or None when nothing is wrong that the Pods show."""
    mine = [c for c in containers if revision is None or c.revision == revision]
    for check in (_image_pull, _config, _crash_loop, _golden_sample, _model_rejected, _fetch_retrying,
                  _unschedulable):
        for container in mine:
            problem = check(container)
            if problem is not None:
                return problem
    return None


def _image_pull(c: ContainerFacts) -> RuntimeProblem | None:
    if c.waiting_reason not in IMAGE_PULL_REASONS:
        return None
    detail = f" ({c.waiting_reason}: {_clip(c.waiting_message)})" if c.waiting_message else f" ({c.waiting_reason})"
    return RuntimeProblem("ImagePullFailed", f"the image {c.image or '(none)'} cannot be pulled{detail}", c.pod,
                          fatal=True)


def _config(c: ContainerFacts) -> RuntimeProblem | None:
    if c.waiting_reason not in CONFIG_REASONS:
        return None
    return RuntimeProblem("ContainerNotStarted", f"{c.waiting_reason}: {_clip(c.waiting_message) or 'no message'}",
                          c.pod, restarts=c.restarts)


def _crash_loop(c: ContainerFacts) -> RuntimeProblem | None:
    crashed = c.waiting_reason == "CrashLoopBackOff" or (
        c.restarts > 0 and not c.ready and c.last_exit_code not in (None, 0))
    if not crashed:
        return None
    last = last_log_line(c.last_message)
    how = f"exit code {c.last_exit_code}" if c.last_exit_code is not None else "it exited"
    if c.last_reason and c.last_reason not in ("Error", "Completed"):
        how += f" ({c.last_reason})"
    message = f"the runtime container keeps exiting: {c.restarts} restart(s), last {how}"
    message += f"; last log line: {last}" if last else "; it left no log"
    return RuntimeProblem("CrashLoopBackOff", message, c.pod, restarts=c.restarts, last_log=last)


# The runtime's reasons for a golden sample it cannot reproduce, or cannot use at all.
GOLDEN_REASONS = {"GoldenSampleFailed": "GoldenSampleMismatch", "GoldenSampleInvalid": "GoldenSampleInvalid"}


def _golden_sample(c: ContainerFacts) -> RuntimeProblem | None:
    """The model runs but does not give the golden sample's outputs (the deviation is in the
    message), or the golden sample itself is unusable: both fatal, waiting changes neither."""
    record = _last_state_record(c.log_tail)
    if record is None or record.get("event") != "not_ready" or record.get("reason") not in GOLDEN_REASONS:
        return None
    said = record.get("message") or "no message"
    what = "does not reproduce its golden sample" if record["reason"] == "GoldenSampleFailed" \
        else "cannot check its golden sample"
    return RuntimeProblem(GOLDEN_REASONS[record["reason"]], f"the model {what}: {_clip(said)}", c.pod, fatal=True,
                          restarts=c.restarts, last_log=last_log_line(c.log_tail))


def _model_rejected(c: ContainerFacts) -> RuntimeProblem | None:
    record = _last_state_record(c.log_tail)
    if record is None or record.get("event") != "not_ready":
        return None
    reason = record.get("reason") or "NotReady"
    said = f"{reason}: {record.get('message') or 'no message'}"
    return RuntimeProblem("ModelRejected", f"the runtime refuses to serve the model: {_clip(said)}", c.pod,
                          fatal=True, restarts=c.restarts, last_log=last_log_line(c.log_tail))


def _fetch_retrying(c: ContainerFacts) -> RuntimeProblem | None:
    record = _last_state_record(c.log_tail)
    if record is None or record.get("event") != "fetch_retry":
        return None
    said = f"{record.get('reason') or 'FetchFailed'}: {record.get('message') or 'no message'}"
    return RuntimeProblem("ModelFetchRetrying", f"the runtime cannot fetch the model yet and retries: {_clip(said)}",
                          c.pod, restarts=c.restarts, last_log=last_log_line(c.log_tail))


def _unschedulable(c: ContainerFacts) -> RuntimeProblem | None:
    if not c.unschedulable:
        return None
    return RuntimeProblem("Unschedulable", f"no node can run the runtime Pod: {_clip(c.unschedulable)}", c.pod)


# The runtime's log events that tell where it stands (edgeline.runtime.serve).
_STATE_EVENTS = ("not_ready", "fetch_retry", "ready", "model_verified", "model_loaded")


def _last_state_record(tail: str | None) -> dict | None:
    """The runtime's newest log record that tells where it stands; other lines (and lines
    that are not the runtime's JSON) are skipped."""
    for line in reversed((tail or "").splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") in _STATE_EVENTS:
            return record
    return None


def last_log_line(text: str | None) -> str | None:
    """The last non-empty line of a log or termination message, shortened for status; a
    runtime's JSON record is shown as its event, reason and message."""
    line = _last_line(text)
    if line is None:
        return None
    if line.startswith("{"):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict) and "event" in record:
            parts = [str(record["event"])] + [str(record[k]) for k in ("reason", "message", "error") if record.get(k)]
            line = ": ".join(parts)
    return _clip(line)


def _last_line(text: str | None) -> str | None:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else None


def _clip(text: str | None) -> str | None:
    if text is None:
        return None
    text = " ".join(text.split())
    return text if len(text) <= LAST_LOG_LIMIT else text[:LAST_LOG_LIMIT - 1] + "…"
