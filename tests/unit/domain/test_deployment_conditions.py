"""Conditions of an EdgeDeployment from its decided status, and the phase from the conditions."""

import datetime as dt

import pytest

from edgeline.api.conditions import get_condition, set_condition
from edgeline.api.edgedeployment import EdgeDeploymentStatus, PinnedCluster, RevisionRef, RollbackRecord
from edgeline.domain.deployment_conditions import Facts, Verdict, conditions, phase_of

NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.timezone.utc)
REV = RevisionRef(revision="aaaa000001", mlmodel="m-1", version="1")
RESOLVED = Verdict(True, "ModelReady", "MLModel m-1 is Ready")


def _status(**rollout) -> EdgeDeploymentStatus:
    ready = rollout.pop("ready", 3)
    approval = rollout.pop("approval", "NotRequired")
    pinned = rollout.pop("pinned", [])
    body = {"desiredRevision": REV.dump(), "approval": approval, "readyClusters": ready, "totalClusters": 3,
            "ready": f"{ready}/3"}
    if rollout:
        body["rollout"] = {"revision": REV.revision, **rollout}
    status = EdgeDeploymentStatus.model_validate(body)
    status.pinned = pinned
    return status


def _facts(held=None, paused=False, model=RESOLVED) -> Facts:
    return Facts(model=model, held_reason=held, paused=paused, now=NOW, generation=4)


PIN = PinnedCluster(cluster="a", revision=REV)


@pytest.mark.parametrize("case, status, facts, phase, progressing, ready", [
    ("nothing rolled out yet", _status(), _facts(), "Pending", ("False", "NoRevision"), ("False", "NoRevision")),
    ("the model does not resolve", _status(), _facts(model=Verdict(False, "ModelNotFound", "MLModel x is missing")),
     "Pending", ("False", "NoRevision"), ("False", "ModelNotFound")),
    ("a wave moves", _status(wave=0, waveName="pilot", ready=0), _facts(), "Progressing",
     ("True", "WaveProgressing"), ("False", "WaveProgressing")),
    ("a rollback moves", _status(wave=1, waveName="rest", reason="Rollback", ready=1), _facts(), "Progressing",
     ("True", "RollingBack"), ("False", "RollingBack")),
    ("paused after a soaked wave", _status(wave=0, waveName="pilot", soakUntil="2026-11-25T09:59:00Z", ready=1),
     _facts(paused=True), "Paused", ("False", "Paused"), ("False", "Paused")),
    ("paused but still soaking", _status(wave=0, waveName="pilot", soakUntil="2026-11-25T10:01:00Z", ready=1),
     _facts(paused=True), "Progressing", ("True", "WaveProgressing"), ("False", "WaveProgressing")),
    ("a wave failed", _status(wave=0, failedMessage="wave pilot not ready after 60s: a: 0/1", ready=0), _facts(),
     "Degraded", ("False", "WaveFailed"), ("False", "WaveFailed")),
    ("complete and every cluster ready", _status(completedAt="2026-11-25T09:00:00Z"), _facts(), "Healthy",
     ("False", "RolloutComplete"), ("True", "AllClustersReady")),
    ("complete but a cluster fell over", _status(completedAt="2026-11-25T09:00:00Z", ready=2), _facts(),
     "Degraded", ("False", "RolloutComplete"), ("False", "ClustersNotReady")),
    ("a rollback completed", _status(completedAt="2026-11-25T09:00:00Z", reason="Rollback"), _facts(),
     "RolledBack", ("False", "RolledBack"), ("True", "AllClustersReady")),
    ("one cluster pinned by a cluster-scoped rollback", _status(wave=0, pinned=[PIN], ready=1), _facts(),
     "RolledBack", ("False", "RolledBack"), ("False", "ClustersNotReady")),
    ("the next revision waits for approval", _status(completedAt="2026-11-25T09:00:00Z", approval="Pending 0/1"),
     _facts(held="AwaitingApproval"), "AwaitingApproval", ("False", "RolloutComplete"),
     ("False", "AwaitingApproval")),
    ("a rolled-back revision is asked for again", _status(completedAt="2026-11-25T09:00:00Z", reason="Rollback",
                                                          approval="Pending 0/1"),
     _facts(held="RolledBack"), "RolledBack", ("False", "RolledBack"), ("True", "AllClustersReady")),
])
def test_phase_follows_from_the_conditions(case, status, facts, phase, progressing, ready):
    result = conditions([], status, facts)
    assert phase_of(result) == phase, case
    got = get_condition(result, "Progressing")
    assert (got["status"], got["reason"]) == progressing, case
    got = get_condition(result, "Ready")
    assert (got["status"], got["reason"]) == ready, case
    assert {c["observedGeneration"] for c in result} == {4}


@pytest.mark.parametrize("case, status, held, expected", [
    ("no desired revision", EdgeDeploymentStatus(), None, ("Unknown", "NoDesiredRevision")),
    ("waits for approval", _status(approval="Pending 1/2"), "AwaitingApproval", ("False", "AwaitingApproval")),
    ("rolled back, approval required", _status(approval="Pending 0/1"), "RolledBack",
     ("False", "ReapprovalRequired")),
    ("rolled back, no approval required", _status(), "RolledBack", ("True", "NotRequired")),
    ("approved", _status(approval="Approved"), None, ("True", "Approved")),
    ("no approval required", _status(), None, ("True", "NotRequired")),
])
def test_approved_condition(case, status, held, expected):
    got = get_condition(conditions([], status, _facts(held=held)), "Approved")
    assert (got["status"], got["reason"]) == expected, case


def test_a_phase_without_conditions_is_pending():
    assert phase_of([]) == "Pending"


def test_conditions_of_other_writers_are_kept_and_transition_times_move_only_on_change():
    theirs = set_condition([], "Reconciled", "False", "ReconcileFailed", "ApiError: 500", generation=3,
                           now=NOW - dt.timedelta(minutes=5))
    first = conditions(theirs, _status(completedAt="2026-11-25T09:00:00Z"), _facts())
    later = conditions(first, _status(completedAt="2026-11-25T09:00:00Z"),
                       Facts(RESOLVED, None, False, NOW + dt.timedelta(minutes=1), 4))
    assert get_condition(later, "Reconciled") == get_condition(theirs, "Reconciled")
    assert get_condition(later, "Ready")["lastTransitionTime"] == "2026-11-25T10:00:00Z"


def test_the_ready_message_says_why_the_revision_is_held():
    ready = get_condition(conditions([], _status(completedAt="2026-11-25T09:00:00Z", approval="Pending 0/1"),
                                     _facts(held="AwaitingApproval")), "Ready")
    assert ready["message"] == f"AwaitingApproval: 3/3 clusters run revision {REV.revision}"


def test_a_revert_is_rolling_back_until_the_restored_revision_runs_where_it_was_sent():
    status = _status(completedAt="2026-11-25T09:00:00Z", reason="Rollback")
    status.rollbacks = [RollbackRecord(from_revision="bad", to_revision=REV.revision, clusters=["a", "b"],
                                       mode="Automatic")]
    moving = get_condition(conditions([], status, _facts()), "Progressing")
    assert (moving["status"], moving["reason"]) == ("True", "RollingBack") and "a, b" in moving["message"]
    status.rollbacks[0].applied_at = "2026-11-25T10:00:00.120Z"
    assert phase_of(conditions([], status, _facts())) == "RolledBack"


def test_a_revert_of_a_thousand_clusters_names_a_few_and_counts_the_rest():
    """A condition message holds 4096 characters: naming every cluster broke the tick at 1,000."""
    status = _status(completedAt="2026-11-25T09:00:00Z", reason="Rollback")
    clusters = [f"site-{i:04d}" for i in range(1000)]
    status.rollbacks = [RollbackRecord(from_revision="bad", to_revision=REV.revision, clusters=clusters,
                                       mode="Automatic")]
    moving = get_condition(conditions([], status, _facts()), "Progressing")
    assert moving["message"] == (f"reverting site-0000, site-0001, site-0002, site-0003, site-0004 and 995 more "
                                 f"to revision {REV.revision}")
    status.pinned = [PinnedCluster(cluster=c, revision=REV) for c in clusters]
    status.rollbacks[0].applied_at = "2026-11-25T10:00:00.120Z"
    halted = get_condition(conditions([], status, _facts()), "Progressing")
    assert halted["message"].startswith("site-0000, site-0001, site-0002, site-0003, site-0004 and 995 more rolled back")
