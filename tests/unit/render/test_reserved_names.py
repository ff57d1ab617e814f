"""Names Edgeline reserves are Edgeline's in what the renderers produce, also for specs stored
before admission refused them (issue 15, item 4): the runtime's EDGELINE_* variables come from
the operator's ConfigMap only, and a step's Pod carries no edgeline.io/* annotation of the user's."""

import pytest

from edgeline.api.datapipeline import Step
from edgeline.api.edgedeployment import RevisionRef, Runtime
from edgeline.api.reserved import reserved_env, reserved_key
from edgeline.render.jobs import Owner, render_job
from edgeline.render.runtime import Target, render
from edgeline.runtime.config import RuntimeConfig

DIGEST = "sha256:" + "e" * 64
# What an editor could store before the admission rule existed (or with the rule bypassed).
HOSTILE = Runtime(env=[
    {"name": "EDGELINE_MODEL_URI", "value": "https://evil.example/unvalidated.onnx"},
    {"name": "EDGELINE_MODEL_SHA256", "value": "sha256:" + "0" * 64},
    {"name": "edgeline_namespace", "value": "other-tenant"},
    {"name": "EDGELINE_DEPLOYMENT", "value": "their-line"},
    {"name": "EDGELINE_CLUSTER", "value": "someone-else"},
    {"name": "EDGELINE_INFERENCE_THREADS", "value": "4"},
    {"name": "LOG_LEVEL", "value": "debug"},
])
REV = RevisionRef(revision="abc1234567", mlmodel="detector-2.0.0", model="defect-detector", version="2.0.0",
                  digest=DIGEST, uri="https://models.example/d.onnx", runtime=HOSTILE)


def _effective_env(objects: list[dict]) -> dict[str, str]:
    """The runtime container's environment as the kubelet builds it: envFrom first, env wins."""
    by_kind = {o["kind"]: o for o in objects}
    container = by_kind["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"configMapRef": {"name": by_kind["ConfigMap"]["metadata"]["name"]}}]
    env = dict(by_kind["ConfigMap"]["data"])
    env.update({e["name"]: e["value"] for e in container["env"]})
    return env


def test_runtime_env_cannot_override_what_the_operator_tells_the_runtime(monkeypatch):
    env = _effective_env(render("factory", "detector", REV, Target("brno", "edgeline-assembly")))
    assert env["EDGELINE_MODEL_URI"] == "https://models.example/d.onnx"
    assert env["EDGELINE_MODEL_SHA256"] == DIGEST
    assert (env["EDGELINE_DEPLOYMENT"], env["EDGELINE_NAMESPACE"], env["EDGELINE_CLUSTER"]) == \
        ("detector", "factory", "brno")
    assert "edgeline_namespace" not in env
    # The tuning knob and the user's own variable still reach the runtime.
    assert env["EDGELINE_INFERENCE_THREADS"] == "4" and env["LOG_LEVEL"] == "debug"
    # And the runtime reads the operator's values: the identity it exports as metric labels.
    for key in [k for k in __import__("os").environ if k.upper().startswith("EDGELINE_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    config = RuntimeConfig()
    assert (config.model_uri, config.model_sha256) == ("https://models.example/d.onnx", DIGEST)
    assert (config.deployment, config.namespace, config.cluster) == ("detector", "factory", "brno")
    assert config.inference_threads == 4


def test_the_runtime_objects_carry_only_edgeline_s_labels():
    for obj in render("factory", "detector", REV, Target("brno", "ns")):
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "edgeline"
        assert (labels["edgeline.io/deployment"], labels["edgeline.io/deployment-namespace"],
                labels["edgeline.io/revision"]) == ("detector", "factory", "abc1234567")


def test_a_step_pod_never_carries_the_user_s_edgeline_keys_and_keeps_edgeline_s_labels():
    step = Step.model_validate({"name": "train", "image": "trainer:1", "podAnnotations": {
        "edgeline.io/pipeline-run": "forged", "alerts.operator.edgeline.io/x": "forged",
        "app.kubernetes.io/managed-by": "me", "kwok.edgeline.io/exit-code": "0"}})
    job = render_job(Owner("factory", "retrain", "uid-1"), "run-7", step, 1, "retrain-train-1", "ns", False)
    template = job["spec"]["template"]["metadata"]
    assert template["annotations"] == {"kwok.edgeline.io/exit-code": "0"}
    assert template["labels"]["edgeline.io/pipeline"] == "retrain"
    assert template["labels"]["app.kubernetes.io/managed-by"] == "edgeline"
    assert job["metadata"]["annotations"] == {"edgeline.io/pipeline-run": "run-7"}
    only_reserved = step.model_copy(update={"pod_annotations": {"edgeline.io/step": "x"}})
    job = render_job(Owner("factory", "retrain", "uid-1"), "run-7", only_reserved, 1, "j", "ns", False)
    assert "annotations" not in job["spec"]["template"]["metadata"]


@pytest.mark.parametrize("name, reserved", [
    ("EDGELINE_MODEL_URI", True), ("EDGELINE_NAMESPACE", True), ("edgeline_model_uri", True),
    ("Edgeline_Cluster", True), ("EDGELINE_SOMETHING_NEW", True), ("EDGELINE_", True),
    ("EDGELINE_INFERENCE_THREADS", False), ("EDGELINE_INTRA_OP_THREADS", False),
    ("EDGELINE_MAX_REQUEST_BYTES", False), ("EDGELINE_SHUTDOWN_GRACE_S", False),
    ("edgeline_inference_threads", True),   # allowed names are exact
    ("MY_EDGELINE_URI", False), ("EDGELINEX", False), ("LOG_LEVEL", False),
])
def test_which_environment_variables_are_reserved(name, reserved):
    assert reserved_env(name) is reserved


@pytest.mark.parametrize("key, reserved", [
    ("edgeline.io/pipeline-run", True), ("Edgeline.IO/x", True), ("alerts.operator.edgeline.io/a", True),
    ("app.kubernetes.io/managed-by", True), ("app.kubernetes.io/name", False),
    ("operator.edgeline.io/x", True), ("edgeline.io", False), ("notedgeline.io/x", False),
    ("edgeline.io.example.com/x", False), ("notoperator.edgeline.io/x", False),
    ("kwok.edgeline.io/exit-code", False),   # the dev environment's kwok stages: set by tests in podAnnotations
    ("kwok.x-k8s.io/outcome", False), ("prometheus.io/scrape", False), ("team", False),
])
def test_which_label_and_annotation_keys_are_reserved(key, reserved):
    assert reserved_key(key) is reserved


def test_a_candidate_model_s_labels_name_its_real_pipeline_and_run_whatever_the_template_says():
    from edgeline.api.datapipeline import MLModelTemplate, Run
    from edgeline.domain.candidates import candidate_model

    template = MLModelTemplate(from_step="train", model="detector", labels={
        "team": "vision", "edgeline.io/pipeline": "someone-else", "edgeline.io/run": "someone-else-1"})
    run = Run(name="p-3", number=3, trigger="Manual", phase="Running", started_at="2026-11-25T10:00:00Z")
    model, problem = candidate_model("p", run, template, {"uri": "https://m/x.onnx", "sha256": "e" * 64})
    assert problem is None
    assert model.labels == {"team": "vision", "edgeline.io/pipeline": "p", "edgeline.io/run": "p-3"}
