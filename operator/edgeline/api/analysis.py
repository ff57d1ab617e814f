"""Metric checks (docs/analysis.md): what an EdgeDeployment's waves must show in Prometheus
before they pass, written inline or taken from a MetricCheckTemplate of the same namespace,
and what the checks measured, in status.

The condition language is deliberately tiny (`result < 0.05`, `result >= 0.9 && result <= 1`):
the same pattern below is enforced by the API server at admission and parsed, never evaluated,
by `edgeline.domain.analysis`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from edgeline.api.base import ApiModel, Resource
from edgeline.api.common import DNS_LABEL, DNS_SUBDOMAIN

_NUMBER = r"[-+]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?"
_COMPARISON = rf"result\s*(<=|>=|==|!=|<|>)\s*{_NUMBER}"
# One comparison, or several joined by && / || (&& binds tighter), e.g. `result < 0.05`.
CONDITION = rf"^\s*{_COMPARISON}(\s*(&&|\|\|)\s*{_COMPARISON})*\s*$"

MissingData = Literal["Fail", "Inconclusive"]


class CheckParameters(ApiModel):
    """What a check measures and how often; shared by inline checks and templates."""

    query: str | None = Field(
        None, min_length=1, max_length=4096,
        description="PromQL instant query; {{cluster}}, {{deployment}}, {{namespace}}, {{revision}} and {{version}} "
                    "are replaced by the EdgeCluster, the EdgeDeployment, its namespace, the revision hash and the "
                    "model version being rolled out")
    condition: str | None = Field(
        None, max_length=256, pattern=CONDITION,
        description="What every value the query returns must satisfy, e.g. `result < 0.05`; comparisons (<, <=, >, "
                    ">=, ==, !=) of `result` with a number, joined by && or ||")
    interval_seconds: int | None = Field(None, ge=5, le=3600,
                                         description="Time between measurements; the first is one interval after "
                                                     "the wave is ready (default 30)")
    count: int | None = Field(None, ge=1, le=100, description="Measurements to take per cluster (default 3)")
    failure_limit: int | None = Field(None, ge=0, le=100,
                                      description="Failed measurements tolerated; one more fails the check "
                                                  "(default 0)")
    missing_data: MissingData | None = Field(
        None, description="No data, NaN or an unreachable or erroring Prometheus: Fail (default) counts it as a "
                          "failed measurement; Inconclusive counts it neither way, and the check fails if it has "
                          "not passed within rollout.waveTimeoutSeconds")


class MetricCheck(CheckParameters):
    name: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL, description="Name of the check, e.g. error-rate")
    template_ref: str | None = Field(
        None, max_length=253, pattern=DNS_SUBDOMAIN,
        description="A MetricCheckTemplate in this namespace to take the query and defaults from; fields set here "
                    "override it")
    waves: list[Annotated[str, Field(max_length=63)]] = Field(
        [], max_length=20, description="Names of the waves the check runs in; empty: every wave")


CHECK_RULES = [
    {"rule": "has(self.templateRef) || (has(self.query) && has(self.condition))",
     "message": "a check needs a templateRef, or both a query and a condition"},
    {"rule": "!has(self.count) || !has(self.failureLimit) || self.failureLimit < self.count",
     "message": "failureLimit must be smaller than count"},
]


class Analysis(ApiModel):
    checks: list[MetricCheck] = Field(
        [], max_length=16, description="Checks every wave (or the waves each names) must pass, on each of its "
                                       "clusters, before the rollout goes on; a failed check fails the wave and "
                                       "triggers spec.rollback")


ANALYSIS_RULES = [
    {"rule": "!has(self.checks) || self.checks.all(c, self.checks.exists_one(d, d.name == c.name))",
     "message": "check names must be unique", "fieldPath": ".checks"},
]


class MetricCheckTemplateSpec(CheckParameters):
    pass


TEMPLATE_RULES = [
    {"rule": "has(self.query) && has(self.condition)", "message": "a template needs a query and a condition"},
    {"rule": "!has(self.count) || !has(self.failureLimit) || self.failureLimit < self.count",
     "message": "failureLimit must be smaller than count"},
]


class MetricCheckTemplate(Resource):
    KIND = "MetricCheckTemplate"
    PLURAL = "metricchecktemplates"
    SINGULAR = "metricchecktemplate"
    SHORT_NAMES = ["mct"]
    DESCRIPTION = ("A reusable metric check (PromQL query, condition, interval, count, failure limit) that "
                   "EdgeDeployments of the same namespace name in spec.analysis.checks[].templateRef.")
    PRINTER_COLUMNS = [
        {"name": "Condition", "type": "string", "jsonPath": ".spec.condition"},
        {"name": "Interval", "type": "integer", "jsonPath": ".spec.intervalSeconds"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    SPEC_VALIDATIONS = TEMPLATE_RULES

    spec: MetricCheckTemplateSpec


# --- status ---------------------------------------------------------------------------------------

CheckPhase = Literal["Running", "Passed", "Failed"]


class CheckResult(ApiModel):
    name: str = Field(description="The check")
    cluster: str = Field(description="The EdgeCluster it measures")
    phase: CheckPhase = Field(description="Running, Passed or Failed")
    reason: str = Field(description="CheckRunning, CheckPassed, CheckFailed, CheckMissingData or "
                                    "CheckTemplateMissing")
    message: str | None = Field(None, description="Why, for people")
    query: str | None = Field(None, description="The query as sent, placeholders replaced (first 512 characters)")
    condition: str | None = Field(None, description="What its values must satisfy")
    measurements: int = Field(0, description="Measurements taken")
    successes: int = Field(0, description="Measurements that satisfied the condition")
    failures: int = Field(0, description="Measurements that did not, or had no data with missingData Fail")
    inconclusive: int = Field(0, description="Measurements without data, with missingData Inconclusive")
    count: int | None = Field(None, description="Measurements needed")
    failure_limit: int | None = Field(None, description="Failures tolerated")
    last_value: str | None = Field(None, description="Values of the last measurement")
    last_measured_at: str | None = Field(None, description="When the last measurement was taken")
    next_measurement_at: str | None = Field(None, description="When the next is due")


class AnalysisStatus(ApiModel):
    revision: str = Field(description="The revision the checks measure")
    wave: str = Field(description="The wave they measure")
    started_at: str = Field(description="When the wave was ready and the checks began")
    phase: CheckPhase = Field(description="Running until every check passed on every cluster of the wave (Passed) "
                                          "or one failed (Failed)")
    checks: list[CheckResult] = Field([], description="One entry per check and cluster")
