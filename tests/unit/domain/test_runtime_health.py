"""Why a runtime is not ready, from its containers; and what the rollout does with it: an
image that cannot be pulled or a model the runtime refuses fails the wave at once, a crash
loop is reported with its restarts and last log line."""

import datetime as dt
import json

import pytest

from edgeline.api.edgedeployment import EdgeDeploymentSpec, EdgeDeploymentStatus, RevisionRef, Runtime
from edgeline.domain.rollout import Inputs, Observation, decide
from edgeline.domain.runtime_health import ContainerFacts, RuntimeProblem, classify, last_log_line, needs_log
from edgeline.domain.waves import WavePlan

NOW = dt.datetime(2026, 11, 30, 1, 0, tzinfo=dt.timezone.utc)
IMAGE = "127.0.0.1:5000/edgeline/edge-runtime:0.1.0-abc"


def record(event, **fields):
    return json.dumps({"time": "2026-11-30T01:00:00.000Z", "level": "info", "event": event, "model": "m", **fields})


DIGEST_TAIL = "\n".join([
    record("listening", host="0.0.0.0", port=8080),
    record("not_ready", level="error", reason="DigestMismatch",
           message="the artifact's sha256 is sha256:aaa, expected sha256:bbb"),
])
RETRY_TAIL = record("fetch_retry", reason="FetchFailed", message="connection refused", retry_in_s=4)
READY_TAIL = "\n".join([RETRY_TAIL, record("model_verified"), record("ready")])
TRACEBACK = "Traceback (most recent call last):\n  File \"x.py\", line 1\nModuleNotFoundError: No module named 'onnx'\n"

CASES = [
    # (what, containers, expected reason, fatal, message contains)
    ("nothing wrong", [ContainerFacts("p", "r1", IMAGE, ready=True)], None, False, None),
    ("no Pods yet", [], None, False, None),
    ("image not found", [ContainerFacts("p", "r1", IMAGE, waiting_reason="ErrImagePull",
                                        waiting_message="failed to pull and unpack image: not found")],
     "ImagePullFailed", True, f"the image {IMAGE} cannot be pulled"),
    ("pull back-off", [ContainerFacts("p", "r1", IMAGE, waiting_reason="ImagePullBackOff",
                                      waiting_message=f'Back-off pulling image "{IMAGE}"')],
     "ImagePullFailed", True, "ImagePullBackOff"),
    ("invalid image name", [ContainerFacts("p", "r1", "UPPER/case", waiting_reason="InvalidImageName")],
     "ImagePullFailed", True, "UPPER/case"),
    ("never pull", [ContainerFacts("p", "r1", IMAGE, waiting_reason="ErrImageNeverPull")],
     "ImagePullFailed", True, "ErrImageNeverPull"),
    ("crash loop with a traceback", [ContainerFacts("p", "r1", IMAGE, restarts=4, waiting_reason="CrashLoopBackOff",
                                                    last_exit_code=1, last_reason="Error", last_message=TRACEBACK)],
     "CrashLoopBackOff", False, "4 restart(s), last exit code 1; last log line: ModuleNotFoundError"),
    ("crashed, running again", [ContainerFacts("p", "r1", IMAGE, restarts=1, running_since=NOW,
                                               last_exit_code=137, last_reason="OOMKilled")],
     "CrashLoopBackOff", False, "exit code 137 (OOMKilled); it left no log"),
    ("restarted cleanly and ready", [ContainerFacts("p", "r1", IMAGE, ready=True, restarts=2, last_exit_code=1)],
     None, False, None),
    ("digest mismatch", [ContainerFacts("p", "r1", IMAGE, running_since=NOW, log_tail=DIGEST_TAIL)],
     "ModelRejected", True, "DigestMismatch: the artifact's sha256 is sha256:aaa, expected sha256:bbb"),
    ("fetch retrying", [ContainerFacts("p", "r1", IMAGE, running_since=NOW, log_tail=RETRY_TAIL)],
     "ModelFetchRetrying", False, "FetchFailed: connection refused"),
    ("retried, then ready", [ContainerFacts("p", "r1", IMAGE, running_since=NOW, log_tail=READY_TAIL)],
     None, False, None),
    ("log that is not the runtime's", [ContainerFacts("p", "r1", IMAGE, running_since=NOW, log_tail="hello\n")],
     None, False, None),
    ("missing ConfigMap", [ContainerFacts("p", "r1", IMAGE, waiting_reason="CreateContainerConfigError",
                                          waiting_message='configmap "x" not found')],
     "ContainerNotStarted", False, 'configmap "x" not found'),
    ("no node fits", [ContainerFacts("p", "r1", IMAGE, unschedulable="0/2 nodes are available: 2 Insufficient cpu")],
     "Unschedulable", False, "Insufficient cpu"),
    ("the old revision's Pods do not count", [ContainerFacts("old", "r0", IMAGE, waiting_reason="ImagePullBackOff"),
                                               ContainerFacts("new", "r1", IMAGE, ready=True)], None, False, None),
    ("golden sample mismatch", [ContainerFacts("p", "r1", IMAGE, running_since=NOW, log_tail="\n".join([
        record("model_loaded"), record("not_ready", level="error", reason="GoldenSampleFailed",
                                       message="output 'probabilities' differs from the golden sample in 2 of 2 "
                                               "values (largest difference 0.4; tolerance absolute 1e-05, "
                                               "relative 0.0001)")]))],
     "GoldenSampleMismatch", True, "does not reproduce its golden sample: output 'probabilities' differs from the "
                                   "golden sample in 2 of 2 values (largest difference 0.4"),
    ("golden sample unusable", [ContainerFacts("p", "r1", IMAGE, running_since=NOW, log_tail=record(
        "not_ready", level="error", reason="GoldenSampleInvalid", message="the golden sample cannot be used: "
                                                                          "DigestMismatch: ..."))],
     "GoldenSampleInvalid", True, "cannot check its golden sample: the golden sample cannot be used"),
    ("an image problem outranks a crash", [
        ContainerFacts("a", "r1", IMAGE, restarts=3, waiting_reason="CrashLoopBackOff", last_exit_code=1),
        ContainerFacts("b", "r1", IMAGE, waiting_reason="ErrImagePull")], "ImagePullFailed", True, "b" and IMAGE),
]


@pytest.mark.parametrize("what,containers,reason,fatal,says", CASES, ids=[c[0] for c in CASES])
def test_classify(what, containers, reason, fatal, says):
    problem = classify(containers, "r1")
    if reason is None:
        assert problem is None
        return
    assert problem.reason == reason and problem.fatal is fatal
    assert says in problem.message, problem.message


def test_a_crash_loop_reports_restarts_and_the_last_log_line_and_the_pod():
    problem = classify([ContainerFacts("runtime-7f", "r1", IMAGE, restarts=5, waiting_reason="CrashLoopBackOff",
                                       last_exit_code=3, last_message=record("listen_failed", level="error",
                                                                             error="Address in use"))], "r1")
    assert (problem.pod, problem.restarts) == ("runtime-7f", 5)
    assert problem.last_log == "listen_failed: Address in use"


@pytest.mark.parametrize("text,line", [
    (None, None), ("", None), ("\n \n", None),
    ("one\ntwo\n\n", "two"),
    ("x" * 2000, "x" * 511 + "…"),
    (record("not_ready", reason="NotOnnx", message="not an ONNX file"), "not_ready: NotOnnx: not an ONNX file"),
    ("{not json", "{not json"),
])
def test_last_log_line(text, line):
    assert last_log_line(text) == line


@pytest.mark.parametrize("container,wanted", [
    (ContainerFacts("p", running_since=NOW - dt.timedelta(seconds=10)), True),
    (ContainerFacts("p", running_since=NOW - dt.timedelta(seconds=1)), False),   # still starting
    (ContainerFacts("p", ready=True, running_since=NOW - dt.timedelta(seconds=60)), False),
    (ContainerFacts("p", waiting_reason="ImagePullBackOff"), False),             # nothing runs: no log
])
def test_a_log_is_read_only_from_a_container_that_runs_unready_for_a_while(container, wanted):
    assert needs_log(container, NOW) is wanted


# --- what the rollout does with it -----------------------------------------------------------

SPEC = EdgeDeploymentSpec.model_validate({
    "modelRef": {"name": "m-1"}, "placement": {"clusterSelector": {"matchLabels": {"site": "x"}}},
    "approval": {"required": False}, "rollout": {"waveTimeoutSeconds": 600}})
REV = RevisionRef(revision="r1", mlmodel="m-1", version="1", digest="sha256:1", runtime=Runtime())
WAVES = [WavePlan("pilot", ("a",), 0), WavePlan("rest", ("b",), 0)]
PULL = RuntimeProblem("ImagePullFailed", f"the image {IMAGE} cannot be pulled (ErrImagePull: not found)", "p-1",
                      fatal=True)
CRASH = RuntimeProblem("CrashLoopBackOff", "the runtime container keeps exiting: 3 restart(s)", "p-2", restarts=3,
                       last_log="boom")


def _tick(status, now, problems, spec=SPEC):
    observations = {n: Observation(n, reachable=True, exists=status.rollout is not None, revision="r1",
                                   replicas=1, ready=n not in problems, ready_replicas=int(n not in problems),
                                   problem=problems.get(n)) for n in ("a", "b")}
    decision = decide(Inputs(spec=spec, status=status, desired=REV, waves=WAVES, excluded=[],
                             observations=observations, stale_after={}, approved=True, paused=False,
                             rollback_to=None, now=now))
    return EdgeDeploymentStatus.model_validate(decision.status.dump()), decision


def test_an_image_that_cannot_be_pulled_fails_the_wave_at_once_with_the_image_named():
    status, _ = _tick(EdgeDeploymentStatus(), NOW, {"a": PULL})
    status, decision = _tick(status, NOW + dt.timedelta(seconds=2), {"a": PULL})
    assert status.phase == "Degraded" and status.rollout.failed_clusters == ["a"]
    assert status.rollout.failed_message.startswith("wave pilot failed: a: ImagePullFailed: the image")
    assert IMAGE in status.rollout.failed_message
    assert ("Warning", "WaveFailed", status.rollout.failed_message) in decision.events
    state = {c.name: c for c in status.clusters}["a"]
    assert (state.phase, state.reason, state.pod) == ("Failed", "ImagePullFailed", "p-1")
    assert state.message == PULL.message
    # The Pods keep trying: once the image arrives, the wave goes on.
    status, _ = _tick(status, NOW + dt.timedelta(seconds=30), {})
    assert status.rollout.failed_message is None and status.phase == "Healthy"
    assert {c.name: c for c in status.clusters}["a"].reason is None


def test_max_unavailable_tolerates_a_hopeless_cluster():
    spec = SPEC.model_copy(deep=True)
    spec.rollout.max_unavailable = 1
    status, _ = _tick(EdgeDeploymentStatus(), NOW, {"a": PULL}, spec)
    status, _ = _tick(status, NOW + dt.timedelta(seconds=2), {"a": PULL}, spec)
    assert status.rollout.failed_message is None


def test_a_crash_loop_is_reported_per_cluster_and_waits_for_the_deadline():
    status, _ = _tick(EdgeDeploymentStatus(), NOW, {"a": CRASH})
    status, _ = _tick(status, NOW + dt.timedelta(seconds=60), {"a": CRASH})
    assert status.phase == "Progressing" and status.rollout.failed_message is None
    state = {c.name: c for c in status.clusters}["a"]
    assert (state.reason, state.restarts, state.last_log) == ("CrashLoopBackOff", 3, "boom")
    status, _ = _tick(status, NOW + dt.timedelta(seconds=601), {"a": CRASH})
    assert status.phase == "Degraded"
    assert "a: CrashLoopBackOff: the runtime container keeps exiting" in status.rollout.failed_message


def test_a_refused_model_reports_the_runtimes_record_as_its_last_log_line():
    problem = classify([ContainerFacts("p", "r1", IMAGE, running_since=NOW, log_tail=DIGEST_TAIL)], "r1")
    assert problem.last_log == ("not_ready: DigestMismatch: the artifact's sha256 is sha256:aaa, "
                                "expected sha256:bbb")
