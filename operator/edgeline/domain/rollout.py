"""The rollout of an EdgeDeployment as a pure function of what was recorded in status and
what was just observed on the clusters: `decide()` returns the next status and the actions
(apply a revision to a cluster, remove Edgeline's objects from a cluster).

Everything the decision needs lives in status, so that a restarted operator continues
where the last one stopped: the target revision, the current wave and when it started or
began to soak, and what each cluster runs. Applying is idempotent (server-side apply of the
same objects), so repeating an action after a crash changes nothing that matters.

Gates slot in before a new target is taken: approval (issue 6) and the bad-revision mark
left by a rollback (issue 7). A rollback is an ordinary rollout towards an older revision.

The decision is whole: alerts become rollbacks or proposals here, approval status,
conditions and the phase (derived from the conditions) are part of the returned status, and
the controller writes that status as it is. What the controller's actions came to (an apply
that failed, when a revert reached a cluster) comes back as `outcomes` on the next tick.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

from edgeline.api.conditions import Condition, set_condition
from edgeline.api.edgedeployment import (ClusterState, EdgeDeploymentSpec, EdgeDeploymentStatus, EffectiveApproval,
                                         ExcludedCluster, HistoryEntry, PinnedCluster, RevisionRef, RollbackRecord,
                                         RolloutProgress, VariantRef)
from edgeline.domain import analysis, deployment_conditions, shadow, windows
from edgeline.domain.approval_policy import EffectivePolicy
from edgeline.domain.approval_status import REVERTED, ApprovalState, approval_state
from edgeline.domain.deployment_conditions import Verdict
from edgeline.domain.names import some
from edgeline.domain.placement import ClusterFacts, Exclusion
from edgeline.domain.rollback import AutoRollback, alert_verdicts
from edgeline.domain.runtime_health import RuntimeProblem
from edgeline.domain.site_reports import site_verdicts
from edgeline.domain.variants import Pick, Runs, pick
from edgeline.domain.tenancy import NAMESPACE_NOT_ALLOWED
from edgeline.domain.waves import WavePlan
from edgeline.timestamps import format as iso
from edgeline.timestamps import format_ms, parse

__all__ = ["ActOutcome", "Apply", "AutoRollback", "Decision", "Inputs", "Observation", "Remove", "decide", "iso",
           "parse"]


@dataclass(frozen=True)
class Observation:
    """What one cluster showed this tick. `revision` is the one its Deployment runs."""

    name: str
    reachable: bool
    exists: bool = False
    revision: str | None = None
    ready_replicas: int = 0
    replicas: int = 0
    ready: bool = False
    message: str | None = None
    problem: RuntimeProblem | None = None   # what the runtime Pods show while not ready
    shadow: str | None = None               # the candidate revision attached in shadow (domain.shadow)


@dataclass(frozen=True)
class Apply:
    cluster: str
    revision: RevisionRef
    variant: VariantRef | None = None       # the model variant for this cluster (domain.variants)
    shadow: RevisionRef | None = None       # a candidate run in shadow beside it (domain.shadow)
    shadow_variant: VariantRef | None = None


@dataclass(frozen=True)
class Remove:
    cluster: str


@dataclass(frozen=True)
class ActOutcome:
    """What the last tick's action on one cluster came to: an observation for this tick."""

    cluster: str
    revision: str | None            # the revision applied; None for a removal
    at: float                       # epoch seconds when the action finished
    error: str | None = None        # why it failed, for people


@dataclass(frozen=True)
class Inputs:
    spec: EdgeDeploymentSpec
    status: EdgeDeploymentStatus
    desired: RevisionRef | None            # None: the model is not resolved (yet)
    waves: list[WavePlan]
    excluded: list[Exclusion]
    observations: dict[str, Observation]
    stale_after: dict[str, int]             # seconds, per cluster
    approved: bool                          # the gate for `desired` (issue 6)
    paused: bool
    rollback_to: str | None                 # value of the rollback-to annotation
    now: dt.datetime
    approvals: list = field(default_factory=list)   # ApprovalRecords of `desired`, kept with the rollout
    reapproved: bool = False    # a rolled-back `desired` was approved again after its rollback
    auto_rollbacks: list = field(default_factory=list)   # AutoRollback, oldest first
    alerts: list = field(default_factory=list)       # domain.rollback.Alert received since the last tick, oldest first
    outcomes: dict = field(default_factory=dict)     # cluster -> ActOutcome of the last tick's action there
    author: str | None = None                        # who made the current spec (four-eyes rule)
    model: Verdict = Verdict(True, "ModelReady", "")     # how the modelRef resolved (domain.model_choice)
    generation: int | None = None
    stale: dict[str, str] = field(default_factory=dict)   # cluster -> why: its EdgeCluster is Stale (placement)
    lines: dict = field(default_factory=dict)    # cluster -> windows.LineFacts: maintenance windows, line consent
    facts: dict[str, ClusterFacts] = field(default_factory=dict)   # cluster -> probed facts: which variant fits
    model_metrics: dict[str, float] = field(default_factory=dict)  # the desired model's spec.metrics, for approvers
    model_stage: str | None = None                                  # the desired model's effective stage
    checks: list = field(default_factory=list)        # domain.analysis.ResolvedCheck of spec.analysis
    measurements: list = field(default_factory=list)  # domain.analysis.Measurement of the queries `analysis.due` named
    context: analysis.Context | None = None           # the deployment's name and namespace, for the checks' queries
    policy: EffectivePolicy | None = None    # the approval rules that apply (None: spec.approval, in unit tests)
    authors: list = field(default_factory=list)      # everyone who changed the spec since the last approved revision
    site_rollbacks: list = field(default_factory=list)    # domain.site_reports.SiteRevert: pull sites' own reverts
    shadow_clusters: list = field(default_factory=list)      # domain.shadow.clusters_of spec.shadow
    shadow_comparisons: list = field(default_factory=list)   # api.shadow.ShadowComparison read this tick


@dataclass
class Decision:
    status: EdgeDeploymentStatus
    actions: list[Apply | Remove] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)   # (type, reason, message)
    held_reason: str | None = None          # why the desired revision is not being rolled out
    rollbacks_applied: list[RollbackRecord] = field(default_factory=list)   # reverts that reached every cluster


def decide(inp: Inputs) -> Decision:
    status = inp.status.model_copy(deep=True)
    status.excluded = []
    decision = Decision(status=status)
    status.desired_revision = inp.desired
    status.observed_generation = inp.generation
    progress = status.rollout or RolloutProgress()
    verdicts = alert_verdicts(inp.spec.rollback, inp.status, inp.alerts, inp.now)
    if verdicts.proposals:
        status.rollbacks[:0] = verdicts.proposals
        del status.rollbacks[20:]
    # The wave's metric checks: a failed one asks for a rollback exactly as an alert does.
    recorded = analysis.record(inp.checks, inp.status, inp.waves, inp.measurements, _context(inp), inp.now)
    status.analysis = recorded.analysis
    decision.events.extend(recorded.events)
    checked = analysis.rollback_requests(inp.spec.rollback, status, recorded.failed, inp.now)
    decision.events.extend(checked.events)
    if checked.proposals:
        status.rollbacks[:0] = checked.proposals
        del status.rollbacks[20:]
    # Rollbacks pull sites did by themselves (domain.site_reports): followed, or recorded as done.
    site = site_verdicts(inp.site_rollbacks, inp.status, inp.spec.rollback)
    if site.records:
        status.rollbacks[:0] = reversed(site.records)
        del status.rollbacks[20:]
        status.bad_revisions += site.bad
    decision.events.extend(site.events)

    goal, reason = _choose_goal(inp, status, progress, decision,
                                [*inp.auto_rollbacks, *verdicts.automatic, *checked.automatic, *site.automatic])
    if goal is not None and goal.revision != progress.revision:
        # A rollback reverts every affected cluster at once; an update goes wave by wave.
        progress = RolloutProgress(revision=goal.revision, target=goal,
                                   wave=len(inp.waves) if reason == "Rollback" else 0, reason=reason,
                                   approvals=[a for a in inp.approvals if a.revision == goal.revision],
                                   # Authors since this generation are the next revision's (a rollback
                                   # approves nothing new, so it keeps the last approved generation).
                                   generation=inp.generation if reason == "Update" else progress.generation)
        status.pinned = []
        decision.events.append(("Normal", "RolloutStarted" if reason == "Update" else "RollbackStarted",
                                f"rolling out revision {goal.revision} ({_label(goal)}) in {len(inp.waves)} wave(s)"))
    status.rollout = progress
    goal = goal or progress.target

    all_clusters = [c for w in inp.waves for c in w.clusters]
    wave_of = {c: w.name for w in inp.waves for c in w.clusters}
    gates = _Gatekeeper(inp)    # clusters whose change waits for a window or the line: gates.waits
    if goal is not None:
        _advance(inp, status, progress, goal, decision, _approved_waves(inp, progress, decision), gates)
        decision.events += [("Warning", "LineIdleTimeout", f"{name}: {note}") for name, note in gates.notes]
    reached = progress.wave if progress.wave is not None else -1
    applied_now = {a.cluster for a in decision.actions if isinstance(a, Apply)}
    if goal is not None:
        _shadow(inp, decision, goal, gates)     # the served revision again, with or without a candidate

    clusters: list[ClusterState] = []
    previous = {c.name: c for c in inp.status.clusters}
    pins = {p.cluster: p.revision for p in status.pinned}
    for index, wave in enumerate(inp.waves):
        for name in wave.clusters:
            clusters.append(_cluster_state(name, wave.name, index <= reached or name in pins, pins.get(name, goal),
                                           inp, previous.get(name), name in applied_now, gates.waits.get(name)))
    for name, old in previous.items():
        if name in wave_of:
            continue
        obs = inp.observations.get(name)
        if obs is not None and obs.reachable and not obs.exists:
            continue                                    # removed: forget it
        decision.actions.append(Remove(name))
        failed = inp.outcomes.get(name)
        if failed is not None and failed.error:
            message = f"left the selection; removing Edgeline's objects failed: {failed.error}"
        else:
            message = "left the selection; removing Edgeline's objects" + (
                "" if obs is None or obs.reachable else " once the cluster answers again")
        clusters.append(old.model_copy(update={"phase": "Removing", "wave": None, "message": message}))
    failed_clusters = set(progress.failed_clusters)
    for state in clusters:
        if state.name in failed_clusters and state.phase == "Progressing":
            state.phase = "Failed"
    status.clusters = clusters
    status.excluded = [_excluded(e) for e in inp.excluded]
    # A cluster newly refusing this namespace (domain.tenancy) says so once, not every tick.
    before = {(e.name, e.reason) for e in inp.status.excluded}
    decision.events.extend(("Warning", e.reason, f"EdgeCluster {e.name} is excluded: {e.message}")
                           for e in inp.excluded if e.reason == NAMESPACE_NOT_ALLOWED and (e.name, e.reason) not in before)
    status.total_clusters = len(all_clusters)
    status.ready_clusters = sum(1 for c in clusters if c.phase == "Ready" and goal and
                                c.revision == pins.get(c.name, goal).revision)
    status.ready = f"{status.ready_clusters}/{status.total_clusters}"
    _trim_history(status, inp.spec.revision_history_limit)
    decision.rollbacks_applied = _settle_rollbacks(inp, status)
    _report(inp, status, decision)
    decision.events.extend(verdicts.events)
    return decision


def _shadow(inp: Inputs, decision: Decision, goal: RevisionRef, gates: _Gatekeeper) -> None:
    """The candidate awaiting approval attached in shadow to the served revision on the clusters
    spec.shadow chose, or detached again (domain.shadow)."""
    candidate = shadow.candidate_of(inp.spec.shadow, decision.held_reason, inp.desired, goal)
    views = {name: shadow.ClusterView(name, o.reachable, o.exists, o.revision, o.shadow, o.ready)
             for name, o in inp.observations.items()}
    busy = {a.cluster for a in decision.actions} | {p.cluster for p in decision.status.pinned}

    def variant(cluster: str, revision: RevisionRef) -> tuple[bool, VariantRef | None]:
        chosen = variant_for(inp, cluster, revision)
        return (chosen is None or chosen.variant is not None), (chosen.variant if chosen else None)

    for step in shadow.plan(candidate, goal, inp.shadow_clusters, views, busy, variant,
                            lambda name: gates(name, False)):
        decision.actions.append(Apply(step.cluster, step.revision, step.variant, step.shadow, step.shadow_variant))
        if step.shadow is not None:
            decision.events.append(("Normal", "ShadowStarted", f"{step.cluster}: revision {step.shadow.revision} "
                                                              f"({_label(step.shadow)}) runs in shadow beside "
                                                              f"{_label(step.revision)}; its answers are discarded"))
        else:
            decision.events.append(("Normal", "ShadowStopped", f"{step.cluster}: the shadow candidate is detached"))


def _report(inp: Inputs, status: EdgeDeploymentStatus, decision: Decision) -> None:
    """What people read: approval, conditions, and the phase the conditions add up to."""
    policy = inp.policy.approval if inp.policy is not None else inp.spec.approval
    approval = approval_state(policy, ApprovalState(status.approval, status.pending_approval),
                              inp.desired, status.current_revision, decision.held_reason, inp.approved,
                              inp.approvals, inp.author, inp.now, inp.authors or None)
    status.approval, status.pending_approval = approval.summary, approval.pending
    if status.pending_approval is not None:
        # What approvers judge the version by: its evaluation metrics and stage, and how it did in shadow.
        status.pending_approval.metrics = dict(inp.model_metrics) or None
        status.pending_approval.stage = inp.model_stage
        previous = inp.status.pending_approval.shadow if inp.status.pending_approval else None
        status.pending_approval.shadow = shadow.status_of(
            previous, shadow.candidate_of(inp.spec.shadow, decision.held_reason, inp.desired, status.rollout.target
                                          if status.rollout else None),
            status.current_revision, inp.shadow_clusters, inp.shadow_comparisons, inp.now)
    if inp.policy is not None:
        status.approval_policy = EffectiveApproval(**policy.model_dump(), sources=list(inp.policy.sources),
                                                   ignored=list(inp.policy.ignored))
    conditions = deployment_conditions.conditions(
        [c.dump() for c in inp.status.conditions], status,
        deployment_conditions.Facts(inp.model, decision.held_reason, inp.paused, inp.now, inp.generation))
    if inp.checks:
        conditions = set_condition(conditions, "ChecksPassed", *analysis.condition(status), generation=inp.generation,
                                   now=inp.now)
    status.conditions = [Condition.model_validate(c) for c in conditions]
    status.phase = deployment_conditions.phase_of(conditions)


def _choose_goal(inp: Inputs, status: EdgeDeploymentStatus, progress: RolloutProgress,
                 decision: Decision, requests: list[AutoRollback]) -> tuple[RevisionRef | None, str]:
    """The revision to converge on, or None to keep the current target."""
    for request in requests:
        bad = progress.revision
        if progress.reason == "Rollback" or bad is None or request.target.revision == bad:
            continue
        if bad not in status.bad_revisions:
            status.bad_revisions.append(bad)
        clusters = list(request.clusters) if request.clusters else [c for w in inp.waves for c in w.clusters]
        status.rollbacks.insert(0, RollbackRecord(alert=request.alert, from_revision=bad,
                                                  to_revision=request.target.revision, clusters=clusters,
                                                  received_at=request.received_at, mode="Automatic"))
        del status.rollbacks[20:]
        decision.events.append(("Warning", "RolledBack", f"{request.alert}: rolling back "
                                f"{'on ' + some(clusters) if request.clusters else 'everywhere'} "
                                f"from {bad} to {request.target.revision}"))
        if request.clusters:
            pinned = {p.cluster for p in status.pinned}
            status.pinned += [PinnedCluster(cluster=c, revision=request.target, reason=request.alert,
                                            since=iso(inp.now)) for c in request.clusters if c not in pinned]
            continue
        _mark(status, bad, "RolledBack")
        return request.target, "Rollback"
    if inp.rollback_to and inp.rollback_to != status.last_rollback_request:
        status.last_rollback_request = inp.rollback_to
        target = _known(status, inp.rollback_to)
        if target is None:
            decision.events.append(("Warning", "RollbackTargetUnknown",
                                    f"rollback-to={inp.rollback_to}: no such revision in status.history"))
        elif target.revision != progress.revision:
            bad = progress.revision
            if bad and bad not in status.bad_revisions:
                status.bad_revisions.append(bad)
            _mark(status, bad, "RolledBack")
            status.rollbacks.insert(0, RollbackRecord(
                alert=f"annotation edgeline.io/rollback-to={target.revision}", from_revision=bad or "",
                to_revision=target.revision, received_at=iso(inp.now), mode="Manual",
                clusters=[c for w in inp.waves for c in w.clusters]))
            del status.rollbacks[20:]
            return target, "Rollback"
    if inp.desired is not None and inp.desired.revision in status.bad_revisions and not inp.reapproved:
        # A revision that was rolled back returns only with an approval given after the rollback.
        decision.held_reason = "RolledBack"
        return None, progress.reason or "Rollback"
    if inp.desired is None:
        return None, progress.reason or "Update"
    if inp.desired.revision == progress.revision:
        return inp.desired, progress.reason or "Update"
    if not inp.approved:
        decision.held_reason = "AwaitingApproval"
        return None, progress.reason or "Update"
    return inp.desired, "Update"


class _Gatekeeper:
    """may_change(cluster, rollback) -> bool: the cluster's windows and line consent; what a
    refused cluster waits for lands in `waits`."""

    def __init__(self, inp: Inputs | None = None):
        self.inp = inp
        self.narrowing = windows.windows_of(inp.spec.rollout.windows) if inp else ()
        self.previous = {c.name: c for c in inp.status.clusters} if inp else {}
        self.waits: dict[str, windows.Gate] = {}
        self.notes: list[tuple[str, str]] = []      # (cluster, why it is changed although ...)

    def __call__(self, name: str, rollback: bool) -> bool:
        if self.inp is None:
            return True
        old = self.previous.get(name)
        verdict = windows.gate(self.inp.lines.get(name), self.narrowing, self.inp.now, rollback,
                               parse(old.waiting_since) if old else None, old.waiting_for if old else None)
        if not verdict.allowed:
            self.waits[name] = verdict
        self.notes += [(name, note) for note in verdict.notes]
        return verdict.allowed


def _approved_waves(inp: Inputs, progress: RolloutProgress, decision: Decision) -> list[WavePlan]:
    """The waves limited to the clusters the goal was approved for. While a change waits for
    approval (a wider placement among others), the current revision goes to no cluster it did
    not already have: the placement is part of what is approved (docs/approvals.md)."""
    held = decision.held_reason is not None
    if not held or progress.clusters is None:
        progress.clusters = sorted(c for w in inp.waves for c in w.clusters)
        return inp.waves
    approved = set(progress.clusters)
    return [replace(w, clusters=tuple(c for c in w.clusters if c in approved)) for w in inp.waves]


def _advance(inp: Inputs, status: EdgeDeploymentStatus, progress: RolloutProgress, goal: RevisionRef,
             decision: Decision, waves: list[WavePlan], may_change: _Gatekeeper | None = None) -> None:
    """Apply the goal to every cluster of the waves reached so far (the approved ones, inside
    their windows, with the line's consent); move on when the current wave is ready and has
    soaked; fail it when its deadline passes."""
    now = inp.now
    may_change = may_change or _Gatekeeper()
    pins = {p.cluster: p.revision for p in status.pinned}
    for name, revision in pins.items():
        obs = inp.observations.get(name)
        chosen = variant_for(inp, name, revision)
        if chosen is not None and chosen.variant is None:
            continue            # no variant of that revision fits the cluster: its state says why
        if obs is not None and obs.reachable and (obs.revision != revision.revision or not obs.exists) and \
                may_change(name, True):
            decision.actions.append(Apply(name, revision, chosen.variant if chosen else None))
    while True:
        current = progress.wave or 0
        for wave in waves[:current + 1]:
            for name in wave.clusters:
                obs = inp.observations.get(name)
                if obs is None or not obs.reachable or name in pins:
                    continue
                if name in inp.stale and progress.reason != "Rollback":
                    continue        # no new revision on a cluster whose facts are stale; a revert goes through
                chosen = variant_for(inp, name, goal)
                if chosen is not None and chosen.variant is None:
                    continue        # no variant of the goal fits the cluster: its state says why
                if (obs.revision != goal.revision or not obs.exists) and \
                        may_change(name, progress.reason == "Rollback"):
                    decision.actions.append(Apply(name, goal, chosen.variant if chosen else None))
        if pins and progress.completed_at is None:
            return      # part of the fleet was rolled back: the rollout goes no further
        if current >= len(waves):
            if progress.completed_at is None:
                _complete(inp, status, progress, goal, decision)
            _guard(inp, status, progress)
            return
        wave = waves[current]
        if progress.wave_started_at is None:
            progress.wave_started_at = iso(now)
            progress.wave_name = wave.name
        refused = {n: g for n, g in may_change.waits.items() if n in wave.clusters}
        # A cluster whose line stayed busy past its timeout under policy Skip is not waited for.
        unready = [n for n in wave.clusters if not _ready_on(inp.observations.get(n), goal)
                   and not (n in refused and refused[n].policy == "Skip")]
        if any(g.reason == windows.WAITING_FOR_WINDOW or g.reason == windows.WAITING_FOR_LINE_IDLE
               for g in refused.values()):
            # The wave's deadline counts from when its last cluster may be changed: no start
            # while one waits (the next tick without a waiting cluster sets it).
            progress.wave_started_at = None
        if len(unready) > inp.spec.rollout.max_unavailable:
            started = parse(progress.wave_started_at) or now
            # A problem that waiting will not fix (an image that cannot be pulled, a model the
            # runtime refuses, a line that stayed busy under policy Fail) fails the wave now
            # rather than at its deadline.
            hopeless = [n for n in unready if _fatal_on(inp.observations.get(n), goal) or
                        (n in refused and refused[n].reason in (windows.LINE_IDLE_TIMEOUT, windows.WINDOW_INVALID))]
            timed_out = (now - started).total_seconds() > inp.spec.rollout.wave_timeout_seconds
            if timed_out or len(hopeless) > inp.spec.rollout.max_unavailable:
                prefix = f"wave {wave.name} not ready after {inp.spec.rollout.wave_timeout_seconds}s: " if timed_out \
                    else f"wave {wave.name} failed: "
                message = prefix + "; ".join(f"{n}: {_why(inp.observations.get(n), goal, inp.stale.get(n), refused.get(n))}"
                                             for n in unready)
                if progress.failed_message != message:
                    decision.events.append(("Warning", "WaveFailed", message))
                progress.failed_message = message
                progress.failed_clusters = unready
            progress.soak_until = None
            return
        if progress.soak_until is None:
            progress.soak_until = iso(now + dt.timedelta(seconds=wave.soak_seconds))
        checks = analysis.verdict(inp.checks, status, wave)
        if checks.state == "Failed":
            # Ready, but its metric checks failed: the rollback policy has had its say (decide); the wave holds.
            if progress.failed_message != checks.message:
                decision.events.append(("Warning", "WaveFailed", checks.message))
            progress.failed_message = checks.message
            progress.failed_clusters = list(checks.clusters)
            return
        progress.failed_message = None
        progress.failed_clusters = []
        if now < parse(progress.soak_until) or checks.state != "Passed":
            return
        if inp.paused and current + 1 < len(waves):
            return
        decision.events.append(("Normal", "WaveReady", f"wave {wave.name} ready on {len(wave.clusters)} cluster(s)"))
        progress.wave = current + 1
        progress.wave_started_at = None
        progress.soak_until = None
        progress.wave_name = waves[current + 1].name if current + 1 < len(waves) else None


def _context(inp: Inputs) -> analysis.Context:
    base = inp.context or analysis.Context("", "")
    return analysis.Context(base.deployment, base.namespace, inp.spec.rollout.wave_timeout_seconds)


def _complete(inp, status, progress, goal, decision) -> None:
    progress.completed_at = iso(inp.now)
    progress.guard_until = iso(inp.now + dt.timedelta(seconds=inp.spec.rollback.guard_seconds))
    previous = status.current_revision
    status.current_revision = goal
    for entry in status.history:
        if entry.outcome == "Deployed" and entry.revision.revision != goal.revision:
            entry.outcome = "Superseded"
    if not status.history or status.history[0].revision.revision != goal.revision:
        status.history.insert(0, HistoryEntry(revision=goal, deployed_at=iso(inp.now), outcome="Deployed",
                                              approvals=list(progress.approvals)))
    else:
        status.history[0].deployed_at = iso(inp.now)
    kind = "RollbackComplete" if progress.reason == "Rollback" else "RolloutComplete"
    decision.events.append(("Normal", kind, f"revision {goal.revision} ({_label(goal)}) runs on every selected "
                                            f"cluster" + (f"; replaced {previous.revision}" if previous else "")))


def _guard(inp, status, progress) -> None:
    """A revision that ran through its guard period without being rolled back is known-good."""
    guard = parse(progress.guard_until)
    if guard is None or inp.now < guard or progress.revision in status.bad_revisions:
        return
    if status.last_known_good is None or status.last_known_good.revision != progress.revision:
        status.last_known_good = status.current_revision
        _mark(status, progress.revision, "KnownGood")


def _settle_rollbacks(inp: Inputs, status: EdgeDeploymentStatus) -> list[RollbackRecord]:
    """A revert is applied once every affected cluster runs the restored revision. Its latency
    counts from the alert's arrival at the receiver to the apply that completed it (reported in
    `outcomes`), or to now when the clusters ran it already."""
    running = {c.name: c.revision for c in status.clusters}
    settled = []
    for record in status.rollbacks:
        if record.applied_at or record.mode not in REVERTED:
            continue
        # A cluster that left the selection since is not waited for.
        if not all(running.get(c) == record.to_revision for c in record.clusters if c in running):
            continue
        affected = set(record.clusters)     # a set: a thousand clusters, a thousand outcomes
        applies = [o.at for c, o in inp.outcomes.items()
                   if c in affected and o.revision == record.to_revision and not o.error]
        finished = max(applies) if applies else inp.now.timestamp()
        received = parse(record.received_at)
        if received is not None:
            finished = max(finished, received.timestamp())
            record.latency_ms = int((finished - received.timestamp()) * 1000)
        record.applied_at = format_ms(dt.datetime.fromtimestamp(finished, dt.timezone.utc))
        settled.append(record)
    return settled


def _ready_on(obs: Observation | None, goal: RevisionRef) -> bool:
    return obs is not None and obs.reachable and obs.exists and obs.revision == goal.revision and obs.ready


def _fatal_on(obs: Observation | None, goal: RevisionRef) -> bool:
    return obs is not None and obs.reachable and obs.exists and obs.revision == goal.revision and \
        obs.problem is not None and obs.problem.fatal


def _why(obs: Observation | None, goal: RevisionRef, stale: str | None = None,
         waiting: windows.Gate | None = None) -> str:
    if waiting is not None:
        return f"{waiting.reason}: {waiting.message}"
    if stale and not _ready_on(obs, goal):
        return f"ClusterStale: {stale}"
    if obs is None or not obs.reachable:
        return (obs.message if obs and obs.message else "unreachable")
    if obs.revision != goal.revision:
        return f"runs revision {obs.revision or 'none'}"
    if obs.problem is not None:
        return f"{obs.problem.reason}: {obs.problem.message}"
    return obs.message or f"{obs.ready_replicas}/{obs.replicas} replicas ready"


def _cluster_state(name: str, wave: str, reached: bool, goal: RevisionRef | None, inp: Inputs,
                   old: ClusterState | None, applying: bool, waiting: windows.Gate | None = None) -> ClusterState:
    obs = inp.observations.get(name)
    state = (old.model_copy() if old else ClusterState(name=name))
    state.wave = wave
    state.replicas = inp.spec.runtime.replicas
    if obs is None or not obs.reachable:
        state.phase = "Unreachable"
        state.message = obs.message if obs else "not observed yet"
    else:
        state.last_observed = iso(inp.now)
        state.revision = obs.revision if obs.exists else None
        state.ready_replicas = obs.ready_replicas
        state.message = obs.message
        problem = obs.problem if obs.exists and not obs.ready else None
        state.reason = problem.reason if problem else None
        state.pod = problem.pod if problem else None
        state.restarts = problem.restarts if problem else None
        state.last_log = problem.last_log if problem else None
        if problem is not None:
            state.message = problem.message
        if goal is not None and _ready_on(obs, goal):
            state.phase = "Ready"
        elif applying or (reached and goal is not None and obs.revision == goal.revision):
            state.phase = "Progressing"
        elif not reached:
            state.phase = "Pending"
            state.message = state.message or "waits for its wave"
        else:
            state.phase = "Progressing"
    stale = inp.stale.get(name)
    if stale and not applying and state.phase != "Ready" and not (goal is not None and obs is not None and obs.reachable
                                                 and obs.exists and obs.revision == goal.revision):
        # Waits for fresh facts (an unreachable one stays Unreachable; the reason says why it waits).
        state.phase = state.phase if state.phase == "Unreachable" else "Pending"
        state.message = f"ClusterStale: {stale}" + (f"; {state.message}" if state.message and
                                                    state.message != "waits for its wave" else "")
    state.waiting_for = waiting.reason if waiting else None
    state.waiting_since = iso(waiting.since) if waiting and waiting.since else None
    state.waiting_until = iso(waiting.until) if waiting and waiting.until else None
    if waiting is not None and state.phase != "Unreachable":
        # Its change waits for the maintenance window or the line (domain.windows).
        state.phase, state.message = "Pending", f"{waiting.reason}: {waiting.message}"
    chosen = variant_for(inp, name, goal)
    state.variant = chosen.variant.name if chosen and chosen.variant else None
    state.variant_reason = chosen.message if chosen else None
    if chosen is not None and chosen.variant is None and state.phase != "Ready":
        state.message = f"{chosen.reason}: {chosen.message}"
    failed = inp.outcomes.get(name)
    if failed is not None and failed.error and state.phase != "Ready":
        # The last tick's apply did not get through; this tick tries again.
        state.phase, state.message = "Unreachable", failed.error
    seen = parse(state.last_observed)
    state.stale = seen is None or (inp.now - seen).total_seconds() > inp.stale_after.get(name, 300)
    return state


def variant_for(inp: Inputs, cluster: str, revision: RevisionRef | None) -> Pick | None:
    """Which variant of `revision` the cluster gets (None: the revision has no variants)."""
    if revision is None or not revision.variants:
        return None
    facts = inp.facts.get(cluster)
    if facts is None:
        return Pick(None, "NotProbedYet", "the cluster's facts are not known yet")
    return pick(revision.variants, facts, Runs.of(revision.runtime))


def _known(status: EdgeDeploymentStatus, revision: str | None) -> RevisionRef | None:
    if revision is None:
        return None
    for ref in [status.desired_revision, status.current_revision, status.last_known_good,
                *(h.revision for h in status.history)]:
        if ref is not None and ref.revision == revision:
            return ref
    return None


def _mark(status: EdgeDeploymentStatus, revision: str | None, outcome: str) -> None:
    for entry in status.history:
        if entry.revision.revision == revision:
            entry.outcome = outcome


def _trim_history(status: EdgeDeploymentStatus, limit: int) -> None:
    status.history = status.history[:limit]


def _excluded(e: Exclusion) -> ExcludedCluster:
    return ExcludedCluster(name=e.name, reason=e.reason, message=e.message)


def _label(ref: RevisionRef) -> str:
    return f"{ref.model or ref.mlmodel} {ref.version}" if ref.version else (ref.mlmodel or ref.revision)
