"""The approval policy that applies: the strictest covering ApprovalPolicy, tightened (never
loosened) by the deployment's spec.approval; with no policy, the built-in floor."""

import pytest

from edgeline.api.approvalpolicy import ApprovalPolicySpec
from edgeline.api.edgedeployment import Approval
from edgeline.domain.approval_policy import BUILTIN, covers, effective_policy


def _policy(**fields) -> ApprovalPolicySpec:
    return ApprovalPolicySpec.model_validate(fields)


FACTORY_NS = {"kubernetes.io/metadata.name": "factory", "team": "vision"}
LINE = {"edgeline.io/site": "hamburg", "edgeline.io/line": "press-1"}
LAB = {"edgeline.io/tier": "lab"}

QA = _policy(namespaceSelector={"matchLabels": {"team": "vision"}}, approverGroups=["qa", "leads"], minApprovers=2)
LINES = _policy(clusterSelector={"matchExpressions": [{"key": "edgeline.io/line", "operator": "Exists"}]},
                approverGroups=["qa"], validForSeconds=3600)
OPEN = _policy(required=False, allowSelfApproval=True)
OWN = Approval(required=True, approver_groups=["qa"], min_approvers=1)


@pytest.mark.parametrize("case, policy, namespace, clusters, expected", [
    ("empty selectors cover everything", _policy(), {}, [], True),
    ("namespace labels match", QA, FACTORY_NS, [LINE], True),
    ("namespace labels do not match", QA, {"team": "other"}, [LINE], False),
    ("one selected cluster on a line is enough", LINES, FACTORY_NS, [LAB, LINE], True),
    ("no selected cluster matches", LINES, FACTORY_NS, [LAB], False),
    ("a cluster selector with nothing placed covers nothing", LINES, FACTORY_NS, [], False),
])
def test_which_policies_cover_a_deployment(case, policy, namespace, clusters, expected):
    assert covers(policy, namespace, clusters) is expected, case


@pytest.mark.parametrize("case, policies, clusters, own, expected, sources", [
    ("no policy: the built-in floor, with the deployment's groups", {}, [LINE], OWN,
     Approval(required=True, approver_groups=["qa"], min_approvers=1), ()),
    ("no policy and required false: still required (fail safe)", {}, [LINE],
     Approval(required=False, approver_groups=["qa"]), Approval(required=True, approver_groups=["qa"]), ()),
    ("no policy and no group named: nobody can approve", {}, [LINE], Approval(required=False),
     Approval(required=True, approver_groups=[]), ()),
    ("a policy that does not require approval, and a deployment that does not ask for it", {"open": OPEN}, [],
     Approval(required=False, allow_self_approval=True), Approval(required=False, allow_self_approval=True,
                                                                  approver_groups=[]), ("open",)),
    ("the deployment tightens an open policy", {"open": OPEN}, [], OWN,
     Approval(required=True, approver_groups=["qa"]), ("open",)),
    ("the policy's groups, minApprovers and no self-approval win over a looser deployment", {"qa": QA}, [LINE],
     Approval(required=False, approver_groups=["qa", "devs"], min_approvers=1, allow_self_approval=True,
              valid_for_seconds=9999999 // 10),
     Approval(required=True, approver_groups=["qa"], min_approvers=2, valid_for_seconds=86400), ("qa",)),
    ("the deployment may ask for more approvers and a shorter validity", {"qa": QA}, [LINE],
     Approval(approver_groups=["leads"], min_approvers=3, valid_for_seconds=600),
     Approval(required=True, approver_groups=["leads"], min_approvers=3, valid_for_seconds=600), ("qa",)),
    ("two policies: the strictest of each field", {"qa": QA, "lines": LINES}, [LINE], OWN,
     Approval(required=True, approver_groups=["qa"], min_approvers=2, valid_for_seconds=3600), ("lines", "qa")),
    ("an open policy does not loosen a strict one", {"qa": QA, "open": OPEN}, [LINE],
     Approval(required=False, approver_groups=["qa"], allow_self_approval=True),
     Approval(required=True, approver_groups=["qa"], min_approvers=2), ("open", "qa")),
    ("no group in common: nobody can approve", {"qa": QA}, [LINE], Approval(approver_groups=["devs"]),
     Approval(required=True, approver_groups=[], min_approvers=2), ("qa",)),
    ("a policy for lines does not cover a lab deployment", {"lines": LINES}, [LAB], OWN,
     Approval(required=True, approver_groups=["qa"]), ()),
])
def test_the_effective_policy_is_the_strictest(case, policies, clusters, own, expected, sources):
    effective = effective_policy(policies, FACTORY_NS, clusters, own)
    assert effective.approval == expected, case
    assert effective.sources == sources, case


def test_what_would_loosen_the_floor_is_ignored_and_said():
    own = Approval(required=False, approver_groups=["qa", "devs"], min_approvers=1, allow_self_approval=True,
                   valid_for_seconds=172800)
    effective = effective_policy({"qa": QA}, FACTORY_NS, [LINE], own)
    assert effective.source_text == "ApprovalPolicy qa"
    assert effective.ignored == (
        "spec.approval.required: false is ignored: ApprovalPolicy qa requires approval",
        "spec.approval.minApprovers: 1 is raised to 2 by ApprovalPolicy qa",
        "spec.approval.allowSelfApproval: true is ignored: ApprovalPolicy qa forbids approving one's own change",
        "spec.approval.validForSeconds: 172800 is cut to 86400 by ApprovalPolicy qa",
        "spec.approval.approverGroups devs are not approver groups under ApprovalPolicy qa (qa, leads)")
    assert effective_policy({}, {}, [], Approval(required=False)).ignored == (
        f"spec.approval.required: false is ignored: {BUILTIN} requires approval",)
    assert effective_policy({"qa": QA}, FACTORY_NS, [LINE], Approval(approver_groups=["qa"], min_approvers=2)
                            ).ignored == ()
