"""The Kubernetes objects that run one EdgeDeployment's revision on one member cluster:
a ConfigMap with what the runtime must load (model URI and digest, so that the runtime
verifies what it serves), a Deployment of the edge runtime, and a Service.

The ConfigMap is per revision and immutable: its name carries a hash of its data and the Pod
template names it. The runtime reads it through envFrom when its container starts, so a Pod of
the old revision whose container restarts mid-rollout must find the old revision's values,
never the new one's (a ConfigMap updated in place would hand it the new model while it is
labelled with the old revision). `edgeline.clusters.workloads` deletes a revision's ConfigMap
once no ReplicaSet of the Deployment refers to it.

Pure functions of their inputs: the same revision renders the same objects, which is what
makes server-side apply idempotent across retries and operator restarts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from edgeline.api.edgedeployment import PlacementRequirements, RevisionRef, Runtime, VariantRef
from edgeline.api.reserved import reserved_env

MANAGED_BY = "edgeline"
LABEL_DEPLOYMENT = "edgeline.io/deployment"
LABEL_NAMESPACE = "edgeline.io/deployment-namespace"
LABEL_REVISION = "edgeline.io/revision"
LABEL_COMPONENT = "edgeline.io/component"
LABEL_OWNER_UID = "edgeline.io/owner-uid"      # uid of the hub EdgeDeployment (ownerReferences cannot cross clusters)
LABEL_SHADOW_REVISION = "edgeline.io/shadow-revision"   # a candidate run in shadow beside the revision
CONFIG_COMPONENT = "runtime-config"
GPU_PROVIDERS = {"CUDA", "TensorRT"}


@dataclass(frozen=True)
class Target:
    """Where the objects go: one member cluster and its namespace."""

    cluster: str
    namespace: str


def object_name(deployment_namespace: str, deployment: str) -> str:
    """One name per EdgeDeployment on a member cluster, different for every namespace/name pair:
    a readable prefix and a hash of namespace/name (`a-b/c` and `a/b-c` share the prefix, never
    the hash). At most 51 characters, so that a revision's ConfigMap name still fits in 63."""
    prefix = f"{deployment_namespace}-{deployment}"[:40].rstrip("-")
    if not prefix[:1].isalpha():
        prefix = f"e-{prefix}"[:40].rstrip("-")     # a Service name must start with a letter
    digest = hashlib.sha256(f"{deployment_namespace}/{deployment}".encode()).hexdigest()[:10]
    return f"{prefix}-{digest}"


def legacy_object_name(deployment_namespace: str, deployment: str) -> str:
    """The name versions before tenancy used (`<namespace>-<name>`); objects under it are removed
    once the runtime under `object_name` is ready (clusters.workloads.remove_legacy)."""
    name = f"{deployment_namespace}-{deployment}"
    if len(name) <= 52:
        return name
    return f"{name[:41]}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"


def config_name(name: str, data: dict[str, str]) -> str:
    """The ConfigMap of one revision's configuration: named by its content, so the same
    content always has the same name (re-applying is a no-op) and different content never
    lands on an existing immutable ConfigMap."""
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]
    return f"{name}-{digest}"


def config_labels(deployment_namespace: str, deployment: str) -> dict[str, str]:
    """What finds every configuration ConfigMap of one EdgeDeployment on a member cluster."""
    return {**selector_labels(deployment_namespace, deployment), LABEL_COMPONENT: CONFIG_COMPONENT}


def selector_labels(deployment_namespace: str, deployment: str) -> dict[str, str]:
    return {LABEL_NAMESPACE: deployment_namespace, LABEL_DEPLOYMENT: deployment}


def render(deployment_namespace: str, deployment: str, revision: RevisionRef, target: Target,
           requirements: PlacementRequirements | None = None, variant: VariantRef | None = None,
           owner_uid: str = "", shadow: RevisionRef | None = None,
           shadow_variant: VariantRef | None = None) -> list[dict]:
    """`variant`: the model variant chosen for this cluster (domain.variants); its artifact, its
    architecture and its execution provider replace the revision's defaults. `owner_uid`: the hub
    EdgeDeployment's uid, a label on every object and in the selector, so that nothing of another
    owner is ever selected, overwritten or deleted."""
    runtime = revision.runtime or Runtime()
    if variant is not None:
        revision = revision.model_copy(update={"uri": variant.uri, "digest": variant.digest,
                                               "external_data": variant.external_data})
        if variant.execution_provider:
            runtime = runtime.model_copy(update={"execution_provider": variant.execution_provider})
        if variant.architecture:
            requirements = (requirements or PlacementRequirements()).model_copy(
                update={"architectures": [variant.architecture]})
    name = object_name(deployment_namespace, deployment)
    identity = selector_labels(deployment_namespace, deployment)
    if owner_uid:
        identity[LABEL_OWNER_UID] = owner_uid
    labels = {
        "app.kubernetes.io/name": "edgeline-runtime",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        **identity,
        LABEL_REVISION: revision.revision,
    }
    if revision.version:
        labels["edgeline.io/model-version"] = _label_value(revision.version)
    if shadow is not None:
        labels[LABEL_SHADOW_REVISION] = shadow.revision
    meta = {"name": name, "namespace": target.namespace, "labels": labels,
            "annotations": {"edgeline.io/model": f"{revision.mlmodel or ''}", "edgeline.io/digest": revision.digest or ""}}
    config = {
        "EDGELINE_MODEL_URI": revision.uri or "",
        "EDGELINE_MODEL_SHA256": revision.digest or "",
        # Digests of the ONNX external data files; the runtime refuses files not listed here.
        "EDGELINE_MODEL_EXTERNAL_DATA": json.dumps(revision.external_data, sort_keys=True)
        if revision.external_data else "",
        "EDGELINE_MODEL_NAME": revision.model or revision.mlmodel or "",
        "EDGELINE_MODEL_VERSION": revision.version or "",
        "EDGELINE_DEPLOYMENT": deployment,
        "EDGELINE_NAMESPACE": deployment_namespace,
        "EDGELINE_CLUSTER": target.cluster,
        "EDGELINE_PORT": str(runtime.port),
        "EDGELINE_EXECUTION_PROVIDER": runtime.execution_provider,
        **({"EDGELINE_MODEL_VARIANT": variant.name} if variant is not None else {}),
        # The model goes on the size-limited volume, not the container's /tmp.
        "EDGELINE_MODEL_DIR": "/var/lib/edgeline",
    }
    if runtime.golden_sample is not None:
        # Only when set: the ConfigMap of a revision without one keeps its name (and its Pods).
        config["EDGELINE_GOLDEN_SAMPLE_URI"] = runtime.golden_sample.uri
        config["EDGELINE_GOLDEN_SAMPLE_SHA256"] = runtime.golden_sample.sha256
    if revision.reference_profile is not None:
        # Only when set, like the golden sample: a revision without one keeps its ConfigMap's name.
        config["EDGELINE_REFERENCE_PROFILE_URI"] = revision.reference_profile.uri
        config["EDGELINE_REFERENCE_PROFILE_SHA256"] = revision.reference_profile.sha256
    if shadow is not None:
        config.update(shadow_config(shadow, shadow_variant))
    config_meta = {**meta, "name": config_name(name, config), "labels": {**labels, LABEL_COMPONENT: CONFIG_COMPONENT}}
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": config_meta, "data": config, "immutable": True}
    deployment_obj = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
        "spec": {
            "replicas": runtime.replicas,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": identity},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(runtime.port),
                                    "prometheus.io/path": "/metrics"},
                },
                "spec": _pod_spec(config_meta["name"], runtime, requirements),
            },
        },
    }
    service = {
        "apiVersion": "v1", "kind": "Service", "metadata": meta,
        "spec": {"selector": identity,
                 "ports": [{"name": "http", "port": runtime.port, "targetPort": "http", "protocol": "TCP"}]},
    }
    return [configmap, deployment_obj, service]


def shadow_config(shadow: RevisionRef, variant: VariantRef | None = None) -> dict[str, str]:
    """The runtime's settings for a candidate in shadow (edgeline.runtime.shadow): fetched and
    verified by digest like the served model."""
    uri, digest, external = shadow.uri, shadow.digest, shadow.external_data
    if variant is not None:
        uri, digest, external = variant.uri, variant.digest, variant.external_data
    config = {"EDGELINE_SHADOW_MODEL_URI": uri or "", "EDGELINE_SHADOW_MODEL_SHA256": digest or "",
              "EDGELINE_SHADOW_MODEL_VERSION": shadow.version or "",
              "EDGELINE_SHADOW_MODEL_EXTERNAL_DATA": json.dumps(external, sort_keys=True) if external else ""}
    if shadow.reference_profile is not None:
        config["EDGELINE_SHADOW_REFERENCE_PROFILE_URI"] = shadow.reference_profile.uri
        config["EDGELINE_SHADOW_REFERENCE_PROFILE_SHA256"] = shadow.reference_profile.sha256
    return config


def _pod_spec(config: str, runtime: Runtime, requirements: PlacementRequirements | None) -> dict:
    resources = runtime.resources.dump() if runtime.resources else {}
    gpu = runtime.execution_provider in GPU_PROVIDERS
    if gpu:
        resources.setdefault("limits", {}).setdefault("nvidia.com/gpu", "1")
    container = {
        "name": "runtime",
        "image": runtime.image,
        "args": ["runtime", "serve"],
        "envFrom": [{"configMapRef": {"name": config}}],
        # EDGELINE_* come from the ConfigMap only (admission refuses them; a revision stored before that is
        # rendered without them, since env would win over envFrom).
        "env": [e.dump() for e in runtime.env if not reserved_env(e.name)],
        "ports": [{"name": "http", "containerPort": runtime.port, "protocol": "TCP"}],
        # Every 2 s: a restored revision starts serving as soon as it is ready (rollback latency).
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "periodSeconds": 2},
        "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": "http"}, "periodSeconds": 10,
                          "failureThreshold": 6},
        "resources": resources,
        # A container that exits with an error and wrote no message leaves the end of its log
        # here, where the operator reads it without access to the node's logs.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "models", "mountPath": "/var/lib/edgeline"}, {"name": "tmp", "mountPath": "/tmp"}],
    }
    spec: dict = {
        "containers": [container],
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
        "volumes": [{"name": "models", "emptyDir": {"sizeLimit": "2Gi"}}, {"name": "tmp", "emptyDir": {}}],
    }
    if runtime.node_selector:
        spec["nodeSelector"] = dict(runtime.node_selector)
    arches = list(requirements.architectures) if requirements and requirements.architectures else []
    node_terms = []
    if arches:
        node_terms.append({"key": "kubernetes.io/arch", "operator": "In", "values": arches})
    if node_terms:
        spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": node_terms}]}}}
    tolerations = [t.dump() for t in runtime.tolerations or []]
    if gpu:
        tolerations.append({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"})
    if tolerations:
        spec["tolerations"] = tolerations
    return spec


def _label_value(text: str) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text)[:63]
    return cleaned.strip("-_.") or "unknown"
