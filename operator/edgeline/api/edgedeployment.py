"""EdgeDeployment (namespaced): one model version put onto the clusters a selector picks,
in waves, behind an approval gate, guarded by automatic rollback."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from edgeline import __version__
from edgeline.api.analysis import ANALYSIS_RULES, CHECK_RULES, Analysis, AnalysisStatus
from edgeline.api.base import ApiModel, Resource
from edgeline.api.common import (DNS_LABEL, DNS_SUBDOMAIN, LABEL_KEY, NON_EMPTY_SELECTOR, EnvVar, LabelSelector,
                                 Quantity, ResourceRequirements, ShortText)
from edgeline.api.conditions import Condition
from edgeline.api.edgecluster import MaintenanceWindow
from edgeline.api.mlmodel import DIGEST, ReferenceProfileRef
from edgeline.api.shadow import SHADOW_RULES, Shadow, ShadowStatus
from edgeline.api.reserved import env_rule

# The edge runtime image this release builds (images/edge-runtime, `make images`), under the name it
# is published as; a user who publishes it elsewhere sets spec.runtime.image (docs/install.md).
DEFAULT_RUNTIME_IMAGE = f"ghcr.io/edgeline/edge-runtime:{__version__}"


class ModelRef(ApiModel):
    name: str | None = Field(None, max_length=253, pattern=DNS_SUBDOMAIN,
                             description="Name of an MLModel in this namespace (follow: Pinned)")
    model: str | None = Field(None, max_length=63, pattern=DNS_LABEL,
                              description="Logical model name whose newest Ready version is used (follow: LatestReady)")
    follow: Literal["Pinned", "LatestReady"] = Field(
        "Pinned", description="Pinned: exactly the MLModel in name; LatestReady: the newest Ready MLModel of model, "
                              "so that a retrained candidate moves the deployment to AwaitingApproval")
    min_stage: Literal["development", "staging", "production"] = Field(
        "production", description="LatestReady follows only versions at or above this stage (spec.stage or a "
                                  "recorded promotion, `edgeline promote`); pipeline candidates arrive as staging")


class PlacementRequirements(ApiModel):
    architectures: list[Literal["amd64", "arm64", "arm"]] = Field(
        [], max_length=3, description="The cluster must have nodes of one of these CPU architectures")
    gpu: bool = Field(False, description="The cluster must have at least one allocatable GPU")
    min_memory: Quantity | None = Field(None, description="Allocatable memory the cluster must have, e.g. 2Gi")
    tiers: list[Literal["cloud", "edge"]] = Field([], max_length=2, description="Allowed tiers; empty allows both")



class Placement(ApiModel):
    cluster_selector: LabelSelector = Field(
        description="Labels of the EdgeClusters to deploy to (site, line, hardware ...)",
        json_schema_extra={"x-kubernetes-validations": [NON_EMPTY_SELECTOR]})
    requirements: PlacementRequirements | None = Field(
        None, description="What a selected cluster must offer; clusters that match the labels but not these are "
                          "listed in status with the reason")


class Toleration(ApiModel):
    key: str | None = Field(None, max_length=317, pattern=LABEL_KEY,
                            description="Taint key the toleration matches; empty with Exists: every taint")
    operator: Literal["Equal", "Exists"] = Field("Equal", description="Equal (key and value) or Exists (key only)")
    value: ShortText | None = Field(None, description="Taint value to match with Equal")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect to match; empty: every effect")
    toleration_seconds: int | None = Field(None, ge=0, description="With NoExecute: how long the Pod stays bound")


class GoldenSampleRef(ApiModel):
    """Inputs and the outputs a good model gives for them, with a tolerance (JSON, docs/line-schedules.md);
    the runtime checks them before it becomes ready."""

    uri: str = Field(min_length=1, max_length=2048, pattern=r"^(https?|file)://",
                     description="http(s):// or file:// URI of the golden sample file")
    sha256: str = Field(pattern=DIGEST, max_length=71, description="Digest of the file, sha256:<64 hex>")


class Runtime(ApiModel):
    image: str = Field(DEFAULT_RUNTIME_IMAGE, min_length=1, max_length=512,
                       description="Image of the edge inference runtime")
    replicas: int = Field(1, ge=1, le=100, description="Runtime Pods per cluster")
    port: int = Field(8080, ge=1, le=65535, description="Port the runtime serves the Open Inference Protocol on")
    execution_provider: Literal["CPU", "CUDA", "TensorRT", "OpenVINO"] = Field(
        "CPU", description="onnxruntime execution provider; CUDA and TensorRT also place Pods on GPU nodes")
    resources: ResourceRequirements | None = Field(None, description="Requests and limits of the runtime container")
    env: list[EnvVar] = Field([], max_length=32, description="Extra environment variables for the runtime; "
                                                             "EDGELINE_* names are Edgeline's (except "
                                                             "EDGELINE_INFERENCE_THREADS, _INTRA_OP_THREADS, "
                                                             "_MAX_REQUEST_BYTES, _SHUTDOWN_GRACE_S)")
    node_selector: dict[str, ShortText] = Field(
        {}, description="Extra node labels the runtime Pods must run on (architecture is added automatically)",
        json_schema_extra={"maxProperties": 16})
    tolerations: list[Toleration] | None = Field(
        None, max_length=16, description="Taints of the nodes the runtime Pods may run on, e.g. dedicated line "
                                         "computers (GPU taints are tolerated automatically)")
    golden_sample: GoldenSampleRef | None = Field(
        None, description="Golden sample the runtime must reproduce before it becomes ready; a deviation fails "
                          "the wave (GoldenSampleMismatch)")
    onnxruntime_version: str | None = Field(
        None, max_length=32, pattern=r"^\d+\.\d+(\.\d+)?$",
        description="onnxruntime version of a custom runtime image, e.g. 1.20; Edgeline's own image is known. "
                    "Model variants' minRuntimeVersion and opsets are checked against it")


class Wave(ApiModel):
    name: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL, description="Name of the wave, e.g. pilot")
    selector: LabelSelector | None = Field(
        None, description="EdgeCluster labels of this wave's clusters (among the selected ones)",
        json_schema_extra={"x-kubernetes-validations": [NON_EMPTY_SELECTOR]})
    percentage: int | None = Field(
        None, ge=1, le=100, description="Cumulative share of the selected clusters deployed once this wave is done")
    soak_seconds: int | None = Field(None, ge=0, le=604800,
                                     description="Time to watch this wave after it is ready (default: rollout.soakSeconds)")


class Rollout(ApiModel):
    waves: list[Wave] = Field(
        [], max_length=20, description="Ordered waves; all by selector or all by percentage (the last being 100). "
                                       "Empty: one wave with every selected cluster. Clusters no selector wave picks "
                                       "go in a last implicit wave named rest")
    max_unavailable: int = Field(0, ge=0, le=1000,
                                 description="Clusters of a wave that may fail or stay unready before the wave fails")
    wave_timeout_seconds: int = Field(600, ge=10, le=86400,
                                      description="How long a wave may take to become ready before it fails")
    soak_seconds: int = Field(0, ge=0, le=604800, description="Time to watch each wave after it is ready")
    windows: list[MaintenanceWindow] = Field(
        [], max_length=16, description="Narrow the clusters' maintenance windows for this deployment: a change "
                                       "reaches a cluster only when one of these and one of the cluster's are open")


class Approval(ApiModel):
    """The deployment's own approval rules: they can tighten the ApprovalPolicies that cover it,
    never loosen them (docs/approvals.md)."""

    required: bool = Field(True, description="Whether a change of revision needs a recorded approval")
    approver_groups: list[ShortText] = Field(
        [], max_length=16, description="Groups (as the API server authenticates them) whose members may approve")
    min_approvers: int = Field(1, ge=1, le=5, description="Distinct approvers needed (2 = four-eyes)")
    allow_self_approval: bool = Field(False, description="Whether the person who changed the spec may approve it")
    valid_for_seconds: int = Field(86400, ge=10, le=2592000,
                                   description="How long an approval counts before it expires")


class AlertMatcher(ApiModel):
    name: str = Field(min_length=1, max_length=128, description="Alert label name, e.g. alertname or severity")
    value: str = Field(max_length=256, description="Value or regular expression to compare with")
    operator: Literal["=", "!=", "=~", "!~"] = Field("=", description="=, !=, =~ or !~ as in Alertmanager")


class RollbackPolicy(ApiModel):
    mode: Literal["Automatic", "Propose", "Disabled"] = Field(
        "Automatic", description="Automatic reverts at once; Propose records the proposal for a person to apply")
    alert_matchers: list[AlertMatcher] = Field(
        [], max_length=16, description="Every matcher must hold for an alert to trigger a rollback; empty: any "
                                       "alert routed to this deployment")
    scope: Literal["Cluster", "Deployment"] = Field(
        "Cluster", description="Cluster: revert only the clusters the alert names; Deployment: revert everywhere")
    guard_seconds: int = Field(3600, ge=0, le=2592000,
                               description="After full rollout, how long alerts still roll back; a revision that "
                                           "passes it becomes the last known-good")


_WAVES = "self.waves"
WAVE_RULES = [
    {"rule": f"!has(self.waves) || {_WAVES}.all(w, has(w.selector) != has(w.percentage))",
     "message": "each wave needs exactly one of selector or percentage", "fieldPath": ".waves"},
    {"rule": f"!has(self.waves) || {_WAVES}.all(w, has(w.percentage)) || {_WAVES}.all(w, has(w.selector))",
     "message": "waves must be all by selector or all by percentage, not mixed", "fieldPath": ".waves"},
    {"rule": f"!has(self.waves) || !{_WAVES}.all(w, has(w.percentage)) || size({_WAVES}) == 0 || "
             f"({_WAVES}.map(w, w.percentage).isSorted() && "
             f"{_WAVES}.all(w, {_WAVES}.exists_one(v, v.percentage == w.percentage)) && "
             f"{_WAVES}[size({_WAVES}) - 1].percentage == 100)",
     "message": "wave percentages are cumulative: strictly increasing, the last one 100", "fieldPath": ".waves"},
    {"rule": f"!has(self.waves) || {_WAVES}.all(w, {_WAVES}.exists_one(v, v.name == w.name))",
     "message": "wave names must be unique", "fieldPath": ".waves"},
]


class EdgeDeploymentSpec(ApiModel):
    model_ref: ModelRef = Field(description="Which MLModel to deploy",
                                json_schema_extra={"x-kubernetes-validations": [
                                    {"rule": "self.follow != 'Pinned' || has(self.name)",
                                     "message": "name is required when follow is Pinned"},
                                    {"rule": "self.follow != 'LatestReady' || has(self.model)",
                                     "message": "model is required when follow is LatestReady"}]})
    placement: Placement = Field(description="Which EdgeClusters run the model")
    runtime: Runtime = Field(default_factory=Runtime, description="The edge inference runtime on each cluster",
                             json_schema_extra={"default": {}})
    rollout: Rollout = Field(default_factory=Rollout, description="How the change spreads: waves, timeouts, soak",
                             json_schema_extra={"default": {}, "x-kubernetes-validations": WAVE_RULES})
    approval: Approval = Field(default_factory=Approval, description="Who must approve a change before it rolls out",
                               json_schema_extra={"default": {}})
    rollback: RollbackPolicy = Field(default_factory=RollbackPolicy, description="When to revert automatically",
                                     json_schema_extra={"default": {}})
    revision_history_limit: int = Field(10, ge=1, le=100, description="Revisions kept in status.history")
    analysis: Analysis = Field(default_factory=Analysis,
                               description="Metric checks each wave must pass before the rollout goes on "
                                           "(docs/analysis.md)",
                               json_schema_extra={"default": {}, "x-kubernetes-validations": ANALYSIS_RULES})
    shadow: Shadow | None = Field(
        None, description="Clusters that run a revision awaiting approval in shadow beside the served one: it gets "
                          "a copy of the live requests, its answers are discarded, and approvers see how it compares "
                          "(docs/analysis.md#shadow-runs)",
        json_schema_extra={"x-kubernetes-validations": SHADOW_RULES})


# --- status ---------------------------------------------------------------------------------------

class VariantRef(ApiModel):
    name: str = Field(description="Variant name (default: the MLModel's spec.artifact)")
    uri: str | None = Field(None, description="Artifact URI")
    digest: str | None = Field(None, description="Artifact digest")
    external_data: dict[str, str] | None = Field(None, description="Digests of its external data files")
    architecture: str | None = Field(None, description="CPU architecture it is for; empty: any")
    accelerator: str | None = Field(None, description="cpu, gpu or npu")
    execution_provider: str | None = Field(None, description="onnxruntime execution provider it asks for")
    min_runtime_version: str | None = Field(None, description="Oldest onnxruntime that can serve it")
    opset: int | None = Field(None, description="Default-domain opset it imports")
    size_bytes: int | None = Field(None, description="Bytes a runtime has to load")
    memory: str | None = Field(None, description="Memory the model needs to serve (MLModel requirements.memory)")


class RevisionRef(ApiModel):
    revision: str = Field(description="Hash of what is deployed: model digest and runtime spec")
    mlmodel: str | None = Field(None, description="MLModel object name")
    model: str | None = Field(None, description="Logical model name")
    version: str | None = Field(None, description="Model version")
    digest: str | None = Field(None, description="Model artifact digest")
    uri: str | None = Field(None, description="Model artifact URI")
    runtime: Runtime | None = Field(None, description="Runtime spec of the revision, so that it can be restored")
    external_data: dict[str, str] | None = Field(None, description="Digests of the model's external data files")
    reference_profile: ReferenceProfileRef | None = Field(
        None, description="The model's reference profile (MLModel spec.referenceProfile), for the drift score")
    variants: list[VariantRef] | None = Field(None, description="Every artifact of the model version; each cluster "
                                                                "gets the one that fits it (MLModel spec.variants)")
    variants_digest: str | None = Field(None, description="Digest over every variant, covered by the revision")


class ApprovalRecord(ApiModel):
    revision: str = Field(description="The revision this approval is for")
    user: str = Field(description="Who approved, as the API server authenticated them")
    groups: list[str] = Field([], description="Their groups at the time")
    at: str = Field(description="When the approval was given")


class EffectiveApproval(Approval):
    sources: list[str] = Field([], description="The ApprovalPolicies that set the floor; empty: Edgeline's built-in "
                                               "floor (no ApprovalPolicy covers this deployment)")
    ignored: list[str] = Field([], description="What in spec.approval was not applied because it would loosen the "
                                               "floor")


class PendingApproval(ApiModel):
    revision: RevisionRef = Field(description="The revision waiting for approval")
    runtime_change: str | None = Field(None, description="What changes in the runtime, for people")
    requested_by: str | None = Field(None, description="Who made the change")
    authors: list[str] = Field([], description="Everyone who changed the spec since the last approved revision, as "
                                               "the API server recorded them (edgeline.io/authors), and, under "
                                               "LatestReady, the creator of a newly followed MLModel "
                                               "(edgeline.io/created-by)")
    refused: list[str] = Field([], description="Why approvals given for this revision do not count")
    requested_at: str | None = Field(None, description="Since when it waits")
    approvals: list[ApprovalRecord] = Field([], description="Approvals for this revision so far")
    needed: int | None = Field(None, description="Distinct approvers needed")
    metrics: dict[str, float] | None = Field(None, description="Evaluation metrics of the model version "
                                                               "(MLModel spec.metrics), for approvers")
    shadow: ShadowStatus | None = Field(None, description="The candidate in shadow on spec.shadow's clusters: how its "
                                                          "answers, latency and drift compare with the served "
                                                          "version's (docs/analysis.md#shadow-runs)")
    stage: str | None = Field(None, description="Effective stage of the model version")


class ClusterState(ApiModel):
    name: str = Field(description="EdgeCluster name")
    wave: str | None = Field(None, description="Wave the cluster belongs to")
    revision: str | None = Field(None, description="Revision applied on the cluster")
    phase: Literal["Pending", "Progressing", "Ready", "Failed", "Unreachable", "Removing"] | None = Field(
        None, description="Pending, Progressing, Ready, Failed, Unreachable or Removing")
    ready_replicas: int | None = Field(None, description="Ready runtime Pods seen on the cluster")
    replicas: int | None = Field(None, description="Runtime Pods wanted")
    last_observed: str | None = Field(None, description="When the operator last saw the cluster's objects")
    stale: bool | None = Field(None, description="Whether lastObserved is too old to trust")
    message: str | None = Field(None, description="Why, for people")
    reason: str | None = Field(None, description="Why the runtime is not ready, from its Pods: ImagePullFailed, "
                                                 "CrashLoopBackOff, ModelRejected, GoldenSampleMismatch, "
                                                 "GoldenSampleInvalid, ModelFetchRetrying, ContainerNotStarted or "
                                                 "Unschedulable")
    pod: str | None = Field(None, description="The runtime Pod the reason was seen on")
    restarts: int | None = Field(None, description="Restarts of that Pod's runtime container")
    last_log: str | None = Field(None, description="Last log line (or termination message) of that container")
    waiting_for: str | None = Field(None, description="What the cluster's change waits for: WaitingForWindow, "
                                                      "WaitingForLineIdle, LineIdleTimeout or WindowInvalid")
    waiting_since: str | None = Field(None, description="Since when it waits for the line")
    waiting_until: str | None = Field(None, description="When the next window opens, or when the wait for the "
                                                        "line times out")
    variant: str | None = Field(None, description="Model variant chosen for this cluster (MLModel spec.variants)")
    variant_reason: str | None = Field(None, description="Why that variant, from the cluster's probed facts")


class ExcludedCluster(ApiModel):
    name: str = Field(description="EdgeCluster name")
    reason: str = Field(description="Why it does not run the model, e.g. NoGPU")
    message: str | None = Field(None, description="Details for people")


class RolloutProgress(ApiModel):
    revision: str | None = Field(None, description="Revision being rolled out")
    target: RevisionRef | None = Field(None, description="What that revision is")
    reason: Literal["Update", "Rollback"] | None = Field(None, description="Update or Rollback")
    wave: int | None = Field(None, description="Index of the current wave (0-based)")
    wave_name: str | None = Field(None, description="Name of the current wave")
    wave_started_at: str | None = Field(None, description="When the current wave was applied")
    soak_until: str | None = Field(None, description="When the current wave's soak ends")
    completed_at: str | None = Field(None, description="When the revision reached every cluster")
    guard_until: str | None = Field(None, description="Until when alerts still roll the revision back")
    approvals: list[ApprovalRecord] = Field([], description="Approvals the rollout of this revision started with")
    generation: int | None = Field(None, description="Spec generation the revision was approved and rolled out at; "
                                                     "authors of later changes are the next revision's")
    clusters: list[str] | None = Field(None, description="Clusters the revision was approved for; while a change "
                                                         "waits for approval it goes to no other")
    failed_clusters: list[str] = Field([], description="Clusters that kept the current wave from becoming ready")
    failed_message: str | None = Field(None, description="Why the current wave failed")


class HistoryEntry(ApiModel):
    revision: RevisionRef = Field(description="What was deployed")
    deployed_at: str | None = Field(None, description="When it reached every cluster")
    approvals: list[ApprovalRecord] = Field([], description="Who approved it")
    outcome: Literal["Deployed", "KnownGood", "RolledBack", "Superseded"] | None = Field(
        None, description="Deployed, KnownGood (passed its guard period), RolledBack or Superseded")


class RollbackRecord(ApiModel):
    alert: str | None = Field(None, description="Alert (or annotation) that caused it")
    from_revision: str = Field(description="Revision reverted")
    to_revision: str = Field(description="Revision restored")
    clusters: list[str] = Field([], description="Clusters reverted")
    received_at: str | None = Field(None, description="When the alert arrived")
    applied_at: str | None = Field(None, description="When the last cluster was reverted")
    latency_ms: int | None = Field(None, description="From receiving the alert to the revert being applied")
    mode: Literal["Automatic", "Proposed", "Manual"] | None = Field(None, description="How it came about")


class PinnedCluster(ApiModel):
    cluster: str = Field(description="EdgeCluster rolled back on its own (rollback scope Cluster)")
    revision: RevisionRef = Field(description="Revision it was rolled back to and stays on")
    reason: str | None = Field(None, description="Alert that caused it")
    since: str | None = Field(None, description="When")


class ClusterHandoff(ApiModel):
    cluster: str = Field(description="EdgeCluster in a shard the deployment's writer does not hold")
    action: Literal["Apply", "Remove"] = Field(description="What the holder of the cluster's shard carries out")
    revision: RevisionRef | None = Field(None, description="Revision to apply")
    variant: VariantRef | None = Field(None, description="Model variant for that cluster")
    shadow: RevisionRef | None = Field(None, description="Candidate revision run in shadow beside it (spec.shadow)")
    shadowVariant: VariantRef | None = Field(None, description="The candidate's variant for that cluster")


class ReportedProblem(ApiModel):
    reason: str = Field(description="Why the runtime is not ready, from its Pods")
    message: str | None = Field(None, description="Details for people")
    pod: str | None = Field(None, description="Pod it was seen on")
    fatal: bool | None = Field(None, description="Whether waiting will not fix it")
    restarts: int | None = Field(None, description="Restarts of the runtime container")
    last_log: str | None = Field(None, description="Last log line of that container")


class AppliedReport(ApiModel):
    revision: str | None = Field(None, description="Revision written; empty for a removal")
    at: float = Field(description="When the write finished (epoch seconds)")
    error: str | None = Field(None, description="Why it failed")


class ReportedCluster(ApiModel):
    name: str = Field(description="EdgeCluster name")
    observed_at: float = Field(description="When the holder observed it (epoch seconds)")
    reachable: bool = Field(description="Whether the cluster answered")
    exists: bool | None = Field(None, description="Whether the runtime's Deployment exists there")
    revision: str | None = Field(None, description="Revision its Deployment runs")
    ready_replicas: int | None = Field(None, description="Ready runtime Pods")
    replicas: int | None = Field(None, description="Runtime Pods wanted")
    ready: bool | None = Field(None, description="Whether the runtime is ready")
    message: str | None = Field(None, description="Why, for people")
    problem: ReportedProblem | None = Field(None, description="What the runtime Pods show while not ready")
    applied: AppliedReport | None = Field(None, description="What the holder's last write to it came to")


class ShardReport(ApiModel):
    holder: str = Field(description="Replica holding the shard's Lease when it reported")
    clusters: list[ReportedCluster] = Field([], description="This deployment's clusters in the shard")


class EdgeDeploymentStatus(ApiModel):
    observed_generation: int | None = Field(None, description="Generation of the spec last acted upon")
    phase: Literal["Pending", "AwaitingApproval", "Progressing", "Paused", "Healthy", "Degraded", "RolledBack"] | None \
        = Field(None, description="Pending, AwaitingApproval, Progressing, Paused, Healthy, Degraded or RolledBack")
    conditions: list[Condition] = Field([], description="ModelResolved, Approved, Progressing, Available and Ready; "
                                                                 "ChecksPassed with spec.analysis")
    desired_revision: RevisionRef | None = Field(None, description="What the spec asks for")
    current_revision: RevisionRef | None = Field(None, description="What runs (or last ran) on every cluster")
    last_known_good: RevisionRef | None = Field(None, description="Newest revision that passed its guard period")
    pending_approval: PendingApproval | None = Field(None, description="The change waiting for approval, if any")
    approval: str | None = Field(None, description="Approval summary for people: NotRequired, Pending 1/2, Approved")
    approval_policy: EffectiveApproval | None = Field(None, description="The approval rules that apply and where "
                                                                        "they come from")
    rollout: RolloutProgress | None = Field(None, description="Where the rollout stands")
    clusters: list[ClusterState] = Field([], description="Every selected cluster and what runs there")
    excluded: list[ExcludedCluster] = Field([], description="Clusters that match the selector but cannot run it")
    ready_clusters: int | None = Field(None, description="Clusters running the desired revision, ready")
    total_clusters: int | None = Field(None, description="Clusters selected")
    ready: str | None = Field(None, description="readyClusters/totalClusters, for kubectl get")
    history: list[HistoryEntry] = Field([], description="Revisions deployed, newest first")
    bad_revisions: list[str] = Field([], description="Revisions rolled back; they need a new approval to return")
    rollbacks: list[RollbackRecord] = Field([], description="Rollbacks, newest first")
    last_rollback_request: str | None = Field(None, description="Value of the rollback-to annotation last acted upon")
    pinned: list[PinnedCluster] = Field([], description="Clusters rolled back on their own; the rollout is halted "
                                                        "until a new revision is rolled out")
    analysis: AnalysisStatus | None = Field(None, description="What the metric checks of the latest analysed wave "
                                                              "measured")
    handoff: list[ClusterHandoff] | None = Field(None, description="Sharded operation (docs/install.md): writes "
                                                                   "for clusters in shards other replicas hold")
    shard_reports: dict[str, ShardReport] | None = Field(None, description="Sharded operation: what the holder of "
                                                                           "each shard observed, by shard number")


class EdgeDeployment(Resource):
    KIND = "EdgeDeployment"
    PLURAL = "edgedeployments"
    SINGULAR = "edgedeployment"
    SHORT_NAMES = ["ed"]
    DESCRIPTION = ("Puts an MLModel version onto the EdgeClusters a selector picks, in waves, after a recorded "
                   "approval, and rolls back to the last known-good version when alerts fire.")
    PRINTER_COLUMNS = [
        {"name": "Model", "type": "string", "jsonPath": ".status.desiredRevision.model"},
        {"name": "Version", "type": "string", "jsonPath": ".status.desiredRevision.version"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Ready", "type": "string", "jsonPath": ".status.ready"},
        {"name": "Approval", "type": "string", "jsonPath": ".status.approval"},
        {"name": "Revision", "type": "string", "jsonPath": ".status.currentRevision.revision", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    SPEC_VALIDATIONS = [
        {"rule": "!self.approval.required || (has(self.approval.approverGroups) && size(self.approval.approverGroups) > 0)",
         "message": "approval.approverGroups must name at least one group when approval.required is true",
         "fieldPath": ".approval.approverGroups"},
    ]

    # On spec.runtime only, not on the Runtime type: revisions kept in status are never re-checked.
    SPEC_FIELD_VALIDATIONS: ClassVar[dict[str, list[dict]]] = {"runtime.env[]": [env_rule()],
                                                                 "analysis.checks[]": CHECK_RULES}

    spec: EdgeDeploymentSpec
    status: EdgeDeploymentStatus | None = None
