"""Metric checks of a wave: the condition language, templates, query placeholders, and the
rollout against a simulated fleet and a simulated Prometheus, with status round-tripping
through JSON every tick (as it does through the API server)."""

import datetime as dt
import math

import pytest

from edgeline.api.analysis import MetricCheck, MetricCheckTemplateSpec
from edgeline.api.edgedeployment import EdgeDeploymentSpec, EdgeDeploymentStatus
from edgeline.domain import analysis
from edgeline.domain.analysis import ConditionError, Measurement, parse_condition, render_query, resolve
from edgeline.domain.rollout import Inputs, decide
from tests.unit.domain.test_rollout import REV1, REV2, T0, WAVES, Fleet

CTX = analysis.Context("detector", "factory")


# --- the condition language ---------------------------------------------------------------------

@pytest.mark.parametrize("text, value, holds", [
    ("result < 0.05", 0.01, True),
    ("result < 0.05", 0.05, False),
    ("result<=0.05", 0.05, True),
    ("result > 10", 11, True),
    ("result >= 1e3", 1000, True),
    ("result == 1", 1.0, True),
    ("result != 0", 0, False),
    ("result >= 0.9 && result <= 1", 0.95, True),
    ("result >= 0.9 && result <= 1", 1.2, False),
    ("result < 0 || result > 5", 7, True),
    ("result < 0 || result > 5", 3, False),
    ("result > 1 && result < 2 || result == 9", 9, True),     # && binds tighter than ||
    ("  result < -.5  ", -1, True),
    ("result < 0.05", math.nan, False),                        # NaN satisfies nothing
])
def test_conditions_compare_the_result_with_a_threshold(text, value, holds):
    assert parse_condition(text).holds(value) is holds


@pytest.mark.parametrize("text", [
    "", "result", "result < ", "0.05 > result", "result < 0.05 and result > 0", "__import__('os')",
    "result < 1; result", "result < x", "result <> 1", "result < 1 &&", "len(result) < 1",
])
def test_anything_else_is_refused_never_evaluated(text):
    with pytest.raises(ConditionError, match="is not a condition"):
        parse_condition(text)


def test_placeholders_are_replaced_and_quoted_for_promql():
    query = 'rate(x{cluster="{{cluster}}",deployment="{{ deployment }}",namespace="{{namespace}}",' \
            'revision="{{revision}}",version="{{version}}"}[1m])'
    assert render_query(query, {"cluster": "line-1", "deployment": "d", "namespace": "ns", "revision": "abc",
                                "version": '1"} or vector(1) #'}) == \
        'rate(x{cluster="line-1",deployment="d",namespace="ns",revision="abc",version="1\\"} or vector(1) #"}[1m])'


# --- checks as they apply --------------------------------------------------------------------------

def _check(**fields):
    return MetricCheck.model_validate({"name": "errors", **fields})


TEMPLATE = MetricCheckTemplateSpec.model_validate({"query": "q", "condition": "result < 1", "intervalSeconds": 60,
                                                   "count": 5, "failureLimit": 2, "missingData": "Inconclusive"})


@pytest.mark.parametrize("check, templates, expected", [
    (_check(query="q", condition="result < 1"), {}, dict(interval_s=30, count=3, failure_limit=0,
                                                         missing_data="Fail", error=None)),
    (_check(templateRef="errors-t"), {"errors-t": TEMPLATE}, dict(query="q", interval_s=60, count=5, failure_limit=2,
                                                                  missing_data="Inconclusive", error=None)),
    (_check(templateRef="errors-t", count=2, condition="result < 9"), {"errors-t": TEMPLATE},
     dict(count=2, failure_limit=1, condition="result < 9", interval_s=60)),
    (_check(templateRef="gone"), {}, dict(error=("CheckTemplateMissing",
                                                 "MetricCheckTemplate gone does not exist in this namespace"))),
])
def test_inline_fields_override_the_template_which_overrides_the_defaults(check, templates, expected):
    resolved = resolve([check], templates)[0]
    assert {k: getattr(resolved, k) for k in expected} == expected


# --- the rollout with checks ----------------------------------------------------------------------

SPEC = EdgeDeploymentSpec.model_validate({
    "modelRef": {"name": "m-1"},
    "placement": {"clusterSelector": {"matchLabels": {"site": "x"}}},
    "approval": {"required": False},
    "rollout": {"waveTimeoutSeconds": 120, "soakSeconds": 0},
    "rollback": {"guardSeconds": 1000, "scope": "Deployment"},
})
ERRORS = _check(query='err{cluster="{{cluster}}",version="{{version}}"}', condition="result < 0.05",
                intervalSeconds=10, count=3, waves=["pilot"])


class Prometheus:
    """Answers per cluster: a list of values, or an error string (as the client reports one)."""

    def __init__(self):
        self.answers: dict[str, tuple[float, ...] | str] = {}
        self.asked: list[str] = []
        self.sequences: dict[str, list] = {}     # answers given in turn, before `answers`

    def measure(self, queries, now):
        out = []
        for q in queries:
            if q.promql is None:        # the check cannot be measured (as the controller's client does)
                out.append(Measurement(q.check, q.cluster, now, error=q.error))
                continue
            self.asked.append(q.promql)
            queued = self.sequences.get(q.cluster)
            answer = queued.pop(0) if queued else self.answers.get(q.cluster, (0.0,))
            out.append(Measurement(q.check, q.cluster, now, error=answer) if isinstance(answer, str)
                       else Measurement(q.check, q.cluster, now, values=tuple(answer)))
        return out


def _tick(fleet, prom, status, now, desired, checks, spec=SPEC):
    measured = prom.measure(analysis.due(checks, status, WAVES, CTX, now), now)
    decision = decide(Inputs(spec=spec, status=status, desired=desired, waves=WAVES, excluded=[],
                             observations=fleet.observe(), stale_after={}, approved=True, paused=False,
                             rollback_to=None, now=now, checks=checks, measurements=measured, context=CTX))
    fleet.execute(decision.actions)
    return EdgeDeploymentStatus.model_validate(decision.status.dump()), decision


def _run(fleet, prom, status, start, desired, checks, seconds, spec=SPEC, until=None):
    events = []
    for s in range(seconds):
        status, d = _tick(fleet, prom, status, start + dt.timedelta(seconds=s), desired, checks, spec)
        events += d.events
        if until and until(status):
            break
    return status, events


def _healthy_v1(checks, spec=SPEC):
    fleet, prom = Fleet("abc"), Prometheus()
    status, _ = _run(fleet, prom, EdgeDeploymentStatus(), T0, REV1, checks, 120, spec,
                     until=lambda s: s.phase == "Healthy")
    assert status.phase == "Healthy"
    return fleet, prom, status


def test_a_passing_check_holds_the_pilot_until_its_measurements_are_in_then_the_rollout_goes_on():
    checks = resolve([ERRORS], {})
    fleet, prom, status = _healthy_v1(checks)
    assert len(prom.asked) == 3          # v1's pilot was checked too: 3 measurements, 10 s apart
    start = T0 + dt.timedelta(minutes=10)
    status, events = _run(fleet, prom, status, start, REV2, checks, 25)
    # Ready at once, but the checks take 3 x 10 s: b and c have not been touched yet.
    assert fleet.running == {"a": REV2.revision, "b": REV1.revision, "c": REV1.revision}
    assert status.phase == "Progressing" and status.analysis.phase == "Running"
    result = status.analysis.checks[0]
    assert (result.cluster, result.successes, result.failures, result.reason) == ("a", 2, 0, "CheckRunning")
    assert result.query == 'err{cluster="a",version="2"}' and result.last_value == "0"
    status, events = _run(fleet, prom, status, start + dt.timedelta(seconds=25), REV2, checks, 60,
                          until=lambda s: s.phase == "Healthy")
    assert status.phase == "Healthy" and set(fleet.running.values()) == {REV2.revision}
    assert status.analysis.phase == "Passed" and status.analysis.checks[0].reason == "CheckPassed"
    assert ("Normal", "CheckPassed") in {(t, r) for t, r, _ in events}
    checked = next(c for c in status.conditions if c.type == "ChecksPassed")
    assert (checked.status, checked.reason) == ("True", "CheckPassed")


@pytest.mark.parametrize("answer, reason, message", [
    ((0.4,), "CheckFailed", "0.4 does not satisfy result < 0.05"),
    ((0.01, 0.2), "CheckFailed", "0.01, 0.2 does not satisfy result < 0.05"),   # every series must hold
    ((), "CheckMissingData", "the query returned no data"),
    ((math.nan,), "CheckMissingData", "the query returned NaN"),
    ("http://prom:9090/api/v1/query: ClientConnectorError: refused", "CheckMissingData", "ClientConnectorError"),
])
def test_a_failing_or_silent_check_rolls_the_pilot_back_before_the_next_wave(answer, reason, message):
    checks = resolve([ERRORS], {})
    fleet, prom, status = _healthy_v1(checks)
    prom.answers["a"] = answer
    status, events = _run(fleet, prom, status, T0 + dt.timedelta(minutes=10), REV2, checks, 60,
                          until=lambda s: s.phase == "RolledBack")
    assert status.phase == "RolledBack"
    assert fleet.running == {"a": REV1.revision, "b": REV1.revision, "c": REV1.revision}
    assert ("b", REV2.revision) not in fleet.applied and ("c", REV2.revision) not in fleet.applied
    assert status.bad_revisions == [REV2.revision]
    record = status.rollbacks[0]
    assert record.alert == "check errors on a" and record.mode == "Automatic"
    assert record.to_revision == REV1.revision and record.latency_ms is not None
    result = status.analysis.checks[0]       # what failed stays readable after the rollback
    assert (result.phase, result.reason, result.failures) == ("Failed", reason, 1) and message in result.message
    assert ("Warning", reason) in {(t, r) for t, r, _ in events}
    assert ("Warning", "RolledBack") in {(t, r) for t, r, _ in events}
    checked = next(c for c in status.conditions if c.type == "ChecksPassed")
    assert (checked.status, checked.reason) == ("False", reason)
    assert checked.message.startswith(f"wave pilot of revision {REV2.revision}: check errors failed on a: ")


def test_tolerated_failures_do_not_fail_the_check_and_one_more_does():
    checks = resolve([_check(query="q", condition="result < 1", intervalSeconds=5, count=3, failureLimit=1)], {})
    fleet, prom, status = _healthy_v1(checks)
    prom.sequences["a"] = [(5.0,), (0.0,), (0.0,)]
    status, _ = _run(fleet, prom, status, T0 + dt.timedelta(minutes=10), REV2, checks, 60,
                     until=lambda s: s.phase == "Healthy")
    assert status.phase == "Healthy" and not status.rollbacks
    assert status.analysis.wave == "rest" and {r.cluster for r in status.analysis.checks} == {"b", "c"}

    fleet, prom, status = _healthy_v1(checks)
    prom.sequences["a"] = [(5.0,), (0.0,), (5.0,)]
    status, _ = _run(fleet, prom, status, T0 + dt.timedelta(minutes=10), REV2, checks, 60,
                     until=lambda s: s.phase == "RolledBack")
    assert status.phase == "RolledBack" and status.analysis.checks[0].failures == 2


def test_inconclusive_missing_data_holds_the_wave_until_its_deadline_then_fails_it():
    checks = resolve([_check(query="q", condition="result < 1", intervalSeconds=10, missingData="Inconclusive",
                             waves=["pilot"])], {})
    fleet, prom, status = _healthy_v1(checks)
    prom.answers["a"] = ()
    start = T0 + dt.timedelta(minutes=10)
    status, _ = _run(fleet, prom, status, start, REV2, checks, 100)
    assert status.phase == "Progressing" and status.analysis.checks[0].inconclusive >= 8
    assert status.analysis.checks[0].failures == 0 and fleet.running["b"] == REV1.revision
    status, _ = _run(fleet, prom, status, start + dt.timedelta(seconds=100), REV2, checks, 60,
                     until=lambda s: s.phase == "RolledBack")
    assert status.phase == "RolledBack"
    assert "no data in 120s" in status.analysis.checks[0].message


def test_without_a_known_good_revision_the_wave_fails_and_the_rollout_holds():
    checks = resolve([ERRORS], {})
    fleet, prom = Fleet("abc"), Prometheus()
    prom.answers["a"] = (1.0,)
    status, events = _run(fleet, prom, EdgeDeploymentStatus(), T0, REV1, checks, 60,
                          until=lambda s: s.phase == "Degraded")
    assert status.phase == "Degraded" and fleet.running == {"a": REV1.revision, "b": None, "c": None}
    assert status.rollout.failed_clusters == ["a"]
    assert "wave pilot failed its checks: errors on a: CheckFailed" in status.rollout.failed_message
    ready = next(c for c in status.conditions if c.type == "Progressing")
    assert (ready.status, ready.reason) == ("False", "WaveFailed")
    assert {"NoKnownGoodRevision", "WaveFailed"} <= {r for _, r, _ in events}


@pytest.mark.parametrize("mode, phase, running_a", [
    ("Disabled", "Degraded", REV2.revision),
    ("Propose", "Degraded", REV2.revision),
])
def test_the_rollback_policy_decides_what_a_failed_check_does(mode, phase, running_a):
    spec = SPEC.model_copy(update={"rollback": SPEC.rollback.model_copy(update={"mode": mode})})
    checks = resolve([ERRORS], {})
    fleet, prom, status = _healthy_v1(checks, spec)
    prom.answers["a"] = (1.0,)
    status, _ = _run(fleet, prom, status, T0 + dt.timedelta(minutes=10), REV2, checks, 60, spec,
                     until=lambda s: s.phase == phase)
    assert status.phase == phase and fleet.running["a"] == running_a and fleet.running["b"] == REV1.revision
    if mode == "Propose":
        assert status.rollbacks[0].mode == "Proposed" and status.rollbacks[0].alert == "check errors on a"


def test_scope_cluster_pins_the_failing_cluster_and_halts_the_rollout():
    spec = SPEC.model_copy(update={"rollback": SPEC.rollback.model_copy(update={"scope": "Cluster"})})
    checks = resolve([ERRORS], {})
    fleet, prom, status = _healthy_v1(checks, spec)
    prom.answers["a"] = (1.0,)
    status, _ = _run(fleet, prom, status, T0 + dt.timedelta(minutes=10), REV2, checks, 60, spec,
                     until=lambda s: s.phase == "RolledBack")
    assert status.phase == "RolledBack" and [p.cluster for p in status.pinned] == ["a"]
    assert fleet.running == {"a": REV1.revision, "b": REV1.revision, "c": REV1.revision}


def test_a_missing_template_fails_closed():
    checks = resolve([_check(templateRef="gone", intervalSeconds=5)], {})
    fleet, prom = Fleet("abc"), Prometheus()
    status, _ = _run(fleet, prom, EdgeDeploymentStatus(), T0, REV1, checks, 30, until=lambda s: s.phase == "Degraded")
    assert status.phase == "Degraded" and not prom.asked
    assert status.analysis.checks[0].reason == "CheckTemplateMissing"


def test_a_revert_is_not_analysed():
    checks = resolve([_check(query="q", condition="result < 1", intervalSeconds=5)], {})
    fleet, prom, status = _healthy_v1(checks)
    prom.answers = {"a": (9.0,)}
    status, _ = _run(fleet, prom, status, T0 + dt.timedelta(minutes=10), REV2, checks, 60,
                     until=lambda s: s.phase == "RolledBack")
    asked = len(prom.asked)
    status, _ = _run(fleet, prom, status, T0 + dt.timedelta(minutes=20), REV2, checks, 30)
    assert len(prom.asked) == asked and status.phase == "RolledBack"


def test_a_check_added_or_removed_while_the_wave_is_measured_neither_blocks_nor_skips_it():
    errors = resolve([ERRORS], {})
    latency = resolve([_check(name="latency", query="q", condition="result < 1", intervalSeconds=10,
                              waves=["pilot"])], {})
    fleet, prom, status = _healthy_v1(errors)
    start = T0 + dt.timedelta(minutes=10)
    status, _ = _run(fleet, prom, status, start, REV2, errors, 15)
    assert [r.name for r in status.analysis.checks] == ["errors"] and status.analysis.checks[0].successes == 1
    # The spec now has only the latency check: errors is dropped, latency is measured from now on.
    status, _ = _run(fleet, prom, status, start + dt.timedelta(seconds=15), REV2, latency, 5)
    assert [r.name for r in status.analysis.checks] == ["latency"] and status.analysis.checks[0].measurements == 0
    status, _ = _run(fleet, prom, status, start + dt.timedelta(seconds=20), REV2, latency, 60,
                     until=lambda s: s.phase == "Healthy")
    assert status.phase == "Healthy" and status.analysis.checks[0].successes == 3
