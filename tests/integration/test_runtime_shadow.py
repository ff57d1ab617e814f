"""A candidate in shadow never changes what the runtime serves: with a candidate that fails every
inference, one that is correct but slow, and one whose bytes do not match their digest, every
request is answered by the served model exactly as it answers alone; the candidate's trouble shows
only in its own metrics (failed, dropped, state Failed) and log lines.

The real `edgeline runtime serve` as a subprocess, real ONNX models over loopback HTTP, verified
by sha256 like the served model."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from tests.helpers import onnx_models, runtime_models
from tests.helpers.artifact_server import ArtifactServer
from tests.helpers.runtime_models import MODEL_NAME, images, infer_body, run_directly
from tests.helpers.runtime_process import RuntimeProcess
from tests.helpers.waiting import wait_for

IDENTITY = {"model": MODEL_NAME, "version": "1.0.0", "deployment": "defect-detector", "namespace": "factory",
            "cluster": "hamburg-line-1"}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("shadow-artifacts")
    shutil.copy(runtime_models.sample_model("1.0.0"), root / "good.onnx")
    shutil.copy(runtime_models.sample_model("2.0.0"), root / "other.onnx")
    onnx_models.write(runtime_models.broken_defect_detector("2.0.0"), root / "broken.onnx")
    onnx_models.write(runtime_models.slow_defect_detector("2.0.0"), root / "slow.onnx")
    with ArtifactServer(root) as server:
        yield server, root


@pytest.fixture
def start_runtime(artifacts, tmp_path):
    server, root = artifacts
    started: list[RuntimeProcess] = []

    def start(candidate: str, digest: str | None = None, **extra: str) -> RuntimeProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGELINE_")}
        env.update({"EDGELINE_DEPLOYMENT": IDENTITY["deployment"], "EDGELINE_NAMESPACE": IDENTITY["namespace"],
                    "EDGELINE_CLUSTER": IDENTITY["cluster"], "EDGELINE_MODEL_DIR": str(tmp_path / "models"),
                    "EDGELINE_MODEL_SHA256": onnx_models.file_digest(root / "good.onnx"),
                    "EDGELINE_SHADOW_MODEL_URI": f"{server.url}/{candidate}",
                    "EDGELINE_SHADOW_MODEL_SHA256": digest or onnx_models.file_digest(root / candidate),
                    "EDGELINE_SHADOW_MODEL_VERSION": "2.0.0", "EDGELINE_SHADOW_QUEUE": "2", **extra})
        runtime = RuntimeProcess(["--model-uri", f"{server.url}/good.onnx", "--model-name", MODEL_NAME,
                                  "--model-version", "1.0.0", "--host", "127.0.0.1", "--port", "0"], env)
        started.append(runtime)
        wait_for(lambda: runtime.event("shadow_ready") or runtime.event("shadow_failed") or runtime.event("not_ready"),
                 timeout=60, what="the runtime ready and its shadow candidate loaded or failed")
        assert runtime.get("/v2/health/ready")[0] == 200, runtime.log_text()
        return runtime

    yield start
    for runtime in started:
        assert runtime.stop() == 0, runtime.log_text()


def shadow_count(runtime: RuntimeProcess, outcome: str) -> float:
    labels = {**IDENTITY, "shadow_version": "2.0.0", "role": "shadow", "outcome": outcome}
    return runtime.metrics().get(("edgeline_runtime_shadow_requests_total", frozenset(labels.items())), 0.0)


def served_exactly(runtime: RuntimeProcess, root, count: int) -> None:
    """`count` requests, each answered 200 by 1.0.0 with exactly the outputs 1.0.0 gives alone."""
    for i in range(count):
        frames = images(batch=2, seed=100 + i)
        status, body = runtime.infer(infer_body(frames))
        assert status == 200, body
        assert body["model_version"] == "1.0.0"
        output = next(o for o in body["outputs"] if o["name"] == "probabilities")
        np.testing.assert_allclose(np.array(output["data"]).reshape(2, -1), run_directly(root / "good.onnx", frames),
                                   rtol=1e-5, atol=1e-6)


def test_a_candidate_that_fails_every_inference_changes_no_answer(start_runtime, artifacts):
    _, root = artifacts
    runtime = start_runtime("broken.onnx")
    assert runtime.event("shadow_ready"), runtime.log_text()
    served_exactly(runtime, root, 30)
    wait_for(lambda: shadow_count(runtime, "failed") + shadow_count(runtime, "dropped") == 30, timeout=30,
             what="every mirrored request failed or dropped")
    assert shadow_count(runtime, "failed") > 0 and shadow_count(runtime, "agree") == 0
    assert runtime.event("shadow_infer_failed")["error"]
    assert not runtime.event("infer_failed")


def test_a_slow_candidate_is_left_behind_not_waited_for(start_runtime, artifacts):
    _, root = artifacts
    # (4 MB of weights against the served 1.4 kB: allowed here, refused by default, below)
    runtime = start_runtime("slow.onnx", EDGELINE_SHADOW_MAX_SIZE_RATIO="10000")
    assert runtime.event("shadow_ready"), runtime.log_text()
    served_exactly(runtime, root, 30)
    # The candidate could not keep up: requests were dropped from the shadow, and the ones it did
    # answer agree (it gives 1.0.0's answers, slowly).
    wait_for(lambda: shadow_count(runtime, "agree") + shadow_count(runtime, "dropped") == 30, timeout=60,
             what="every mirrored request compared or dropped")
    assert shadow_count(runtime, "dropped") > 0 and shadow_count(runtime, "agree") > 0
    assert shadow_count(runtime, "disagree") == 0


def test_a_candidate_with_the_wrong_digest_is_not_loaded_and_the_model_serves(start_runtime, artifacts):
    _, root = artifacts
    runtime = start_runtime("other.onnx", digest="sha256:" + "0" * 64)
    failed = runtime.event("shadow_failed")
    assert failed and failed["reason"] == "DigestMismatch", runtime.log_text()
    labels = {**IDENTITY, "shadow_version": "2.0.0", "role": "shadow", "state": "Failed"}
    assert runtime.metrics()[("edgeline_runtime_shadow_ready", frozenset(labels.items()))] == 1
    served_exactly(runtime, root, 5)
    assert shadow_count(runtime, "agree") == 0 and shadow_count(runtime, "dropped") == 0


def test_a_candidate_much_larger_than_the_served_model_is_not_loaded_beside_it(start_runtime, artifacts):
    _, root = artifacts
    runtime = start_runtime("slow.onnx")
    failed = runtime.event("shadow_failed")
    assert failed and failed["reason"] == "CandidateTooLarge" and "EDGELINE_SHADOW_MAX_SIZE_RATIO" in failed["message"]
    served_exactly(runtime, root, 3)
