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
