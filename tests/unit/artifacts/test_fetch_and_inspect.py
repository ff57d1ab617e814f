"""Fetching over a real loopback HTTP server and from files, then inspecting real ONNX."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from edgeline.artifacts.fetch import ArtifactError, Limits, fetch_artifact, verify
from edgeline.artifacts.onnx_inspect import inspect_model
from edgeline.artifacts.validation import validate_artifact
from edgeline.settings import Settings
from tests.helpers import onnx_models
from tests.helpers.artifact_server import serve

LIMITS = Limits(max_bytes=10 * 2**20, connect_timeout_s=2, read_timeout_s=0.5, retries=3, max_redirects=3)


def _digest(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "srv"
    root.mkdir()
    onnx_models.write(onnx_models.gemm_relu(), root / "gemm.onnx")
    onnx_models.write(onnx_models.gemm_relu(opset=21), root / "new-opset.onnx")
    shutil.copy(onnx_models.shipped_model(), root / "squeezenet.onnx")
    (root / "not-onnx.onnx").write_bytes(b"this is a README, not a model\n" * 10)
    (root / "big.onnx").write_bytes(b"\0" * (LIMITS.max_bytes + 1))
    with serve(root) as url:
        yield url, root


def test_http_fetch_streams_hashes_and_verifies(served, tmp_path):
    url, root = served
    result = fetch_artifact(f"{url}/gemm.onnx", tmp_path / "out" / "m.onnx", LIMITS)
    assert result.sha256 == _digest(root / "gemm.onnx")
    assert result.size_bytes == (root / "gemm.onnx").stat().st_size
    verify(result, _digest(root / "gemm.onnx"))  # no error


def test_a_wrong_digest_names_both_digests_and_removes_the_file(served, tmp_path):
    url, root = served
    result = fetch_artifact(f"{url}/gemm.onnx", tmp_path / "m.onnx", LIMITS)
    with pytest.raises(ArtifactError) as err:
        verify(result, "sha256:" + "0" * 64)
    assert err.value.reason == "DigestMismatch"
    assert result.sha256 in err.value.message and "0" * 64 in err.value.message
    assert not result.path.exists()


@pytest.mark.parametrize("path, reason, transient", [
    ("status/404", "NotFound", False),
    ("status/503", "FetchFailed", True),
    ("stall", "FetchTimeout", True),
    ("truncated/gemm.onnx", "Truncated", True),
    ("redirect-loop", "TooManyRedirects", False),
    ("big.onnx", "TooLarge", False),
    ("private/gemm.onnx", "Unauthorized", False),
])
def test_http_failures_have_a_reason(served, tmp_path, path, reason, transient):
    url, _ = served
    with pytest.raises(ArtifactError) as err:
        fetch_artifact(f"{url}/{path}", tmp_path / "m.onnx", LIMITS)
    assert (err.value.reason, err.value.transient) == (reason, transient)
    assert not list(tmp_path.glob("*.part"))


def test_a_5xx_is_retried_and_redirects_are_followed(served, tmp_path):
    url, root = served
    assert fetch_artifact(f"{url}/flaky/gemm.onnx", tmp_path / "a.onnx", LIMITS).sha256 == _digest(root / "gemm.onnx")
    assert fetch_artifact(f"{url}/redirect/gemm.onnx", tmp_path / "b.onnx", LIMITS).size_bytes > 0


def test_bearer_credentials_open_a_private_artifact(served, tmp_path):
    url, _ = served
    assert fetch_artifact(f"{url}/private/gemm.onnx", tmp_path / "m.onnx", LIMITS,
                          {"token": "secret-token"}).size_bytes > 0


@pytest.mark.parametrize("uri, planned", [("s3://bucket/m.onnx", True), ("ftp://host/m.onnx", False)])
def test_unsupported_schemes_are_refused_clearly(tmp_path, uri, planned):
    with pytest.raises(ArtifactError) as err:
        fetch_artifact(uri, tmp_path / "m.onnx", LIMITS)
    assert err.value.reason == "UnsupportedScheme"
    assert ("planned" in err.value.message) == planned


def test_file_uris_work_and_a_missing_file_is_not_found(served, tmp_path):
    _, root = served
    result = fetch_artifact(f"file://{root / 'gemm.onnx'}", tmp_path / "m.onnx", LIMITS)
    assert result.sha256 == _digest(root / "gemm.onnx")
    with pytest.raises(ArtifactError, match="does not exist") as err:
        fetch_artifact(f"file://{root / 'nope.onnx'}", tmp_path / "n.onnx", LIMITS)
    assert err.value.reason == "NotFound"


def test_inspection_reports_io_opsets_and_parameters(served):
    _, root = served
    found = inspect_model(root / "gemm.onnx").to_status()
    assert found["inputs"] == [{"name": "x", "elemType": "FLOAT", "shape": ["batch", "3"]}]
    assert found["outputs"] == [{"name": "y", "elemType": "FLOAT", "shape": ["batch", "4"]}]
    assert found["opsetImports"] == [{"domain": "", "version": 17}]
    assert (found["initializerCount"], found["parameterCount"]) == (2, 16)


def test_a_model_a_package_ships_is_inspected(served):
    _, root = served
    found = inspect_model(root / "squeezenet.onnx").to_status()
    assert found["inputs"][0]["shape"] == ["1", "3", "224", "224"] and found["initializerCount"] == 52


@pytest.mark.parametrize("name, reason", [("not-onnx.onnx", "NotOnnx")])
def test_bytes_that_are_not_onnx_are_named(served, name, reason):
    _, root = served
    with pytest.raises(ArtifactError) as err:
        inspect_model(root / name)
    assert err.value.reason == reason


def test_a_truncated_model_fails_the_checker_or_parser(served, tmp_path):
    _, root = served
    data = (root / "squeezenet.onnx").read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError) as err:
        inspect_model(cut)
    assert err.value.reason in ("NotOnnx", "CheckerFailed")


def test_validation_keeps_nothing_on_disk(served, tmp_path):
    url, root = served
    settings = Settings(artifact_dir=tmp_path / "work", artifact_read_timeout_s=0.5)
    outcome = validate_artifact(f"{url}/gemm.onnx", _digest(root / "gemm.onnx"), settings)
    assert outcome.error is None and outcome.inspection.default_opset() == 17
    assert list((tmp_path / "work").iterdir()) == []
