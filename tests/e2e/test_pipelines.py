"""A DataPipeline runs its steps as Jobs where the data is (an edge cluster) and where the
training happens (the hub), in dependency order, passes outputs from step to step, and
hands a candidate MLModel to validation. kwok finishes the Job Pods: a step's Pod
annotations decide its exit code and termination message (dev/kwok/stages.yaml)."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid

import pytest
import yaml

from edgeline import timestamps

from tests.e2e.conftest import ALERTS_TOKEN, ROOT, register_edge_cluster, wait_for
from tests.helpers.artifact_server import serve

MODELS = ROOT / "manifests" / "samples" / "models"
DIGEST = {d["spec"]["version"]: d["spec"]["artifact"]["sha256"] for d in yaml.safe_load_all(
    (ROOT / "manifests" / "samples" / "20-mlmodels.yaml").read_text())}["2.0.0"]


@pytest.fixture(scope="module")
def model_url():
    with serve(MODELS) as url:
        yield url


@pytest.fixture
def line(hub, edge_a, operator, namespace):
    """An EdgeCluster on edge-a, where the collection step runs (in namespace ns-<name>)."""
    name = "line-" + uuid.uuid4().hex[:6]
    register_edge_cluster(hub, name, edge_a, {"edgeline.io/site": "hamburg"})
    hub.kubectl("wait", f"edgecluster/{name}", "--for=condition=Ready", "--timeout=60s")
    yield name
    # Pipelines go first, while their cluster is still registered to delete their Jobs on.
    hub.kubectl("delete", "datapipelines", "--all", "-n", namespace, "--timeout=60s", check=False)
    hub.kubectl("delete", "edgecluster", name, "--wait=false", check=False)


@pytest.fixture
def lost_line(hub, operator):
    """An EdgeCluster whose kubeconfig Secret does not exist."""
    name = "lost-" + uuid.uuid4().hex[:6]
    hub.apply({"apiVersion": "edgeline.io/v1alpha1", "kind": "EdgeCluster", "metadata": {"name": name},
               "spec": {"tier": "edge", "targetNamespace": f"ns-{name}", "tenancy": {"namespaceSelector": {}},
                        "connection": {"kubeconfigSecretRef": {"name": f"{name}-kubeconfig"}}}})
    yield name
    hub.kubectl("delete", "edgecluster", name, "--wait=false", check=False)


def outcome(exit_code: int = 0, message: str | None = None, **outputs) -> dict:
    """Pod annotations that make kwok end the step's container this way: the exit code and
    a termination message (the outputs as JSON, or a text)."""
    annotations = {"kwok.edgeline.io/exit-code": str(exit_code)}
    if outputs or message:
        annotations["kwok.edgeline.io/termination-message"] = message or json.dumps(outputs)
    return annotations


def pipeline(namespace: str, steps: list[dict], name: str = "retrain", **spec) -> dict:
    return {"apiVersion": "edgeline.io/v1alpha1", "kind": "DataPipeline",
            "metadata": {"name": name, "namespace": namespace}, "spec": {"steps": steps, **spec}}


def status_of(hub, namespace: str, name: str = "retrain") -> dict:
    return hub.get("datapipeline", name, "-n", namespace).get("status") or {}


def wait_status(hub, namespace, check, what, name="retrain", timeout=60.0) -> dict:
    def reached():
        status = status_of(hub, namespace, name)
        return status if check(status) else None
    return wait_for(reached, timeout=timeout, what=f"{what} (last: {json.dumps(status_of(hub, namespace, name))[:2000]})")


def run_now(hub, namespace, value, name="retrain"):
    hub.kubectl("annotate", "--overwrite", "datapipeline", name, "-n", namespace, f"edgeline.io/run-now={value}")


def condition(status: dict, ctype: str) -> dict:
    return next(c for c in status.get("conditions", []) if c["type"] == ctype)


def jobs_of(cluster, namespace: str, pipeline_name: str = "retrain") -> dict[str, dict]:
    found = cluster.get("jobs", "-n", namespace, "-l", f"edgeline.io/pipeline={pipeline_name}")["items"]
    return {j["metadata"]["name"]: j for j in found}


def reasons(hub, namespace, name="retrain") -> list[str]:
    return [e["reason"] for e in hub.events(name, namespace)]


def test_a_run_collects_on_the_edge_trains_on_the_hub_and_its_candidate_model_becomes_ready(
        hub, edge_a, line, namespace, model_url, operator, capsys):
    steps = [
        {"name": "collect", "cluster": line, "image": "example/collector:1", "args": ["--camera=press-1"],
         "podAnnotations": outcome(dataset="s3://lake/line-1/2026-11-25")},
        {"name": "prepare", "image": "example/prepare:1", "dependsOn": ["collect"],
         "args": ["--input=$(steps.collect.outputs.dataset)"],
         "podAnnotations": outcome(dataset="s3://lake/prepared/2026-11-25")},
        {"name": "train", "image": "example/trainer:1", "dependsOn": ["prepare"],
         "env": [{"name": "DATASET", "value": "$(steps.prepare.outputs.dataset)"}],
         "podAnnotations": outcome(uri=f"{model_url}/defect-detector-2.0.0.onnx", sha256=DIGEST,
                                   **{"metric.precision": "0.975"})},
    ]
    hub.apply(pipeline(namespace, steps, produces={"fromStep": "train", "model": "defect-detector",
                                                   "maxOpset": 17}))
    idle = wait_status(hub, namespace, lambda s: s.get("phase") == "Idle", "the pipeline to be Idle")
    assert condition(idle, "Ready")["status"] == "True"
    assert condition(idle, "Ready")["message"].startswith("3 step(s) in order collect, prepare, train")

    started = time.monotonic()
    run_now(hub, namespace, "first")
    status = wait_status(hub, namespace, lambda s: s.get("phase") == "Succeeded", "the run to succeed")
    run = status["runs"][0]
    assert status["runCounter"] == 1 and status["lastRunRequest"] == "first"
    assert run["name"] == "retrain-1" and run["trigger"] == "Manual"
    steps_seen = {s["name"]: s for s in run["steps"]}
    assert all(s["phase"] == "Succeeded" and s["attempts"] == 1 for s in steps_seen.values())
    # In order: each step started once the one before it had finished.
    assert steps_seen["collect"]["finishedAt"] <= steps_seen["prepare"]["startedAt"]
    assert steps_seen["prepare"]["finishedAt"] <= steps_seen["train"]["startedAt"]
    assert steps_seen["collect"]["outputs"] == {"dataset": "s3://lake/line-1/2026-11-25"}

    # Collection ran on the edge cluster, preparation and training on the hub, with the outputs filled in.
    edge_jobs = jobs_of(edge_a, f"ns-{line}")
    assert list(edge_jobs) == ["retrain-1-collect-1"]
    hub_jobs = jobs_of(hub, namespace)
    assert sorted(hub_jobs) == ["retrain-1-prepare-1", "retrain-1-train-1"]
    prepare = hub_jobs["retrain-1-prepare-1"]["spec"]
    assert prepare["template"]["spec"]["containers"][0]["args"] == ["--input=s3://lake/line-1/2026-11-25"]
    assert prepare["backoffLimit"] == 0 and prepare["activeDeadlineSeconds"] == 3600
    train = hub_jobs["retrain-1-train-1"]["spec"]["template"]["spec"]["containers"][0]
    assert train["env"] == [{"name": "DATASET", "value": "s3://lake/prepared/2026-11-25"}]

    # The candidate MLModel is validated by the MLModel controller like any other.
    produced = run["producedModel"]
    hub.kubectl("wait", f"mlmodel/{produced}", "-n", namespace, "--for=condition=Ready", "--timeout=60s")
    ready_after = time.monotonic() - started
    model = hub.get("mlmodel", produced, "-n", namespace)
    assert model["spec"]["artifact"]["sha256"] == DIGEST and model["spec"]["stage"] == "staging"
    assert model["spec"]["metrics"] == {"precision": 0.975} and model["spec"]["requirements"] == {"maxOpset": 17}
    assert model["metadata"]["labels"]["edgeline.io/pipeline"] == "retrain"
    assert model["metadata"]["labels"]["edgeline.io/run"] == "retrain-1"
    assert model["metadata"]["ownerReferences"][0]["kind"] == "DataPipeline"
    assert model["status"]["artifact"]["digest"] == DIGEST
    assert {"RunStarted", "RunSucceeded"} <= set(reasons(hub, namespace))
    with urllib.request.urlopen(operator.metrics_url, timeout=5) as response:
        exposed = response.read().decode()
    assert 'edgeline_pipeline_runs_total{result="Succeeded"}' in exposed
    assert "edgeline_pipeline_run_duration_seconds_count" in exposed
    assert 'edgeline_member_cluster_requests_total{purpose="jobs"}' in exposed
    with capsys.disabled():
        print(f"\n  run-now -> candidate MLModel Ready: {ready_after:.1f}s")


def test_a_failing_step_is_retried_and_then_stops_the_run_with_its_reason(hub, namespace, operator):
    steps = [{"name": "extract", "image": "x", "retries": 1, "backoffSeconds": 1,
              "podAnnotations": outcome(3, "disk full")},
             {"name": "train", "image": "x", "dependsOn": ["extract"]}]
    hub.apply(pipeline(namespace, steps))
    run_now(hub, namespace, "1")
    status = wait_status(hub, namespace, lambda s: s.get("phase") == "Failed", "the run to fail")
    run = status["runs"][0]
    extract, train = run["steps"]
    assert extract["phase"] == "Failed" and extract["attempts"] == 2 and extract["job"] == "retrain-1-extract-2"
    assert run["reason"] == "JobFailed"
    assert run["message"] == "step extract: exit code 3: disk full after 2 attempts"
    assert train["phase"] == "Skipped" and not train.get("attempts")
    assert sorted(jobs_of(hub, namespace)) == ["retrain-1-extract-1", "retrain-1-extract-2"]
    running = condition(status, "Running")
    assert running["status"] == "False" and running["reason"] == "RunFailed"
    assert {"StepRetrying", "StepFailed", "RunFailed"} <= set(reasons(hub, namespace))


def test_a_cycle_of_three_steps_is_invalid_and_nothing_runs(hub, namespace, operator):
    steps = [{"name": "a", "image": "x", "dependsOn": ["c"]}, {"name": "b", "image": "x", "dependsOn": ["a"]},
             {"name": "c", "image": "x", "dependsOn": ["b"]}]
    hub.apply(pipeline(namespace, steps))
    run_now(hub, namespace, "1")
    status = wait_status(hub, namespace, lambda s: s.get("phase") == "Invalid", "phase Invalid")
    ready = condition(status, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "DependencyCycle"
    assert "a -> c -> b -> a" in ready["message"]
    wait_for(lambda: "RunNotStarted" in reasons(hub, namespace), what="a RunNotStarted Event")
    assert not status.get("runs") and not jobs_of(hub, namespace)


def test_a_step_whose_cluster_cannot_be_reached_waits_and_forbid_skips_new_runs(hub, namespace, lost_line):
    steps = [{"name": "collect", "cluster": lost_line, "image": "x", "timeoutSeconds": 600}]
    hub.apply(pipeline(namespace, steps))
    run_now(hub, namespace, "1")
    status = wait_status(hub, namespace, lambda s: (s.get("runs") or [{}])[0].get("steps", [{}])[0].get("phase")
                         == "Waiting", "the step to wait for its cluster")
    assert status["phase"] == "Running"
    running = condition(status, "Running")
    assert running["reason"] == "WaitingForCluster"
    assert "KubeconfigSecretNotFound" in running["message"] and f"{lost_line}-kubeconfig" in running["message"]

    run_now(hub, namespace, "2")
    wait_for(lambda: "RunSkipped" in reasons(hub, namespace), what="a RunSkipped Event")
    status = status_of(hub, namespace)
    assert status["runCounter"] == 1 and status["lastRunRequest"] == "2"

    # Replace stops the waiting run instead.
    hub.kubectl("patch", "datapipeline", "retrain", "-n", namespace, "--type=merge",
                "-p", '{"spec": {"concurrencyPolicy": "Replace"}}')
    run_now(hub, namespace, "3")
    status = wait_status(hub, namespace, lambda s: s.get("runCounter") == 2, "a second run")
    assert [r["phase"] for r in status["runs"]] == ["Running", "Cancelled"]
    assert status["runs"][1]["reason"] == "Replaced"


def test_on_unreachable_fail_fails_the_run_at_once(hub, namespace, lost_line):
    steps = [{"name": "collect", "cluster": lost_line, "image": "x"}]
    hub.apply(pipeline(namespace, steps, onUnreachable="Fail"))
    run_now(hub, namespace, "1")
    status = wait_status(hub, namespace, lambda s: s.get("phase") == "Failed", "the run to fail")
    run = status["runs"][0]
    assert run["reason"] == "ClusterUnreachable"
    assert "KubeconfigSecretNotFound" in run["message"] and "onUnreachable: Fail" in run["message"]


def test_an_alert_named_in_triggers_starts_a_run(hub, namespace, operator):
    hub.apply(pipeline(namespace, [{"name": "collect", "image": "x"}], triggers={"alerts": ["EdgelineModelDrift"]}))
    wait_status(hub, namespace, lambda s: s.get("phase") == "Idle", "Idle")
    labels = {"alertname": "EdgelineModelDrift", "namespace": namespace, "edgeline_pipeline": "retrain"}
    payload = {"version": "4", "status": "firing", "receiver": "edgeline", "groupLabels": {}, "commonLabels": labels,
               "alerts": [{"status": "firing", "labels": labels, "annotations": {},
                           "startsAt": "2026-11-25T10:00:00Z", "fingerprint": uuid.uuid4().hex[:16]}]}
    request = urllib.request.Request(operator.alerts_url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {ALERTS_TOKEN}"})
    with urllib.request.urlopen(request, timeout=10, context=operator.alerts_ssl()) as response:
        assert response.status == 200
    status = wait_status(hub, namespace, lambda s: s.get("phase") == "Succeeded", "the alert's run")
    assert status["runs"][0]["trigger"] == "Alert" and status["runCounter"] == 1
    annotations = hub.get("datapipeline", "retrain", "-n", namespace)["metadata"].get("annotations") or {}
    assert not [k for k in annotations if k.startswith("alerts.operator.edgeline.io/")]


def test_a_schedule_starts_runs_by_itself(hub, namespace, operator):
    hub.apply(pipeline(namespace, [{"name": "collect", "image": "x"}],
                       schedule={"cron": "* * * * *", "timeZone": "Europe/Berlin"}))
    status = wait_status(hub, namespace, lambda s: s.get("nextRunTime"), "nextRunTime")
    assert status["nextRunTime"].endswith(":00Z")
    status = wait_status(hub, namespace, lambda s: s.get("phase") == "Succeeded", "a scheduled run", timeout=80)
    assert status["runs"][0]["trigger"] == "Schedule"
    assert status["runs"][0]["startedAt"] >= status["runs"][0]["startedAt"][:17] + "00Z"
    assert status["nextRunTime"] > status["runs"][0]["startedAt"]


def test_jobs_of_runs_that_leave_the_history_are_deleted(hub, edge_a, line, namespace):
    steps = [{"name": "collect", "cluster": line, "image": "x"}, {"name": "prepare", "image": "x",
                                                                   "dependsOn": ["collect"]}]
    hub.apply(pipeline(namespace, steps, runHistoryLimit=1))
    for n in (1, 2):
        run_now(hub, namespace, str(n))
        wait_status(hub, namespace, lambda s: s.get("runCounter") == n and s.get("phase") == "Succeeded",
                    f"run {n} to succeed")
    status = wait_status(hub, namespace, lambda s: not s.get("cleanup"), "the cleanup to finish")
    assert [r["name"] for r in status["runs"]] == ["retrain-2"]
    assert sorted(jobs_of(edge_a, f"ns-{line}")) == ["retrain-2-collect-1"]
    wait_for(lambda: sorted(jobs_of(hub, namespace)) == ["retrain-2-prepare-1"], what="run 1's hub Job gone")
    # Deleting the pipeline deletes its Jobs on the edge too (on the hub it owns them).
    hub.kubectl("delete", "datapipeline", "retrain", "-n", namespace, "--timeout=30s")
    wait_for(lambda: not jobs_of(edge_a, f"ns-{line}"), what="the edge Jobs to be deleted with the pipeline")


def test_an_operator_killed_mid_run_loses_nothing_and_creates_no_job_twice(hub, edge_a, line, namespace, operator):
    steps = [{"name": "collect", "cluster": line, "image": "x", "podAnnotations": outcome(dataset="d")},
             {"name": "flaky", "image": "x", "dependsOn": ["collect"], "retries": 1, "backoffSeconds": 6,
              "args": ["$(steps.collect.outputs.dataset)"], "podAnnotations": outcome(1)}]
    hub.apply(pipeline(namespace, steps))
    run_now(hub, namespace, "1")
    # The first attempt of `flaky` failed and the second one waits for its backoff: kill now.
    wait_status(hub, namespace, lambda s: any(st.get("retryAt") for st in (s.get("runs") or [{}])[0].get("steps", [])),
                "the retry to be scheduled")
    operator.kill()
    time.sleep(2)
    operator.start()
    status = wait_status(hub, namespace, lambda s: s.get("phase") == "Failed", "the run to end")
    run = status["runs"][0]
    collect, flaky = run["steps"]
    assert status["runCounter"] == 1 and len(status["runs"]) == 1
    assert collect["attempts"] == 1 and flaky["attempts"] == 2
    assert list(jobs_of(edge_a, f"ns-{line}")) == ["retrain-1-collect-1"]
    assert sorted(jobs_of(hub, namespace)) == ["retrain-1-flaky-1", "retrain-1-flaky-2"]
    # The retry kept its backoff across the restart.
    second = jobs_of(hub, namespace)["retrain-1-flaky-2"]["metadata"]["creationTimestamp"]
    first = jobs_of(hub, namespace)["retrain-1-flaky-1"]["metadata"]["creationTimestamp"]
    assert _seconds(second) - _seconds(first) >= 6


def _seconds(stamp: str) -> float:
    return timestamps.parse(stamp).timestamp()


def test_the_sample_pipeline_is_reconciled_without_crashing(hub, operator, namespace):
    sample = yaml.safe_load((ROOT / "manifests" / "samples" / "40-datapipelines.yaml").read_text())
    sample["metadata"]["namespace"] = namespace
    hub.apply(sample)
    status = wait_status(hub, namespace, lambda s: s.get("phase") == "Idle", "the sample to be Idle",
                         name="defect-retraining")
    assert status["nextRunTime"] and condition(status, "Ready")["status"] == "True"
