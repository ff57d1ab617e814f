"""DataPipeline runs as a pure function of what status recorded and what was just observed
(docs/pipelines.md): `decide()` returns the next status and the actions (start a Job,
delete a run's Jobs, create the candidate MLModel). The DAG of the steps (`dag`), their
outputs (`outputs`) and the candidate MLModel (`candidates`) are modules of their own.

Everything the next tick needs is in status: the runs with each step's attempt and Job
name, when a retry is due, since when a cluster does not answer, which trigger values and
alerts were acted upon, and which Jobs are still to be deleted. Job names are a function
of (pipeline, run number, step, attempt), so a restarted operator finds the Jobs it
created instead of creating them again. What an action led to comes back as an
observation on the next tick: a Job the cluster refused to create, the candidate MLModel
the hub shows (or refused); the controller never changes a decision after the fact.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

from edgeline.api.conditions import Condition, set_condition
from edgeline.api.datapipeline import Cleanup, DataPipelineSpec, DataPipelineStatus, Run, Step, StepState
from edgeline.domain import cron
from edgeline.domain.candidates import CreateModel, ModelObservation, candidate_model
from edgeline.domain.dag import ancestors, find_cycle, topological_order
from edgeline.domain.outputs import parse_outputs, references, substituted_step
from edgeline.domain.tenancy import Refusal, level_refusal
from edgeline.timestamps import format as iso, parse as parse_time

HUB = ""                                    # cluster key of steps without `cluster`
FINISHED_STEP = ("Succeeded", "Failed", "Skipped", "Cancelled")
MAX_BACKOFF_S = 6 * 3600
HANDLED_ALERTS_KEPT = 20


# --- what the controller observed -----------------------------------------------------------

@dataclass(frozen=True)
class ClusterView:
    """Whether a step's cluster can be used now. `known` is False while nobody can tell yet
    (an EdgeCluster not probed so far): such a cluster is waited for whatever the policy."""

    reachable: bool
    message: str | None = None
    known: bool = True
    refusal: Refusal | None = None        # the EdgeCluster does not admit the pipeline's namespace (domain.tenancy)
    pod_security: str | None = None       # highest Pod Security level a step may ask for there; None: the hub


@dataclass(frozen=True)
class JobObservation:
    """One Job as its cluster shows it. `foreign`: a Job of that name exists but is not ours.
    `refused`: it does not exist because the cluster refused to create it (and why)."""

    exists: bool
    phase: str = "Running"                  # Running | Succeeded | Failed
    reason: str | None = None               # e.g. DeadlineExceeded, Error
    message: str | None = None
    termination_message: str | None = None
    foreign: bool = False
    refused: str | None = None


@dataclass(frozen=True)
class ReceivedAlert:
    key: str                                # unique per receipt (fingerprint and arrival)
    name: str                               # alertname


@dataclass(frozen=True)
class Inputs:
    name: str
    namespace: str
    generation: int | None
    spec: DataPipelineSpec
    status: DataPipelineStatus
    now: dt.datetime
    clusters: dict[str, ClusterView] = field(default_factory=dict)     # by cluster key (HUB for the hub)
    jobs: dict[str, JobObservation] = field(default_factory=dict)      # by Job name; absent: not observed
    run_now: str | None = None              # value of edgeline.io/run-now
    alerts: list[ReceivedAlert] = field(default_factory=list)
    models: dict[str, ModelObservation] = field(default_factory=dict)  # candidates by name; absent: not seen


# --- what the controller does ----------------------------------------------------------------

@dataclass(frozen=True)
class StartJob:
    cluster: str
    run: str
    step: Step                              # with $(steps.X.outputs.K) substituted
    attempt: int
    job: str


@dataclass(frozen=True)
class DeleteJobs:
    """Delete a run's Jobs on one cluster (only `jobs` when given); on success the
    controller drops the cluster from the matching status.cleanup entry."""

    cluster: str
    run: str
    jobs: tuple[str, ...] = ()


@dataclass
class Decision:
    status: DataPipelineStatus
    actions: list[StartJob | DeleteJobs | CreateModel] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)      # (type, reason, message)
    finished: list[tuple[str, float]] = field(default_factory=list)       # (result, seconds) of runs that ended


# --- small pure helpers ---------------------------------------------------------------------

def cluster_key(step: Step) -> str:
    return step.cluster or HUB


def job_name(pipeline: str, run_number: int, step: str, attempt: int) -> str:
    """<pipeline>-<run>-<step>-<attempt>, at most 63 characters (the job-name label on
    its Pods must fit); a long name keeps its end and gets a hash of the whole."""
    full = f"{pipeline}-{run_number}-{step}-{attempt}"
    if len(full) <= 63:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    suffix = f"-{run_number}-{step}-{attempt}"
    room = 63 - len(suffix) - len(digest) - 1
    if room >= 1:
        return f"{pipeline[:room].rstrip('-')}-{digest}{suffix}"
    return f"{full[:54].rstrip('-')}-{digest}"


def backoff_seconds(step: Step, failed_attempts: int) -> int:
    """Wait before the next attempt: backoffSeconds, doubling after each failure."""
    return min(step.backoff_seconds * 2 ** max(failed_attempts - 1, 0), MAX_BACKOFF_S)


# --- checks of the spec (a chain: each returns reason and message, or None) -----------------

def _check_cycles(spec: DataPipelineSpec) -> tuple[str, str] | None:
    cycle = find_cycle(spec.steps)
    if cycle:
        return "DependencyCycle", f"dependsOn forms a cycle: {' -> '.join(cycle)}; nothing runs until it is broken"
    return None


def _check_dependencies(spec: DataPipelineSpec) -> tuple[str, str] | None:
    names = {s.name for s in spec.steps}
    for step in spec.steps:
        unknown = [d for d in step.depends_on if d not in names]
        if unknown:
            return "UnknownDependency", f"step {step.name} depends on {', '.join(unknown)}, which is not a step"
    return None


def _check_references(spec: DataPipelineSpec) -> tuple[str, str] | None:
    for step in spec.steps:
        before = ancestors(spec.steps, step.name)
        for text in [*step.args, *(v.value for v in step.env)]:
            for ref_step, key in references(text):
                if ref_step not in before:
                    return "InvalidReference", (
                        f"step {step.name} uses $(steps.{ref_step}.outputs.{key}) but {ref_step} is not a step it "
                        f"depends on (directly or through others); add it to dependsOn")
    return None


def _check_schedule(spec: DataPipelineSpec) -> tuple[str, str] | None:
    if spec.schedule is None:
        return None
    try:
        cron.parse(spec.schedule.cron)
        cron.zone(spec.schedule.time_zone)
    except cron.CronError as exc:
        return "InvalidSchedule", f"schedule: {exc}"
    return None


CHECKS = (_check_dependencies, _check_cycles, _check_references, _check_schedule)


def problems(spec: DataPipelineSpec) -> list[tuple[str, str]]:
    found = []
    for check in CHECKS:
        result = check(spec)
        if result:
            found.append(result)
            if result[0] in ("UnknownDependency", "DependencyCycle"):
                break                       # later checks assume a DAG
    return found


# --- the decision ---------------------------------------------------------------------------

def decide(inp: Inputs) -> Decision:
    status = inp.status.model_copy(deep=True)
    d = Decision(status=status)
    spec = inp.spec
    found = problems(spec)
    spec_changed = inp.generation != inp.status.observed_generation
    status.observed_generation = inp.generation

    _schedule(inp, status, found, spec_changed)
    triggers = _triggers(inp, status, d, found)
    if found:
        if triggers:
            d.events.append(("Warning", "RunNotStarted", f"{_describe(triggers)}: the pipeline is invalid: "
                                                         f"{found[0][1]}"))
    else:
        if triggers:
            _start_run(inp, status, d, triggers)
        order = topological_order(spec.steps)
        for run in status.runs:
            if run.phase == "Running":
                _advance_run(inp, status, d, run, order)
    _trim(status, spec.run_history_limit)
    for entry in status.cleanup:
        for cluster in entry.clusters:
            d.actions.append(DeleteJobs(cluster, entry.run, tuple(entry.jobs)))
    status.phase = phase_of(status, found)
    _conditions(inp, status, found)
    return d


def phase_of(status: DataPipelineStatus, found: list) -> str:
    if found:
        return "Invalid"
    if any(r.phase == "Running" for r in status.runs):
        return "Running"
    newest = status.runs[0] if status.runs else None
    if newest is not None and newest.phase in ("Succeeded", "Failed"):
        return newest.phase
    return "Idle"


def _schedule(inp: Inputs, status: DataPipelineStatus, found, spec_changed: bool) -> None:
    schedule = inp.spec.schedule
    if schedule is None or schedule.suspend or any(r == "InvalidSchedule" for r, _ in found):
        status.next_run_time = None
        return
    if status.next_run_time is None or spec_changed:
        try:
            status.next_run_time = iso(cron.next_after(schedule.cron, schedule.time_zone, inp.now))
        except cron.CronError:
            status.next_run_time = None


def _triggers(inp: Inputs, status: DataPipelineStatus, d: Decision, found) -> list[str]:
    triggers: list[str] = []
    if inp.run_now and inp.run_now != status.last_run_request:
        status.last_run_request = inp.run_now
        triggers.append("Manual")
    wanted = set(inp.spec.triggers.alerts) if inp.spec.triggers else set()
    for alert in inp.alerts:
        if alert.key in status.handled_alerts:
            continue                        # acted upon before a restart removed its annotation
        status.handled_alerts.insert(0, alert.key)
        if alert.name in wanted:
            triggers.append("Alert")
        else:
            d.events.append(("Normal", "AlertIgnored", f"alert {alert.name} is not in spec.triggers.alerts"))
    del status.handled_alerts[HANDLED_ALERTS_KEPT:]
    due = parse_time(status.next_run_time)
    schedule = inp.spec.schedule
    if due is not None and inp.now >= due and schedule is not None:
        triggers.append("Schedule")
        status.next_run_time = iso(cron.next_after(schedule.cron, schedule.time_zone, inp.now))
    return triggers


def _describe(triggers: list[str]) -> str:
    names = {"Manual": "edgeline.io/run-now", "Alert": "an alert", "Schedule": "the schedule"}
    return " and ".join(names[t] for t in dict.fromkeys(triggers))


def _start_run(inp: Inputs, status: DataPipelineStatus, d: Decision, triggers: list[str]) -> None:
    # One run per tick, however many triggers arrived together; the first names it.
    trigger = next(t for t in ("Manual", "Alert", "Schedule") if t in triggers)
    running = [r for r in status.runs if r.phase == "Running"]
    policy = inp.spec.concurrency_policy
    if running and policy == "Forbid":
        d.events.append(("Warning", "RunSkipped", f"{_describe(triggers)} asked for a run while "
                                                  f"{', '.join(r.name for r in running)} still runs "
                                                  f"(concurrencyPolicy Forbid)"))
        return
    number = (status.run_counter or 0) + 1
    name = f"{inp.name}-{number}"
    if running and policy == "Replace":
        for old in running:
            _cancel(status, old, inp.now, "Replaced", f"replaced by run {name}")
            d.events.append(("Normal", "RunCancelled", f"run {old.name} stopped: replaced by run {name}"))
            d.finished.append(("Cancelled", _duration(old, inp.now)))
    status.run_counter = number
    status.last_run_time = iso(inp.now)
    status.runs.insert(0, Run(name=name, number=number, trigger=trigger, phase="Running", started_at=iso(inp.now),
                              steps=[StepState(name=s.name, cluster=s.cluster, phase="Pending", attempts=0)
                                     for s in inp.spec.steps]))
    d.events.append(("Normal", "RunStarted", f"run {name} started by {_describe(triggers)}"))


def _cancel(status: DataPipelineStatus, run: Run, now: dt.datetime, reason: str, message: str) -> None:
    clusters = set()
    for state in run.steps:
        if (state.attempts or 0) > 0:
            clusters.add(state.cluster or HUB)
        if state.phase not in FINISHED_STEP:
            state.phase = "Cancelled"
            state.finished_at = iso(now)
            state.retry_at = None
            state.message = message
    run.phase = "Cancelled"
    run.finished_at = iso(now)
    run.reason = reason
    run.message = message
    if clusters:
        status.cleanup.append(Cleanup(run=run.name, clusters=sorted(clusters)))


def _duration(run: Run, now: dt.datetime) -> float:
    started = parse_time(run.started_at)
    return max((now - started).total_seconds(), 0.0) if started else 0.0


def _advance_run(inp: Inputs, status: DataPipelineStatus, d: Decision, run: Run, order: list[str]) -> None:
    steps = {s.name: s for s in inp.spec.steps}
    states = {s.name: s for s in run.steps}
    for name in order:
        state = states.get(name)
        if state is None or state.phase in FINISHED_STEP:
            continue                        # added to the spec after the run began, or done
        _advance_step(inp, d, run, state, steps[name], states)
    for state in run.steps:
        if state.name not in steps and state.phase not in FINISHED_STEP:
            state.phase, state.message = "Skipped", "removed from the spec during the run"
    failed = [s for s in run.steps if s.phase == "Failed"]
    if failed:
        _fail_run(inp, status, d, run, failed[0])
    elif all(s.phase in ("Succeeded", "Skipped") for s in run.steps):
        _succeed_run(inp, status, d, run)


def _advance_step(inp: Inputs, d: Decision, run: Run, state: StepState, step: Step,
                  states: dict[str, StepState]) -> None:
    now = inp.now
    key = cluster_key(step)
    view = inp.clusters.get(key) or ClusterView(False, f"EdgeCluster {key} is not known", known=False)
    if state.phase in ("Pending", "Waiting", None):
        deps = [states.get(n) for n in step.depends_on]
        blocked = [n for n, s in zip(step.depends_on, deps) if s is not None and s.phase in ("Failed", "Skipped",
                                                                                             "Cancelled")]
        if blocked:
            state.phase, state.message = "Skipped", f"{', '.join(blocked)} did not succeed"
            return
        if not all(s is None or s.phase == "Succeeded" for s in deps):
            return
        retry_at = parse_time(state.retry_at)
        if retry_at is not None and now < retry_at:
            return
        refused = view.refusal or level_refusal(step.cluster, view.pod_security, step.pod_security)
        if refused is not None:
            _step_failed(d, run, state, refused.reason, refused.message)
            return
        if not view.reachable:
            _unreachable(inp, d, run, state, step, view, starting=True)
            return
        _start_attempt(inp, d, run, state, step, states, (state.attempts or 0) + 1)
        return
    # Running
    observed = inp.jobs.get(state.job or "")
    if not view.reachable or observed is None:
        _unreachable(inp, d, run, state, step, view if not view.reachable else
                     ClusterView(False, f"Job {state.job} could not be read"), starting=False)
        return
    state.unreachable_since = None
    if observed.foreign:
        _step_failed(d, run, state, "JobNameConflict",
                     f"a Job named {state.job} exists on {_where(step)} but belongs to something else; "
                     f"it is left alone")
    elif not observed.exists and observed.refused:
        _step_failed(d, run, state, "JobRejected", f"{_where(step)} refused Job {state.job}: {observed.refused}")
    elif not observed.exists:
        # Created and gone (deleted by someone), or the create never landed: same name again.
        _start_attempt(inp, d, run, state, step, states, state.attempts or 1)
        state.message = f"Job {state.job} was missing; created again"
    elif observed.phase == "Running":
        state.message = None
    elif observed.phase == "Succeeded":
        outputs, note = parse_outputs(observed.termination_message)
        state.phase, state.outputs, state.finished_at = "Succeeded", outputs, iso(now)
        state.message, state.reason, state.retry_at = note, None, None
    else:
        why = observed.message or "the Job failed"
        attempts = state.attempts or 1
        if attempts <= step.retries:
            wait = backoff_seconds(step, attempts)
            state.phase = "Pending"
            state.retry_at = iso(now + dt.timedelta(seconds=wait))
            state.reason = observed.reason or "JobFailed"
            state.message = f"attempt {attempts} failed: {why}; attempt {attempts + 1} starts in {wait}s"
            d.events.append(("Warning", "StepRetrying", f"run {run.name} step {step.name}: {state.message}"))
        else:
            outputs, _ = parse_outputs(observed.termination_message)
            state.outputs = outputs
            tries = f" after {attempts} attempts" if attempts > 1 else ""
            _step_failed(d, run, state, observed.reason or "JobFailed", f"{why}{tries}")


def _start_attempt(inp: Inputs, d: Decision, run: Run, state: StepState, step: Step,
                   states: dict[str, StepState], attempt: int) -> None:
    outputs = {n: s.outputs for n, s in states.items() if s.phase == "Succeeded"}
    rendered, missing = substituted_step(step, outputs)
    if missing:
        _step_failed(d, run, state, "MissingOutput",
                     f"{', '.join(missing)} not reported by the step(s) before it")
        return
    name = job_name(inp.name, run.number, step.name, attempt)
    first = attempt != state.attempts
    state.phase, state.attempts, state.job = "Running", attempt, name
    state.started_at = state.started_at or iso(inp.now)
    if first:
        state.attempt_started_at = iso(inp.now)
    state.retry_at = state.unreachable_since = None
    state.message = None
    d.actions.append(StartJob(cluster_key(step), run.name, rendered, attempt, name))


def _unreachable(inp: Inputs, d: Decision, run: Run, state: StepState, step: Step, view: ClusterView,
                 starting: bool) -> None:
    """A step that would start waits for its cluster (or fails at once under onUnreachable
    Fail); a running step keeps running out of sight until its timeout passes."""
    why = view.message or "does not answer"
    since = parse_time(state.unreachable_since) or inp.now
    state.unreachable_since = iso(since)
    waited = (inp.now - since).total_seconds()
    if starting and view.known and inp.spec.on_unreachable == "Fail":
        _step_failed(d, run, state, "ClusterUnreachable", f"{_where(step)} cannot be reached: {why} "
                                                          f"(onUnreachable: Fail)")
        return
    if waited > step.timeout_seconds:
        _step_failed(d, run, state, "ClusterUnreachable", f"{_where(step)} did not answer for "
                                                          f"{int(waited)}s (timeoutSeconds {step.timeout_seconds}): "
                                                          f"{why}")
        return
    if starting:
        if state.phase != "Waiting":
            d.events.append(("Warning", "StepWaiting", f"run {run.name} step {step.name} waits for "
                                                       f"{_where(step)}: {why}"))
        state.phase = "Waiting"
        state.message = f"waiting for {_where(step)}: {why}"
    else:
        state.message = f"{_where(step)} does not answer ({why}); the Job keeps running there"


def _where(step: Step) -> str:
    return f"cluster {step.cluster}" if step.cluster else "the hub"


def _step_failed(d: Decision, run: Run, state: StepState, reason: str, message: str) -> None:
    state.phase, state.reason, state.message = "Failed", reason, message
    state.retry_at = None
    d.events.append(("Warning", "StepFailed", f"run {run.name} step {state.name}: {reason}: {message}"))


def _fail_run(inp: Inputs, status: DataPipelineStatus, d: Decision, run: Run, first: StepState) -> None:
    now = iso(inp.now)
    for state in run.steps:
        if state.phase == "Failed":
            state.finished_at = state.finished_at or now
    stop: dict[str, list[str]] = {}
    for state in run.steps:
        if state.phase == "Running":
            state.phase, state.message = "Cancelled", f"stopped: step {first.name} failed"
            state.finished_at = now
            if state.job:
                stop.setdefault(state.cluster or HUB, []).append(state.job)
        elif state.phase in ("Pending", "Waiting"):
            state.phase, state.message = "Skipped", f"step {first.name} failed"
            state.retry_at = None
    for cluster, jobs in sorted(stop.items()):
        status.cleanup.append(Cleanup(run=run.name, clusters=[cluster], jobs=sorted(jobs)))
    _finish(inp, d, run, "Failed", first.reason or "StepFailed", f"step {first.name}: {first.message}")


def _finish(inp: Inputs, d: Decision, run: Run, phase: str, reason: str | None, message: str | None) -> None:
    run.phase, run.reason, run.message = phase, reason, message
    run.finished_at = iso(inp.now)
    seconds = _duration(run, inp.now)
    d.finished.append((phase, seconds))
    if phase == "Succeeded":
        produced = f"; produced MLModel {run.produced_model}" if run.produced_model else ""
        d.events.append(("Normal", "RunSucceeded", f"run {run.name} succeeded in {int(seconds)}s{produced}"))
    else:
        d.events.append(("Warning", "RunFailed", f"run {run.name} failed: {reason}: {message}"))


def _succeed_run(inp: Inputs, status: DataPipelineStatus, d: Decision, run: Run) -> None:
    """Every step succeeded. With `produces`, the run succeeds once its candidate MLModel is
    seen on the hub; until then it stays Running and asks for the model on every tick (the
    name is the same each time, so a create that landed unseen is found, not repeated)."""
    template = inp.spec.produces
    seen = inp.models.get(run.produced_model or "")
    if template is None:
        # produces was removed from the spec while the run waited for its candidate.
        if seen is None or not (seen.exists and seen.ours):
            run.produced_model = None
        _finish(inp, d, run, "Succeeded", None, None)
        return
    source = next((s for s in run.steps if s.name == template.from_step), None)
    outputs = source.outputs if source else {}
    model, problem = candidate_model(inp.name, run, template, outputs)
    if problem:
        _finish(inp, d, run, "Failed", problem[0], problem[1])
        return
    seen = inp.models.get(model.name)
    if seen is not None and seen.exists and seen.ours:
        run.produced_model = model.name
        _finish(inp, d, run, "Succeeded", None, None)
    elif seen is not None and seen.exists:
        run.produced_model = None
        _finish(inp, d, run, "Failed", "ModelConflict", f"MLModel {model.name} already exists and was not made by "
                                                        f"this run; report another version from the step")
    elif seen is not None and seen.refused:
        run.produced_model = None
        _finish(inp, d, run, "Failed", seen.refused[0], seen.refused[1])
    else:
        run.produced_model = model.name
        run.message = f"every step succeeded; creating candidate MLModel {model.name}"
        d.actions.append(model)



def _activity(run: Run) -> str:
    steps = ", ".join(s.name for s in run.steps if s.phase == "Running")
    if steps:
        return steps
    if run.produced_model and all(s.phase in ("Succeeded", "Skipped") for s in run.steps):
        return f"creating MLModel {run.produced_model}"
    return "between steps"


def _trim(status: DataPipelineStatus, limit: int) -> None:
    """Keep every running run and the newest `limit` finished ones; the Jobs of the others
    are deleted (status.cleanup holds what is left to delete, across restarts)."""
    kept, finished = [], 0
    for run in status.runs:
        if run.phase != "Running":
            finished += 1
            if finished > limit:
                clusters = sorted({s.cluster or HUB for s in run.steps if (s.attempts or 0) > 0})
                if clusters:
                    status.cleanup = [c for c in status.cleanup if c.run != run.name]
                    status.cleanup.append(Cleanup(run=run.name, clusters=clusters))
                continue
        kept.append(run)
    status.runs = kept


def _conditions(inp: Inputs, status: DataPipelineStatus, found) -> None:
    conditions = [c.dump() for c in status.conditions]

    def put(ctype, ok, reason, message):
        nonlocal conditions
        conditions = set_condition(conditions, ctype, "True" if ok else "False", reason, message,
                                   generation=inp.generation, now=inp.now)

    if found:
        put("Ready", False, found[0][0], "; ".join(m for _, m in found))
    else:
        order = topological_order(inp.spec.steps)
        when = f"; next scheduled run at {status.next_run_time}" if status.next_run_time else \
            ("; the schedule is suspended" if inp.spec.schedule and inp.spec.schedule.suspend else "")
        put("Ready", True, "Valid", f"{len(order)} step(s) in order {', '.join(order)}{when}")
    running = [r for r in status.runs if r.phase == "Running"]
    if running:
        waiting = [(r, s) for r in running for s in r.steps if s.phase == "Waiting"]
        if waiting:
            run, step = waiting[0]
            put("Running", True, "WaitingForCluster", f"run {run.name} step {step.name}: {step.message}")
        else:
            active = [f"{r.name} ({_activity(r)})" for r in running]
            put("Running", True, "RunRunning", "running: " + "; ".join(active))
    else:
        newest = status.runs[0] if status.runs else None
        if newest is None:
            put("Running", False, "NoRun", "no run yet")
        elif newest.phase == "Failed":
            put("Running", False, "RunFailed", f"run {newest.name} failed: {newest.reason}: {newest.message}")
        else:
            put("Running", False, f"Run{newest.phase}", f"run {newest.name} ended {newest.phase}")
    status.conditions = [Condition.model_validate(c) for c in conditions]
