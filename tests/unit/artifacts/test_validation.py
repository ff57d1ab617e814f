"""The controller's one call: fetch, verify, inspect; bounded, off the event loop, nothing kept."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from edgeline.artifacts import validation
from edgeline.artifacts.validation import ValidationOutcome, fetch_and_inspect, validate_artifact
from edgeline.settings import Settings
from tests.helpers.onnx_models import file_digest


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(artifact_dir=tmp_path / "scratch", artifact_max_bytes=2**20, artifact_read_timeout_s=0.3,
                    artifact_retry_backoff_s=0.01, validation_concurrency=2)


def test_a_good_model_is_verified_and_inspected_and_nothing_stays(server, models, settings):
    outcome = validate_artifact(f"{server.url}/gemm.onnx", file_digest(models / "gemm.onnx"), settings=settings)
    assert outcome.ok and outcome.reason is None and not outcome.transient
    assert outcome.fetch.sha256 == file_digest(models / "gemm.onnx")
    assert outcome.inspection.to_status()["inputs"][0]["shape"] == ["batch", "3"]
    assert list(settings.artifact_dir.iterdir()) == []


@pytest.mark.parametrize("path, digest, reason, transient, fetched", [
    ("gemm.onnx", "sha256:" + "1" * 64, "DigestMismatch", False, False),
    ("not-onnx.onnx", None, "NotOnnx", False, True),
    ("status/404", None, "NotFound", False, False),
    ("stall", None, "FetchTimeout", True, False),
    ("big.onnx", None, "TooLarge", False, False),
])
def test_each_bad_artifact_has_its_reason(server, settings, path, digest, reason, transient, fetched):
    outcome = validate_artifact(f"{server.url}/{path}", digest, settings=settings)
    assert (outcome.reason, outcome.transient) == (reason, transient)
    assert (outcome.fetch is not None) == fetched and outcome.inspection is None
    assert list(settings.artifact_dir.iterdir()) == []


def test_the_opset_is_left_to_the_requirement_checks(server, settings):
    outcome = validate_artifact(f"{server.url}/opset21.onnx", None, settings=settings)
    assert outcome.ok and outcome.inspection.default_opset() == 21


@pytest.mark.parametrize("scheme", ["http", "file"])
def test_external_data_files_are_fetched_beside_the_model(server, models, settings, scheme):
    uri = f"{server.url}/external.onnx" if scheme == "http" else (models / "external.onnx").as_uri()
    outcome = validate_artifact(uri, file_digest(models / "external.onnx"), settings=settings)
    assert outcome.ok, outcome.message
    assert outcome.inspection.external_data and [f.path.name for f in outcome.external_files] == ["weights.bin"]
    assert outcome.external_files[0].sha256 == file_digest(models / "weights.bin")
    assert list(settings.artifact_dir.iterdir()) == []


def test_a_broken_scratch_folder_is_a_transient_storage_failure(server, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    outcome = validate_artifact(f"{server.url}/gemm.onnx", None, settings=Settings(artifact_dir=tmp_path / "file"))
    assert outcome.reason == "StorageFailed" and outcome.transient


def test_the_async_call_runs_in_threads_a_bounded_few_at_a_time(monkeypatch, settings):
    running, peak, lock = [0], [0], threading.Lock()
    loop_thread = threading.get_ident()

    def slow(uri, expected, *, settings, credentials=None):
        assert threading.get_ident() != loop_thread
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return ValidationOutcome()

    monkeypatch.setattr(validation, "validate_artifact", slow)

    async def many():
        return await asyncio.gather(*(fetch_and_inspect(f"mem://{i}", None, settings=settings) for i in range(6)))

    assert len(asyncio.run(many())) == 6 and peak[0] == settings.validation_concurrency
    assert len(asyncio.run(many())) == 6  # a second event loop gets its own semaphore


def test_the_async_call_validates_for_real(server, models, settings):
    outcome = asyncio.run(fetch_and_inspect(f"{server.url}/squeezenet.onnx", file_digest(models / "squeezenet.onnx"),
                                            settings=settings))
    assert outcome.ok and outcome.inspection.initializer_count == 52
