"""What `edgeline cluster join` hands a platform team for one pull site: a kubeconfig of the
site's own identity on the hub, and the manifests that run the agent on the site. Pure
builders: the command fills them in."""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass

AGENT_NAMESPACE = "edgeline-agent"
AGENT = "edgeline-agent"
CACHE_HOST_DIR = "/var/lib/edgeline-agent"
ALERTS_PORT = 9094
HUB_KUBECONFIG_KEY = "hub-kubeconfig"
TLS_SECRET = "edgeline-agent-tls"       # the site CA and the receiver's pair; the agent fills it (agent/tls.py)
CA_CONFIGMAP = "edgeline-agent-ca"      # ca.crt, published for the site's Alertmanager (tls_config.ca_file)


def hub_kubeconfig(cluster: str, server: str, ca_data: str | None, token: str, namespace: str,
                   insecure: bool = False) -> dict:
    """A kubeconfig for the site's ServiceAccount on the hub (token from a TokenRequest)."""
    entry: dict = {"server": server}
    if ca_data:
        entry["certificate-authority-data"] = ca_data
    elif insecure:
        entry["insecure-skip-tls-verify"] = True
    return {"apiVersion": "v1", "kind": "Config", "current-context": "hub",
            "clusters": [{"name": "hub", "cluster": entry}],
            "users": [{"name": f"edgeline-site-{cluster}", "user": {"token": token}}],
            "contexts": [{"name": "hub", "context": {"cluster": "hub", "user": f"edgeline-site-{cluster}",
                                                     "namespace": namespace}}]}


def site_manifests(cluster: str, kubeconfig_yaml: str, alerts_token: str, image: str,
                   registry_mirror: str | None = None) -> list[dict]:
    """Namespace, Secret (hub kubeconfig, alert token), identity and RBAC on the site, the agent
    Deployment (one replica: the cache and the state are one folder) and its alert Service."""
    labels = {"app.kubernetes.io/name": "edgeline-agent", "app.kubernetes.io/managed-by": "edgeline",
              "edgeline.io/cluster": cluster[:63]}
    meta = {"namespace": AGENT_NAMESPACE, "labels": labels}
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": AGENT, **meta},
              "data": {"hub-kubeconfig": base64.b64encode(kubeconfig_yaml.encode()).decode(),
                       "alerts-token": base64.b64encode(alerts_token.encode()).decode()}}
    # On its own cluster the agent does what the hub's operator does to a push cluster.
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": AGENT, "labels": labels}, "rules": [
                {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "create", "patch"]},
                {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]},
                {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "create", "patch", "delete"]},
                {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["list"]},
                {"apiGroups": [""], "resources": ["services", "configmaps"],
                 "verbs": ["get", "list", "create", "patch", "delete"]},
                {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": AGENT, "labels": labels},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": AGENT},
               "subjects": [{"kind": "ServiceAccount", "name": AGENT, "namespace": AGENT_NAMESPACE}]}
    env = [{"name": "EDGELINE_AGENT_CLUSTER", "value": cluster},
           {"name": "EDGELINE_AGENT_HUB_KUBECONFIG", "value": "/etc/edgeline/hub/hub-kubeconfig"},
           {"name": "EDGELINE_AGENT_CACHE_DIR", "value": "/var/lib/edgeline-agent"},
           {"name": "EDGELINE_AGENT_CACHE_HOST_DIR", "value": CACHE_HOST_DIR},
           {"name": "EDGELINE_AGENT_ALERTS_PORT", "value": str(ALERTS_PORT)},
           {"name": "EDGELINE_AGENT_ALERTS_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": AGENT, "key": "alerts-token"}}}]
    if registry_mirror:  # oci:// models through the site's pull-through registry first
        env.append({"name": "EDGELINE_AGENT_REGISTRY_MIRROR", "value": registry_mirror})
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": AGENT, **meta}, "spec": {
        "replicas": 1, "strategy": {"type": "Recreate"},
        "selector": {"matchLabels": {"app.kubernetes.io/name": "edgeline-agent"}},
        "template": {"metadata": {"labels": labels}, "spec": {
            "serviceAccountName": AGENT,
            "containers": [{
                "name": "agent", "image": image, "args": ["agent"], "env": env,
                "ports": [{"name": "alerts", "containerPort": ALERTS_PORT}],
                "resources": {"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
                "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [{"name": "hub", "mountPath": "/etc/edgeline/hub", "readOnly": True},
                                 {"name": "cache", "mountPath": "/var/lib/edgeline-agent"}]}],
            "volumes": [{"name": "hub", "secret": {"secretName": AGENT, "items": [
                            {"key": "hub-kubeconfig", "path": "hub-kubeconfig"}]}},
                        # The node's disk: the runtime Pods mount the same folder read-only.
                        {"name": "cache", "hostPath": {"path": CACHE_HOST_DIR, "type": "DirectoryOrCreate"}}]}}}}
    deployment["spec"]["template"]["spec"]["containers"][0]["volumeMounts"].append(
        {"name": "tmp", "mountPath": "/tmp"})
    # The root filesystem is read-only: lightkube writes the hub's CA to a temporary file, and the
    # receiver's key is handed to the TLS library through a file (memory, never the node's disk).
    deployment["spec"]["template"]["spec"]["volumes"].append(
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}})
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": AGENT, **meta}, "spec": {
        "selector": {"app.kubernetes.io/name": "edgeline-agent"},
        "ports": [{"name": "alerts", "port": ALERTS_PORT, "targetPort": "alerts"}]}}
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": AGENT_NAMESPACE, "labels": labels}},
            secret, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": AGENT, **meta}},
            role, binding, *own_objects(labels), deployment, service]


# --- options of the join: the cache on a PersistentVolumeClaim, the agent's node, tolerations

CACHE_CLAIM_SUBJECT_UID = 65532     # the agent's user with a claim (the runtime's too): restricted wants non-root
PSA_ENFORCE = "pod-security.kubernetes.io/enforce"


@dataclass(frozen=True)
class CacheClaim:
    """The site's model cache on a PersistentVolumeClaim instead of the node's disk."""

    name: str
    size: str = "5Gi"
    storage_class: str | None = None


def parse_toleration(text: str) -> dict:
    """`KEY[=VALUE][:EFFECT]` (the kubectl taint notation) as a toleration."""
    rest, _, effect = text.partition(":")
    key, eq, value = rest.partition("=")
    if not key or (effect and effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute")):
        raise ValueError(f"{text!r}: expected KEY[=VALUE][:EFFECT], EFFECT one of NoSchedule, PreferNoSchedule, "
                         "NoExecute")
    found: dict = {"key": key, "operator": "Equal" if eq else "Exists"}
    if eq:
        found["value"] = value
    if effect:
        found["effect"] = effect
    return found


def with_site_options(manifests: list[dict], *, claim: CacheClaim | None = None, namespace: str | None = None,
                      pod_security: str = "restricted", tolerations: list[dict] | None = None) -> list[dict]:
    """The join's manifests with its options: the agent knows its node (the runtime Pods are pinned
    there, where the cache is) and tolerates `tolerations`. With `claim`, the cache is that claim:
    a claim is namespaced and a Pod mounts only claims of its own namespace, so the agent moves to
    `namespace` (the EdgeCluster's targetNamespace, where the runtimes run), which gets the
    tenancy's Pod Security level; the agent then runs as a non-root user and passes `restricted`.
    Pure: returns new objects."""
    docs = copy.deepcopy(manifests)
    deployment = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == AGENT)
    pod = deployment["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "agent")
    container["env"].append({"name": "EDGELINE_AGENT_NODE_NAME",
                             "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}})
    # Its own namespace (edgeline-agent, or the runtimes' with a claim): where its TLS Secret, CA
    # ConfigMap and hub-token Secret are.
    container["env"].append({"name": "EDGELINE_AGENT_NAMESPACE",
                             "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}})
    pod.setdefault("securityContext", {})["seccompProfile"] = {"type": "RuntimeDefault"}
    if tolerations:
        pod["tolerations"] = [*pod.get("tolerations", []), *tolerations]
    if claim is None:
        return docs
    namespace = namespace or AGENT_NAMESPACE
    for doc in docs:
        meta = doc["metadata"]
        if meta.get("namespace") == AGENT_NAMESPACE:
            meta["namespace"] = namespace
        if doc["kind"] == "Namespace" and meta["name"] == AGENT_NAMESPACE:
            meta["name"] = namespace
            meta["labels"] = {**meta.get("labels", {}), PSA_ENFORCE: pod_security}
        for subject in doc.get("subjects") or []:
            if subject.get("namespace") == AGENT_NAMESPACE:
                subject["namespace"] = namespace
    container["env"] = [e for e in container["env"] if e["name"] != "EDGELINE_AGENT_CACHE_HOST_DIR"]
    container["env"].append({"name": "EDGELINE_AGENT_CACHE_CLAIM", "value": claim.name})
    pod["volumes"] = [v if v["name"] != "cache" else {"name": "cache", "persistentVolumeClaim": {"claimName": claim.name}}
                      for v in pod["volumes"]]
    uid = CACHE_CLAIM_SUBJECT_UID
    # fsGroup: the kubelet hands the claim's files to the agent's group where the volume supports it.
    pod["securityContext"].update({"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid,
                                   "fsGroupChangePolicy": "OnRootMismatch"})
    container["securityContext"] = {**container.get("securityContext", {}), "runAsNonRoot": True}
    labels = deployment["metadata"]["labels"]
    spec: dict = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": claim.size}}}
    if claim.storage_class is not None:
        spec["storageClassName"] = claim.storage_class
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
           "metadata": {"name": claim.name, "namespace": namespace, "labels": labels}, "spec": spec}
    at = docs.index(deployment)
    return [*docs[:at], pvc, *docs[at:]]


def own_objects(labels: dict[str, str]) -> list[dict]:
    """What the agent keeps in its own namespace, created here empty so that it needs no `create`:
    the site CA and its serving pair (a Secret), the CA certificate for the site's Alertmanager (a
    ConfigMap), and a Role that lets it read and write those and the Secret with its hub token
    (it rotates the token, agent/tokens.py), by resourceNames, nothing else in the namespace."""
    meta = {"namespace": AGENT_NAMESPACE, "labels": labels}
    return [
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": TLS_SECRET, **meta}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CA_CONFIGMAP, **meta}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": AGENT, **meta},
         "rules": [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [AGENT, TLS_SECRET],
                    "verbs": ["get", "update", "patch"]},
                   {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [CA_CONFIGMAP],
                    "verbs": ["get", "update", "patch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": AGENT, **meta},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": AGENT},
         "subjects": [{"kind": "ServiceAccount", "name": AGENT, "namespace": AGENT_NAMESPACE}]}]
