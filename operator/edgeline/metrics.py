"""Prometheus metrics of the operator (one registry, served on /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

_served = False


def serve(port: int) -> None:
    global _served
    if not _served and port:
        start_http_server(port)
        _served = True


MLMODEL_VALIDATIONS = Counter(
    "edgeline_mlmodel_validations_total",
    "MLModel validations finished, by result (ready, invalid, error)",
    ["result"],
)
MLMODEL_VALIDATION_SECONDS = Histogram(
    "edgeline_mlmodel_validation_duration_seconds",
    "Time to fetch, verify and inspect one model artifact",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
)
ARTIFACT_BYTES_FETCHED = Counter(
    "edgeline_artifact_bytes_fetched_total",
    "Bytes of model artifacts downloaded and verified",
)

ROLLOUTS = Counter(
    "edgeline_rollouts_total", "EdgeDeployment rollouts that reached every selected cluster", ["result"],
)
MEMBER_REQUESTS = Counter(
    "edgeline_member_cluster_requests_total",
    "API requests the operator sent to member clusters, by purpose (probe, apply, observe, remove)",
    ["purpose"],
)
ALERTS_RECEIVED = Counter(
    "edgeline_alerts_received_total",
    "Alerts from Alertmanager, by result (routed, unrouted, invalid, unauthorized)", ["result"],
)
ROLLBACKS = Counter(
    "edgeline_rollbacks_total", "Rollbacks applied, by reason (alert, manual)", ["reason"],
)
ROLLBACK_LATENCY = Histogram(
    "edgeline_rollback_latency_seconds", "From receiving an alert to the revert being applied on every cluster",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)

PIPELINE_RUNS = Counter(
    "edgeline_pipeline_runs_total", "DataPipeline runs that ended, by result (Succeeded, Failed, Cancelled)",
    ["result"],
)
PIPELINE_RUN_SECONDS = Histogram(
    "edgeline_pipeline_run_duration_seconds", "From the start of a DataPipeline run to its end",
    buckets=(1, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400),
)

LEADER = Gauge("edgeline_leader", "1 while this replica holds the leader Lease and runs the controllers, else 0")
SHARD_HELD = Gauge("edgeline_shard_held", "1 while this replica holds the shard's Lease (sharding.shards > 1)",
                   ["shard"])
CLUSTER_WRITES = Counter(
    "edgeline_cluster_writes_total", "Runtime writes (apply, remove) this replica made to member clusters, by "
    "EdgeCluster (sharded operation: only the holder of a cluster's shard writes to it)", ["cluster", "action"],
)

# What approvers see beside a shadow run on the dashboard (MLModel spec.metrics of the version
# awaiting approval); series of a deployment that no longer waits are removed (controllers.shadow).
PENDING_MODEL_METRIC = Gauge(
    "edgeline_pending_model_metric", "Evaluation metrics (MLModel spec.metrics) of the model version an "
    "EdgeDeployment waits to have approved", ["namespace", "deployment", "version", "metric"])

# The artifact scratch folder at start (controllers.mlmodel): free space against the worst case.
SCRATCH_FREE = Gauge("edgeline_artifact_scratch_free_bytes", "Free bytes in the artifact scratch folder at start")
SCRATCH_NEEDED = Gauge("edgeline_artifact_scratch_needed_bytes",
                       "Scratch space the worst case needs: validation concurrency x largest artifact")
