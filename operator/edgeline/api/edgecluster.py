"""EdgeCluster (cluster-scoped): one target cluster, cloud or K3s edge, and its health."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgeline.api.base import ApiModel, Resource
from edgeline.api.conditions import Condition

SITE_LABEL = "edgeline.io/site"             # by convention; EdgeDeployments select on labels
LINE_LABEL = "edgeline.io/line"


def _label_column(name: str, label: str) -> dict:
    """A printer column showing a label; JSONPath needs the dots in the label key escaped."""
    return {"name": name, "type": "string", "jsonPath": ".metadata.labels." + label.replace(".", "\\.")}


class SecretKeyRef(ApiModel):
    name: str = Field(description="Name of the Secret in the operator's namespace", min_length=1, max_length=253,
                      pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    key: str = Field("kubeconfig", description="Key of the Secret that holds the kubeconfig", max_length=253)


class Connection(ApiModel):
    """push: the operator connects with the kubeconfig in the Secret. pull: an agent on the
    cluster dials out to the hub, reads its assignments and writes its reports
    (docs/edge-autonomy.md); the hub never opens a connection to the site."""

    mode: Literal["push", "pull"] = Field(
        "push", description="push: the operator calls the cluster's API server; pull: the site's agent "
                            "(edgeline agent) dials out to the hub (docs/edge-autonomy.md)")
    kubeconfig_secret_ref: SecretKeyRef | None = Field(
        None, description="Secret in the operator's namespace with a kubeconfig for this cluster; only the operator "
                          "reads it. Required for push, not allowed for pull")


CONNECTION_RULES = [
    {"rule": "(has(self.mode) && self.mode == 'pull') || has(self.kubeconfigSecretRef)",
     "message": "connection.kubeconfigSecretRef is required when connection.mode is push"},
    {"rule": "!(has(self.mode) && self.mode == 'pull') || !has(self.kubeconfigSecretRef)",
     "message": "a pull cluster has no kubeconfig on the hub: remove connection.kubeconfigSecretRef"},
]


class EdgeClusterSpec(ApiModel):
    tier: Literal["cloud", "edge"] = Field(description="cloud: a data-centre cluster; edge: a K3s cluster at a site")
    connection: Connection = Field(description="How the operator reaches the cluster",
                                   json_schema_extra={"x-kubernetes-validations": CONNECTION_RULES})
    target_namespace: str = Field(
        "edgeline-workloads", max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Namespace on the cluster that Edgeline's workloads go to; several EdgeClusters may share "
                    "one API server with different namespaces")
    stale_after_seconds: int = Field(
        300, ge=10, le=86400,
        description="After this long without an answer the cluster is Stale: its status is no longer current")


class Allocatable(ApiModel):
    cpu: str | None = Field(None, description="Allocatable CPU of all nodes (Kubernetes quantity)")
    memory: str | None = Field(None, description="Allocatable memory of all nodes")
    gpu: int | None = Field(None, description="Allocatable GPUs of all nodes")


class EdgeClusterStatus(ApiModel):
    observed_generation: int | None = Field(None, description="Generation of the spec last acted upon")
    phase: Literal["Ready", "NotReady", "Unreachable", "Stale"] | None = Field(
        None, description="Summary for people, derived from the conditions")
    conditions: list[Condition] = Field([], description="Reachable, Stale and Ready")
    reachable: bool | None = Field(None, description="Whether the latest probe got an answer")
    stale: bool | None = Field(None, description="Whether the facts below are older than staleAfterSeconds")
    last_heartbeat: str | None = Field(None, description="When the cluster last answered a probe")
    kubernetes_version: str | None = Field(None, description="Version of the cluster's API server")
    distribution: Literal["k3s", "kubernetes"] | None = Field(None, description="k3s or kubernetes")
    node_count: int | None = Field(None, description="Number of nodes")
    architectures: list[str] = Field([], description="CPU architectures of the nodes, e.g. amd64, arm64")
    allocatable: Allocatable | None = Field(None, description="What the nodes can run, summed")


class EdgeCluster(Resource):
    KIND = "EdgeCluster"
    PLURAL = "edgeclusters"
    SINGULAR = "edgecluster"
    SCOPE = "Cluster"
    SHORT_NAMES = ["ec"]
    DESCRIPTION = "A target cluster (cloud or K3s edge) that Edgeline deploys models to, and its health."
    PRINTER_COLUMNS = [
        {"name": "Tier", "type": "string", "jsonPath": ".spec.tier"},
        # Site and line are labels (what placement selects on), shown here, never a second field.
        _label_column("Site", SITE_LABEL),
        _label_column("Line", LINE_LABEL),
        {"name": "Reachable", "type": "boolean", "jsonPath": ".status.reachable"},
        {"name": "Version", "type": "string", "jsonPath": ".status.kubernetesVersion"},
        {"name": "Last Seen", "type": "date", "jsonPath": ".status.lastHeartbeat"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]

    spec: EdgeClusterSpec
    status: EdgeClusterStatus | None = None
