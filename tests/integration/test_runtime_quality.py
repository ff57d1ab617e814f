"""The edge runtime watches its own model's quality: with the reference profile the training step
recorded, it scores how far the recent inputs are from the training data, and when the camera
starts sending brighter frames the drift score on /metrics rises above the threshold at which
EdgelineModelDrift fires (read from manifests/monitoring/prometheus-rules.yaml). Without a profile,
or with one it cannot use, it says so instead of showing a score.

The real `edgeline runtime serve` as a subprocess, the real sample ONNX model and the profile over
loopback HTTP (the test artifact server), verified by sha256 like the model.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgeline.runtime.quality import build_profile
from tests.helpers import onnx_models, runtime_models
from tests.helpers.artifact_server import ArtifactServer
from tests.helpers.runtime_models import MODEL_NAME, images, infer_body, run_directly
from tests.helpers.runtime_process import RuntimeProcess
from tests.helpers.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "manifests" / "monitoring" / "prometheus-rules.yaml"
IDENTITY = {"model": MODEL_NAME, "version": "1.0.0", "deployment": "defect-detector", "namespace": "factory",
            "cluster": "hamburg-line-1"}
WINDOW = 20


def alert_threshold(kind: str) -> float:
    """The threshold EdgelineModelDrift uses for that kind of score, from the shipped rules."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rule = next(r for g in groups for r in g["rules"] if r.get("alert") == "EdgelineModelDrift")
    return float(re.search(rf'kind="{kind}"\}} > ([0-9.]+)', rule["expr"]).group(1))


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """The defect detector 1.0.0 and the reference profile of its training frames, over HTTP."""
    root = tmp_path_factory.mktemp("quality-artifacts")
    model = root / f"{MODEL_NAME}-1.0.0.onnx"
    shutil.copy(runtime_models.sample_model("1.0.0"), model)
    training = images(batch=300, seed=11)
    answers = run_directly(model, training)
    profile = build_profile(training, top_scores=answers.max(axis=1), output="probabilities", input="image",
                            pipeline="defect-retraining")
    runtime_models.write_json(profile, root / "profile.json")
    with ArtifactServer(root) as server:
        yield server, root


@pytest.fixture
def start_runtime(artifacts, tmp_path):
    server, root = artifacts
    started: list[RuntimeProcess] = []

    def start(**profile_env: str) -> RuntimeProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGELINE_")}
        env.update({"EDGELINE_DEPLOYMENT": IDENTITY["deployment"], "EDGELINE_NAMESPACE": IDENTITY["namespace"],
                    "EDGELINE_CLUSTER": IDENTITY["cluster"], "EDGELINE_MODEL_DIR": str(tmp_path / "models"),
                    "EDGELINE_MODEL_SHA256": onnx_models.file_digest(root / f"{MODEL_NAME}-1.0.0.onnx"),
                    "EDGELINE_DRIFT_WINDOW": str(WINDOW), **profile_env})
        runtime = RuntimeProcess(["--model-uri", f"{server.url}/{MODEL_NAME}-1.0.0.onnx", "--model-name", MODEL_NAME,
                                  "--model-version", "1.0.0", "--host", "127.0.0.1", "--port", "0"], env)
        started.append(runtime)
        wait_for(lambda: runtime.get("/v2/health/ready")[0] == 200 or runtime.event("not_ready"), timeout=60,
                 what="the runtime to be ready")
        assert runtime.get("/v2/health/ready")[0] == 200, runtime.log_text()
        return runtime

    yield start
    for runtime in started:
        assert runtime.stop() == 0, runtime.log_text()


def series(runtime: RuntimeProcess, name: str, **labels: str) -> float | None:
    return runtime.metrics().get((name, frozenset({**IDENTITY, **labels}.items())))


def send(runtime: RuntimeProcess, count: int, *, seed: int, brighten: float = 0.0) -> None:
    """`count` requests of 2 frames; returns once /metrics shows all of them observed (the runtime
    computes the statistics of a request after answering it)."""
    before = series(runtime, "edgeline_runtime_top_score_count", output="probabilities") or 0
    for i in range(count):
        frames = images(batch=2, seed=seed + i)
        frames[:, 0] += brighten  # channel 0 (red) brighter, as when a lamp over the line is changed
        status, body = runtime.infer(infer_body(frames))
        assert status == 200, body
    wait_for(lambda: series(runtime, "edgeline_runtime_top_score_count", output="probabilities") == before + 2 * count,
             timeout=10, what=f"the statistics of {count} requests")


def test_shifted_inputs_raise_the_drift_score_above_the_alert_threshold(start_runtime, artifacts):
    server, root = artifacts
    runtime = start_runtime(EDGELINE_REFERENCE_PROFILE_URI=f"{server.url}/profile.json",
                            EDGELINE_REFERENCE_PROFILE_SHA256=onnx_models.file_digest(root / "profile.json"))
    loaded = runtime.event("reference_profile_loaded")
    assert loaded and loaded["pipeline"] == "defect-retraining" and loaded["channels"] == 3, runtime.log_text()
    assert series(runtime, "edgeline_runtime_drift_reference", state="loaded", pipeline="defect-retraining") == 1
    threshold = alert_threshold("input")

    # Given frames like the training data
    send(runtime, WINDOW, seed=1000)
    calm = series(runtime, "edgeline_runtime_drift_score", kind="input")
    assert calm is not None and calm < threshold / 4, calm
    assert series(runtime, "edgeline_runtime_drift_window_requests") == WINDOW
    assert series(runtime, "edgeline_runtime_input_channel_mean", input="image", channel="0") == pytest.approx(0.5, abs=0.02)
    # and the answers counted: every row once in the top-score histogram and once as a class
    assert series(runtime, "edgeline_runtime_top_score_count", output="probabilities") == 2 * WINDOW
    classes = [series(runtime, "edgeline_runtime_predicted_class_total", output="probabilities", **{"class": c})
               for c in ("0", "1")]
    assert sum(classes) == 2 * WINDOW
    assert series(runtime, "edgeline_runtime_drift_score", kind="prediction") < alert_threshold("prediction")

    # When the red channel of every frame is 0.6 brighter (about two reference stds)
    send(runtime, WINDOW, seed=2000, brighten=0.6)

    # Then the input drift score is above the threshold of EdgelineModelDrift
    drifted = series(runtime, "edgeline_runtime_drift_score", kind="input")
    assert drifted > threshold, (calm, drifted)
    assert drifted == pytest.approx(0.6 / 0.2887, rel=0.1)
    assert series(runtime, "edgeline_runtime_input_channel_mean", input="image", channel="0") == pytest.approx(1.1, abs=0.02)
    assert series(runtime, "edgeline_runtime_input_channel_mean", input="image", channel="1") == pytest.approx(0.5, abs=0.02)

    # And when the lamp is fixed, the window forgets the shifted frames
    send(runtime, WINDOW, seed=3000)
    assert series(runtime, "edgeline_runtime_drift_score", kind="input") < threshold / 4


def test_without_a_usable_profile_it_says_so_and_serves(start_runtime, artifacts):
    server, root = artifacts
    # No profile configured: statistics, but no score
    plain = start_runtime()
    send(plain, 3, seed=1)
    assert series(plain, "edgeline_runtime_drift_reference", state="missing", pipeline="") == 1
    assert series(plain, "edgeline_runtime_input_channel_mean", input="image", channel="2") is not None
    assert not [key for key in plain.metrics() if key[0] == "edgeline_runtime_drift_score"]

    # A profile whose bytes are not the ones recorded: not used, the model is still served
    wrong = start_runtime(EDGELINE_REFERENCE_PROFILE_URI=f"{server.url}/profile.json",
                          EDGELINE_REFERENCE_PROFILE_SHA256="sha256:" + "0" * 64)
    invalid = wrong.event("reference_profile_invalid")
    assert invalid and invalid["reason"] == "DigestMismatch", wrong.log_text()
    assert series(wrong, "edgeline_runtime_drift_reference", state="invalid", pipeline="") == 1
    send(wrong, 1, seed=1)
    assert not [key for key in wrong.metrics() if key[0] == "edgeline_runtime_drift_score"]


def test_drift_reaches_alertmanager_as_an_alert_for_the_retraining_pipeline(start_runtime, artifacts, tmp_path):
    """The whole signal path with the shipped rules: the real runtime scraped by a real Prometheus,
    EdgelineModelDrift through a real Alertmanager to a webhook; the payload routes to the sample's
    DataPipeline (factory/defect-retraining) and to no EdgeDeployment's rollback."""
    from edgeline.controllers.alerts import _Payload, alert_annotations, pipeline_of
    from edgeline.devenv.monitoring import Monitoring, MonitoringError, ScrapeTarget, Webhook, find_binaries
    from edgeline.domain.rollback import target_of
    from tests.integration.test_monitoring import WebhookReceiver

    try:
        binaries = find_binaries()
    except MonitoringError as e:
        pytest.fail(str(e))  # never a skip: dev/install-monitoring.sh installs them
    server, root = artifacts
    runtime = start_runtime(EDGELINE_REFERENCE_PROFILE_URI=f"{server.url}/profile.json",
                            EDGELINE_REFERENCE_PROFILE_SHA256=onnx_models.file_digest(root / "profile.json"))
    address = runtime.url.removeprefix("http://")
    with WebhookReceiver() as webhook, Monitoring(tmp_path / "monitoring", binaries=binaries,
                                                  targets=[ScrapeTarget(address, {})], rule_files=[RULES],
                                                  webhook=Webhook(webhook.url, bearer_token="t0ken")) as monitoring:
        # Given Prometheus sees the runtime's score, low, with the pipeline of its profile
        send(runtime, WINDOW, seed=1000)
        calm = wait_for(lambda: monitoring.query('edgeline_deployment:runtime_drift_score:max{kind="input"}'),
                        timeout=30, what="the drift recording rule")
        assert calm[0].labels["edgeline_pipeline"] == "defect-retraining" and calm[0].value < 1
        # When the frames drift
        send(runtime, WINDOW, seed=2000, brighten=0.6)
        # Then, after the rule's 1m of `for`, the webhook receives EdgelineModelDrift
        deliveries = wait_for(lambda: webhook.firing("EdgelineModelDrift"), timeout=150,
                              what="EdgelineModelDrift at the webhook")
    payload = _Payload.model_validate(deliveries[0].body)
    alert = next(a for a in payload.alerts if a.labels["alertname"] == "EdgelineModelDrift")
    assert {k: alert.labels.get(k) for k in ("edgeline_pipeline", "namespace", "deployment", "kind", "severity")} == {
        "edgeline_pipeline": "defect-retraining", "namespace": "factory", "deployment": "defect-detector",
        "kind": "input", "severity": "warning"}
    # The operator's receiver would put it on the sample DataPipeline, which starts a run on it,
    # and on no EdgeDeployment.
    sample = yaml.safe_load((ROOT / "manifests" / "samples" / "40-datapipelines.yaml").read_text())
    assert "EdgelineModelDrift" in sample["spec"]["triggers"]["alerts"]
    assert list(alert_annotations(payload, 0.0, pipeline_of)) == [
        (sample["metadata"]["namespace"], sample["metadata"]["name"])]
    assert target_of(alert.labels) is None and alert_annotations(payload, 0.0) == {}


def test_a_training_step_writes_the_profile_with_the_module(tmp_path):
    """`python -m edgeline.runtime.quality` on training frames and the real model: a profile the
    runtime accepts for that model, and the digest to put beside its URI."""
    import subprocess
    import sys

    from edgeline.runtime.loader import load_model
    from edgeline.runtime.quality import check_profile, parse_profile

    np.save(tmp_path / "frames.npy", images(batch=100, seed=5))
    model = runtime_models.sample_model("1.0.0")
    done = subprocess.run([sys.executable, "-m", "edgeline.runtime.quality", "--inputs", str(tmp_path / "frames.npy"),
                           "--model", str(model), "--pipeline", "defect-retraining", "--batch", "32",
                           "--out", str(tmp_path / "profile.json")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == onnx_models.file_digest(tmp_path / "profile.json")
    loaded = load_model(model, "sha256:" + "0" * 64, "CPUExecutionProvider")
    profile = check_profile(parse_profile((tmp_path / "profile.json").read_bytes()), loaded.inputs, loaded.outputs)
    assert profile.input == "image" and profile.pipeline == "defect-retraining" and profile.channels == 3
    assert profile.top_score.output == "probabilities" and sum(profile.top_score.fractions) == pytest.approx(1)
