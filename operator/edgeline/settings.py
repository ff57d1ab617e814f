"""Operator configuration: one place, `EDGELINE_*` environment variables.

Defaults suit a small edge or hub cluster: a few models validated at once, bounded
downloads, short timeouts towards member clusters.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
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
    artifact_max_redirects: int = Field(3, description="Redirects followed at most (each hop checked again)")
    artifact_deadline_s: float = Field(1800.0, description="Longest time one fetch may take in all (retries "
                                                           "included), however steadily the server sends")
    validation_concurrency: int = Field(2, description="Models fetched and inspected at once")
    validation_memory_bytes: int = Field(2 * 1024**3, description="Address-space limit of the process that "
                                                                  "fetches and inspects one model")
    validation_deadline_s: float = Field(2400.0, description="The validation process is killed after this long")
    validation_max_attempts: int = Field(3, description="Validations of one generation cut short by operator "
                                                        "restarts before the model is marked Invalid")

    # Where artifacts may come from (docs/security.md). Comma-separated lists.
    artifact_file_roots: str = Field("", description="Folders file:// URIs may name; empty: file:// is off")
    artifact_allowed_cidrs: str = Field("", description="Non-public networks that may be fetched from anyway, "
                                                        "e.g. 198.18.0.0/15 for an in-house artifact store")
    artifact_allowed_hosts: str = Field("", description="Host names fetched from whatever they resolve to "
                                                        "(exact names, e.g. minio.storage.svc.cluster.local)")
    cluster_service_cidrs: str = Field("", description="The cluster's service (and pod) ranges, refused like "
                                                       "private ones when they are public addresses")

    @field_validator("artifact_allowed_cidrs", "cluster_service_cidrs")
    @classmethod
    def _cidrs(cls, value: str) -> str:
        import ipaddress

        for item in value.replace("\n", ",").split(","):
            if item.strip():
                try:
                    ipaddress.ip_network(item.strip(), strict=False)
                except ValueError:
                    raise ValueError(f"{item.strip()!r} is not a CIDR (e.g. 198.18.0.0/15 or fd00::/8)") from None
        return value

    @field_validator("artifact_file_roots")
    @classmethod
    def _roots(cls, value: str) -> str:
        for item in value.replace("\n", ",").split(","):
            if item.strip() and not item.strip().startswith("/"):
                raise ValueError(f"{item.strip()!r} is not an absolute folder")
        return value

    # Member clusters.
    cluster_probe_interval_s: float = Field(10.0, description="How often each EdgeCluster is probed")
    cluster_probe_timeout_s: float = Field(5.0, description="Deadline of one probe; a dead site costs no more")
    cluster_heartbeat_write_s: float = Field(
        30.0, description="lastHeartbeat is rewritten at most this often when nothing else changed"
    )

    # EdgeDeployment rollouts: how often the loop looks while a rollout moves and when quiet.
    rollout_active_interval_s: float = Field(1.0, description="Tick of a moving rollout")
    rollout_idle_interval_s: float = Field(5.0, description="Tick of a settled deployment (watching for drift)")

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
