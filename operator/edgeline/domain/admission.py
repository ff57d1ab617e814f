"""What the approval webhook decides, as pure functions of the AdmissionReview's old and new
objects and the requesting user (docs/approvals.md).

An approval is an act, not a state: `edgeline.io/approve=<revision>` is checked against the
policy in the *stored* spec and the identity the API server authenticated, then turned into
a signed record in `edgeline.io/approvals` and removed again. Signed records cannot be forged
without the operator's key, and the webhook refuses any hand edit of them; the operator
counts only records whose signature verifies.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass, field

from edgeline import timestamps
from edgeline.api.edgedeployment import Approval

APPROVE = "edgeline.io/approve"
APPROVALS = "edgeline.io/approvals"
REQUESTED_BY = "edgeline.io/requested-by"
PROTECTED = (APPROVALS, REQUESTED_BY)


@dataclass
class Verdict:
    allowed: bool
    message: str = ""
    patch: list[dict] = field(default_factory=list)      # JSON patch ops for a mutation
    warnings: list[str] = field(default_factory=list)


def _canonical(payload: dict) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def sign(key: bytes, payload: dict) -> dict:
    body = {k: v for k, v in payload.items() if k != "sig"}
    return {**body, "sig": hmac.new(key, _canonical(body), hashlib.sha256).hexdigest()}


def verified(key: bytes, record: dict) -> bool:
    if not isinstance(record, dict) or not isinstance(record.get("sig"), str):
        return False
    expected = sign(key, record)["sig"]
    return hmac.compare_digest(expected, record["sig"])


def spec_hash(spec: dict | None) -> str:
    return hashlib.sha256(_canonical(spec or {})).hexdigest()[:16]


def annotations(obj: dict | None) -> dict:
    return dict(((obj or {}).get("metadata") or {}).get("annotations") or {})


def approval_records(key: bytes, obj: dict | None) -> tuple[list[dict], int]:
    """Records in the object whose signatures verify, and how many did not."""
    raw = annotations(obj).get(APPROVALS)
    try:
        records = json.loads(raw) if raw else []
    except ValueError:
        return [], 1
    if not isinstance(records, list):
        return [], 1
    good = [r for r in records if verified(key, r)]
    return good, len(records) - len(good)


def author(key: bytes, obj: dict | None) -> str | None:
    """Who made the object's current spec, if a valid record for exactly this spec exists."""
    raw = annotations(obj).get(REQUESTED_BY)
    try:
        record = json.loads(raw) if raw else None
    except ValueError:
        return None
    if not record or not verified(key, record) or record.get("specHash") != spec_hash((obj or {}).get("spec")):
        return None
    return record.get("user")


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def review_approval(operation: str, old: dict | None, new: dict, user: str, groups: list[str], key: bytes,
                    now: dt.datetime) -> Verdict:
    old_ann, new_ann = annotations(old), annotations(new)
    for protected in PROTECTED:
        if old_ann.get(protected) != new_ann.get(protected):
            return Verdict(False, f"annotation {protected} is written by Edgeline's admission webhook only; "
                                  "it cannot be set or edited by hand")
    value = new_ann.get(APPROVE)
    if value is None:
        return Verdict(True)
    if operation != "UPDATE" or old is None:
        return Verdict(False, f"{APPROVE} can only be set on an existing EdgeDeployment: create it, then approve "
                              "the revision its status shows as pending")
    if (old.get("spec") or {}) != (new.get("spec") or {}):
        return Verdict(False, f"set {APPROVE} in a request of its own: this request also changes the spec, and an "
                              "approval must be of a revision that already exists")
    policy = Approval.model_validate((old.get("spec") or {}).get("approval") or {})
    if not policy.required:
        return Verdict(False, "this EdgeDeployment's policy does not require approval (spec.approval.required is "
                              "false); nothing to approve")
    allowed_groups = set(policy.approver_groups)
    if not allowed_groups & set(groups):
        return Verdict(False, f"user {user} is not in an approver group of this EdgeDeployment "
                              f"({', '.join(sorted(allowed_groups))}); the approval was not recorded")
    status = old.get("status") or {}
    pending = ((status.get("pendingApproval") or {}).get("revision") or {}).get("revision")
    if not pending:
        return Verdict(False, f"no revision of this EdgeDeployment is waiting for approval; {value} was not "
                              "approved")
    if value != pending:
        return Verdict(False, f"revision {value} is not the revision waiting for approval ({pending}); an approval "
                              "binds to one revision, so nothing was approved")
    made_by = author(key, old)
    if not policy.allow_self_approval:
        if made_by is None:
            return Verdict(False, f"the author of revision {pending} is unknown (its change was not seen by the "
                                  "webhook), so the four-eyes rule cannot be checked; re-apply the change, then "
                                  "approve")
        if made_by == user:
            return Verdict(False, f"{user} made this change and the policy forbids approving one's own change "
                                  "(spec.approval.allowSelfApproval is false)")
    records, _ = approval_records(key, old)
    kept = [r for r in records if r.get("revision") == pending and r.get("user") != user]
    kept.append(sign(key, {"revision": pending, "user": user, "groups": sorted(groups), "at": timestamps.format(now)}))
    distinct = len({r["user"] for r in kept})
    patch = [{"op": "remove", "path": f"/metadata/annotations/{_escape(APPROVE)}"},
             {"op": "add", "path": f"/metadata/annotations/{_escape(APPROVALS)}", "value": json.dumps(kept)}]
    return Verdict(True, patch=patch, warnings=[
        f"approval of revision {pending} by {user} recorded ({distinct} of {policy.min_approvers} needed)"])


def review_author(operation: str, old: dict | None, new: dict, user: str, key: bytes,
                  now: dt.datetime) -> Verdict:
    """Remember who made the spec change, bound to the exact spec, for the four-eyes rule."""
    if old is not None and (old.get("spec") or {}) == (new.get("spec") or {}):
        return Verdict(True)
    record = sign(key, {"user": user, "specHash": spec_hash(new.get("spec")), "at": timestamps.format(now)})
    ops = [] if new.get("metadata", {}).get("annotations") else [
        {"op": "add", "path": "/metadata/annotations", "value": {}}]
    ops.append({"op": "add", "path": f"/metadata/annotations/{_escape(REQUESTED_BY)}", "value": json.dumps(record)})
    return Verdict(True, patch=ops)
