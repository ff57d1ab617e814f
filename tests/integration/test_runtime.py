"""An edge Deployment runs `edgeline runtime serve`: it serves a model only once its bytes are
proven, answers the Open Inference Protocol with the numbers onnxruntime computes, and shows a
bad model version in its readiness, its answers and its metrics.

Each test starts the real command as a subprocess against real ONNX files served over loopback
HTTP by the test artifact server; no Kubernetes cluster is needed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import onnx_models, runtime_models
from tests.helpers.artifact_server import ArtifactServer
from tests.helpers.runtime_models import MODEL_NAME, images, infer_body, run_directly
from tests.helpers.runtime_process import RuntimeProcess
from tests.helpers.waiting import wait_for

IDENTITY = {"deployment": "line-3-detector", "namespace": "factory-a", "cluster": "edge-munich"}


# -- plumbing: the artifact server and the runtime process -------------------------------------

@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """Good, bad and broken versions of the defect detector, and golden samples, over HTTP."""
    root = tmp_path_factory.mktemp("runtime-artifacts")
    for version in ("1.0.0", "2.0.0"):
        shutil.copy(runtime_models.sample_model(version), root / f"{MODEL_NAME}-{version}.onnx")
    onnx_models.write(runtime_models.broken_defect_detector("3.0.0"), root / f"{MODEL_NAME}-3.0.0.onnx")
    runtime_models.write_json(runtime_models.golden_sample(root / f"{MODEL_NAME}-1.0.0.onnx"),
                              root / "golden-1.0.0.json")
    with ArtifactServer(root) as server:
        yield server, root


@pytest.fixture
def start_runtime(artifacts, tmp_path):
    """start_runtime("2.0.0", sha256=..., golden=..., path=...): a runtime serving that file of the
    artifact server; identity labels come from the environment, like in a Deployment."""
    server, root = artifacts
    started: list[RuntimeProcess] = []

    def start(version: str = "1.0.0", *, sha256: str | None = None, path: str | None = None,
              golden: Path | None = None, extra_env: dict | None = None) -> RuntimeProcess:
        file_name = f"{MODEL_NAME}-{version}.onnx"
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGELINE_")}
        env.update({"EDGELINE_DEPLOYMENT": IDENTITY["deployment"], "EDGELINE_NAMESPACE": IDENTITY["namespace"],
                    "EDGELINE_CLUSTER": IDENTITY["cluster"], "EDGELINE_MODEL_DIR": str(tmp_path / "models"),
                    "EDGELINE_MODEL_SHA256": sha256 or onnx_models.file_digest(root / file_name),
                    **(extra_env or {})})
        args = ["--model-uri", f"{server.url}/{path or file_name}", "--model-name", MODEL_NAME,
                "--model-version", version, "--host", "127.0.0.1", "--port", "0"]
        if golden:
            args += ["--golden-sample", str(golden)]
        runtime = RuntimeProcess(args, env)
        started.append(runtime)
        return runtime

    yield start
    for runtime in started:
        assert runtime.stop() == 0, f"the runtime did not stop cleanly:\n{runtime.log_text()}"
        runtime.events()  # every line the runtime wrote is one JSON event (onnxruntime's own log stays quiet)
        assert runtime.names()[-2:] == ["stopping", "stopped"], runtime.log_text()


def ready(runtime: RuntimeProcess) -> bool:
    return runtime.get("/v2/health/ready")[0] == 200


def wait_ready(runtime: RuntimeProcess) -> None:
    wait_for(lambda: ready(runtime) or runtime.event("not_ready"), timeout=60, what="the runtime to be ready")
    assert ready(runtime), runtime.log_text()


def wait_not_ready(runtime: RuntimeProcess) -> dict:
    outcome = wait_for(lambda: runtime.event("not_ready") or runtime.event("ready"), timeout=60,
                       what="the runtime to give up on the model")
    assert outcome["event"] == "not_ready", f"it became ready:\n{runtime.log_text()}"
    return outcome


def labels(**extra) -> frozenset:
    return frozenset({"model": MODEL_NAME, **IDENTITY, **extra}.items())


# -- the stories -------------------------------------------------------------------------------

def test_it_becomes_ready_only_after_the_model_is_fetched_and_verified(start_runtime, artifacts):
    # Given an artifact server that fails the first download (the fetcher retries after a pause)
    server, _ = artifacts
    runtime = start_runtime("1.0.0", path=f"flaky/{MODEL_NAME}-1.0.0.onnx")
    # Then it is live but not ready while it fetches
    assert runtime.get("/v2/health/live") == (200, {"live": True})
    status, body = runtime.get("/v2/health/ready")
    assert (status, body["ready"], body["reason"]) == (503, False, "Fetching")
    assert runtime.infer(infer_body(images()))[0] == 503
    assert runtime.metrics()[("edgeline_runtime_ready", labels(version="1.0.0"))] == 0
    # When the second download succeeds, then it becomes ready, and only after verifying the digest
    wait_ready(runtime)
    assert server.hits[f"/flaky/{MODEL_NAME}-1.0.0.onnx"] == 2
    names = runtime.names()
    assert names.index("listening") < names.index("model_verified") < names.index("model_loaded") \
        < names.index("ready")
    assert runtime.event("model_verified")["digest"] == onnx_models.file_digest(runtime_models.sample_model("1.0.0"))
    assert runtime.get(f"/v2/models/{MODEL_NAME}/ready") == (200, {"name": MODEL_NAME, "ready": True})


def test_infer_returns_what_onnxruntime_computes(start_runtime):
    runtime = start_runtime("2.0.0")
    wait_ready(runtime)
    frames = images(batch=3, seed=11)
    expected = run_directly(runtime_models.sample_model("2.0.0"), frames)

    status, body = runtime.infer(infer_body(frames, request_id="frame-42"))
    assert status == 200, body
    assert (body["model_name"], body["model_version"], body["id"]) == (MODEL_NAME, "2.0.0", "frame-42")
    [output] = body["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("probabilities", "FP32", [3, 2])
    np.testing.assert_allclose(np.array(output["data"], np.float32).reshape(3, 2), expected, rtol=1e-6, atol=0)
    # and the versioned path, nested data and an explicit output list answer the same
    nested = infer_body(frames, outputs=["probabilities"])
    nested["inputs"][0]["data"] = frames.tolist()
    status, versioned = runtime.infer(nested, version="2.0.0")
    assert status == 200 and versioned["outputs"][0]["data"] == output["data"]
    # a different version's numbers really differ, so the comparison above is not vacuous
    assert not np.allclose(run_directly(runtime_models.sample_model("1.0.0"), frames), expected, atol=1e-5, rtol=0)


def test_metadata_describes_the_server_and_the_model(start_runtime):
    runtime = start_runtime("1.0.0")
    wait_ready(runtime)
    status, server = runtime.get("/v2")
    assert status == 200 and server["name"] == "edgeline-runtime" and "version" in server
    status, model = runtime.get(f"/v2/models/{MODEL_NAME}")
    assert status == 200
    assert model == {
        "name": MODEL_NAME, "versions": ["1.0.0"], "platform": "onnx",
        "inputs": [{"name": "image", "datatype": "FP32", "shape": [-1, 3, 64, 64]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}],
    }
    assert runtime.get(f"/v2/models/{MODEL_NAME}/versions/1.0.0") == (200, model)
    for path in ("/v2/models/other", f"/v2/models/{MODEL_NAME}/versions/9.9.9", "/v2/models/other/ready"):
        status, body = runtime.get(path)
        assert status == 404 and "this runtime serves" in body["error"], (path, body)
    status, body = runtime.infer(infer_body(images()), version="9.9.9")
    assert status == 404 and "no version '9.9.9'" in body["error"]


def test_bad_requests_get_400_with_a_reason_and_are_counted(start_runtime):
    runtime = start_runtime("1.0.0")
    wait_ready(runtime)
    good = infer_body(images())

    def variant(**changes):
        body = json.loads(json.dumps(good))
        body["inputs"][0].update(changes)
        return body

    cases = [
        (b"{not json", "not JSON"),
        ({"inputs": []}, "non-empty list"),
        (variant(datatype="FP64"), "is FP64, but the model expects FP32"),
        (variant(shape=[1, 3, 32, 32]), "has shape [1, 3, 32, 32], but the model expects [-1, 3, 64, 64]"),
        (variant(data=[0.5] * 10), "needs 12288 elements, `data` has 10"),
        (variant(data=["a"] * 12288), "FP32 data must be JSON numbers"),
        (variant(name="frame"), "no input 'frame'"),
        ({**good, "outputs": [{"name": "logits"}]}, "no output(s) 'logits'"),
    ]
    for body, message in cases:
        status, answer = runtime.infer(body)
        assert status == 400 and message in answer["error"], (message, answer)
    metrics = runtime.metrics()
    assert metrics[("edgeline_runtime_requests_total", labels(version="1.0.0", code="400"))] == len(cases)
    assert metrics[("edgeline_runtime_request_errors_total", labels(version="1.0.0", code="400"))] == len(cases)
    assert [e["code"] for e in runtime.wait_events("infer_rejected", len(cases))] == [400] * len(cases)


def test_metrics_count_requests_under_the_runtimes_identity(start_runtime):
    runtime = start_runtime("1.0.0")
    wait_ready(runtime)
    for seed in range(5):
        assert runtime.infer(infer_body(images(seed=seed)))[0] == 200
    assert runtime.get("/v2/models/other")[0] == 404  # metadata is not an inference request
    assert runtime.post("/v2/models/other/infer", infer_body(images()))[0] == 404

    metrics = runtime.metrics()
    version = {"version": "1.0.0"}
    assert metrics[("edgeline_runtime_requests_total", labels(**version, code="200"))] == 5
    assert metrics[("edgeline_runtime_requests_total", labels(**version, code="404"))] == 1
    assert metrics[("edgeline_runtime_request_errors_total", labels(**version, code="404"))] == 1
    assert ("edgeline_runtime_request_errors_total", labels(**version, code="200")) not in metrics
    assert metrics[("edgeline_runtime_inference_seconds_count", labels(**version))] == 5
    assert metrics[("edgeline_runtime_inference_seconds_sum", labels(**version))] > 0
    digest = onnx_models.file_digest(runtime_models.sample_model("1.0.0"))
    assert metrics[("edgeline_runtime_model_info", labels(**version, digest=digest))] == 1
    assert metrics[("edgeline_runtime_ready", labels(**version))] == 1


def test_a_model_with_the_wrong_digest_is_never_served(start_runtime, artifacts, tmp_path):
    # Given the 2.0.0 file where the manifest promises 1.0.0's digest
    server, _ = artifacts
    path = f"/{MODEL_NAME}-2.0.0.onnx"
    before = server.hits[path]
    promised = onnx_models.file_digest(runtime_models.sample_model("1.0.0"))
    runtime = start_runtime("2.0.0", sha256=promised)
    # Then it gives up with a clear reason, and stays unready
    failure = wait_not_ready(runtime)
    assert failure["reason"] == "DigestMismatch" and promised in failure["message"], failure
    status, body = runtime.get("/v2/health/ready")
    assert (status, body["reason"]) == (503, "DigestMismatch")
    assert "model_loaded" not in runtime.names() and "ready" not in runtime.names()
    status, body = runtime.infer(infer_body(images()))
    assert status == 503 and "not ready" in body["error"]
    assert runtime.get(f"/v2/models/{MODEL_NAME}")[0] == 503
    metrics = runtime.metrics()
    assert metrics[("edgeline_runtime_ready", labels(version="2.0.0"))] == 0
    assert not [key for key in metrics if key[0] == "edgeline_runtime_model_info"]
    assert not list((tmp_path / "models").rglob("*.onnx")), "the unverified bytes were kept"
    # It does not change its mind later: a digest mismatch is final (fetched once, never again), and
    # over its whole life, stopped now, the runtime logged nothing after giving up but the request
    # it refused and its stop.
    assert server.hits[path] == before + 1
    assert runtime.stop() == 0
    names = runtime.names()
    assert names[names.index("not_ready") + 1:] == ["infer_failed", "stopping", "stopped"], runtime.log_text()


def test_a_broken_model_answers_500_and_its_errors_are_counted(start_runtime):
    # Given a version that passes the checker and loads, but cannot run
    runtime = start_runtime("3.0.0")
    wait_ready(runtime)
    for _ in range(3):
        status, body = runtime.infer(infer_body(images()))
        assert status == 500, body
        assert body["error"].startswith("inference failed:") and "Reshape" in body["error"], body
        assert "onnxruntime_src" not in body["error"]  # no source paths in the message
    metrics = runtime.metrics()
    assert metrics[("edgeline_runtime_requests_total", labels(version="3.0.0", code="500"))] == 3
    assert metrics[("edgeline_runtime_request_errors_total", labels(version="3.0.0", code="500"))] == 3
    assert metrics[("edgeline_runtime_inference_seconds_count", labels(version="3.0.0"))] == 0
    failed = runtime.wait_events("infer_failed", 3)
    assert [(e["level"], e["code"]) for e in failed] == [("error", 500)] * 3


def test_a_model_that_fails_its_golden_sample_never_becomes_ready(start_runtime, artifacts):
    _, root = artifacts
    golden = root / "golden-1.0.0.json"
    # The golden sample was taken from 1.0.0, and 1.0.0 passes it
    good = start_runtime("1.0.0", golden=golden)
    wait_ready(good)
    assert good.names().index("golden_sample_passed") < good.names().index("ready")
    # 2.0.0 has the right digest but other weights: its answers differ
    wrong = start_runtime("2.0.0", golden=golden)
    # 3.0.0 cannot run at all
    broken = start_runtime("3.0.0", golden=golden)
    for runtime, words in ((wrong, "differs from the golden sample"), (broken, "failed on the golden sample")):
        failure = wait_not_ready(runtime)
        assert failure["reason"] == "GoldenSampleFailed" and words in failure["message"], failure
        status, body = runtime.get("/v2/health/ready")
        assert (status, body["reason"]) == (503, "GoldenSampleFailed")
        assert "ready" not in runtime.names()
        assert runtime.infer(infer_body(images()))[0] == 503


def test_a_golden_sample_named_by_uri_and_digest_is_fetched_proven_and_checked(start_runtime, artifacts):
    server, root = artifacts
    golden = root / "golden-1.0.0.json"
    by_uri = {"EDGELINE_GOLDEN_SAMPLE_URI": f"{server.url}/golden-1.0.0.json",
              "EDGELINE_GOLDEN_SAMPLE_SHA256": onnx_models.file_digest(golden)}
    wait_ready(start_runtime("1.0.0", extra_env=by_uri))
    failure = wait_not_ready(start_runtime("2.0.0", extra_env=by_uri))
    assert failure["reason"] == "GoldenSampleFailed" and "differs from the golden sample" in failure["message"]
    # A golden sample whose bytes are not the ones named is not used: the runtime stays unready.
    forged = wait_not_ready(start_runtime("1.0.0", extra_env={**by_uri,
                                                               "EDGELINE_GOLDEN_SAMPLE_SHA256": "sha256:" + "0" * 64}))
    assert forged["reason"] == "GoldenSampleInvalid" and "golden sample" in forged["message"], forged


def test_sigterm_stops_it_cleanly_and_invalid_configuration_is_refused(start_runtime, artifacts, tmp_path):
    runtime = start_runtime("1.0.0")
    wait_ready(runtime)
    assert runtime.stop() == 0
    assert runtime.names()[-2:] == ["stopping", "stopped"]
    # SIGTERM also ends a runtime whose download has stalled, at once
    stalled = start_runtime("1.0.0", path="stall", extra_env={"EDGELINE_MODEL_DIR": str(tmp_path / "empty")})
    assert stalled.get("/v2/health/ready")[1]["reason"] == "Fetching"
    began = time.monotonic()
    assert stalled.stop() == 0 and time.monotonic() - began < 5
    # A digest that is not one is refused before anything is fetched
    server, _ = artifacts
    proc = subprocess.run([sys.executable, "-m", "edgeline", "runtime", "serve", "--model-uri",
                           f"{server.url}/{MODEL_NAME}-1.0.0.onnx", "--sha256", "md5:1234"],
                          capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if not k.startswith("EDGELINE_")})
    assert proc.returncode == 2 and "--sha256 (EDGELINE_MODEL_SHA256) must be sha256:<64 hex digits>" in proc.stderr


def test_a_restarted_runtime_reuses_only_a_copy_that_still_verifies(start_runtime, artifacts, tmp_path):
    server, _ = artifacts
    path = f"/{MODEL_NAME}-1.0.0.onnx"
    before = server.hits[path]
    first = start_runtime("1.0.0")
    wait_ready(first)
    assert first.stop() == 0 and first.event("model_verified")["reused"] is False
    # Given the container restarts with its model folder kept (an emptyDir lives as long as the Pod)
    again = start_runtime("1.0.0")
    wait_ready(again)
    assert again.event("model_verified")["reused"] is True and server.hits[path] == before + 1
    assert again.stop() == 0
    # When the kept copy was altered, then it is fetched afresh, never served
    [kept] = (tmp_path / "models").rglob("model.onnx")
    kept.write_bytes(kept.read_bytes()[:-1] + b"\0")
    tampered = start_runtime("1.0.0")
    wait_ready(tampered)
    assert tampered.event("model_verified")["reused"] is False and server.hits[path] == before + 2
