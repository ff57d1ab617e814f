"""Maintenance windows and the line's consent inside the rollout decision: a simulated fleet,
status round-tripped through JSON every tick, the time moved by hand."""

import datetime as dt

from edgeline.api.edgedeployment import EdgeDeploymentStatus
from edgeline.domain.rollout import AutoRollback, Inputs, decide
from edgeline.domain.waves import WavePlan
from edgeline.domain.windows import LineConsent, LineFacts, Window
from tests.unit.domain.test_rollout import REV1, REV2, SPEC, Fleet

# 2026-12-07 is a Monday; the window opens at 12:00 UTC for 30 minutes.
T = dt.datetime(2026, 12, 7, 11, 0, tzinfo=dt.timezone.utc)
NOON = (Window("0 12 * * *", 30, "UTC"),)
ONE_WAVE = [WavePlan("all", ("a", "b"), 0)]


def tick(fleet, status, now, lines, desired=REV1, waves=ONE_WAVE, spec=SPEC, auto_rollbacks=()):
    decision = decide(Inputs(spec=spec, status=status, desired=desired, waves=waves, excluded=[],
                             observations=fleet.observe(), stale_after={}, approved=True, paused=False,
                             rollback_to=None, now=now, lines=lines, auto_rollbacks=list(auto_rollbacks)))
    fleet.execute(decision.actions)
    return EdgeDeploymentStatus.model_validate(decision.status.dump()), decision


def states(status):
    return {c.name: c for c in status.clusters}


def test_a_cluster_outside_its_window_waits_and_says_until_when_then_changes_when_it_opens():
    fleet, status = Fleet("ab"), EdgeDeploymentStatus()
    lines = {"a": LineFacts(NOON)}
    status, _ = tick(fleet, status, T, lines)
    assert fleet.running == {"a": None, "b": REV1.revision}
    a = states(status)["a"]
    assert (a.phase, a.waiting_for, a.waiting_until) == ("Pending", "WaitingForWindow", "2026-12-07T12:00:00Z")
    assert "opens at 2026-12-07T12:00:00Z" in a.message
    # An hour of waiting is not the wave's deadline (60 s): the wave is not failed.
    status, _ = tick(fleet, status, T + dt.timedelta(minutes=59), lines)
    assert status.phase == "Progressing" and status.rollout.failed_message is None
    status, _ = tick(fleet, status, T + dt.timedelta(minutes=60, seconds=5), lines)
    assert fleet.running["a"] == REV1.revision and states(status)["a"].waiting_for is None
    status, _ = tick(fleet, status, T + dt.timedelta(minutes=60, seconds=6), lines)
    assert status.phase == "Healthy"


def test_a_deployment_window_narrows_the_cluster_window():
    body = SPEC.dump()
    body["rollout"]["windows"] = [{"schedule": "15 12 * * *", "durationMinutes": 5}]
    spec = type(SPEC).model_validate(body)
    fleet, status = Fleet("ab"), EdgeDeploymentStatus()
    lines = {"a": LineFacts(NOON), "b": LineFacts(NOON)}
    status, _ = tick(fleet, status, T + dt.timedelta(minutes=61), lines, spec=spec)   # cluster open, not deployment
    assert fleet.running == {"a": None, "b": None}
    assert states(status)["a"].waiting_until == "2026-12-07T12:15:00Z"
    status, _ = tick(fleet, status, T + dt.timedelta(minutes=76), lines, spec=spec)
    assert fleet.running == {"a": REV1.revision, "b": REV1.revision}


def test_the_line_is_waited_for_inside_the_window_and_the_change_goes_when_it_signals_idle():
    fleet, status = Fleet("ab"), EdgeDeploymentStatus()
    consent = LineConsent(timeout_seconds=600, on_timeout="Skip")
    busy = {"a": LineFacts((), consent)}
    status, _ = tick(fleet, status, T, busy)
    a = states(status)["a"]
    assert fleet.running["a"] is None and a.waiting_for == "WaitingForLineIdle"
    assert (a.waiting_since, a.waiting_until) == ("2026-12-07T11:00:00Z", "2026-12-07T11:10:00Z")
    status, _ = tick(fleet, status, T + dt.timedelta(minutes=2), busy)
    assert states(status)["a"].waiting_since == "2026-12-07T11:00:00Z"       # since stays put
    idle = {"a": LineFacts((), consent, idle=True)}
    status, _ = tick(fleet, status, T + dt.timedelta(minutes=3), idle)
    assert fleet.running["a"] == REV1.revision and states(status)["a"].waiting_for is None


def test_a_line_that_stays_busy_is_skipped_and_the_next_wave_goes_on():
    fleet, status = Fleet("abc"), EdgeDeploymentStatus()
    waves = [WavePlan("pilot", ("a", "b"), 0), WavePlan("rest", ("c",), 0)]
    busy = {"a": LineFacts((), LineConsent(timeout_seconds=60, on_timeout="Skip"))}
    status, _ = tick(fleet, status, T, busy, waves=waves)
    status, _ = tick(fleet, status, T + dt.timedelta(seconds=61), busy, waves=waves)
    a = states(status)["a"]
    assert a.waiting_for == "LineIdleTimeout" and "skipped" in a.message
    status, _ = tick(fleet, status, T + dt.timedelta(seconds=62), busy, waves=waves)
    assert fleet.running == {"a": None, "b": REV1.revision, "c": REV1.revision}


def test_a_line_that_stays_busy_fails_the_wave_under_policy_fail():
    fleet, status = Fleet("ab"), EdgeDeploymentStatus()
    busy = {"a": LineFacts((), LineConsent(timeout_seconds=60, on_timeout="Fail"))}
    status, _ = tick(fleet, status, T, busy)
    status, d = tick(fleet, status, T + dt.timedelta(seconds=61), busy)
    assert status.phase == "Degraded" and status.rollout.failed_clusters == ["a"]
    assert "a: LineIdleTimeout: the line did not signal idle within 60s" in status.rollout.failed_message
    assert "WaveFailed" in [e[1] for e in d.events] and fleet.running["a"] is None


def test_an_automatic_rollback_goes_through_outside_the_window_unless_the_policy_says_otherwise():
    for wait, expected in ((False, REV1.revision), (True, REV2.revision)):
        fleet, status = Fleet("ab"), EdgeDeploymentStatus()
        lines = {}
        for second in range(3):
            status, _ = tick(fleet, status, T + dt.timedelta(seconds=second), lines)
        for second in range(3, 6):
            status, _ = tick(fleet, status, T + dt.timedelta(seconds=second), lines, desired=REV2)
        assert set(fleet.running.values()) == {REV2.revision}
        closed = {"a": LineFacts(NOON, rollbacks_wait=wait), "b": LineFacts(NOON, rollbacks_wait=wait)}
        request = AutoRollback("ErrorRateHigh", REV1, None, "2026-12-07T11:00:06Z")
        status, _ = tick(fleet, status, T + dt.timedelta(seconds=7), closed, desired=REV2, auto_rollbacks=[request])
        assert set(fleet.running.values()) == {expected}
        if wait:
            assert states(status)["a"].waiting_for == "WaitingForWindow"


def test_a_line_that_stays_busy_is_changed_anyway_under_policy_proceed_and_an_event_says_so():
    fleet, status = Fleet("ab"), EdgeDeploymentStatus()
    busy = {"a": LineFacts((), LineConsent(timeout_seconds=60, on_timeout="Proceed"))}
    status, _ = tick(fleet, status, T, busy)
    assert fleet.running["a"] is None
    status, d = tick(fleet, status, T + dt.timedelta(seconds=61), busy)
    assert fleet.running["a"] == REV1.revision
    assert ("Warning", "LineIdleTimeout", "a: the line did not signal idle within 60s; proceeding as the cluster's "
            "policy says") in d.events
