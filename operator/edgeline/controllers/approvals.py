"""What the EdgeDeployment loop needs to know about approvals, kept current by kopf's watches
(docs/approvals.md): the platform team's ApprovalPolicies, the hub's namespace labels (which
policies select), and the Approval objects of each deployment.

Nothing here admits or signs anything: the API server checks who creates an Approval and
who changes a spec (ValidatingAdmissionPolicy / MutatingAdmissionPolicy from the chart). The
operator serves no admission endpoint at all, so no port of it can mint an approval."""

from __future__ import annotations

import logging

import kopf
from lightkube import ApiError
from lightkube.resources.admissionregistration_v1 import MutatingWebhookConfiguration

from edgeline import GROUP, VERSION
from edgeline.api.approvalpolicy import ApprovalPolicySpec
from edgeline.clusters.connections import hub_client
from edgeline.controllers import loop
from edgeline.domain.approvals import ApprovalObject

# The approval webhook of earlier releases: it signed whatever reached its port.
LEGACY_WEBHOOK = "edgeline-approvals"


@kopf.index(GROUP, VERSION, "approvalpolicies")
def approval_policy_index(name: str, spec: kopf.Spec, logger: logging.Logger, **_):
    try:
        return {name: ApprovalPolicySpec.model_validate(dict(spec))}
    except ValueError as exc:       # the CRD schema makes this rare; a bad policy must not hide the others
        logger.error("ApprovalPolicy %s cannot be read and is not applied: %s", name, exc)
        return {}


@kopf.index("", "v1", "namespaces")
def namespace_label_index(name: str, meta: kopf.Meta, **_) -> dict[str, dict[str, str]]:
    return {name: dict(meta.get("labels") or {})}


@kopf.index(GROUP, VERSION, "approvals")
def approval_index(namespace: str, name: str, meta: kopf.Meta, spec: kopf.Spec, **_):
    deployment = spec.get("deployment") or {}
    return {(namespace, deployment.get("name", "")): ApprovalObject(
        name=name, deployment=deployment.get("name", ""), deployment_uid=deployment.get("uid", ""),
        revision=spec.get("revision", ""), approver=spec.get("approver", ""), groups=tuple(spec.get("groups") or ()),
        created=meta.get("creationTimestamp", ""))}


@kopf.on.event(GROUP, VERSION, "approvals")
def wake_the_deployment(namespace: str, spec: kopf.Spec, **_) -> None:
    """An approval is news for its deployment's loop at once, not at its next idle tick."""
    loop.wake("edgedeployments", namespace, (spec.get("deployment") or {}).get("name", ""))


@kopf.on.startup()
async def remove_legacy_webhook(logger: logging.Logger, **_) -> None:
    try:
        await hub_client().delete(MutatingWebhookConfiguration, LEGACY_WEBHOOK)
        logger.info("removed the approval webhook configuration %s of an earlier release", LEGACY_WEBHOOK)
    except ApiError as exc:
        if exc.status.code == 404:
            return
        if exc.status.code == 403:      # a chart without the rule: nothing to clean up
            logger.warning("could not check for the legacy webhook configuration %s: %s", LEGACY_WEBHOOK,
                           exc.status.message)
            return
        raise
