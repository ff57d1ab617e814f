"""Metric checks of a wave (docs/analysis.md), as pure functions of the spec, the recorded
status and what Prometheus answered.

The rollout asks three things, each tick:
  `due`       which queries to send now (the controller sends them and hands back Measurements)
  `record`    what the measurements mean: the per-check results kept in status.analysis, the
              checks that failed this tick (each becomes a rollback request through the
              rollback policy, exactly as an alert would: `rollback_requests`), and Events
  `verdict`   whether the wave's checks passed, still run, or failed (the wave passes only
              when its readiness holds and its checks passed)

Checks measure a wave once all its clusters are ready on the revision being rolled out (the
moment the rollout starts the wave's soak); the first measurement comes one interval later.
Missing data (no series, NaN, an unreachable or erroring Prometheus) fails a measurement
unless the check says `missingData: Inconclusive`. Conditions are parsed here, never
evaluated as code.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field

from edgeline.api.analysis import CONDITION, AnalysisStatus, CheckResult, MetricCheck, MetricCheckTemplateSpec
from edgeline.api.edgedeployment import EdgeDeploymentStatus, RollbackPolicy, RollbackRecord
from edgeline.domain.rollback import AutoRollback, known_good
from edgeline.domain.waves import WavePlan
from edgeline.timestamps import format as iso
from edgeline.timestamps import format_ms, parse

DEFAULT_INTERVAL_S = 30
DEFAULT_COUNT = 3
DEFAULT_FAILURE_LIMIT = 0
DEFAULT_MISSING_DATA = "Fail"
PLACEHOLDERS = ("cluster", "deployment", "namespace", "revision", "version")
_SHOWN_VALUES = 5


# --- conditions: `result < 0.05 && result >= 0`, parsed, never evaluated as code -------------------

_OPS = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
        "==": lambda a, b: a == b, "!=": lambda a, b: a != b}
_TOKEN = re.compile(r"\s*(result|<=|>=|==|!=|<|>|&&|\|\||[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)")


class ConditionError(ValueError):
    pass


@dataclass(frozen=True)
class Condition:
    """Disjunction of conjunctions of (operator, threshold) comparisons with `result`."""

    text: str
    any_of: tuple[tuple[tuple[str, float], ...], ...]

    def holds(self, value: float) -> bool:
        return any(all(_OPS[op](value, threshold) for op, threshold in group) for group in self.any_of)


def parse_condition(text: str) -> Condition:
    if not re.fullmatch(CONDITION, text or ""):
        raise ConditionError(f"{text!r} is not a condition: write e.g. `result < 0.05` (comparisons of result with "
                             "a number, joined by && or ||)")
    tokens, pos = [], 0
    while pos < len(text.rstrip()):
        match = _TOKEN.match(text, pos)
        tokens.append(match.group(1))
        pos = match.end()
    groups: list[list[tuple[str, float]]] = [[]]
    for i in range(0, len(tokens), 4):      # result OP NUMBER [JOIN]
        groups[-1].append((tokens[i + 1], float(tokens[i + 2])))
        if i + 3 < len(tokens) and tokens[i + 3] == "||":
            groups.append([])
    return Condition(text.strip(), tuple(tuple(g) for g in groups))


# --- checks as they apply: inline fields over template fields over defaults --------------------------

@dataclass(frozen=True)
class ResolvedCheck:
    name: str
    query: str | None
    condition: str | None
    interval_s: int
    count: int
    failure_limit: int
    missing_data: str
    waves: tuple[str, ...] = ()
    error: tuple[str, str] | None = None      # (reason, message): the check cannot be measured as written

    def applies_to(self, wave: str) -> bool:
        return not self.waves or wave in self.waves


def resolve(checks: list[MetricCheck], templates: dict[str, MetricCheckTemplateSpec]) -> list[ResolvedCheck]:
    """The checks with their templates (same namespace) applied. A missing template does not
    drop the check: it fails closed, with the reason CheckTemplateMissing."""
    resolved = []
    for check in checks:
        base = templates.get(check.template_ref) if check.template_ref else None
        error = None
        if check.template_ref and base is None:
            error = ("CheckTemplateMissing", f"MetricCheckTemplate {check.template_ref} does not exist in this "
                                             "namespace")

        def pick(name, default):
            own = getattr(check, name)
            if own is not None:
                return own
            inherited = getattr(base, name) if base is not None else None
            return inherited if inherited is not None else default

        condition = pick("condition", None)
        if error is None and (not pick("query", None) or not condition):
            error = ("CheckInvalid", "the check has no query or no condition")
        elif error is None:
            try:
                parse_condition(condition)
            except ConditionError as exc:
                error = ("CheckInvalid", str(exc))
        count = pick("count", DEFAULT_COUNT)
        resolved.append(ResolvedCheck(
            name=check.name, query=pick("query", None), condition=condition,
            interval_s=pick("interval_seconds", DEFAULT_INTERVAL_S), count=count,
            failure_limit=min(pick("failure_limit", DEFAULT_FAILURE_LIMIT), count - 1),
            missing_data=pick("missing_data", DEFAULT_MISSING_DATA), waves=tuple(check.waves), error=error))
    return resolved


def _label_value(text: str) -> str:
    """A value safe inside a PromQL double-quoted string."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def render_query(query: str, values: dict[str, str]) -> str:
    for key in PLACEHOLDERS:
        query = re.sub(r"\{\{\s*" + key + r"\s*\}\}", lambda _m, k=key: _label_value(values.get(k, "")), query)
    return query


# --- what to measure now --------------------------------------------------------------------------

@dataclass(frozen=True)
class Query:
    check: str
    cluster: str
    promql: str | None               # None: nothing to send (the check cannot be measured: `error`)
    error: str | None = None


@dataclass(frozen=True)
class Measurement:
    """What one query came to. `values` empty or containing NaN is missing data, as is an error."""

    check: str
    cluster: str
    at: dt.datetime
    values: tuple[float, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class Context:
    """Where the checks run: the deployment's identity and the rollout's current wave."""

    deployment: str
    namespace: str
    wave_timeout_s: int = 600


def active_wave(status: EdgeDeploymentStatus, waves: list[WavePlan]) -> WavePlan | None:
    """The wave whose checks run now: an update (not a revert) whose current wave is ready
    (its soak began) and has not failed, with no cluster pinned by a rollback."""
    progress = status.rollout
    if progress is None or progress.reason != "Update" or progress.completed_at or status.pinned:
        return None
    if progress.wave is None or progress.wave >= len(waves) or progress.soak_until is None:
        return None
    wave = waves[progress.wave]
    return wave


def _applicable(checks: list[ResolvedCheck], wave: WavePlan) -> list[ResolvedCheck]:
    return [c for c in checks if c.applies_to(wave.name)]


def _current(status: EdgeDeploymentStatus, wave: WavePlan) -> AnalysisStatus | None:
    analysis = status.analysis
    if analysis is None or status.rollout is None:
        return None
    return analysis if analysis.revision == status.rollout.revision and analysis.wave == wave.name else None


def due(checks: list[ResolvedCheck], status: EdgeDeploymentStatus, waves: list[WavePlan], context: Context,
        now: dt.datetime) -> list[Query]:
    wave = active_wave(status, waves)
    if wave is None:
        return []
    analysis = _current(status, wave)
    if analysis is None or analysis.phase != "Running":
        return []
    target = status.rollout.target
    by_key = {c.name: c for c in checks}
    queries = []
    for result in analysis.checks:
        check = by_key.get(result.name)
        due_at = parse(result.next_measurement_at)
        if check is None or result.phase != "Running" or (due_at is not None and now < due_at):
            continue
        if check.error:
            queries.append(Query(check.name, result.cluster, None, f"{check.error[0]}: {check.error[1]}"))
            continue
        values = {"cluster": result.cluster, "deployment": context.deployment, "namespace": context.namespace,
                  "revision": target.revision if target else "", "version": (target.version if target else "") or ""}
        queries.append(Query(check.name, result.cluster, render_query(check.query, values)))
    return queries


# --- what the measurements mean -------------------------------------------------------------------

@dataclass
class Recorded:
    analysis: AnalysisStatus | None
    failed: list[CheckResult] = field(default_factory=list)     # checks that failed this tick
    events: list[tuple[str, str, str]] = field(default_factory=list)


def _new_result(check: ResolvedCheck, cluster: str, status: EdgeDeploymentStatus, context: Context,
                now: dt.datetime) -> CheckResult:
    target = status.rollout.target
    values = {"cluster": cluster, "deployment": context.deployment, "namespace": context.namespace,
              "revision": status.rollout.revision or "", "version": (target.version if target else "") or ""}
    first = now + dt.timedelta(seconds=check.interval_s)
    return CheckResult(name=check.name, cluster=cluster, phase="Running", reason="CheckRunning",
                       message=f"first measurement at {iso(first)}",
                       query=_shortened(render_query(check.query, values)) if check.query else None,
                       condition=check.condition,
                       count=check.count, failure_limit=check.failure_limit, next_measurement_at=iso(first))


def _shortened(query: str, limit: int = 512) -> str:
    """The query as sent, for people; status holds one per check and cluster, so it is kept short."""
    return query if len(query) <= limit else query[:limit - 3] + "..."


def _fresh(checks: list[ResolvedCheck], status: EdgeDeploymentStatus, wave: WavePlan, context: Context,
           now: dt.datetime) -> AnalysisStatus:
    return AnalysisStatus(revision=status.rollout.revision or "", wave=wave.name, started_at=iso(now),
                          phase="Running", checks=[_new_result(check, cluster, status, context, now)
                                                   for check in _applicable(checks, wave) for cluster in wave.clusters])


def _sync(analysis: AnalysisStatus, checks: list[ResolvedCheck], status: EdgeDeploymentStatus, wave: WavePlan,
          context: Context, now: dt.datetime) -> None:
    """The spec or the wave changed while its checks ran: a check or cluster that left is
    dropped (nothing would ever measure it), one that came is measured from now on."""
    wanted = [(check, cluster) for check in _applicable(checks, wave) for cluster in wave.clusters]
    kept = {(r.name, r.cluster): r for r in analysis.checks}
    analysis.checks = [kept.get((check.name, cluster)) or _new_result(check, cluster, status, context, now)
                       for check, cluster in wanted]


def _shown(values: tuple[float, ...]) -> str:
    text = ", ".join(f"{v:.6g}" for v in values[:_SHOWN_VALUES])
    return text + (f" (+{len(values) - _SHOWN_VALUES} more)" if len(values) > _SHOWN_VALUES else "")


def record(checks: list[ResolvedCheck], status: EdgeDeploymentStatus, waves: list[WavePlan],
           measurements: list[Measurement], context: Context, now: dt.datetime) -> Recorded:
    """The analysis after this tick's measurements. Results of an earlier wave or revision stay
    in status (what failed stays readable after the rollback) until the next wave's checks begin."""
    wave = active_wave(status, waves)
    if wave is None or not _applicable(checks, wave):
        return Recorded(status.analysis)
    analysis = _current(status, wave)
    if analysis is None:
        return Recorded(_fresh(checks, status, wave, context, now))
    analysis = analysis.model_copy(deep=True)
    if analysis.phase == "Running":
        _sync(analysis, checks, status, wave, context, now)
    recorded = Recorded(analysis)
    by_key = {c.name: c for c in checks}
    results = {(r.name, r.cluster): r for r in analysis.checks}
    for m in measurements:
        result, check = results.get((m.check, m.cluster)), by_key.get(m.check)
        if result is None or check is None or result.phase != "Running":
            continue
        _measure(result, check, m, recorded)
    started = parse(analysis.started_at)
    for result in analysis.checks:
        check = by_key.get(result.name)
        if result.phase == "Running" and check is not None and result.inconclusive and \
                (now - started).total_seconds() > context.wave_timeout_s:
            _finish(result, "Failed", "CheckMissingData",
                    f"no data in {context.wave_timeout_s}s (rollout.waveTimeoutSeconds): {result.message}", recorded)
    phases = {r.phase for r in analysis.checks}
    analysis.phase = "Failed" if "Failed" in phases else "Running" if "Running" in phases else "Passed"
    return recorded


def _measure(result: CheckResult, check: ResolvedCheck, m: Measurement, recorded: Recorded) -> None:
    result.measurements += 1
    result.last_measured_at = iso(m.at)
    result.next_measurement_at = iso(m.at + dt.timedelta(seconds=check.interval_s))
    missing = (f"{check.error[0]}: {check.error[1]}" if check.error else None) or m.error or \
        (None if m.values else "the query returned no data") or \
        ("the query returned NaN" if any(math.isnan(v) for v in m.values) else None)
    result.last_value = _shown(m.values) if m.values else None
    if missing:
        reason = "CheckTemplateMissing" if check.error and check.error[0] == "CheckTemplateMissing" \
            else "CheckMissingData"
        if check.missing_data == "Inconclusive" and not check.error:
            result.inconclusive += 1
            result.reason, result.message = reason, f"inconclusive: {missing}"
            return
        result.failures += 1
        result.reason, result.message = reason, missing
        recorded.events.append(("Warning", reason, f"check {result.name} on {result.cluster}: {missing} "
                                                   f"({result.failures} failure(s), {result.failure_limit} tolerated)"))
    elif all(parse_condition(check.condition).holds(v) for v in m.values):
        result.successes += 1
        result.reason, result.message = "CheckRunning", f"{_shown(m.values)} satisfies {check.condition}"
    else:
        result.failures += 1
        result.reason = "CheckFailed"
        result.message = f"{_shown(m.values)} does not satisfy {check.condition}"
        recorded.events.append(("Warning", "CheckFailed", f"check {result.name} on {result.cluster}: "
                                                          f"{result.message} ({result.failures} failure(s), "
                                                          f"{result.failure_limit} tolerated)"))
    if result.failures > result.failure_limit:
        _finish(result, "Failed", result.reason, result.message, recorded)
    elif result.successes + result.failures >= result.count:
        _finish(result, "Passed", "CheckPassed", f"{result.successes}/{result.measurements} measurements satisfied "
                                                 f"{check.condition} (last: {result.last_value})", recorded)


def _finish(result: CheckResult, phase: str, reason: str, message: str, recorded: Recorded) -> None:
    result.phase, result.reason, result.message = phase, reason, message
    result.next_measurement_at = None
    if phase == "Failed":
        recorded.failed.append(result)
        recorded.events.append(("Warning", reason, f"check {result.name} failed on {result.cluster}: {message}"))
    else:
        recorded.events.append(("Normal", reason, f"check {result.name} passed on {result.cluster}: {message}"))


# --- what the rollout does with it ----------------------------------------------------------------

def condition(status: EdgeDeploymentStatus) -> tuple[str, str, str]:
    """The ChecksPassed condition (status, reason, message) from the latest analysis."""
    analysis = status.analysis
    if analysis is None:
        return "Unknown", "CheckPending", "the checks begin once a wave is ready"
    where = f"wave {analysis.wave} of revision {analysis.revision}"
    if analysis.phase == "Failed":
        failed = next(r for r in analysis.checks if r.phase == "Failed")
        return "False", failed.reason, f"{where}: check {failed.name} failed on {failed.cluster}: {failed.message}"
    if analysis.phase == "Running":
        done = sum(1 for r in analysis.checks if r.phase == "Passed")
        return "Unknown", "CheckRunning", f"{where}: {done}/{len(analysis.checks)} check(s) passed so far"
    return "True", "CheckPassed", f"{where}: {len(analysis.checks)} check(s) passed"


@dataclass(frozen=True)
class WaveVerdict:
    state: str          # "Passed", "Running" or "Failed"
    message: str = ""
    clusters: tuple[str, ...] = ()


def verdict(checks: list[ResolvedCheck], status: EdgeDeploymentStatus, wave: WavePlan) -> WaveVerdict:
    """Whether the wave's checks let it pass (readiness is the rollout's own business)."""
    if not _applicable(checks, wave):
        return WaveVerdict("Passed")
    analysis = _current(status, wave)
    if analysis is None:
        return WaveVerdict("Running", "checks begin once the wave is ready")
    failed = [r for r in analysis.checks if r.phase == "Failed"]
    if failed:
        return WaveVerdict("Failed", f"wave {wave.name} failed its checks: " + "; ".join(
            f"{r.name} on {r.cluster}: {r.reason}: {r.message}" for r in failed),
            tuple(dict.fromkeys(r.cluster for r in failed)))
    running = [r for r in analysis.checks if r.phase == "Running"]
    if running:
        return WaveVerdict("Running", f"{len(running)} check(s) still measuring")
    return WaveVerdict("Passed")


@dataclass
class CheckRollbacks:
    automatic: list[AutoRollback] = field(default_factory=list)
    proposals: list[RollbackRecord] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)


def rollback_requests(policy: RollbackPolicy, status: EdgeDeploymentStatus, failed: list[CheckResult],
                      now: dt.datetime) -> CheckRollbacks:
    """A failed check asks for a rollback the way an alert does: the policy's mode and scope
    apply, towards the last known-good revision. Without one (a first rollout) or with
    rollback Disabled, the wave simply fails and the rollout holds."""
    out = CheckRollbacks()
    progress = status.rollout
    if not failed or progress is None or progress.target is None:
        return out
    bad = progress.target.revision
    target = known_good(status, bad)
    for result in failed:
        name = f"check {result.name} on {result.cluster}"
        if policy.mode == "Disabled":
            out.events.append(("Normal", "CheckRollbackDisabled", f"{name} failed; spec.rollback.mode is Disabled: "
                                                                   "the wave fails and the rollout holds"))
            continue
        if target is None:
            out.events.append(("Warning", "NoKnownGoodRevision", f"{name} failed but no earlier revision is known "
                                                                  "to be good: the wave fails and the rollout holds"))
            continue
        clusters = (result.cluster,) if policy.scope == "Cluster" else None
        if policy.mode == "Propose":
            out.proposals.insert(0, RollbackRecord(alert=name, from_revision=bad, to_revision=target.revision,
                                                   clusters=list(clusters or []), received_at=format_ms(now),
                                                   mode="Proposed"))
            out.events.append(("Warning", "RollbackProposed", f"{name} failed: proposing to roll back from {bad} to "
                                                              f"{target.revision} (annotate edgeline.io/rollback-to="
                                                              f"{target.revision} to apply)"))
            continue
        out.automatic.append(AutoRollback(name, target, clusters, format_ms(now)))
    return out
