"""Whether a revision may roll out: the effective policy (domain.approval_policy) against the
Approval objects of the deployment (docs/approvals.md).

An Approval counts for one deployment object (its uid) and one revision. The API server has
already checked that its approver created it, that its groups are the approver's and that
they may `approve` the deployment; here it counts only if one of those groups is an approver
group of the effective policy, it has not expired, and its approver changed none of the
content since the last approved revision (unless the policy allows self-approval)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

from edgeline import timestamps
from edgeline.api.edgedeployment import Approval, ApprovalRecord


@dataclass(frozen=True)
class ApprovalObject:
    """What the operator's index keeps of one Approval."""

    name: str
    deployment: str
    deployment_uid: str
    revision: str
    approver: str
    groups: tuple[str, ...]
    created: str            # metadata.creationTimestamp: set by the API server


def records_for(objects: list[ApprovalObject], uid: str) -> list[dict]:
    """The approvals of this very deployment object (not of an earlier one of the same name),
    oldest first, as raw records for `approval_status.counted_records`."""
    mine = sorted((o for o in objects if o.deployment_uid == uid), key=lambda o: (o.created, o.name))
    return [{"revision": o.revision, "user": o.approver, "groups": list(o.groups), "at": o.created} for o in mine]


def _authors(author: str | Collection[str] | None) -> Collection[str]:
    if author is None:
        return ()
    return (author,) if isinstance(author, str) else author


def refusal(policy: Approval, record: ApprovalRecord, now: dt.datetime,
            authors: str | Collection[str] | None = None) -> str | None:
    """Why `record` does not count under `policy` (None: it counts), for people."""
    if policy.approver_groups is not None and not set(record.groups) & set(policy.approver_groups):
        return (f"{record.user} is not approving as a member of an approver group "
                f"({', '.join(policy.approver_groups) or 'none'})")
    if (now - timestamps.parse(record.at)).total_seconds() > policy.valid_for_seconds:
        return f"the approval by {record.user} expired ({policy.valid_for_seconds} s)"
    if not policy.allow_self_approval and record.user in _authors(authors):
        return (f"{record.user} changed this deployment since its last approved revision and the policy forbids "
                "approving one's own change")
    return None


def valid_approvers(policy: Approval, records: list[ApprovalRecord], revision: str,
                    now: dt.datetime, authors: str | Collection[str] | None = None) -> list[str]:
    """Distinct users whose approval of exactly `revision` still counts."""
    users = []
    for record in records:
        if record.revision != revision or refusal(policy, record, now, authors) is not None:
            continue
        if record.user not in users:
            users.append(record.user)
    return users


def refusals(policy: Approval, records: list[ApprovalRecord], revision: str, now: dt.datetime,
             authors: str | Collection[str] | None = None) -> list[str]:
    """Why each approval of `revision` that does not count does not, once per message."""
    out: list[str] = []
    for record in records:
        if record.revision == revision and (why := refusal(policy, record, now, authors)) and why not in out:
            out.append(why)
    return out


def is_approved(policy: Approval, records: list[ApprovalRecord], revision: str, now: dt.datetime,
                authors: str | Collection[str] | None = None) -> bool:
    if not policy.required:
        return True
    return len(valid_approvers(policy, records, revision, now, authors)) >= policy.min_approvers
