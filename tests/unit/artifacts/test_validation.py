"""The controller's one call: fetch, verify, inspect; bounded, off the event loop, nothing kept."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

from edgeline.artifacts import validation
from edgeline.artifacts.validation import (
    ValidationOutcome,
    fetch_and_inspect,
    prepare_scratch,
    validate_artifact,
    validate_in_child,
)
from edgeline.settings import Settings
from tests.helpers.onnx_models import file_digest


@pytest.fixture
def settings(tmp_path, models) -> Settings:
    # The test servers are on loopback and the test models in a folder: both allowed explicitly.
    return Settings(artifact_dir=tmp_path / "scratch", artifact_max_bytes=2**20, artifact_read_timeout_s=0.3,
                    artifact_retry_backoff_s=0.01, validation_concurrency=2,
                    artifact_allowed_cidrs="127.0.0.1/32", artifact_file_roots=str(models))


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
def test_external_data_files_are_fetched_beside_the_model_and_verified(server, models, settings, scheme):
    uri = f"{server.url}/external.onnx" if scheme == "http" else (models / "external.onnx").as_uri()
    listed = {"weights.bin": file_digest(models / "weights.bin")}
    outcome = validate_artifact(uri, file_digest(models / "external.onnx"), settings=settings, external_data=listed)
    assert outcome.ok, outcome.message
    assert outcome.inspection.external_data and [f.path.name for f in outcome.external_files] == ["weights.bin"]
    assert outcome.external_files[0].sha256 == file_digest(models / "weights.bin")
    assert list(settings.artifact_dir.iterdir()) == []


def test_external_data_must_be_listed_with_its_digest_and_match_it(server, models, settings):
    uri = f"{server.url}/external.onnx"
    unlisted = validate_artifact(uri, file_digest(models / "external.onnx"), settings=settings, external_data={})
    assert unlisted.reason == "ExternalDataNotListed" and "weights.bin" in unlisted.message
    assert not unlisted.transient and unlisted.inspection is None
    wrong = validate_artifact(uri, file_digest(models / "external.onnx"), settings=settings,
                              external_data={"weights.bin": "sha256:" + "2" * 64})
    assert wrong.reason == "DigestMismatch" and "external data file weights.bin" in wrong.message
    assert list(settings.artifact_dir.iterdir()) == []
    # The operator's path (the child process) always demands the listing.
    assert validate_in_child(uri, None, settings=settings).reason == "ExternalDataNotListed"


def test_the_operator_fetches_under_its_policy(server, settings):
    strict = settings.model_copy(update={"artifact_allowed_cidrs": "", "artifact_file_roots": ""})
    assert validate_artifact(f"{server.url}/gemm.onnx", None, settings=strict).reason == "AddressNotAllowed"
    assert validate_artifact("file:///etc/hostname", None, settings=strict).reason == "SchemeDisabled"
    assert validate_artifact("file:///etc/hostname", None, settings=settings).reason == "PathNotAllowed"


def test_a_broken_scratch_folder_is_a_transient_storage_failure(server, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    broken = Settings(artifact_dir=tmp_path / "file", artifact_allowed_cidrs="127.0.0.1/32")
    outcome = validate_artifact(f"{server.url}/gemm.onnx", None, settings=broken)
    assert outcome.reason == "StorageFailed" and outcome.transient


def test_the_async_call_runs_in_threads_a_bounded_few_at_a_time(monkeypatch, settings):
    running, peak, lock = [0], [0], threading.Lock()
    loop_thread = threading.get_ident()

    def slow(uri, expected, *, settings, credentials=None, external_data=None):
        assert threading.get_ident() != loop_thread
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return ValidationOutcome()

    monkeypatch.setattr(validation, "validate_in_child", slow)

    async def many():
        return await asyncio.gather(*(fetch_and_inspect(f"mem://{i}", None, settings=settings) for i in range(6)))

    assert len(asyncio.run(many())) == 6 and peak[0] == settings.validation_concurrency
    assert len(asyncio.run(many())) == 6  # a second event loop gets its own semaphore


def test_the_async_call_validates_for_real(server, models, settings):
    outcome = asyncio.run(fetch_and_inspect(f"{server.url}/squeezenet.onnx", file_digest(models / "squeezenet.onnx"),
                                            settings=settings))
    assert outcome.ok and outcome.inspection.initializer_count == 52


def test_each_model_is_validated_in_a_child_process_with_the_same_verdicts(server, models, settings):
    good = validate_in_child(f"{server.url}/gemm.onnx", file_digest(models / "gemm.onnx"), settings=settings)
    assert good.ok and good.inspection.to_status() == validate_artifact(
        f"{server.url}/gemm.onnx", None, settings=settings).inspection.to_status()
    assert good.fetch.sha256 == file_digest(models / "gemm.onnx") and good.inspection.default_opset() == 17
    bad = validate_in_child(f"{server.url}/gemm.onnx", "sha256:" + "1" * 64, settings=settings)
    assert (bad.reason, bad.transient) == ("DigestMismatch", False) and "1" * 64 in bad.message
    stalled = validate_in_child(f"{server.url}/stall", None, settings=settings)
    assert (stalled.reason, stalled.transient) == ("FetchTimeout", True)
    assert list(settings.artifact_dir.iterdir()) == []


def test_a_model_that_exhausts_the_child_s_memory_is_refused_not_retried(server, models, settings):
    """The checker parses a model whose few MiB expand to far more in memory; the child, limited
    in address space, dies instead of the operator, and nothing is left in the scratch folder."""
    limited = settings.model_copy(update={"validation_memory_bytes": _baseline() + 160 * 2**20,
                                          "artifact_max_bytes": 8 * 2**20})
    outcome = validate_in_child(f"{server.url}/memory-bomb.onnx", None, settings=limited)
    assert outcome.reason == "ValidationResourceExhausted" and not outcome.transient, outcome.message
    assert "EDGELINE_VALIDATION_MEMORY_BYTES" in outcome.message
    assert list(settings.artifact_dir.iterdir()) == []
    # The same limit is plenty for a real model.
    assert validate_in_child(f"{server.url}/squeezenet.onnx", None, settings=limited).ok


def test_a_child_that_overruns_its_deadline_is_stopped(server, settings):
    slow = settings.model_copy(update={"validation_deadline_s": 1.0, "artifact_read_timeout_s": 30})
    started = time.monotonic()
    outcome = validate_in_child(f"{server.url}/stall", None, settings=slow)
    assert outcome.reason == "ValidationResourceExhausted" and "longer than 1s" in outcome.message
    assert time.monotonic() - started < 10
    assert list(settings.artifact_dir.iterdir()) == []


def test_the_scratch_folder_is_cleaned_at_start_and_its_size_checked(settings):
    settings.artifact_dir.mkdir(parents=True)
    (settings.artifact_dir / "validate-abc123").mkdir()
    (settings.artifact_dir / "validate-abc123" / "model.onnx").write_bytes(b"left by a killed validation")
    (settings.artifact_dir / "not-ours.txt").write_text("kept")
    report = prepare_scratch(settings)
    assert report.removed == 1 and [p.name for p in settings.artifact_dir.iterdir()] == ["not-ours.txt"]
    assert report.needed_bytes == 2 * 2**20 and report.sufficient
    huge = settings.model_copy(update={"artifact_max_bytes": 2**60})
    assert not prepare_scratch(huge).sufficient


def _baseline() -> int:
    """Address space of a child that has imported what validation imports (measured, not guessed)."""
    import subprocess
    import sys

    code = ("import edgeline.artifacts.validation, onnx, numpy;"
            "print([l for l in open('/proc/self/status') if l.startswith('VmPeak')][0].split()[1])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return int(out) * 1024


def test_the_child_does_not_inherit_the_operator_s_environment(monkeypatch):
    monkeypatch.setenv("KUBECONFIG", "/operator/hub.kubeconfig")
    monkeypatch.setenv("EDGELINE_ALERTS_TOKEN", "secret")
    env = validation._child_environment()
    assert "KUBECONFIG" not in env and not any(key.startswith("EDGELINE_") for key in env)
    assert env["PATH"] == os.environ["PATH"]
