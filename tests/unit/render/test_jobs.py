"""The Job for one attempt of one DataPipeline step: same inputs, same Job; owned on the hub,
labelled for its owner everywhere; only what the step sets appears."""

import pytest

from edgeline.api.datapipeline import Step
from edgeline.render.jobs import Owner, owner_labels, render_job

OWNER = Owner(namespace="factory", name="retrain", uid="uid-1")
MINIMAL = Step(name="train", image="trainer:1")
FULL = Step.model_validate({
    "name": "collect", "image": "collector:2", "command": ["python", "-m", "collect"], "args": ["--days", "7"],
    "env": [{"name": "LINE", "value": "3"}], "resources": {"requests": {"cpu": "500m"}, "limits": {}},
    "nodeSelector": {"kubernetes.io/arch": "arm64"}, "timeoutSeconds": 600,
    "podAnnotations": {"kwok.x-k8s.io/outcome": "Succeeded"}})


def _job(step=MINIMAL, attempt=1, on_hub=False):
    return render_job(OWNER, "run-7", step, attempt, f"retrain-{step.name}-{attempt}", "ns-line", on_hub)


def test_the_job_is_a_pure_function_of_its_inputs():
    assert _job(FULL) == _job(FULL)


def test_every_attempt_is_labelled_with_its_owner_run_step_and_attempt():
    job = _job(attempt=3)
    labels = job["metadata"]["labels"]
    assert labels == {"app.kubernetes.io/managed-by": "edgeline", "app.kubernetes.io/name": "edgeline-pipeline-step",
                      **owner_labels(OWNER), "edgeline.io/run": "run-7", "edgeline.io/step": "train",
                      "edgeline.io/attempt": "3"}
    assert owner_labels(OWNER) == {"edgeline.io/pipeline-namespace": "factory", "edgeline.io/pipeline": "retrain",
                                   "edgeline.io/pipeline-uid": "uid-1"}
    assert job["spec"]["template"]["metadata"]["labels"] == labels
    assert (job["metadata"]["name"], job["metadata"]["namespace"]) == ("retrain-train-3", "ns-line")
    assert job["metadata"]["annotations"] == {"edgeline.io/pipeline-run": "run-7"}


@pytest.mark.parametrize("on_hub, owned", [(True, True), (False, False)])
def test_only_on_the_hub_does_the_pipeline_own_its_jobs(on_hub, owned):
    refs = _job(on_hub=on_hub)["metadata"].get("ownerReferences")
    if owned:
        assert refs == [{"apiVersion": "edgeline.io/v1alpha1", "kind": "DataPipeline", "name": "retrain",
                         "uid": "uid-1", "blockOwnerDeletion": False}]
    else:
        assert refs is None      # ownerReferences cannot point across clusters


def test_the_operator_counts_attempts_itself_and_each_attempt_has_its_deadline():
    spec = _job(FULL)["spec"]
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] == 600
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert _job()["spec"]["activeDeadlineSeconds"] == 3600      # the step's default


def test_a_minimal_step_gets_only_the_image_the_fallback_message_and_the_restricted_profile():
    pod = _job()["spec"]["template"]
    assert pod["spec"]["containers"] == [{
        "name": "step", "image": "trainer:1", "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                            "capabilities": {"drop": ["ALL"]}}}]
    assert pod["spec"]["securityContext"] == {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                                              "seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert "nodeSelector" not in pod["spec"] and "annotations" not in pod["metadata"]


def test_what_the_step_sets_reaches_its_container_and_pod():
    pod = _job(FULL)["spec"]["template"]
    [container] = pod["spec"]["containers"]
    assert container["command"] == ["python", "-m", "collect"] and container["args"] == ["--days", "7"]
    assert container["env"] == [{"name": "LINE", "value": "3"}]
    assert container["resources"] == {"requests": {"cpu": "500m"}}          # empty limits are left out
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/arch": "arm64"}
    assert pod["metadata"]["annotations"] == {"kwok.x-k8s.io/outcome": "Succeeded"}


def test_empty_resources_are_left_out():
    step = Step.model_validate({"name": "s", "image": "i", "resources": {"requests": {}, "limits": {}}})
    assert "resources" not in _job(step)["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("level, container, pod", [
    ("baseline", {}, {"seccompProfile": {"type": "RuntimeDefault"}}),
    ("privileged", {"privileged": True}, None),
])
def test_a_step_asking_for_more_than_restricted_gets_that_level(level, container, pod):
    step = Step(name="s", image="i", pod_security=level)
    spec = _job(step)["spec"]["template"]["spec"]
    assert spec["containers"][0]["securityContext"] == container
    assert spec.get("securityContext") == pod
