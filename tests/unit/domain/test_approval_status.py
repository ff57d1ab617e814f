"""What status says about approval: which records count, the gate, and the pending approval."""

import datetime as dt

import pytest

from edgeline.api.edgedeployment import Approval, ApprovalRecord, PendingApproval, RevisionRef, RollbackRecord, Runtime
from edgeline.domain.approval_status import ApprovalState, approval_state, counted_records, gate, runtime_change

NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.timezone.utc)
V1 = RevisionRef(revision="rev-1", runtime=Runtime())
V2 = RevisionRef(revision="rev-2", runtime=Runtime())
POLICY = Approval(required=True, approver_groups=["approvers"], min_approvers=2)


def _raw(user: str, at: str, revision: str = "rev-2") -> dict:
    return {"revision": revision, "user": user, "groups": ["approvers"], "at": at}


def _rollback(mode: str, at: str, revision: str = "rev-2") -> RollbackRecord:
    return RollbackRecord(from_revision=revision, to_revision="rev-1", received_at=at, mode=mode)


@pytest.mark.parametrize("case, raw, rollbacks, users", [
    ("no rollback: every record counts", [_raw("a", "2026-11-25T09:00:00Z")], [], ["a"]),
    ("given before the rollback of its revision", [_raw("a", "2026-11-25T09:00:00Z")],
     [_rollback("Automatic", "2026-11-25T09:30:00.25Z")], []),
    ("given after the rollback", [_raw("a", "2026-11-25T09:31:00Z")],
     [_rollback("Automatic", "2026-11-25T09:30:00.25Z")], ["a"]),
    ("the latest rollback is the one that counts", [_raw("a", "2026-11-25T09:31:00Z")],
     [_rollback("Manual", "2026-11-25T09:40:00Z"), _rollback("Automatic", "2026-11-25T09:30:00Z")], []),
    ("a proposal reverted nothing", [_raw("a", "2026-11-25T09:00:00Z")],
     [_rollback("Proposed", "2026-11-25T09:30:00Z")], ["a"]),
    ("a rollback of another revision", [_raw("a", "2026-11-25T09:00:00Z")],
     [_rollback("Manual", "2026-11-25T09:30:00Z", revision="rev-9")], ["a"]),
    ("an unreadable time never beats a rollback", [_raw("a", "yesterday")],
     [_rollback("Manual", "2026-11-25T09:30:00Z")], []),
])
def test_counted_records(case, raw, rollbacks, users):
    assert [r.user for r in counted_records(raw, rollbacks)] == users, case


def _record(user: str, revision: str = "rev-2") -> ApprovalRecord:
    return ApprovalRecord(revision=revision, user=user, groups=["approvers"], at="2026-11-25T09:59:00Z")


@pytest.mark.parametrize("case, policy, records, desired, bad, expected", [
    ("no model resolved", POLICY, [_record("a"), _record("b")], None, [], (False, False)),
    ("not required", Approval(required=False), [], V2, [], (True, False)),
    ("not required, rolled back before", Approval(required=False), [], V2, ["rev-2"], (True, False)),
    ("one of two", POLICY, [_record("a")], V2, [], (False, False)),
    ("two of two", POLICY, [_record("a"), _record("b")], V2, [], (True, False)),
    ("two of two for a rolled-back revision", POLICY, [_record("a"), _record("b")], V2, ["rev-2"], (True, True)),
    ("the author's approval does not count", POLICY, [_record("a"), _record("editor")], V2, [], (False, False)),
    ("nor that of anyone else who changed it since the last approval", POLICY, [_record("a"), _record("ci")], V2, [],
     (False, False)),
])
def test_gate(case, policy, records, desired, bad, expected):
    result = gate(policy, records, desired, bad, NOW, ["editor", "ci"])
    assert (result.approved, result.reapproved) == expected, case


NOTHING = ApprovalState(None, None)


@pytest.mark.parametrize("case, policy, previous, desired, held, approved, summary, pending", [
    ("not required", Approval(required=False), ApprovalState("Pending 0/1", PendingApproval(revision=V2)), V2,
     None, True, "NotRequired", None),
    ("no desired revision keeps what was said", POLICY, ApprovalState("Approved", None), None, None, False,
     "Approved", None),
    ("waiting", POLICY, NOTHING, V2, "AwaitingApproval", False, "Pending 1/2", "rev-2"),
    ("rolled back and asked for again", POLICY, NOTHING, V2, "RolledBack", False, "Pending 1/2", "rev-2"),
    ("approved", POLICY, ApprovalState("Pending 1/2", PendingApproval(revision=V2)), V2, None, True, "Approved",
     None),
])
def test_approval_state(case, policy, previous, desired, held, approved, summary, pending):
    state = approval_state(policy, previous, desired, V1, held, approved, [_record("a"), _record("x", "rev-1")],
                           "editor", NOW)
    assert state.summary == summary, case
    assert (state.pending.revision.revision if state.pending else None) == pending, case


def test_a_pending_approval_keeps_when_it_was_requested_and_lists_only_its_revisions_approvals():
    first = approval_state(POLICY, NOTHING, V2, V1, "AwaitingApproval", False, [], "editor", NOW)
    later = approval_state(POLICY, first, V2, V1, "AwaitingApproval", False, [_record("a"), _record("x", "rev-1")],
                           "editor", NOW + dt.timedelta(minutes=5))
    assert later.pending.requested_at == "2026-11-25T10:00:00Z" and later.pending.needed == 2
    assert [r.user for r in later.pending.approvals] == ["a"] and later.pending.requested_by == "editor"
    assert first.pending.approvals == []          # the earlier state is not changed in place


@pytest.mark.parametrize("case, current, desired, expected", [
    ("first revision", None, V2, None),
    ("same runtime", V1, V2, "model only"),
    ("more replicas", V1, RevisionRef(revision="rev-3", runtime=Runtime(replicas=3)),
     "runtime fields changed: replicas"),
])
def test_runtime_change(case, current, desired, expected):
    assert runtime_change(current, desired) == expected, case


def test_the_pending_approval_names_every_author_and_why_approvals_do_not_count():
    records = [_record("ci"), _record("a"), ApprovalRecord(revision="rev-2", user="z", groups=["other"],
                                                           at="2026-11-25T09:59:00Z")]
    state = approval_state(POLICY, NOTHING, V2, V1, "AwaitingApproval", False, records, "ci", NOW, ["editor", "ci"])
    assert state.summary == "Pending 1/2"
    assert state.pending.requested_by == "ci" and state.pending.authors == ["editor", "ci"]
    assert state.pending.refused == [
        "ci changed this deployment since its last approved revision and the policy forbids approving one's own "
        "change", "z is not approving as a member of an approver group (approvers)"]
