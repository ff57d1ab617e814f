import datetime as dt

import pytest

from edgeline.api.edgedeployment import (ClusterState, EdgeDeploymentStatus, HistoryEntry, PinnedCluster, RevisionRef,
                                         RollbackPolicy, RolloutProgress)
from edgeline.domain.rollback import Alert, alert_verdicts, decide_rollback, deployed_on, matches, target_of

NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.timezone.utc)
GOOD = RevisionRef(revision="good", version="1.0.0")
BAD = RevisionRef(revision="bad", version="2.0.0")


def _alert(**labels):
    base = {"alertname": "EdgelineRuntimeErrorRateHigh", "severity": "critical", "edgeline_deployment": "d",
            "namespace": "factory", "cluster": "line-1", "model_version": "2.0.0"}
    return Alert("EdgelineRuntimeErrorRateHigh", {**base, **labels}, "f1", "t", 0.0)


def _status(completed=None, guard=None):
    return EdgeDeploymentStatus(
        rollout=RolloutProgress(revision="bad", target=BAD, reason="Update", completed_at=completed, guard_until=guard),
        history=[HistoryEntry(revision=GOOD, outcome="Deployed")],
        clusters=[ClusterState(name="line-1", revision="bad"), ClusterState(name="line-2", revision="good")])


def test_alerts_are_routed_by_labels_and_matched_like_alertmanager():
    assert target_of(_alert().labels) == ("factory", "d")
    assert target_of({"alertname": "x"}) is None
    policy = RollbackPolicy.model_validate({"alertMatchers": [{"name": "severity", "value": "critical"},
                                                              {"name": "alertname", "value": "Edgeline.*",
                                                               "operator": "=~"}]})
    assert matches(policy, _alert().labels)
    assert not matches(policy, _alert(severity="warning").labels)


def test_during_the_rollout_and_the_guard_period_an_alert_reverts_to_the_previous_good_revision():
    policy = RollbackPolicy()
    during = decide_rollback(policy, _status(), _alert(), NOW)
    assert during.action == "revert" and during.target.revision == "good" and during.clusters == ("line-1",)
    guarded = decide_rollback(policy, _status("2026-11-25T09:59:00Z", "2026-11-25T10:30:00Z"), _alert(), NOW)
    assert guarded.action == "revert"
    late = decide_rollback(policy, _status("2026-11-25T08:00:00Z", "2026-11-25T09:00:00Z"), _alert(), NOW)
    assert late.action == "ignore" and late.reason == "GuardPeriodOver"


def test_what_does_not_trigger_a_rollback_says_why():
    assert decide_rollback(RollbackPolicy(mode="Disabled"), _status(), _alert(), NOW).reason == "RollbackDisabled"
    assert decide_rollback(RollbackPolicy(), _status(), _alert(cluster="line-2", model_version="1.0.0"), NOW).reason == \
        "AlertForOtherVersion"
    alone = EdgeDeploymentStatus(rollout=RolloutProgress(revision="bad", target=BAD, reason="Update"),
                                 clusters=[ClusterState(name="line-1", revision="bad")])
    assert decide_rollback(RollbackPolicy(), alone, _alert(), NOW).reason == "NoKnownGoodRevision"
    proposed = decide_rollback(RollbackPolicy(mode="Propose", scope="Deployment"), _status(), _alert(), NOW)
    assert proposed.action == "propose" and proposed.clusters is None and "rollback-to=good" in proposed.message



# --- alerts of one tick against the recorded status (alert_verdicts) ----------------------------

def _recorded():
    return EdgeDeploymentStatus(rollout=RolloutProgress(revision="bad", target=BAD, reason="Update", wave=0),
                                last_known_good=GOOD, clusters=[ClusterState(name="line-1", revision="bad")])


def _received(name, received_at, **labels):
    return Alert(name, {"alertname": name, **labels}, f"fp-{name}", "", received_at)


RECEIVED = dt.datetime(2026, 11, 25, 10, 0, 1, 500000, tzinfo=dt.timezone.utc).timestamp()


@pytest.mark.parametrize("mode, automatic, proposals, events", [
    ("Automatic", [("Errors", "good", ("line-1",), "2026-11-25T10:00:01.500Z")], [], []),
    ("Propose", [], [("Errors", "bad", "good", ["line-1"], "Proposed", "2026-11-25T10:00:01.500Z")],
     [("Warning", "RollbackProposed")]),
    ("Disabled", [], [], [("Normal", "AlertIgnored")]),
])
def test_alert_verdicts_by_mode(mode, automatic, proposals, events):
    status = _recorded()
    before = status.dump()
    verdicts = alert_verdicts(RollbackPolicy(mode=mode), status, [_received("Errors", RECEIVED, cluster="line-1")],
                              NOW)
    assert [(r.alert, r.target.revision, r.clusters, r.received_at) for r in verdicts.automatic] == automatic
    assert [(p.alert, p.from_revision, p.to_revision, p.clusters, p.mode, p.received_at)
            for p in verdicts.proposals] == proposals
    assert [(kind, reason) for kind, reason, _ in verdicts.events] == events
    assert status.dump() == before           # the recorded status is an input, never written to


def test_alert_verdicts_list_proposals_newest_first():
    alerts = [_received("First", RECEIVED - 3), _received("Second", RECEIVED - 1)]
    verdicts = alert_verdicts(RollbackPolicy(mode="Propose"), _recorded(), alerts, NOW)
    assert [p.alert for p in verdicts.proposals] == ["Second", "First"]


# --- an alert only rolls back what it can be about (issue 15, item 4) ---------------------------
# _status(): line-1 runs "bad" (2.0.0, the rollout's target), line-2 still runs "good" (1.0.0).

def _scoped(cluster=None, revision=None, model_version=None):
    labels = {"alertname": "EdgelineRuntimeErrorRateHigh", "severity": "critical", "edgeline_deployment": "d",
              "namespace": "factory"}
    labels.update({k: v for k, v in (("cluster", cluster), ("revision", revision),
                                     ("model_version", model_version)) if v is not None})
    return Alert("EdgelineRuntimeErrorRateHigh", labels, "f1", "t", 0.0)


@pytest.mark.parametrize("cluster, revision, model_version, action, reason", [
    # what Edgeline deployed there: rolled back
    ("line-1", None, None, "revert", "AlertFired"),
    ("line-1", "bad", None, "revert", "AlertFired"),
    ("line-1", None, "2.0.0", "revert", "AlertFired"),
    ("line-1", "bad", "2.0.0", "revert", "AlertFired"),
    ("line-2", "bad", None, "revert", "AlertFired"),         # the rollout's target is pending on line-2
    # neither cluster nor revision: deployment-wide, as before
    (None, None, None, "revert", "AlertFired"),
    (None, "bad", None, "revert", "AlertFired"),
    # a cluster the deployment is not on
    ("other-line", None, None, "refuse", "AlertForOtherCluster"),
    ("other-line", "bad", "2.0.0", "refuse", "AlertForOtherCluster"),
    ("", None, None, "refuse", "AlertForOtherCluster"),
    # a revision or version never deployed there
    ("line-1", "never-deployed", None, "refuse", "AlertForOtherRevision"),
    ("line-1", None, "9.9.9", "refuse", "AlertForOtherRevision"),
    ("line-1", "bad", "9.9.9", "refuse", "AlertForOtherRevision"),
    ("line-1", "good", None, "refuse", "AlertForOtherRevision"),    # good was replaced on line-1 by bad
    (None, "never-deployed", None, "refuse", "AlertForOtherRevision"),
    (None, None, "9.9.9", "refuse", "AlertForOtherRevision"),
    # deployed there, but not what is being rolled out: ignored as before, not refused
    ("line-2", None, "1.0.0", "ignore", "AlertForOtherVersion"),
])
def test_an_alert_rolls_back_only_the_cluster_and_revision_it_can_be_about(cluster, revision, model_version, action,
                                                                          reason):
    decision = decide_rollback(RollbackPolicy(), _status(), _scoped(cluster, revision, model_version), NOW)
    assert (decision.action, decision.reason) == (action, reason)
    if action == "refuse":
        assert decision.target is None and decision.clusters is None
        assert any(repr(v) in decision.message for v in (cluster, revision, model_version) if v is not None)


def test_a_refused_alert_is_a_warning_event_and_never_a_rollback_or_proposal():
    for mode in ("Automatic", "Propose"):
        alerts = [_scoped("other-line"), _scoped("line-1", revision="never-deployed")]
        verdicts = alert_verdicts(RollbackPolicy(mode=mode), _status(), alerts, NOW)
        assert verdicts.automatic == [] and verdicts.proposals == []
        assert [(kind, reason) for kind, reason, _ in verdicts.events] == [("Warning", "AlertRefused")] * 2
        assert "AlertForOtherCluster" in verdicts.events[0][2] and "'other-line'" in verdicts.events[0][2]
        assert "AlertForOtherRevision" in verdicts.events[1][2] and "nothing is rolled back" in verdicts.events[1][2]


def test_a_pinned_cluster_and_a_cluster_being_removed_still_count_as_the_deployment_s():
    status = _status()
    status.clusters.append(ClusterState(name="old-line", revision="good", phase="Removing"))
    status.pinned = [PinnedCluster(cluster="line-3", revision=GOOD)]
    assert [r.revision for r in deployed_on(status, "line-3")] == ["good", "bad"]
    assert [r.revision for r in deployed_on(status, "old-line")] == ["good", "bad"]
    assert decide_rollback(RollbackPolicy(), status, _scoped("line-3", "bad"), NOW).action == "revert"
    assert decide_rollback(RollbackPolicy(), status, _scoped("old-line", None, "1.0.0"), NOW).reason == \
        "AlertForOtherVersion"
    assert sorted(r.revision for r in deployed_on(status, None)) == ["bad", "good"]
