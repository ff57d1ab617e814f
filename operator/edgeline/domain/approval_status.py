"""What an EdgeDeployment's status says about approval, as pure functions: which approvals
count, whether the desired revision may go out, and the pending approval people read
(docs/approvals.md). `domain.approvals` says whether a set of records is enough."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

from edgeline import timestamps
from edgeline.api.edgedeployment import Approval, ApprovalRecord, PendingApproval, RevisionRef, RollbackRecord
from edgeline.domain.approvals import is_approved, refusals, valid_approvers

REVERTED = ("Automatic", "Manual")        # rollback modes that really reverted a revision


def _epoch(text: str | None) -> float | None:
    try:
        parsed = timestamps.parse(text)
    except (ValueError, TypeError, AttributeError):     # not a timestamp: never later than a rollback
        return None
    return parsed.timestamp() if parsed else None


def counted_records(verified: list[dict], rollbacks: list[RollbackRecord]) -> list[ApprovalRecord]:
    """The approval records (domain.approvals.records_for) that count. A revision that was
    rolled back needs approvals given after its (latest) rollback; status is never a source of
    approvals."""
    rolled_back_at: dict[str, float] = {}
    for record in rollbacks:
        when = _epoch(record.received_at)
        if when is not None and record.mode in REVERTED:
            rolled_back_at[record.from_revision] = max(rolled_back_at.get(record.from_revision, 0.0), when)
    return [ApprovalRecord(revision=r["revision"], user=r["user"], groups=r.get("groups", []), at=r["at"])
            for r in verified
            if (_epoch(r.get("at")) or 0.0) > rolled_back_at.get(r.get("revision"), -1.0)]


@dataclass(frozen=True)
class Gate:
    approved: bool          # the desired revision may roll out
    reapproved: bool        # a rolled-back desired revision was approved again after its rollback


def gate(policy: Approval, records: list[ApprovalRecord], desired: RevisionRef | None, bad_revisions: list[str],
         now: dt.datetime, authors: str | Collection[str] | None) -> Gate:
    """`authors`: everyone who changed the content since the last approved revision."""
    approved = desired is not None and is_approved(policy, records, desired.revision, now, authors)
    return Gate(approved, approved and policy.required and desired.revision in bad_revisions)


@dataclass(frozen=True)
class ApprovalState:
    summary: str | None                 # status.approval: NotRequired, Pending 1/2, Approved
    pending: PendingApproval | None     # status.pendingApproval


def approval_state(policy: Approval, previous: ApprovalState, desired: RevisionRef | None,
                   current: RevisionRef | None, held: str | None, approved: bool, records: list[ApprovalRecord],
                   author: str | None, now: dt.datetime, authors: Collection[str] | None = None) -> ApprovalState:
    """`held` is why the rollout holds the desired revision back (AwaitingApproval, RolledBack);
    `author` made the last change, `authors` (default: just `author`) every change since the last
    approved revision."""
    authors = list(authors) if authors is not None else ([author] if author else [])
    if not policy.required:
        return ApprovalState("NotRequired", None)
    if desired is None:
        return previous
    if held in ("AwaitingApproval", "RolledBack"):
        pending = previous.pending
        if pending is None or pending.revision.revision != desired.revision:
            pending = PendingApproval(revision=desired, requested_at=timestamps.format(now),
                                      runtime_change=runtime_change(current, desired))
        else:
            pending = pending.model_copy(deep=True)
        pending.needed = policy.min_approvers
        pending.requested_by = author
        pending.authors = authors
        pending.approvals = [r for r in records if r.revision == desired.revision]
        pending.refused = refusals(policy, pending.approvals, desired.revision, now, authors)
        have = len(valid_approvers(policy, pending.approvals, desired.revision, now, authors))
        return ApprovalState(f"Pending {have}/{policy.min_approvers}", pending)
    if approved:
        return ApprovalState("Approved", None)
    return previous


def runtime_change(current: RevisionRef | None, desired: RevisionRef) -> str | None:
    """What a person approving should know changes besides the model."""
    if current is None or current.runtime is None or desired.runtime is None:
        return None
    before, after = current.runtime.dump(), desired.runtime.dump()
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return ("runtime fields changed: " + ", ".join(changed)) if changed else "model only"
