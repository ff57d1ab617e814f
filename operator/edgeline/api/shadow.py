"""EdgeDeployment spec.shadow and status.pendingApproval.shadow: a candidate revision run in
shadow on chosen clusters while it awaits approval (docs/analysis.md#shadow-runs)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from edgeline.api.base import ApiModel
from edgeline.api.common import DNS_SUBDOMAIN, LabelSelector


class Shadow(ApiModel):
    clusters: list[Annotated[str, Field(max_length=253, pattern=DNS_SUBDOMAIN)]] = Field(
        [], max_length=50, description="Names of EdgeClusters (of this deployment's placement) that run the candidate "
                                       "in shadow")
    cluster_selector: LabelSelector | None = Field(
        None, description="Labels of the EdgeClusters (of this deployment's placement) that run it in shadow")


SHADOW_RULES = [{"rule": "size(self.clusters) > 0 || has(self.clusterSelector)",
                 "message": "shadow needs clusters or clusterSelector"}]


class ShadowComparison(ApiModel):
    cluster: str = Field(description="The EdgeCluster")
    requests: int | None = Field(None, description="Mirrored requests the candidate answered and that were compared")
    agreement: float | None = Field(None, description="Share of them whose answer agreed with the served version's "
                                                      "(same top class; other outputs within the tolerance)")
    failed: int | None = Field(None, description="Mirrored requests the candidate failed on")
    dropped: int | None = Field(None, description="Mirrored requests skipped because the candidate was behind")
    candidate_p50_ms: float | None = Field(None, description="Candidate inference time, median (ms)")
    candidate_p95_ms: float | None = Field(None, description="Candidate inference time, 95th percentile (ms)")
    current_p50_ms: float | None = Field(None, description="Served version's inference time on the same requests, "
                                                           "median (ms)")
    current_p95_ms: float | None = Field(None, description="Served version's, 95th percentile (ms)")
    candidate_drift: dict[str, float] | None = Field(None, description="Candidate's drift score by kind against its "
                                                                       "own reference profile")
    current_drift: dict[str, float] | None = Field(None, description="Served version's drift score by kind")
    state: str | None = Field(None, description="Loading, Ready or Failed (the runtime's "
                                                "edgeline_runtime_shadow_ready)")
    measured_at: str | None = Field(None, description="When Edgeline last read these figures")
    message: str | None = Field(None, description="Why figures are missing, for people")


class ShadowStatus(ApiModel):
    revision: str | None = Field(None, description="The candidate revision in shadow")
    version: str | None = Field(None, description="Its model version")
    current_version: str | None = Field(None, description="The served model version it is compared with")
    clusters: list[str] = Field([], description="The clusters chosen for the shadow run")
    since: str | None = Field(None, description="When the shadow run was first applied")
    comparisons: list[ShadowComparison] = Field([], description="Candidate against current, per cluster")
