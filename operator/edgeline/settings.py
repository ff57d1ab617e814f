"""Operator configuration: one place, `EDGELINE_*` environment variables.

Defaults suit a small edge or hub cluster: a few models validated at once, bounded
downloads, short timeouts towards member clusters.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDGELINE_", extra="ignore")

    # Where the operator runs and keeps its Secrets (kubeconfigs of member clusters, tokens).
    namespace: str = Field("edgeline-system", description="Namespace of the operator and its Secrets")

    # Artifact fetching and validation.
    artifact_dir: Path = Field(Path("/tmp/edgeline-artifacts"), description="Scratch space for downloads")
    artifact_max_bytes: int = Field(8 * 1024**3, description="Largest artifact accepted (bytes)")
    artifact_connect_timeout_s: float = Field(10.0, description="Timeout to connect to an artifact server")
    artifact_read_timeout_s: float = Field(60.0, description="Longest silence while reading an artifact")
    artifact_retries: int = Field(3, description="Attempts for transient download failures")
    artifact_retry_backoff_s: float = Field(1.0, description="First pause between attempts; doubles each time")
    artifact_ca_bundle: Path | None = Field(None, description="Extra CA bundle for artifact servers (private CA)")
    artifact_max_redirects: int = Field(5, description="Redirects followed at most")
    validation_concurrency: int = Field(2, description="Models fetched and inspected at once")

    # Member clusters.
    cluster_probe_interval_s: float = Field(10.0, description="How often each EdgeCluster is probed")
    cluster_probe_timeout_s: float = Field(5.0, description="Deadline of one probe; a dead site costs no more")
    cluster_heartbeat_write_s: float = Field(
        30.0, description="lastHeartbeat is rewritten at most this often when nothing else changed"
    )

    # EdgeDeployment rollouts: how often the loop looks while a rollout moves and when quiet.
    rollout_active_interval_s: float = Field(1.0, description="Tick of a moving rollout")
    rollout_idle_interval_s: float = Field(5.0, description="Tick of a settled deployment (watching for drift)")

    # The approval webhook (docs/approvals.md).
    webhook_port: int = Field(9443, description="Port of the admission webhook; 0 disables it (no approvals)")
    webhook_listen: str = Field("0.0.0.0", description="Address the webhook listens on")
    webhook_service: str = Field("edgeline-webhook", description="Service in front of the webhook (in a cluster)")
    webhook_url: str | None = Field(None, description="Base URL the API server calls instead of the Service, "
                                                      "e.g. https://127.0.0.1:9443 for a local API server")
    webhook_manage_configuration: bool = Field(True, description="Keep the MutatingWebhookConfiguration current")

    def webhook_dns_names(self) -> list[str]:
        if self.webhook_url:
            from urllib.parse import urlparse
            return [urlparse(self.webhook_url).hostname or "127.0.0.1"]
        service = f"{self.webhook_service}.{self.namespace}"
        return [f"{service}.svc", service, f"{service}.svc.cluster.local"]

    # The Alertmanager webhook receiver (docs/rollback.md).
    alerts_port: int = Field(8082, description="Port of the alert receiver (POST /alerts); 0 disables it")
    alerts_listen: str = Field("0.0.0.0", description="Address the alert receiver listens on")
    alerts_token: str | None = Field(None, description="Bearer token Alertmanager must send; default: the "
                                                       "token in Secret edgeline-alerts (created on first start)")

    # Metrics and health endpoints.
    metrics_port: int = Field(8080, description="Port of /metrics")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
