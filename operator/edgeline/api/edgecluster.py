"""EdgeCluster (cluster-scoped): one target cluster, cloud or K3s edge, and its health."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from edgeline.api.base import ApiModel, Resource
from edgeline.api.common import DNS_LABEL, LabelSelector
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
    """The operator connects with the kubeconfig in the Secret (push). A pull mode, with an
    agent on the cluster dialling out, would come with its own field when it exists."""

    kubeconfig_secret_ref: SecretKeyRef = Field(
        description="Secret in the operator's namespace with a kubeconfig for this cluster; only the operator reads it")


PodSecurityLevel = Literal["restricted", "baseline", "privileged"]


class Tenancy(ApiModel):
    """Which hub namespaces may use the cluster (docs/security.md). A namespace is admitted when
    it is listed in `namespaces` or its labels match `namespaceSelector`; with neither, none is."""

    namespaces: list[Annotated[str, Field(max_length=63, pattern=DNS_LABEL)]] = Field(
        [], max_length=256, description="Hub namespaces that may deploy to the cluster and run pipeline steps on it")
    namespace_selector: LabelSelector | None = Field(
        None, description="Hub namespaces whose labels match may use the cluster too; {} admits every namespace")
    pod_security: PodSecurityLevel = Field(
        "restricted", description="Highest Pod Security level a pipeline step may ask for here; also the "
                                  "pod-security.kubernetes.io/enforce label of the target namespace")


class EdgeClusterSpec(ApiModel):
    tier: Literal["cloud", "edge"] = Field(description="cloud: a data-centre cluster; edge: a K3s cluster at a site")
    connection: Connection = Field(description="How the operator reaches the cluster")
    target_namespace: str = Field(
        "edgeline-workloads", max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Namespace on the cluster that Edgeline's workloads go to; several EdgeClusters may share "
                    "one API server with different namespaces")
    stale_after_seconds: int = Field(
        300, ge=10, le=86400,
        description="After this long without an answer the cluster is Stale: its status is no longer current")
    tenancy: Tenancy | None = Field(
        None, description="Which hub namespaces may use the cluster and how much Pod Security they may ask for; "
                          "without it no namespace may (unless the operator runs with "
                          "EDGELINE_TENANCY_OPEN_WITHOUT_SECTION=true, docs/install.md)")


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
