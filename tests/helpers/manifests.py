"""The objects tests apply, built in one place: the sample models, MLModels, EdgeDeployments,
EdgeClusters and their kubeconfig Secrets. A test states only what its story changes."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
API = "edgeline.io/v1alpha1"
SAMPLE_MODELS = ROOT / "manifests" / "samples" / "models"
SAMPLE_DIGESTS: dict[str, str] = {d["spec"]["version"]: d["spec"]["artifact"]["sha256"] for d in yaml.safe_load_all(
    (ROOT / "manifests" / "samples" / "20-mlmodels.yaml").read_text())}


def mlmodel(namespace: str, version: str, uri: str, sha256: str, *, name: str | None = None,
            model: str = "defect-detector", stage: str = "production") -> dict:
    return {"apiVersion": API, "kind": "MLModel",
            "metadata": {"name": name or f"detector-{version}", "namespace": namespace},
            "spec": {"model": model, "version": version, "stage": stage,
                     "artifact": {"uri": uri, "sha256": sha256}}}


def sample_mlmodel(namespace: str, version: str, url: str, **kwargs) -> dict:
    """The sample defect detector `version` (1.0.0 or 2.0.0), served from `url` (tests.helpers.artifact_server)."""
    return mlmodel(namespace, version, f"{url}/defect-detector-{version}.onnx", SAMPLE_DIGESTS[version], **kwargs)


def edge_deployment(namespace: str, selector: dict[str, str], version: str = "1.0.0", *, name: str = "detector",
                    runtime: dict | None = None, approval: dict | None = None, **spec) -> dict:
    """An EdgeDeployment of MLModel detector-<version> to the EdgeClusters with labels `selector`.
    Approval is not required unless `approval` says otherwise; other spec fields (rollout,
    rollback, placement requirements) come as keyword arguments in their YAML spelling."""
    requirements = spec.pop("requirements", None)
    placement = {"clusterSelector": {"matchLabels": dict(selector)}}
    if requirements:
        placement["requirements"] = requirements
    return {"apiVersion": API, "kind": "EdgeDeployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"modelRef": {"name": f"detector-{version}"}, "placement": placement,
                     "runtime": runtime or {"resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}},
                     "approval": approval or {"required": False}, **spec}}


def kubeconfig_secret(name: str, namespace: str, kubeconfig_text: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
            "stringData": {"kubeconfig": kubeconfig_text}}


ADMIT_ALL = {"namespaceSelector": {}}


def edge_cluster(name: str, labels: dict[str, str], secret: str, *, stale_after: int | None = None,
                 tier: str = "edge", tenancy: dict | None = ADMIT_ALL) -> dict:
    """An EdgeCluster whose workloads go to the namespace ns-<name> (several EdgeClusters may share
    one API server), reached through the kubeconfig Secret `secret`. Tests make their own
    namespaces, so by default the cluster admits every one (tenancy=None: no section, none)."""
    spec = {"tier": tier, "targetNamespace": f"ns-{name}", "connection": {"kubeconfigSecretRef": {"name": secret}}}
    if tenancy is not None:
        spec["tenancy"] = tenancy
    if stale_after is not None:
        spec["staleAfterSeconds"] = stale_after
    return {"apiVersion": API, "kind": "EdgeCluster", "metadata": {"name": name, "labels": dict(labels)},
            "spec": spec}
