"""Operator configuration: one place, `EDGELINE_*` environment variables.

Defaults suit a small edge or hub cluster: a few models validated at once, bounded
downloads, short timeouts towards member clusters.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

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

    # Tenancy (docs/security.md): an EdgeCluster without spec.tenancy admits no namespace, unless this is on.
    tenancy_open_without_section: bool = Field(
        False, description="Upgrade aid: EdgeClusters without spec.tenancy admit every hub namespace (at Pod "
                           "Security restricted), as before tenancy existed; turn off once each has its section")
    tenancy_manage_policy: bool = Field(True, description="Keep the ValidatingAdmissionPolicy that refuses "
                                                          "DataPipeline steps on clusters that do not admit them")

    # EdgeDeployment rollouts: how often the loop looks while a rollout moves and when quiet.
    rollout_active_interval_s: float = Field(1.0, description="Tick of a moving rollout")
    rollout_idle_interval_s: float = Field(5.0, description="Tick of a settled deployment (watching for drift)")
    revert_concurrency: int = Field(64, ge=1, description="Member clusters an alert's revert writes to at once")

    # The Alertmanager webhook receiver (docs/rollback.md).
    alerts_port: int = Field(8082, description="Port of the alert receiver (POST /alerts); 0 disables it")
    alerts_listen: str = Field("0.0.0.0", description="Address the alert receiver listens on")
    alerts_token: str | None = Field(None, description="Bearer token Alertmanager must send; default: the "
                                                       "token in Secret edgeline-alerts (created on first start)")
    alerts_tls: bool = Field(True, description="Serve the alert receiver over HTTPS (certificate in Secret "
                                               "edgeline-alerts-tls, CA in its ca.crt); false: plain HTTP")
    alerts_service: str = Field("edgeline-alerts", description="Service in front of the alert receiver (its "
                                                               "certificate's names)")

    def alerts_dns_names(self) -> list[str]:
        service = f"{self.alerts_service}.{self.namespace}"
        names = [f"{service}.svc", service, f"{service}.svc.cluster.local"]
        if self.alerts_listen not in ("0.0.0.0", "::"):
            names.append(self.alerts_listen)
        return names

    # Serving certificates (controllers.certificates).
    tls_source: Literal["operator", "secret"] = Field(
        "operator", description="operator: the operator issues and renews its serving certificates; secret: "
                                "it only reads them from their Secrets (cert-manager keeps them renewed)")
    tls_check_interval_s: float = Field(3600.0, description="How often each replica checks its certificates")

    # Leader election (controllers.leadership): only the holder of the Lease runs the controllers.
    leader_election: bool = Field(True, description="Run the controllers only while holding the Lease; every "
                                                    "replica serves the webhook and the alert receiver")
    leader_lease_name: str = Field("edgeline-operator-leader", description="Lease in the operator's namespace")
    leader_identity: str | None = Field(None, description="This replica's name in the Lease; default: the Pod "
                                                          "name (or host name) and a random suffix")
    leader_lease_duration_s: int = Field(15, ge=2, description="How long a Lease that is not renewed keeps a "
                                                               "follower waiting")
    leader_renew_deadline_s: float = Field(10.0, description="A leader that cannot renew for this long stops")
    leader_retry_period_s: float = Field(2.0, description="How often the Lease is renewed or tried")

    # Metric checks of EdgeDeployment waves (docs/analysis.md): the Prometheus-compatible API asked when an
    # EdgeCluster names none of its own (spec.monitoring.prometheusUrl).
    prometheus_url: str | None = Field(None, description="Base URL of the Prometheus (Thanos, VictoriaMetrics) HTTP "
                                                         "API the checks query, e.g. http://prometheus:9090")
    prometheus_timeout_s: float = Field(5.0, description="Deadline of one check's query; a late answer is "
                                                         "missing data")
    prometheus_bearer_token_file: Path | None = Field(None, description="File with a bearer token sent to "
                                                                        "Prometheus (read at each query)")
    prometheus_ca_file: Path | None = Field(None, description="CA bundle for an https Prometheus URL")

    # Metrics and health endpoints.
    metrics_port: int = Field(8080, description="Port of /metrics")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
