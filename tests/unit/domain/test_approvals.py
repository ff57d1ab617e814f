"""Whether a revision may roll out: expiry, self-approval, four-eyes, and binding to the revision."""

import datetime as dt

import pytest

from edgeline.api.edgedeployment import Approval, ApprovalRecord
from edgeline.domain.approvals import ApprovalObject, is_approved, records_for, refusals, valid_approvers

NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.timezone.utc)
REV = "rev-a"


def _at(seconds_ago: int) -> str:
    return (NOW - dt.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _record(user: str, seconds_ago: int = 60, revision: str = REV) -> ApprovalRecord:
    return ApprovalRecord(revision=revision, user=user, groups=["factory:approvers"], at=_at(seconds_ago))


FOUR_EYES = Approval(required=True, approver_groups=["factory:approvers"], min_approvers=2, valid_for_seconds=3600)


@pytest.mark.parametrize("case, policy, records, author, expected", [
    ("nobody approved yet", FOUR_EYES, [], "editor", []),
    ("one approver", FOUR_EYES, [_record("a")], "editor", ["a"]),
    ("the same person twice counts once", FOUR_EYES, [_record("a"), _record("a", 30)], "editor", ["a"]),
    ("two distinct approvers, in the order given", FOUR_EYES, [_record("b"), _record("a")], "editor", ["b", "a"]),
    ("an approval of another revision does not count", FOUR_EYES, [_record("a", revision="rev-b")], "editor", []),
    ("an approval just inside its validity counts", FOUR_EYES, [_record("a", 3600)], "editor", ["a"]),
    ("an approval past its validity has expired", FOUR_EYES, [_record("a", 3601)], "editor", []),
    ("the author may not approve their own change", FOUR_EYES, [_record("editor"), _record("a")], "editor", ["a"]),
    ("self-approval when the policy allows it", FOUR_EYES.model_copy(update={"allow_self_approval": True}),
     [_record("editor")], "editor", ["editor"]),
    ("an unknown author excludes nobody", FOUR_EYES, [_record("editor")], None, ["editor"]),
    ("everyone who changed it since the last approval is excluded, not only the last writer", FOUR_EYES,
     [_record("alice"), _record("ci-bot"), _record("a")], ["alice", "ci-bot"], ["a"]),
    ("an approval that relies on no approver group does not count", FOUR_EYES,
     [ApprovalRecord(revision=REV, user="a", groups=["factory:editors"], at=_at(60))], "editor", []),
])
def test_valid_approvers(case, policy, records, author, expected):
    assert valid_approvers(policy, records, REV, NOW, author) == expected, case


@pytest.mark.parametrize("case, policy, records, author, approved", [
    ("approval not required", Approval(required=False), [], "editor", True),
    ("one of two is not enough", FOUR_EYES, [_record("a")], "editor", False),
    ("two distinct approvers are enough", FOUR_EYES, [_record("a"), _record("b")], "editor", True),
    ("one person twice is not four eyes", FOUR_EYES, [_record("a"), _record("a", 10)], "editor", False),
    ("the author's own approval does not make up the second pair of eyes", FOUR_EYES,
     [_record("a"), _record("editor")], "editor", False),
    ("an expired approval no longer counts", FOUR_EYES, [_record("a"), _record("b", 7200)], "editor", False),
    ("approvals of an earlier revision do not carry over", FOUR_EYES,
     [_record("a", revision="old"), _record("b", revision="old")], "editor", False),
    ("one approver from a named group is enough by default", Approval(approver_groups=["factory:approvers"]),
     [_record("a")], "editor", True),
    ("with no approver group (none in common) nobody can approve", Approval(), [_record("a")], "editor", False),
    ("the default expiry is a day", Approval(approver_groups=["factory:approvers"]), [_record("a", 86401)], "editor",
     False),
])
def test_is_approved(case, policy, records, author, approved):
    assert is_approved(policy, records, REV, NOW, author) is approved, case


def test_refusals_say_why_an_approval_does_not_count():
    records = [_record("alice"), _record("b", 7200),
               ApprovalRecord(revision=REV, user="c", groups=["factory:editors"], at=_at(60)), _record("d")]
    assert refusals(FOUR_EYES, records, REV, NOW, ["alice"]) == [
        "alice changed this deployment since its last approved revision and the policy forbids approving one's own "
        "change",
        "the approval by b expired (3600 s)",
        "c is not approving as a member of an approver group (factory:approvers)"]


def test_only_approvals_of_this_very_deployment_object_count():
    objects = [ApprovalObject("x", "d", "uid-old", REV, "a", ("g",), "2026-11-25T09:00:00Z"),
               ApprovalObject("y", "d", "uid-new", REV, "b", ("g",), "2026-11-25T09:30:00Z"),
               ApprovalObject("z", "d", "uid-new", REV, "c", ("g",), "2026-11-25T09:10:00Z")]
    assert [r["user"] for r in records_for(objects, "uid-new")] == ["c", "b"]
