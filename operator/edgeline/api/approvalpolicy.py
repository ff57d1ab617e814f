"""ApprovalPolicy (cluster-scoped): the approval floor the platform team sets for the
EdgeDeployments of the namespaces and EdgeClusters it selects (docs/approvals.md).

Namespace editors cannot write it (it is cluster-scoped and no namespaced role grants it);
an EdgeDeployment's own `spec.approval` may only tighten the strictest matching policy
(`domain.approval_policy.effective_policy`)."""

from __future__ import annotations

from pydantic import Field

from edgeline.api.base import ApiModel, Resource
from edgeline.api.common import LabelSelector, ShortText


class ApprovalPolicySpec(ApiModel):
    namespace_selector: LabelSelector = Field(
        default_factory=LabelSelector, json_schema_extra={"default": {}},
        description="Labels of the hub namespaces whose EdgeDeployments this policy covers; empty: every namespace")
    cluster_selector: LabelSelector = Field(
        default_factory=LabelSelector, json_schema_extra={"default": {}},
        description="EdgeCluster labels: the policy covers a deployment that places on at least one matching "
                    "cluster; empty: whatever clusters it places on")
    required: bool = Field(True, description="Whether a new revision needs recorded approvals before it rolls out")
    approver_groups: list[ShortText] = Field(
        [], max_length=16, description="Groups (as the API server authenticates them) whose members may approve; "
                                       "empty: the groups the EdgeDeployment names")
    min_approvers: int = Field(1, ge=1, le=5, description="Distinct approvers needed (2 = four-eyes)")
    allow_self_approval: bool = Field(
        False, description="Whether someone who changed the approved content may approve it")
    valid_for_seconds: int = Field(86400, ge=10, le=2592000,
                                   description="How long an approval counts before it expires")


class ApprovalPolicy(Resource):
    KIND = "ApprovalPolicy"
    PLURAL = "approvalpolicies"
    SINGULAR = "approvalpolicy"
    SCOPE = "Cluster"
    SHORT_NAMES = ["ap"]
    DESCRIPTION = ("The approval floor for the EdgeDeployments of the namespaces and EdgeClusters it selects, "
                   "owned by the platform team; a deployment's spec.approval may only tighten it.")
    PRINTER_COLUMNS = [
        {"name": "Required", "type": "boolean", "jsonPath": ".spec.required"},
        {"name": "Approvers", "type": "integer", "jsonPath": ".spec.minApprovers"},
        {"name": "Groups", "type": "string", "jsonPath": ".spec.approverGroups"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]

    spec: ApprovalPolicySpec
