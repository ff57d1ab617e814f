"""EdgeCluster (cluster-scoped): one target cluster, cloud or K3s edge, and its health."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from edgeline.api.base import ApiModel, Resource
from edgeline.api.common import DNS_LABEL, LabelSelector
from edgeline.api.conditions import Condition
from edgeline.api.datapipeline import CRON

LINE_IDLE_LEASE_PREFIX = "edgeline-line-idle-"     # + the EdgeCluster's name, in the operator's namespace

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


class MaintenanceWindow(ApiModel):
    """A time the line may be changed, e.g. a shift change (docs/line-schedules.md)."""

    schedule: str = Field(max_length=128, description="Five-field cron expression of when the window opens, e.g. "
                                                      "'45 5,13,21 * * 1-5' (read in timeZone)",
                          json_schema_extra={"x-kubernetes-validations": [{
                              "rule": f"self.matches('{CRON}')",
                              "message": "schedule must be a five-field cron expression (minute hour day-of-month "
                                         "month day-of-week), e.g. '45 5 * * 1-5', or a shorthand like @daily"}]})
    duration_minutes: int = Field(ge=1, le=10080, description="How long the window stays open, in real minutes "
                                                              "(a clock change inside it does not stretch it)")
    time_zone: str = Field("UTC", max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_+/-]*$",
                           description="IANA time zone the schedule is read in, e.g. Europe/Berlin")


class LineConsent(ApiModel):
    """The line says when it is idle: its MES/PLC bridge holds the Lease
    edgeline-line-idle-<cluster> in the operator's namespace while the line may be changed."""

    timeout_seconds: int = Field(900, ge=10, le=604800,
                                 description="How long a change waits (inside a window) for the line to signal idle")
    on_timeout: Literal["Skip", "Fail", "Proceed"] = Field(
        "Skip", description="When the line stays busy past the timeout: Skip (the wave goes on without this cluster, "
                            "which still changes once its line signals idle), Fail (the wave fails) or Proceed "
                            "(change it anyway)")


class Maintenance(ApiModel):
    windows: list[MaintenanceWindow] = Field(
        [], max_length=16, description="When changes may reach this cluster; empty: at any time. Deployments "
                                       "may narrow them (rollout.windows), never widen them")
    line_consent: LineConsent | None = Field(
        None, description="Also wait for the line to signal idle (a Lease its MES/PLC bridge holds)")
    rollbacks: Literal["Immediate", "RespectSchedule"] = Field(
        "Immediate", description="Immediate: rollbacks go through at once, outside windows and without consent; "
                                 "RespectSchedule: they wait like any change")


class Monitoring(ApiModel):
    prometheus_url: str | None = Field(
        None, max_length=512, pattern=r"^https?://[^\s]+$",
        description="Base URL of the Prometheus-compatible HTTP API (Prometheus, Thanos, VictoriaMetrics) that holds "
                    "this cluster's runtime series; EdgeDeployment metric checks query it (default: the operator's "
                    "EDGELINE_PROMETHEUS_URL)")


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
    connection: Connection = Field(description="How the operator reaches the cluster",
                                   json_schema_extra={"x-kubernetes-validations": CONNECTION_RULES})
    target_namespace: str = Field(
        "edgeline-workloads", max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Namespace on the cluster that Edgeline's workloads go to; several EdgeClusters may share "
                    "one API server with different namespaces")
    stale_after_seconds: int = Field(
        300, ge=10, le=86400,
        description="After this long without an answer the cluster is Stale: its status is no longer current")
    maintenance: Maintenance | None = Field(
        None, description="When changes may reach the cluster: maintenance windows and the line's consent")
    monitoring: Monitoring | None = Field(None, description="Where this cluster's metrics are queried")
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
