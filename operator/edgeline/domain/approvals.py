"""Whether a revision may roll out: the approval policy against the approvals recorded in
status (the operator records them; issue 6 adds who may give them)."""

from __future__ import annotations

import datetime as dt

from edgeline import timestamps
from edgeline.api.edgedeployment import Approval, ApprovalRecord


def valid_approvers(policy: Approval, records: list[ApprovalRecord], revision: str,
                    now: dt.datetime, author: str | None = None) -> list[str]:
    """Distinct users whose approval of exactly `revision` still counts."""
    users = []
    for record in records:
        if record.revision != revision:
            continue
        if (now - timestamps.parse(record.at)).total_seconds() > policy.valid_for_seconds:
            continue
        if not policy.allow_self_approval and author and record.user == author:
            continue
        if record.user not in users:
            users.append(record.user)
    return users


def is_approved(policy: Approval, records: list[ApprovalRecord], revision: str, now: dt.datetime,
                author: str | None = None) -> bool:
    if not policy.required:
        return True
    return len(valid_approvers(policy, records, revision, now, author)) >= policy.min_approvers
