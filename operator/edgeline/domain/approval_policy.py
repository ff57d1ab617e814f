"""The approval policy that applies to an EdgeDeployment (docs/approvals.md): the strictest of
the platform team's ApprovalPolicies that cover it, tightened (never loosened) by the
deployment's own `spec.approval`.

A policy covers a deployment when its namespaceSelector matches the deployment's namespace
labels and its clusterSelector is empty or matches at least one cluster the deployment places
on. With no covering policy, Edgeline's built-in floor applies: approval required, one
approver from the groups the deployment names, never the author. So a hub without policies
fails safe: `required: false` in a deployment is never enough on its own.

Strictest, field by field: required if any says so; approver groups are intersected (a
source that names none leaves the choice to the others; no group in common means nobody can
approve); the most approvers; self-approval only if all allow it; the shortest validity.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeline.api.approvalpolicy import ApprovalPolicySpec
from edgeline.api.edgedeployment import Approval
from edgeline.domain.selectors import matches

BUILTIN = "built-in floor (no ApprovalPolicy covers this deployment)"
FLOOR = ApprovalPolicySpec(required=True, approver_groups=[], min_approvers=1, allow_self_approval=False,
                           valid_for_seconds=86400)


@dataclass(frozen=True)
class EffectivePolicy:
    approval: Approval                # what the gate applies
    sources: tuple[str, ...]          # the ApprovalPolicies that set the floor; empty: the built-in floor
    ignored: tuple[str, ...] = ()     # what in spec.approval would have loosened the floor, for people

    @property
    def source_text(self) -> str:
        return ", ".join(f"ApprovalPolicy {s}" for s in self.sources) if self.sources else BUILTIN


def covers(policy: ApprovalPolicySpec, namespace_labels: dict[str, str], cluster_labels: list[dict[str, str]]) -> bool:
    if not matches(policy.namespace_selector, namespace_labels):
        return False
    selector = policy.cluster_selector
    if not selector.match_labels and not selector.match_expressions:
        return True
    return any(matches(selector, labels) for labels in cluster_labels)


@dataclass(frozen=True)
class _Rules:
    required: bool
    groups: tuple[str, ...] | None      # None: not named (left to the others)
    min_approvers: int
    allow_self_approval: bool
    valid_for_seconds: int

    @staticmethod
    def of(spec: ApprovalPolicySpec | Approval) -> _Rules:
        return _Rules(spec.required, tuple(spec.approver_groups) or None, spec.min_approvers,
                      spec.allow_self_approval, spec.valid_for_seconds)

    def tightened(self, other: _Rules) -> _Rules:
        if self.groups is None or other.groups is None:
            groups = self.groups if other.groups is None else other.groups
        else:
            groups = tuple(g for g in self.groups if g in other.groups)
        return _Rules(self.required or other.required, groups, max(self.min_approvers, other.min_approvers),
                      self.allow_self_approval and other.allow_self_approval,
                      min(self.valid_for_seconds, other.valid_for_seconds))


def effective_policy(policies: dict[str, ApprovalPolicySpec], namespace_labels: dict[str, str],
                     cluster_labels: list[dict[str, str]], own: Approval) -> EffectivePolicy:
    """`policies`: every ApprovalPolicy by name; `cluster_labels`: labels of the clusters the
    deployment's placement selects."""
    sources = tuple(sorted(name for name, spec in policies.items()
                           if covers(spec, namespace_labels, cluster_labels)))
    floor = _Rules.of(FLOOR)
    if sources:
        floor = _Rules.of(policies[sources[0]])
        for name in sources[1:]:
            floor = floor.tightened(_Rules.of(policies[name]))
    result = floor.tightened(_Rules.of(own))
    where = ", ".join(f"ApprovalPolicy {s}" for s in sources) if sources else BUILTIN
    ignored = []
    if floor.required and not own.required:
        ignored.append(f"spec.approval.required: false is ignored: {where} requires approval")
    if own.min_approvers < floor.min_approvers:
        ignored.append(f"spec.approval.minApprovers: {own.min_approvers} is raised to {floor.min_approvers} by "
                       f"{where}")
    if own.allow_self_approval and not floor.allow_self_approval:
        ignored.append(f"spec.approval.allowSelfApproval: true is ignored: {where} forbids approving one's "
                       "own change")
    if own.valid_for_seconds > floor.valid_for_seconds:
        ignored.append(f"spec.approval.validForSeconds: {own.valid_for_seconds} is cut to "
                       f"{floor.valid_for_seconds} by {where}")
    if floor.groups is not None and own.approver_groups:
        extra = [g for g in own.approver_groups if g not in floor.groups]
        if extra:
            ignored.append(f"spec.approval.approverGroups {', '.join(extra)} are not approver groups under {where} "
                           f"({', '.join(floor.groups) or 'none'})")
    approval = Approval(required=result.required, approver_groups=list(result.groups or ()),
                        min_approvers=result.min_approvers, allow_self_approval=result.allow_self_approval,
                        valid_for_seconds=result.valid_for_seconds)
    return EffectivePolicy(approval, sources, tuple(ignored))
