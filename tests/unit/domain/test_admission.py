import datetime as dt
import json

from edgeline.domain import admission

KEY = b"k" * 32
NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.timezone.utc)
SPEC = {"modelRef": {"name": "m-2"}, "approval": {"required": True, "approverGroups": ["approvers"],
                                                   "minApprovers": 2, "allowSelfApproval": False}}


def _stored(author="alice", records=(), pending="rev2", spec=SPEC):
    ann = {admission.REQUESTED_BY: json.dumps(admission.sign(KEY, {"user": author,
                                                                   "specHash": admission.spec_hash(spec),
                                                                   "at": "2026-11-25T09:00:00Z"}))}
    if records:
        ann[admission.APPROVALS] = json.dumps(list(records))
    return {"metadata": {"name": "d", "annotations": ann}, "spec": spec,
            "status": {"pendingApproval": {"revision": {"revision": pending}}}}


def _approve(old, value):
    new = json.loads(json.dumps(old))
    new["metadata"]["annotations"][admission.APPROVE] = value
    return new


def _apply_patch(obj, patch):
    ann = obj["metadata"]["annotations"]
    for op in patch:
        key = op["path"].split("/")[-1].replace("~1", "/").replace("~0", "~")
        if op["op"] == "remove":
            ann.pop(key)
        else:
            ann[key] = op["value"]
    return obj


def test_an_approver_approving_the_pending_revision_is_recorded_signed_and_the_request_annotation_removed():
    old = _stored()
    verdict = admission.review_approval("UPDATE", old, _approve(old, "rev2"), "bob", ["approvers"], KEY, NOW)
    assert verdict.allowed and "1 of 2" in verdict.warnings[0]
    stored = _apply_patch(_approve(old, "rev2"), verdict.patch)
    assert admission.APPROVE not in stored["metadata"]["annotations"]
    records, forged = admission.approval_records(KEY, stored)
    assert forged == 0 and [(r["user"], r["revision"]) for r in records] == [("bob", "rev2")]


def test_who_may_not_approve_is_told_why():
    old = _stored()
    cases = {
        ("editor", ("editors",), "rev2"): "not in an approver group",
        ("bob", ("approvers",), "rev1"): "is not the revision waiting for approval (rev2)",
        ("alice", ("approvers",), "rev2"): "forbids approving one's own change",
    }
    for (user, groups, value), words in cases.items():
        verdict = admission.review_approval("UPDATE", old, _approve(old, value), user, list(groups), KEY, NOW)
        assert not verdict.allowed and words in verdict.message, (user, verdict.message)


def test_hand_written_records_are_refused_and_forged_ones_never_verify():
    old = _stored()
    fake = {"revision": "rev2", "user": "bob", "groups": ["approvers"], "at": "2026-11-25T09:59:00Z", "sig": "00"}
    new = json.loads(json.dumps(old))
    new["metadata"]["annotations"][admission.APPROVALS] = json.dumps([fake])
    verdict = admission.review_approval("UPDATE", old, new, "mallory", ["editors"], KEY, NOW)
    assert not verdict.allowed and "written by Edgeline's admission webhook only" in verdict.message
    assert admission.approval_records(KEY, new) == ([], 1)
    resigned = admission.sign(b"other key" * 4, fake)
    assert not admission.verified(KEY, resigned)


def test_approval_and_spec_change_in_one_request_is_refused():
    old = _stored()
    new = _approve(old, "rev2")
    new["spec"] = {**SPEC, "modelRef": {"name": "m-3"}}
    verdict = admission.review_approval("UPDATE", old, new, "bob", ["approvers"], KEY, NOW)
    assert not verdict.allowed and "request of its own" in verdict.message


def test_unknown_author_blocks_approval_when_self_approval_is_forbidden():
    old = _stored()
    old["metadata"]["annotations"].pop(admission.REQUESTED_BY)
    verdict = admission.review_approval("UPDATE", old, _approve(old, "rev2"), "bob", ["approvers"], KEY, NOW)
    assert not verdict.allowed and "author of revision rev2 is unknown" in verdict.message


def test_the_author_record_binds_to_the_exact_spec():
    old = _stored(author="alice")
    changed = {**SPEC, "modelRef": {"name": "m-9"}}
    verdict = admission.review_author("UPDATE", old, {**old, "spec": changed}, "carol", KEY, NOW)
    new = _apply_patch({**old, "spec": changed, "metadata": json.loads(json.dumps(old["metadata"]))}, verdict.patch)
    assert admission.author(KEY, new) == "carol"
    assert admission.author(KEY, {**new, "spec": SPEC}) is None   # a record for another spec does not count
