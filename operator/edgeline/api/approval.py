"""Approval (namespaced): one person's approval of one revision of one EdgeDeployment
(docs/approvals.md).

The API server vouches for it: a ValidatingAdmissionPolicy (manifests/policies/approvals.yaml)
admits it only when `approver` is the authenticated user, `groups` are among theirs, and the
authorizer grants them the verb `approve` on that EdgeDeployment. It cannot be changed after
creation, and it counts only for the deployment object (`uid`) and `revision` it names."""

from __future__ import annotations

from pydantic import Field

from edgeline.api.base import ApiModel, Resource
from edgeline.api.common import DNS_SUBDOMAIN


class DeploymentRef(ApiModel):
    name: str = Field(max_length=253, pattern=DNS_SUBDOMAIN, description="EdgeDeployment in this namespace")
    uid: str = Field(min_length=1, max_length=64,
                     description="Its metadata.uid: a deployment deleted and created again is another object")


class ApprovalSpec(ApiModel):
    deployment: DeploymentRef = Field(description="The EdgeDeployment approved")
    revision: str = Field(min_length=1, max_length=64,
                          description="The revision approved, as in its status.pendingApproval.revision.revision")
    approver: str = Field(min_length=1, max_length=253,
                          description="Who approves: must be the user who creates the object (checked at admission)")
    groups: list[str] = Field([], max_length=64, description="The approver's groups that the approval relies on; "
                                                             "each must be one of the creator's groups")
    comment: str | None = Field(None, max_length=1024, description="Why, for people")


class Approval(Resource):
    KIND = "Approval"
    PLURAL = "approvals"
    SINGULAR = "approval"
    SHORT_NAMES = ["appr"]
    DESCRIPTION = ("One person's approval of one revision of one EdgeDeployment; the API server checks who "
                   "creates it, and it cannot be changed afterwards.")
    PRINTER_COLUMNS = [
        {"name": "Deployment", "type": "string", "jsonPath": ".spec.deployment.name"},
        {"name": "Revision", "type": "string", "jsonPath": ".spec.revision"},
        {"name": "Approver", "type": "string", "jsonPath": ".spec.approver"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    SPEC_VALIDATIONS = [{"rule": "self == oldSelf", "message": "an Approval cannot be changed; delete it and "
                                                               "create another"}]

    spec: ApprovalSpec
