"""The revert fast path's decision (domain.fast_revert): the clusters an alert's revert is
written to before the tick observes, and agreement with the full decision (domain.rollout)."""

import datetime as dt

import pytest

from edgeline.api.edgedeployment import (ClusterState, EdgeDeploymentStatus, HistoryEntry, RevisionRef, RollbackPolicy,
                                         RolloutProgress)
from edgeline.domain.fast_revert import revert_writes
from edgeline.domain.rollback import Alert

NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.timezone.utc)
GOOD = RevisionRef(revision="good", version="1.0.0")
BAD = RevisionRef(revision="bad", version="2.0.0")


def _status(reason="Update", clusters=(("a", "bad"), ("b", "bad"), ("c", "good"), ("d", None))):
    return EdgeDeploymentStatus(
        rollout=RolloutProgress(revision="bad", target=BAD, reason=reason, wave=0),
        history=[HistoryEntry(revision=GOOD, outcome="Deployed")],
        clusters=[ClusterState(name=n, revision=r) for n, r in clusters])


def _alert(name="Errors", **labels):
    return Alert(name, {"alertname": name, **labels}, f"fp-{name}", "", 1.0)


@pytest.mark.parametrize("policy, status, alerts, expected", [
    # deployment-wide: every cluster that runs (or got) the bad revision; not the ones still on good, not the
    # ones that never got anything
    ({}, _status(), [_alert()], [("Errors", "good", ("a", "b"))]),
    # cluster scope: only the cluster the alert names
    ({"scope": "Cluster"}, _status(), [_alert(cluster="b")], [("Errors", "good", ("b",))]),
    # two cluster-scoped alerts: both clusters, each once
    ({"scope": "Cluster"}, _status(), [_alert("E1", cluster="a"), _alert("E2", cluster="b")],
     [("E1", "good", ("a",)), ("E2", "good", ("b",))]),
    # the first deployment-wide alert wins; the second changes nothing
    ({}, _status(), [_alert("E1"), _alert("E2")], [("E1", "good", ("a", "b"))]),
    # nothing to write: already rolling back, alerts disabled or proposed only, no alerts, alert not matched
    ({}, _status(reason="Rollback"), [_alert()], []),
    ({"mode": "Disabled"}, _status(), [_alert()], []),
    ({"mode": "Propose"}, _status(), [_alert()], []),
    ({}, _status(), [], []),
    ({"alertMatchers": [{"name": "severity", "value": "critical"}]}, _status(), [_alert(severity="info")], []),
    # an alert about a revision never deployed is refused, not reverted
    ({}, _status(), [_alert(revision="other")], []),
    # every cluster already back on good
    ({}, _status(clusters=(("a", "good"),)), [_alert()], []),
])
def test_revert_writes(policy, status, alerts, expected):
    writes = revert_writes(RollbackPolicy.model_validate(policy), status, alerts, NOW)
    assert [(w.alert, w.target.revision, w.clusters) for w in writes] == expected
    assert all(w.bad.revision == "bad" for w in writes)


def test_what_the_clusters_run_now_wins_over_what_status_recorded():
    running = {"c": "bad", "d": "bad", "a": "good"}     # c and d just got it, a was reverted by hand
    writes = revert_writes(RollbackPolicy(), _status(), [_alert()], NOW, running=running)
    assert [w.clusters for w in writes] == [("b", "c", "d")]


def test_the_fast_path_writes_what_the_full_decision_would_apply_and_the_decision_then_has_nothing_left():
    """A fleet mid-rollout (pilot on the bad revision), an alert: the fast path's clusters are the ones
    decide() would apply the known-good revision to; after the fast path's writes, decide() records the
    rollback, with the writes' time as its latency, and applies nothing more."""
    from edgeline.domain.rollout import ActOutcome, Inputs, decide
    from tests.unit.domain.test_rollout import REV1, REV2, SPEC, Fleet, _deployed_then_v2_in_pilot
    fleet = Fleet("abc")
    status, t, waves = _deployed_then_v2_in_pilot(fleet)
    received = t.timestamp() + 1
    alert = Alert("ErrorRateHigh", {"alertname": "ErrorRateHigh"}, "fp", "", received)

    def inputs(outcomes=None):
        return Inputs(spec=SPEC, status=status, desired=REV2, waves=waves, excluded=[], observations=fleet.observe(),
                      stale_after={}, approved=True, paused=False, rollback_to=None,
                      now=t + dt.timedelta(seconds=2), alerts=[alert], outcomes=outcomes or {})

    full = decide(inputs())
    # Status still says "a" runs REV1 (it was applied after that tick observed); the watched view knows better.
    assert {c.name: c.revision for c in status.clusters}["a"] == REV1.revision
    assert revert_writes(SPEC.rollback, status, [alert], t + dt.timedelta(seconds=2)) == []
    writes = revert_writes(SPEC.rollback, status, [alert], t + dt.timedelta(seconds=2), running=dict(fleet.running))
    assert [(w.target.revision, w.clusters) for w in writes] == [(REV1.revision, ("a",))]
    assert {(a.cluster, a.revision.revision) for a in full.actions} == {("a", REV1.revision)}

    fleet.running["a"] = REV1.revision             # the fast path wrote it, 250 ms after receipt
    after = decide(inputs({"a": ActOutcome("a", REV1.revision, received + 0.25)}))
    assert after.actions == []
    assert after.rollbacks_applied and after.rollbacks_applied[0].latency_ms == 250
    assert after.status.bad_revisions == [REV2.revision]
