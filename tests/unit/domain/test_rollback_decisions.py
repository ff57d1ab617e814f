import datetime as dt

import pytest

from edgeline.api.edgedeployment import (EdgeDeploymentStatus, HistoryEntry, RevisionRef, RollbackPolicy,
                                         RolloutProgress)
from edgeline.domain.rollback import Alert, alert_verdicts, decide_rollback, matches, target_of

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
        history=[HistoryEntry(revision=GOOD, outcome="Deployed")])


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
    assert decide_rollback(RollbackPolicy(), _status(), _alert(model_version="1.0.0"), NOW).reason == \
        "AlertForOtherVersion"
    alone = EdgeDeploymentStatus(rollout=RolloutProgress(revision="bad", target=BAD, reason="Update"))
    assert decide_rollback(RollbackPolicy(), alone, _alert(), NOW).reason == "NoKnownGoodRevision"
    proposed = decide_rollback(RollbackPolicy(mode="Propose", scope="Deployment"), _status(), _alert(), NOW)
    assert proposed.action == "propose" and proposed.clusters is None and "rollback-to=good" in proposed.message



# --- alerts of one tick against the recorded status (alert_verdicts) ----------------------------

def _recorded():
    return EdgeDeploymentStatus(rollout=RolloutProgress(revision="bad", target=BAD, reason="Update", wave=0),
                                last_known_good=GOOD)


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
