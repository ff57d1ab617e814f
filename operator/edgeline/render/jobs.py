"""The Job that runs one attempt of one DataPipeline step on a member cluster (or the hub).

A pure function of its inputs, so a restarted operator renders the same Job under the same
name. backoffLimit is 0: the operator counts attempts itself (one Job per attempt), so that
retries, backoff and their record in status do not depend on the Job controller.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeline.api.datapipeline import Step
from edgeline.api.reserved import reserved_key

MANAGED_BY = "edgeline"
LABEL_PIPELINE = "edgeline.io/pipeline"
LABEL_NAMESPACE = "edgeline.io/pipeline-namespace"
LABEL_UID = "edgeline.io/pipeline-uid"
LABEL_RUN = "edgeline.io/run"
LABEL_STEP = "edgeline.io/step"
LABEL_ATTEMPT = "edgeline.io/attempt"
CONTAINER = "step"
STEP_UID = 65532        # the user a restricted step runs as (the restricted profile forbids root)


@dataclass(frozen=True)
class Owner:
    """The DataPipeline a Job belongs to."""

    namespace: str
    name: str
    uid: str


def owner_labels(owner: Owner) -> dict[str, str]:
    """What ties a Job to its DataPipeline on a cluster where ownerReferences cannot point."""
    return {LABEL_NAMESPACE: owner.namespace, LABEL_PIPELINE: owner.name, LABEL_UID: owner.uid}


def render_job(owner: Owner, run: str, step: Step, attempt: int, job: str, namespace: str,
               on_hub: bool) -> dict:
    labels = {"app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/name": "edgeline-pipeline-step",
              **owner_labels(owner), LABEL_RUN: run, LABEL_STEP: step.name, LABEL_ATTEMPT: str(attempt)}
    container: dict = {"name": CONTAINER, "image": step.image,
                       # A step that crashes before writing its message still says why.
                       "terminationMessagePolicy": "FallbackToLogsOnError"}
    if step.command:
        container["command"] = list(step.command)
    if step.args:
        container["args"] = list(step.args)
    if step.env:
        container["env"] = [{"name": v.name, "value": v.value} for v in step.env]
    if step.resources:
        resources = {k: v for k, v in step.resources.dump().items() if v}
        if resources:
            container["resources"] = resources
    container["securityContext"], pod_security = security_contexts(step.pod_security)
    pod_spec: dict = {"restartPolicy": "Never", "containers": [container], "automountServiceAccountToken": False}
    if pod_security:
        pod_spec["securityContext"] = pod_security
    if step.node_selector:
        pod_spec["nodeSelector"] = dict(step.node_selector)
    metadata: dict = {"name": job, "namespace": namespace, "labels": labels,
                      "annotations": {"edgeline.io/pipeline-run": run}}
    if on_hub:
        # On its own cluster the DataPipeline owns the Job: deleting it collects the Jobs.
        metadata["ownerReferences"] = [{"apiVersion": "edgeline.io/v1alpha1", "kind": "DataPipeline",
                                        "name": owner.name, "uid": owner.uid, "blockOwnerDeletion": False}]
    template_meta: dict = {"labels": labels}
    # Edgeline's keys are never the user's (admission refuses them; a spec stored before that loses them here).
    annotations = {k: v for k, v in step.pod_annotations.items() if not reserved_key(k)}
    if annotations:
        template_meta["annotations"] = annotations
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata,
            "spec": {"backoffLimit": 0, "activeDeadlineSeconds": step.timeout_seconds,
                     "template": {"metadata": template_meta, "spec": pod_spec}}}


def security_contexts(level: str) -> tuple[dict, dict]:
    """(container, pod) securityContext of a step's Pod at one Pod Security level: `restricted`
    meets the restricted profile (non-root, no privilege escalation, every capability dropped,
    seccomp RuntimeDefault); `baseline` keeps the image's user and seccomp RuntimeDefault;
    `privileged` runs a privileged container (only where the EdgeCluster's owner allows it)."""
    if level == "privileged":
        return {"privileged": True}, {}
    if level == "baseline":
        return {}, {"seccompProfile": {"type": "RuntimeDefault"}}
    return ({"allowPrivilegeEscalation": False, "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
            {"runAsNonRoot": True, "runAsUser": STEP_UID, "runAsGroup": STEP_UID,
             "seccompProfile": {"type": "RuntimeDefault"}})
