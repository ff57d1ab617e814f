"""The DataPipeline state machine against a small simulated world of clusters and Jobs.
Every tick round-trips the status through JSON, as the operator does through the API
server, so that anything kept only in memory would be lost here too."""

import datetime as dt
import json

import pytest

from edgeline import timestamps
from edgeline.api.datapipeline import DataPipelineSpec, DataPipelineStatus, Step
from edgeline.domain.candidates import CreateModel, ModelObservation
from edgeline.domain.pipeline import (HUB, ClusterView, DeleteJobs, Inputs, JobObservation, ReceivedAlert, StartJob,
                                      backoff_seconds, decide, job_name)

T0 = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.timezone.utc)
DIGEST = "sha256:" + "e" * 64


def J(step: str, attempt: int, run: int = 1) -> str:
    """The Job name of pipeline ns/p."""
    return job_name("ns", "p", run, step, attempt)


def spec(**extra) -> DataPipelineSpec:
    body = {"steps": [
        {"name": "collect", "cluster": "line-1", "image": "c", "retries": 2, "backoffSeconds": 10},
        {"name": "prepare", "image": "p", "dependsOn": ["collect"],
         "args": ["--input=$(steps.collect.outputs.dataset)"]},
        {"name": "train", "image": "t", "dependsOn": ["prepare"],
         "env": [{"name": "DATA", "value": "$(steps.prepare.outputs.dataset)"}]},
    ], "produces": {"fromStep": "train", "model": "detector", "maxOpset": 17, "labels": {"team": "vision"}}}
    body.update(extra)
    return DataPipelineSpec.model_validate(body)


class World:
    """Clusters, Jobs and the hub's MLModels. A Job runs for one tick, then ends as the step's
    script says: script[step] is a list of outcomes per attempt: dict (outputs) = success,
    str = failure. `refuse_models` (by name) / `refuse_jobs`: what the hub / a cluster says
    when it refuses to create one; `foreign_models`: names already taken by someone else."""

    def __init__(self, script=None, down=(), refuse_models=None, refuse_jobs=None, foreign_models=()):
        self.script = script or {}
        self.down = set(down)
        self.jobs: dict[str, dict] = {}         # name -> {cluster, step, attempt, ticks, deleted}
        self.started: list[StartJob] = []
        self.models: list[CreateModel] = []     # created, in order
        self.hub_models: dict[str, str] = {m: "someone-else" for m in foreign_models}   # name -> run label
        self.refuse_models = refuse_models
        self.refuse_jobs = refuse_jobs
        self.refused: dict[str, object] = {}    # what the controller remembers for the next tick
        self.deleted: list[tuple[str, str, tuple]] = []

    def clusters(self):
        return {c: ClusterView(c not in self.down, "connection refused" if c in self.down else None)
                for c in ("line-1", "line-2", HUB)}

    def observe(self, status):
        seen = {}
        for run in status.runs:
            for step in run.steps:
                if step.phase != "Running" or (step.cluster or HUB) in self.down:
                    continue
                job = self.jobs.get(step.job)
                if job is None or job.get("deleted"):
                    seen[step.job] = JobObservation(exists=False, refused=self.refused.pop(step.job, None))
                    continue
                if job["ticks"] < 1:
                    seen[step.job] = JobObservation(exists=True)
                    continue
                outcomes = self.script.get(job["step"], [{}])
                outcome = outcomes[min(job["attempt"], len(outcomes)) - 1]
                if isinstance(outcome, dict):
                    seen[step.job] = JobObservation(True, "Succeeded", termination_message=json.dumps(outcome))
                else:
                    seen[step.job] = JobObservation(True, "Failed", "Error", f"exit code 1: {outcome}")
        return seen

    def observe_models(self, status):
        seen = {}
        for run in status.runs:
            if run.phase == "Running" and run.produced_model:
                name = run.produced_model
                if name in self.hub_models:
                    seen[name] = ModelObservation(True, ours=self.hub_models[name] == run.name)
                else:
                    seen[name] = ModelObservation(False, refused=self.refused.pop(name, None))
        return seen

    def execute(self, actions):
        for job in self.jobs.values():
            job["ticks"] += 1
        for action in actions:
            if isinstance(action, StartJob):
                assert action.cluster not in self.down
                self.started.append(action)
                if self.refuse_jobs:
                    self.refused[action.job] = self.refuse_jobs
                    continue
                existing = self.jobs.get(action.job)
                if existing is None or existing.get("deleted"):
                    self.jobs[action.job] = {"cluster": action.cluster, "step": action.step.name,
                                             "attempt": action.attempt, "ticks": 0}
            elif isinstance(action, CreateModel):
                self.models.append(action)
                if action.name in (self.refuse_models or {}):
                    self.refused[action.name] = self.refuse_models[action.name]
                elif action.name not in self.hub_models:
                    self.hub_models[action.name] = action.labels["edgeline.io/run"]
            elif isinstance(action, DeleteJobs):
                if action.cluster in self.down:
                    continue
                self.deleted.append((action.cluster, action.run, action.jobs))
                run = int(action.run.split('-')[-1])
                for name, job in self.jobs.items():
                    if (name.startswith(J("", 0, run)[:-2]) and (not action.jobs or name in action.jobs)):
                        job["deleted"] = True


def tick(world, status, now, the_spec=None, run_now=None, alerts=(), generation=1):
    the_spec = the_spec or spec()
    decision = decide(Inputs(name="p", namespace="ns", generation=generation, spec=the_spec, status=status, now=now,
                             clusters=world.clusters(), jobs=world.observe(status), run_now=run_now,
                             alerts=list(alerts), models=world.observe_models(status)))
    world.execute(decision.actions)
    # Deletions that went through leave status.cleanup, as the controller does.
    done = {(c, r) for c, r, _ in world.deleted}
    for entry in decision.status.cleanup:
        entry.clusters = [c for c in entry.clusters if (c, entry.run) not in done]
    decision.status.cleanup = [e for e in decision.status.cleanup if e.clusters]
    return DataPipelineStatus.model_validate(json.loads(json.dumps(decision.status.dump()))), decision


def run_until(world, status, start, predicate, the_spec=None, limit=60, **kw):
    now = start
    for i in range(limit):
        status, d = tick(world, status, now, the_spec, **kw)
        kw.pop("run_now", None)          # the annotation value stays, but it was acted upon
        if predicate(status):
            return status, now
        now += dt.timedelta(seconds=1)
    raise AssertionError(f"not reached: {status.dump()}")


GOOD = {"collect": [{"dataset": "s3://lake/line-1"}], "prepare": [{"dataset": "s3://lake/prepared"}],
        "train": [{"uri": "http://models/m.onnx", "sha256": DIGEST, "metric.precision": "0.97", "metric.bad": "x"}]}


def test_a_manual_run_goes_through_the_steps_in_order_and_produces_the_candidate_model():
    world, status = World(GOOD), DataPipelineStatus()
    status, d = tick(world, status, T0, run_now="1")
    assert status.phase == "Running" and status.run_counter == 1 and status.last_run_request == "1"
    assert [a.job for a in d.actions if isinstance(a, StartJob)] == [J("collect", 1)]
    assert ("Normal", "RunStarted", "run p-1 started by edgeline.io/run-now") in d.events
    status, _ = run_until(world, status, T0 + dt.timedelta(seconds=1), lambda s: s.phase != "Running",
                          run_now="1")
    assert status.phase == "Succeeded"
    assert [(a.step.name, a.cluster) for a in world.started] == [("collect", "line-1"), ("prepare", HUB),
                                                                   ("train", HUB)]
    prepare = next(a for a in world.started if a.step.name == "prepare")
    assert prepare.step.args == ["--input=s3://lake/line-1"]
    train = next(a for a in world.started if a.step.name == "train")
    assert train.step.env[0].value == "s3://lake/prepared"
    run = status.runs[0]
    assert [s.phase for s in run.steps] == ["Succeeded"] * 3 and all(s.attempts == 1 for s in run.steps)
    assert run.steps[0].outputs == {"dataset": "s3://lake/line-1"}
    (model,) = world.models
    assert model.name == "detector-20261125-1" == run.produced_model
    assert model.spec["artifact"] == {"uri": "http://models/m.onnx", "sha256": DIGEST}
    assert model.spec["metrics"] == {"precision": 0.97} and model.spec["requirements"] == {"maxOpset": 17}
    assert model.labels == {"team": "vision", "edgeline.io/pipeline": "p", "edgeline.io/run": "p-1"}
    conditions = {c.type: c for c in status.conditions}
    assert conditions["Ready"].status == "True" and conditions["Running"].reason == "RunSucceeded"


def test_the_same_run_now_value_does_not_start_a_second_run_but_a_new_value_does():
    world, status = World(GOOD), DataPipelineStatus()
    status, _ = run_until(world, status, T0, lambda s: s.phase == "Succeeded", run_now="a")
    status, _ = tick(world, status, T0 + dt.timedelta(minutes=5), run_now="a")
    assert status.run_counter == 1
    status, _ = tick(world, status, T0 + dt.timedelta(minutes=6), run_now="b")
    assert status.run_counter == 2 and status.runs[0].trigger == "Manual" and status.phase == "Running"


def test_a_failing_step_is_retried_with_doubling_backoff_then_fails_the_run_with_its_reason():
    world, status = World({**GOOD, "collect": ["disk full", "disk full", "disk full"]}), DataPipelineStatus()
    now = T0
    status, _ = tick(world, status, now, run_now="1")
    retries = []
    while status.phase == "Running":
        now += dt.timedelta(seconds=1)
        status, d = tick(world, status, now)
        step = status.runs[0].steps[0]
        if step.retry_at and (not retries or retries[-1][1] != step.retry_at):
            retries.append((now, step.retry_at))
    gaps = [(timestamps.parse(r) - t).total_seconds() for t, r in retries]
    assert gaps == [10, 20]
    run = status.runs[0]
    assert status.phase == "Failed" and run.reason == "Error"
    assert run.message == "step collect: exit code 1: disk full after 3 attempts"
    assert run.steps[0].attempts == 3 and [s.phase for s in run.steps] == ["Failed", "Skipped", "Skipped"]
    assert [a.job for a in world.started] == [J("collect", 1), J("collect", 2), J("collect", 3)]
    assert not world.models
    assert {c.type: c.reason for c in status.conditions}["Running"] == "RunFailed"


def test_a_retry_that_succeeds_lets_the_run_succeed():
    world, status = World({**GOOD, "collect": ["flaky", {"dataset": "d"}]}), DataPipelineStatus()
    status, _ = run_until(world, status, T0, lambda s: s.phase != "Running", run_now="1")
    assert status.phase == "Succeeded" and status.runs[0].steps[0].attempts == 2


def test_a_cycle_of_three_steps_is_invalid_and_nothing_runs():
    steps = [{"name": "a", "image": "x", "dependsOn": ["c"]}, {"name": "b", "image": "x", "dependsOn": ["a"]},
             {"name": "c", "image": "x", "dependsOn": ["b"]}]
    the_spec = DataPipelineSpec.model_validate({"steps": steps})
    world, status = World(), DataPipelineStatus()
    status, d = tick(world, status, T0, the_spec, run_now="1")
    assert status.phase == "Invalid" and not d.actions and not status.runs
    ready = {c.type: c for c in status.conditions}["Ready"]
    assert ready.status == "False" and ready.reason == "DependencyCycle"
    assert "a -> c -> b -> a" in ready.message
    assert d.events[0][1] == "RunNotStarted"


def test_forbid_skips_a_run_asked_for_while_one_runs():
    world, status = World(GOOD), DataPipelineStatus()
    status, _ = tick(world, status, T0, run_now="1")
    status, d = tick(world, status, T0 + dt.timedelta(seconds=1), run_now="2")
    assert status.run_counter == 1 and status.last_run_request == "2"
    assert any(e[1] == "RunSkipped" for e in d.events)


def test_replace_stops_the_running_run_and_deletes_its_jobs():
    the_spec = spec(concurrencyPolicy="Replace")
    world, status = World(GOOD), DataPipelineStatus()
    status, _ = tick(world, status, T0, the_spec, run_now="1")
    status, d = tick(world, status, T0 + dt.timedelta(seconds=1), the_spec, run_now="2")
    old, new = status.runs[1], status.runs[0]
    assert old.phase == "Cancelled" and old.reason == "Replaced" and old.steps[0].phase == "Cancelled"
    assert new.phase == "Running" and new.name == "p-2"
    assert ("line-1", "p-1", ()) in world.deleted and world.jobs[J("collect", 1)]["deleted"]
    assert not status.cleanup


def test_allow_runs_two_at_once():
    the_spec = spec(concurrencyPolicy="Allow")
    world, status = World(GOOD), DataPipelineStatus()
    status, _ = tick(world, status, T0, the_spec, run_now="1")
    status, _ = tick(world, status, T0 + dt.timedelta(seconds=1), the_spec, run_now="2")
    assert [r.phase for r in status.runs] == ["Running", "Running"]
    status, _ = run_until(world, status, T0 + dt.timedelta(seconds=2), lambda s: s.phase != "Running", the_spec)
    assert [r.phase for r in status.runs] == ["Succeeded", "Succeeded"]
    assert sorted(m.name for m in world.models) == ["detector-20261125-1", "detector-20261125-2"]


def test_the_schedule_starts_runs_when_due_and_next_run_time_follows_the_cron():
    the_spec = spec(schedule={"cron": "*/10 * * * *"})
    world, status = World(GOOD), DataPipelineStatus()
    status, _ = tick(world, status, T0 + dt.timedelta(minutes=1), the_spec)
    assert status.next_run_time == "2026-11-25T10:10:00Z" and not status.runs
    status, _ = tick(world, status, T0 + dt.timedelta(minutes=9, seconds=59), the_spec)
    assert not status.runs
    status, _ = tick(world, status, T0 + dt.timedelta(minutes=10, seconds=3), the_spec)
    assert status.runs[0].trigger == "Schedule" and status.next_run_time == "2026-11-25T10:20:00Z"
    # A restarted operator that was away for an hour starts one run, not six.
    status, _ = run_until(world, status, T0 + dt.timedelta(minutes=11), lambda s: s.phase != "Running", the_spec)
    status, _ = tick(world, status, T0 + dt.timedelta(minutes=75), the_spec)
    assert status.run_counter == 2 and status.next_run_time == "2026-11-25T11:20:00Z"


def test_a_suspended_or_changed_schedule():
    suspended = spec(schedule={"cron": "*/10 * * * *", "suspend": True})
    world, status = World(GOOD), DataPipelineStatus()
    status, _ = tick(world, status, T0, suspended)
    assert status.next_run_time is None
    status, _ = tick(world, status, T0 + dt.timedelta(hours=1), suspended)
    assert not status.runs
    # A new generation recomputes the next run from now.
    status, _ = tick(world, status, T0 + dt.timedelta(hours=1, minutes=1), spec(schedule={
        "cron": "0 3 * * *", "timeZone": "Europe/Berlin"}), generation=2)
    assert status.next_run_time == "2026-11-26T02:00:00Z"


def test_an_unparseable_schedule_makes_the_pipeline_invalid():
    the_spec = spec(schedule={"cron": "61 * * * *"})
    status, _ = tick(World(), DataPipelineStatus(), T0, the_spec)
    ready = {c.type: c for c in status.conditions}["Ready"]
    assert status.phase == "Invalid" and ready.reason == "InvalidSchedule" and "outside 0-59" in ready.message


def test_alerts_named_in_triggers_start_one_run_each_receipt_once():
    the_spec = spec(triggers={"alerts": ["Drift"]})
    world, status = World(GOOD), DataPipelineStatus()
    status, d = tick(world, status, T0, the_spec, alerts=[ReceivedAlert("fp1@1", "Drift"),
                                                           ReceivedAlert("fp2@1", "Other")])
    assert status.run_counter == 1 and status.runs[0].trigger == "Alert"
    assert any(e[1] == "AlertIgnored" and "Other" in e[2] for e in d.events)
    status, _ = run_until(world, status, T0 + dt.timedelta(seconds=1), lambda s: s.phase != "Running", the_spec)
    # The annotation was not removed before a crash: the same receipt does not start another run.
    status, _ = tick(world, status, T0 + dt.timedelta(minutes=1), the_spec, alerts=[ReceivedAlert("fp1@1", "Drift")])
    assert status.run_counter == 1


def test_an_unreachable_cluster_waits_until_the_step_timeout_then_fails():
    the_spec = spec()
    the_spec.steps[0].timeout_seconds = 30
    world, status = World(GOOD, down={"line-1"}), DataPipelineStatus()
    status, d = tick(world, status, T0, the_spec, run_now="1")
    step = status.runs[0].steps[0]
    assert step.phase == "Waiting" and "connection refused" in step.message and not world.started
    running = {c.type: c for c in status.conditions}["Running"]
    assert running.reason == "WaitingForCluster" and "cluster line-1" in running.message
    status, _ = tick(world, status, T0 + dt.timedelta(seconds=30), the_spec)
    assert status.phase == "Running"
    status, _ = tick(world, status, T0 + dt.timedelta(seconds=31), the_spec)
    assert status.phase == "Failed" and status.runs[0].reason == "ClusterUnreachable"
    assert "did not answer for 31s" in status.runs[0].message


def test_a_cluster_that_comes_back_in_time_lets_the_step_start():
    world, status = World(GOOD, down={"line-1"}), DataPipelineStatus()
    status, _ = tick(world, status, T0, run_now="1")
    world.down.clear()
    status, _ = run_until(world, status, T0 + dt.timedelta(seconds=5), lambda s: s.phase != "Running")
    assert status.phase == "Succeeded" and status.runs[0].steps[0].unreachable_since is None


def test_on_unreachable_fail_fails_at_once():
    world, status = World(GOOD, down={"line-1"}), DataPipelineStatus()
    status, _ = tick(world, status, T0, spec(onUnreachable="Fail"), run_now="1")
    assert status.phase == "Failed" and status.runs[0].reason == "ClusterUnreachable"
    assert "onUnreachable: Fail" in status.runs[0].message


def test_a_cluster_nobody_has_probed_yet_is_waited_for_even_under_fail():
    decision = decide(Inputs(name="p", namespace="ns", generation=1, spec=spec(onUnreachable="Fail"),
                             status=DataPipelineStatus(), now=T0, clusters={HUB: ClusterView(True)}, run_now="1"))
    assert decision.status.runs[0].steps[0].phase == "Waiting"


def test_a_running_step_out_of_sight_keeps_running_until_its_timeout():
    world, status = World(GOOD), DataPipelineStatus()
    status, _ = tick(world, status, T0, run_now="1")
    world.down.add("line-1")
    status, _ = tick(world, status, T0 + dt.timedelta(seconds=1))
    step = status.runs[0].steps[0]
    assert step.phase == "Running" and "keeps running there" in step.message
    world.down.clear()
    status, _ = run_until(world, status, T0 + dt.timedelta(seconds=2), lambda s: s.phase != "Running")
    assert status.phase == "Succeeded" and len(world.started) == 3


def test_a_restart_between_creating_a_job_and_writing_status_creates_no_duplicate():
    world, status = World(GOOD), DataPipelineStatus()
    status, _ = tick(world, status, T0, run_now="1")
    before = status
    # The operator dies after creating prepare's Job but before status says so: the next
    # operator decides from the older status and starts the same Job name again.
    status, _ = tick(world, status, T0 + dt.timedelta(seconds=1))
    status, d1 = tick(world, before, T0 + dt.timedelta(seconds=2))
    status, _ = run_until(world, status, T0 + dt.timedelta(seconds=3), lambda s: s.phase != "Running")
    names = [a.job for a in world.started]
    assert len(set(names)) == len(world.jobs) == 3
    assert status.phase == "Succeeded"


def test_a_job_deleted_behind_the_operators_back_is_created_again_with_the_same_name():
    world, status = World(GOOD), DataPipelineStatus()
    status, _ = tick(world, status, T0, run_now="1")
    world.jobs[J("collect", 1)]["deleted"] = True
    status, d = tick(world, status, T0 + dt.timedelta(seconds=1))
    assert [a.job for a in d.actions if isinstance(a, StartJob)] == [J("collect", 1)]
    assert "was missing" in status.runs[0].steps[0].message and status.runs[0].steps[0].attempts == 1


def test_a_run_started_before_the_upgrade_goes_on_with_the_job_name_its_status_recorded():
    """Versions before per-namespace Job names named Jobs `<pipeline>-<run>-<step>-<attempt>`;
    the name is in status, so the upgraded operator reads (and later deletes) that Job."""
    world, status = World(GOOD), DataPipelineStatus()
    status, _ = tick(world, status, T0, run_now="1")
    old_name = "p-1-collect-1"
    world.jobs[old_name] = world.jobs.pop(J("collect", 1))
    status = DataPipelineStatus.model_validate(json.loads(json.dumps(status.dump())))
    status.runs[0].steps[0].job = old_name
    status, _ = run_until(world, status, T0 + dt.timedelta(seconds=1), lambda s: s.phase != "Running")
    assert status.phase == "Succeeded" and status.runs[0].steps[0].job == old_name
    assert [a.job for a in world.started if a.step.name == "collect"] == [J("collect", 1)]    # not started again


def test_a_job_of_that_name_that_is_not_ours_fails_the_step():
    status = decide(Inputs(name="p", namespace="ns", generation=1, spec=spec(), status=DataPipelineStatus(), now=T0,
                           clusters=World().clusters(), run_now="1")).status
    status = decide(Inputs(name="p", namespace="ns", generation=1, spec=spec(), status=status, now=T0,
                           clusters=World().clusters(),
                           jobs={J("collect", 1): JobObservation(exists=True, foreign=True)})).status
    assert status.phase == "Failed" and status.runs[0].reason == "JobNameConflict"


def test_history_is_trimmed_and_the_jobs_of_runs_that_leave_it_are_deleted():
    the_spec = spec(runHistoryLimit=2)
    world, status = World(GOOD), DataPipelineStatus()
    now = T0
    for n in range(3):
        status, now = run_until(world, status, now, lambda s: s.phase == "Succeeded" and s.run_counter == n + 1,
                                the_spec, run_now=str(n))
        now += dt.timedelta(seconds=1)
    assert [r.name for r in status.runs] == ["p-3", "p-2"]
    assert sorted(c for c, r, _ in world.deleted if r == "p-1") == [HUB, "line-1"]
    assert not status.cleanup


def test_cleanup_waits_in_status_for_a_cluster_that_does_not_answer():
    the_spec = spec(runHistoryLimit=1)
    world, status = World(GOOD), DataPipelineStatus()
    status, now = run_until(world, status, T0, lambda s: s.phase == "Succeeded", the_spec, run_now="1")
    status, now = run_until(world, status, now + dt.timedelta(seconds=1),
                            lambda s: s.runs[0].steps[0].phase == "Succeeded", the_spec, run_now="2")
    world.down.add("line-1")
    status, now = run_until(world, status, now + dt.timedelta(seconds=1), lambda s: s.phase == "Succeeded",
                            the_spec)
    assert [r.name for r in status.runs] == ["p-2"]
    assert [(c.run, c.clusters) for c in status.cleanup] == [("p-1", ["line-1"])]
    assert (HUB, "p-1", ()) in world.deleted
    world.down.clear()
    status, _ = tick(world, status, now + dt.timedelta(seconds=1), the_spec)
    assert not status.cleanup and ("line-1", "p-1", ()) in world.deleted


def test_a_failure_stops_the_other_running_steps_of_the_run():
    body = {"steps": [{"name": "a", "image": "x"}, {"name": "b", "image": "x"},
                      {"name": "c", "image": "x", "dependsOn": ["a", "b"]}]}
    world = World({"a": ["boom"], "b": [{}]})
    world_b_slow = world
    status = DataPipelineStatus()
    the_spec = DataPipelineSpec.model_validate(body)
    status, _ = tick(world, status, T0, the_spec, run_now="1")
    world_b_slow.jobs[J("b", 1)]["ticks"] = -5          # b takes longer
    status, _ = tick(world, status, T0 + dt.timedelta(seconds=1), the_spec)
    status, _ = tick(world, status, T0 + dt.timedelta(seconds=2), the_spec)
    run = status.runs[0]
    assert [s.phase for s in run.steps] == ["Failed", "Cancelled", "Skipped"]
    assert (HUB, "p-1", (J("b", 1),)) in world.deleted


def test_outputs_without_uri_and_sha256_fail_a_run_that_produces_a_model():
    world, status = World({**GOOD, "train": [{"uri": "http://x/m.onnx"}]}), DataPipelineStatus()
    status, _ = run_until(world, status, T0, lambda s: s.phase != "Running", run_now="1")
    assert status.phase == "Failed" and status.runs[0].reason == "OutputsMissing"
    assert "missing: sha256" in status.runs[0].message and not world.models


def test_a_reported_version_names_the_model():
    outputs = {**GOOD, "train": [{"uri": "http://x/m.onnx", "sha256": "e" * 64, "version": "2.1.0+RC1"}]}
    world, status = World(outputs), DataPipelineStatus()
    status, _ = run_until(world, status, T0, lambda s: s.phase != "Running", run_now="1")
    assert world.models[0].name == "detector-2.1.0-rc1" and world.models[0].spec["version"] == "2.1.0+RC1"
    assert world.models[0].spec["artifact"]["sha256"] == DIGEST


def test_a_reference_to_a_step_that_is_not_a_dependency_is_invalid():
    body = {"steps": [{"name": "a", "image": "x"}, {"name": "b", "image": "x", "args": ["$(steps.a.outputs.k)"]}]}
    status, _ = tick(World(), DataPipelineStatus(), T0, DataPipelineSpec.model_validate(body))
    ready = {c.type: c for c in status.conditions}["Ready"]
    assert ready.reason == "InvalidReference" and "add it to dependsOn" in ready.message


def test_an_output_the_step_before_did_not_report_fails_the_step_that_needs_it():
    world, status = World({**GOOD, "collect": [{"other": "x"}]}), DataPipelineStatus()
    status, _ = run_until(world, status, T0, lambda s: s.phase != "Running", run_now="1")
    assert status.runs[0].reason == "MissingOutput"
    assert "steps.collect.outputs.dataset" in status.runs[0].message


# --- the candidate MLModel: created, then seen on the next tick ----------------------------------

def _all_steps_done(world, the_spec=None, **kw):
    """Runs p-1 until every step succeeded and the candidate was asked for."""
    status, _ = tick(world, DataPipelineStatus(), T0, the_spec, run_now="1")
    return run_until(world, status, T0 + dt.timedelta(seconds=1),
                     lambda s: all(x.phase == "Succeeded" for x in s.runs[0].steps), the_spec, **kw)


def test_a_run_succeeds_only_once_its_candidate_is_seen_on_the_hub():
    world = World(GOOD)
    status, now = _all_steps_done(world)
    run = status.runs[0]
    assert status.phase == "Running" and run.phase == "Running" and run.produced_model == "detector-20261125-1"
    assert run.message == "every step succeeded; creating candidate MLModel detector-20261125-1"
    assert {c.type: c for c in status.conditions}["Running"].message == \
        "running: p-1 (creating MLModel detector-20261125-1)"
    status, d = tick(world, status, now + dt.timedelta(seconds=1))
    assert status.phase == "Succeeded" and status.runs[0].message is None
    assert [e for e in d.events if e[1] == "RunSucceeded"] == [
        ("Normal", "RunSucceeded", "run p-1 succeeded in 7s; produced MLModel detector-20261125-1")]
    assert [r for r, _ in d.finished] == ["Succeeded"] and not [a for a in d.actions if isinstance(a, CreateModel)]
    assert len(world.models) == 1


def test_a_create_that_landed_before_a_restart_is_found_not_repeated_as_a_new_model():
    world = World(GOOD)
    status, now = _all_steps_done(world)
    before = world.models[0]
    # The operator died after creating the MLModel, before status named it: the next one asks again
    # under the same name (the hub answers 409, which is no error) and then sees it as ours.
    older = status.model_copy(deep=True)
    older.runs[0].produced_model = None
    status, d = tick(world, older, now + dt.timedelta(seconds=1))
    assert [a.name for a in d.actions if isinstance(a, CreateModel)] == [before.name]
    status, _ = tick(world, status, now + dt.timedelta(seconds=2))
    assert status.phase == "Succeeded" and status.runs[0].produced_model == before.name


@pytest.mark.parametrize("seen, phase, reason, produced", [
    (None, "Running", None, "detector-20261125-1"),                               # not seen yet: ask for it
    (ModelObservation(exists=False), "Running", None, "detector-20261125-1"),     # gone: ask again
    (ModelObservation(exists=True), "Succeeded", None, "detector-20261125-1"),
    (ModelObservation(exists=True, ours=False), "Failed", "ModelConflict", None),
    (ModelObservation(exists=False, refused=("ModelRejected", "the hub refused MLModel x: no")), "Failed",
     "ModelRejected", None),
])
def test_what_the_hub_shows_of_the_candidate_decides_the_run(seen, phase, reason, produced):
    world = World(GOOD)
    status, now = _all_steps_done(world)
    models = {} if seen is None else {"detector-20261125-1": seen}
    d = decide(Inputs(name="p", namespace="ns", generation=1, spec=spec(), status=status, now=now,
                      clusters=world.clusters(), models=models))
    run = d.status.runs[0]
    assert (run.phase, run.reason, run.produced_model) == (phase, reason, produced)
    asked = [a.name for a in d.actions if isinstance(a, CreateModel)]
    assert asked == (["detector-20261125-1"] if phase == "Running" else [])
    assert [r for r, _ in d.finished] == ([] if phase == "Running" else [phase])


def test_a_refused_candidate_fails_only_its_own_run():
    # Two runs at once; the hub refuses the first one's candidate and takes the second's.
    the_spec = spec(concurrencyPolicy="Allow")
    world = World(GOOD, refuse_models={"detector-20261125-1": ("ModelRejected", "the hub refused MLModel "
                                                                                 "detector-20261125-1: denied")})
    status, _ = tick(world, DataPipelineStatus(), T0, the_spec, run_now="1")
    status, _ = tick(world, status, T0 + dt.timedelta(seconds=1), the_spec, run_now="2")
    ended, now, finished = [], T0 + dt.timedelta(seconds=2), []
    while status.phase == "Running":
        status, d = tick(world, status, now, the_spec)
        ended += [e for e in d.events if e[1] in ("RunSucceeded", "RunFailed")]
        finished += d.finished
        now += dt.timedelta(seconds=1)
    first, second = status.runs[1], status.runs[0]
    assert (first.phase, first.reason, first.produced_model) == ("Failed", "ModelRejected", None)
    assert first.message == "the hub refused MLModel detector-20261125-1: denied"
    assert (second.phase, second.produced_model) == ("Succeeded", "detector-20261125-2")
    assert sorted(e[1] + " " + e[2].split(":")[0] for e in ended) == [
        "RunFailed run p-1 failed", "RunSucceeded run p-2 succeeded in 7s; produced MLModel detector-20261125-2"]
    assert sorted(r for r, _ in finished) == ["Failed", "Succeeded"]


def test_a_model_name_taken_by_something_else_fails_the_run_with_model_conflict():
    world = World(GOOD, foreign_models={"detector-20261125-1"})
    status, _ = run_until(world, DataPipelineStatus(), T0, lambda s: s.phase != "Running", run_now="1")
    run = status.runs[0]
    assert status.phase == "Failed" and run.reason == "ModelConflict" and run.produced_model is None
    assert "was not made by this run" in run.message


def test_a_job_the_cluster_refuses_fails_its_step_on_the_next_tick():
    world = World(GOOD, refuse_jobs="jobs.batch is forbidden")
    status, d = tick(world, DataPipelineStatus(), T0, run_now="1")
    assert status.runs[0].steps[0].phase == "Running"       # asked for; the answer comes next tick
    status, d = tick(world, status, T0 + dt.timedelta(seconds=1))
    step, run = status.runs[0].steps[0], status.runs[0]
    assert (step.phase, step.reason) == ("Failed", "JobRejected")
    assert step.message == f"cluster line-1 refused Job {J('collect', 1)}: jobs.batch is forbidden"
    assert run.phase == "Failed" and run.reason == "JobRejected" and len(world.started) == 1


def test_removing_produces_while_a_run_waits_for_its_candidate_lets_it_succeed_without_one():
    world = World(GOOD, refuse_models={"detector-20261125-1": ("ModelRejected", "no")})
    status, now = _all_steps_done(world)
    world.refused.clear()
    status, _ = tick(world, status, now + dt.timedelta(seconds=1), spec(produces=None), generation=2)
    assert status.phase == "Succeeded" and status.runs[0].produced_model is None


# --- the small pure pieces -------------------------------------------------------------------

def test_job_names_are_deterministic_differ_per_namespace_and_fit_63_characters():
    name = job_name("team-a", "retrain", 12, "collect", 1)
    assert name.startswith("retrain-") and name.endswith("-12-collect-1")
    assert len(name) == len("retrain-12-collect-1") + 11
    assert name == job_name("team-a", "retrain", 12, "collect", 1)
    # Two tenants with the same pipeline name on one cluster, and the old `a-b/c` vs `a/b-c` shape.
    assert name != job_name("team-b", "retrain", 12, "collect", 1)
    assert job_name("a-b", "c", 1, "s", 1) != job_name("a", "b-c", 1, "s", 1)
    long = job_name("ns", "a" * 60, 123, "s" * 40, 10)
    assert len(long) <= 63 and long == job_name("ns", "a" * 60, 123, "s" * 40, 10)
    assert long != job_name("ns", "a" * 60, 123, "s" * 40, 11)
    assert long != job_name("ns", "a" * 60, 123, "s" * 39 + "t", 10)
    medium = job_name("ns", "p" * 55, 7, "train", 2)
    assert len(medium) == 63 and medium.endswith("-7-train-2")
    assert medium != job_name("ns", "p" * 54 + "q", 7, "train", 2)
    huge_run = job_name("ns", "p", 10 ** 12, "s" * 40, 99)
    assert len(huge_run) <= 63 and huge_run.endswith("-99")


def test_backoff_doubles_per_failure():
    step = Step(name="s", image="x", backoff_seconds=10)
    assert [backoff_seconds(step, n) for n in (1, 2, 3, 4)] == [10, 20, 40, 80]
