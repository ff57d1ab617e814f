"""DataPipeline (namespaced): collection, preparation and retraining steps run as Jobs on
the clusters that hold the data; a run can hand a candidate MLModel to validation."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgeline.api.base import ApiModel, Resource
from edgeline.api.common import DNS_LABEL, DNS_SUBDOMAIN, EnvVar, ResourceRequirements, ShortText
from edgeline.api.conditions import Condition
from edgeline.api.reserved import keys_rule

# Written for a CEL string literal: fields separated by spaces, no backslashes.
_FIELD = "[0-9*,/?A-Za-z-]+"
# The shorthands are domain.cron's (a unit test keeps the two lists equal).
SHORTHANDS = ("yearly", "annually", "monthly", "weekly", "daily", "midnight", "hourly")
CRON = f"^(@({'|'.join(SHORTHANDS)})|{_FIELD} +{_FIELD} +{_FIELD} +{_FIELD} +{_FIELD})$"


class Schedule(ApiModel):
    cron: str = Field(max_length=128, description="Five-field cron expression (minute hour day month weekday) or "
                                                  "@hourly, @daily (@midnight), @weekly, @monthly, @yearly "
                                                  "(@annually)",
                      json_schema_extra={"x-kubernetes-validations": [{
                          "rule": f"self.matches('{CRON}')",
                          "message": "cron must have five fields (minute hour day-of-month month day-of-week), "
                                     "e.g. '0 2 * * *', or be @hourly, @daily, @midnight, @weekly, @monthly, "
                                     "@yearly or @annually"}]})
    time_zone: str = Field("UTC", max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_+/-]*$",
                           description="IANA time zone the cron expression is read in, e.g. Europe/Berlin")
    suspend: bool = Field(False, description="Stop starting scheduled runs (manual runs still start)")


class Triggers(ApiModel):
    alerts: list[ShortText] = Field(
        [], max_length=16, description="Alert names that start a run when Alertmanager routes them to Edgeline "
                                       "with the label edgeline_pipeline=<this pipeline>")


class Step(ApiModel):
    name: str = Field(min_length=1, max_length=40, pattern=DNS_LABEL,
                      description="Step name, unique in the pipeline; also part of the Job name")
    cluster: str | None = Field(None, max_length=253, pattern=DNS_SUBDOMAIN,
                                description="EdgeCluster the step runs on; empty: the hub, where the operator runs")
    image: str = Field(min_length=1, max_length=512, description="Container image of the step")
    command: list[str] = Field([], max_length=32, description="Entrypoint; the image's when empty")
    args: list[str] = Field([], max_length=64, description="Arguments; $(steps.NAME.outputs.KEY) is replaced by "
                                                           "an output of an earlier step")
    env: list[EnvVar] = Field([], max_length=64, description="Environment variables")
    resources: ResourceRequirements | None = Field(None, description="Requests and limits of the step's container")
    node_selector: dict[str, ShortText] = Field({}, description="Node labels the step's Pod must run on",
                                                json_schema_extra={"maxProperties": 16})
    depends_on: list[ShortText] = Field(
        [], max_length=10, description="Steps that must succeed first; the steps must form a DAG (no cycles)")
    timeout_seconds: int = Field(3600, ge=1, le=604800, description="How long one attempt may run")
    retries: int = Field(0, ge=0, le=10, description="Attempts after the first one fails")
    backoff_seconds: int = Field(10, ge=0, le=3600, description="Wait before the first retry; doubles each time")
    pod_security: Literal["restricted", "baseline", "privileged"] = Field(
        "restricted", description="Pod Security level the step's Pod needs: restricted (uid 65532, no privilege "
                                  "escalation, no capabilities, seccomp RuntimeDefault), baseline (the image's "
                                  "user), privileged (a privileged container); the EdgeCluster's "
                                  "spec.tenancy.podSecurity caps it")
    pod_annotations: dict[str, str] = Field(
        {}, description="Annotations on the step's Pod (e.g. for a service mesh or, in tests, kwok's outcome); "
                        "not edgeline.io/* keys, which are Edgeline's",
        json_schema_extra={"maxProperties": 16, "x-kubernetes-validations": [keys_rule("podAnnotations")]})


class MLModelTemplate(ApiModel):
    from_step: str = Field(max_length=40, pattern=DNS_LABEL,
                           description="Step whose outputs uri and sha256 (and optionally version) name the artifact")
    model: str = Field(max_length=63, pattern=DNS_LABEL, description="Logical model name of the candidate")
    stage: Literal["development", "staging", "production"] = Field(
        "staging", description="Stage of the candidate MLModel; at most staging is used: production takes a "
                               "person's promotion (`edgeline promote`)")
    labels: dict[str, ShortText] = Field({}, description="Extra labels of the candidate MLModel; not edgeline.io/* "
                                                         "keys, which are Edgeline's",
                                         json_schema_extra={"maxProperties": 16,
                                                            "x-kubernetes-validations": [keys_rule("labels")]})
    max_opset: int | None = Field(None, ge=1, le=100, description="requirements.maxOpset of the candidate")


_STEPS = "self.steps"
_NAMES = f"{_STEPS}.map(t, t.name)"
STEP_RULES = [
    {"rule": f"{_STEPS}.all(s, {_STEPS}.exists_one(t, t.name == s.name))",
     "message": "step names must be unique", "fieldPath": ".steps"},
    {"rule": f"{_STEPS}.all(s, !has(s.dependsOn) || !(s.name in s.dependsOn))",
     "message": "a step cannot depend on itself", "fieldPath": ".steps"},
    {"rule": f"{_STEPS}.all(s, !has(s.dependsOn) || s.dependsOn.all(d, d in {_NAMES}))",
     "message": "dependsOn names a step that does not exist", "fieldPath": ".steps"},
    # Longer cycles cost more than CEL's budget allows; they are the DataPipeline controller's to report.
    {"rule": f"{_STEPS}.all(s, !has(s.dependsOn) || s.dependsOn.all(d, !{_STEPS}.exists(t, t.name == d && "
             f"has(t.dependsOn) && s.name in t.dependsOn)))",
     "message": "two steps depend on each other (a cycle); dependsOn must form a DAG", "fieldPath": ".steps"},
]


class DataPipelineSpec(ApiModel):
    steps: list[Step] = Field(min_length=1, max_length=20, description="The steps, in an order that respects dependsOn",
                              )
    schedule: Schedule | None = Field(None, description="When runs start by themselves")
    triggers: Triggers | None = Field(None, description="Alerts that start a run")
    concurrency_policy: Literal["Forbid", "Replace", "Allow"] = Field(
        "Forbid", description="When a run is due while one runs: Forbid skips it, Replace stops the old run, "
                              "Allow runs both")
    on_unreachable: Literal["Wait", "Fail"] = Field(
        "Wait", description="When a step's cluster cannot be reached: Wait (until the step's timeout) or Fail")
    run_history_limit: int = Field(5, ge=1, le=50, description="Finished runs kept in status; their Jobs are deleted")
    produces: MLModelTemplate | None = Field(None, description="Candidate MLModel a successful run creates")


class StepState(ApiModel):
    name: str = Field(description="Step name")
    cluster: str | None = Field(None, description="Where it ran; empty: the hub")
    phase: Literal["Pending", "Waiting", "Running", "Succeeded", "Failed", "Skipped", "Cancelled"] | None = Field(
        None, description="Pending, Waiting (cluster unreachable), Running, Succeeded, Failed, Skipped (an earlier "
                          "step failed) or Cancelled (the run was stopped)")
    attempts: int | None = Field(None, description="Attempts started")
    job: str | None = Field(None, description="Name of the current Job")
    started_at: str | None = Field(None, description="When the first attempt started")
    finished_at: str | None = Field(None, description="When it ended")
    retry_at: str | None = Field(None, description="When the next attempt starts")
    outputs: dict[str, str] = Field({}, description="What the step reported (termination message, JSON object)")
    message: str | None = Field(None, description="Why it failed or waits")
    reason: str | None = Field(None, description="Why it failed, one CamelCase word")
    attempt_started_at: str | None = Field(None, description="When the current attempt started")
    unreachable_since: str | None = Field(None, description="Since when its cluster does not answer")


class Run(ApiModel):
    name: str = Field(description="Run name: <pipeline>-<number>")
    number: int = Field(description="Run number, counting from 1")
    trigger: Literal["Schedule", "Manual", "Alert"] = Field(description="What started it")
    phase: Literal["Running", "Succeeded", "Failed", "Cancelled"] = Field(
        description="Running, Succeeded, Failed or Cancelled")
    started_at: str = Field(description="When it started")
    finished_at: str | None = Field(None, description="When it ended")
    steps: list[StepState] = Field([], description="Every step and how it went")
    produced_model: str | None = Field(None, description="Candidate MLModel of the run; while the run is still "
                                                          "Running, the one being created")
    reason: str | None = Field(None, description="Why it failed, one CamelCase word")
    message: str | None = Field(None, description="Why it failed, for people")


class Cleanup(ApiModel):
    run: str = Field(description="Run whose Jobs are to be deleted")
    clusters: list[str] = Field([], description="Clusters that may still hold its Jobs; empty string: the hub")
    jobs: list[str] = Field([], description="Only these Jobs (empty: every Job of the run)")


class DataPipelineStatus(ApiModel):
    observed_generation: int | None = Field(None, description="Generation of the spec last acted upon")
    phase: Literal["Idle", "Running", "Succeeded", "Failed", "Invalid"] | None = Field(
        None, description="Idle, Running, Succeeded or Failed (the last run), Invalid")
    conditions: list[Condition] = Field([], description="Ready and Running")
    run_counter: int | None = Field(None, description="Number of the newest run")
    last_run_time: str | None = Field(None, description="When the newest run started")
    next_run_time: str | None = Field(None, description="When the schedule starts the next run")
    last_run_request: str | None = Field(None, description="Value of the run-now annotation last acted upon")
    handled_alerts: list[str] = Field([], description="Alert receipts already acted upon (newest first, at most "
                                                      "20), so that an operator restart never starts a run twice")
    runs: list[Run] = Field([], description="Runs, newest first")
    cleanup: list[Cleanup] = Field([], description="Jobs still to delete: of runs that left the history or "
                                                   "were stopped, per cluster")


class DataPipeline(Resource):
    KIND = "DataPipeline"
    PLURAL = "datapipelines"
    SINGULAR = "datapipeline"
    SHORT_NAMES = ["dp"]
    DESCRIPTION = ("Data collection, preparation and retraining steps run as Jobs on the clusters that hold the "
                   "data; a run can produce a candidate MLModel.")
    PRINTER_COLUMNS = [
        {"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule.cron"},
        {"name": "Last Run", "type": "date", "jsonPath": ".status.lastRunTime"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Runs", "type": "integer", "jsonPath": ".status.runCounter", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    SPEC_VALIDATIONS = [
        *STEP_RULES,
        {"rule": "!has(self.produces) || self.steps.exists(s, s.name == self.produces.fromStep)",
         "message": "produces.fromStep must name one of the steps", "fieldPath": ".produces.fromStep"},
    ]

    spec: DataPipelineSpec
    status: DataPipelineStatus | None = None
