"""External data in the runtime: it proves every byte onnxruntime reads: the model and its external data files."""

from __future__ import annotations

import pytest

from edgeline.artifacts import errors
from edgeline.artifacts.fetch import Limits
from edgeline.runtime.loader import fetch_verified, load_model
from tests.helpers import onnx_models
from tests.helpers.artifact_server import ArtifactServer
from tests.helpers.onnx_models import file_digest

LIMITS = Limits(max_bytes=2**20, read_timeout_s=1, retries=1)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("runtime-external")
    onnx_models.write_with_external_data(onnx_models.gemm_relu(hidden=64), root / "external.onnx")
    with ArtifactServer(root) as server:
        yield server, root


def test_external_data_files_are_verified_before_the_model_is_loaded(served, tmp_path):
    server, root = served
    model, weights = file_digest(root / "external.onnx"), file_digest(root / "weights.bin")
    fetched = fetch_verified(f"{server.url}/external.onnx", model, tmp_path, limits=LIMITS,
                             external_data={"weights.bin": weights})
    assert (fetched.path.parent / "weights.bin").is_file() and not fetched.reused
    assert load_model(fetched.path, model, "CPUExecutionProvider").inputs[0].name == "x"
    again = fetch_verified(f"{server.url}/external.onnx", model, tmp_path, limits=LIMITS,
                           external_data={"weights.bin": weights})
    assert again.reused  # a restart reuses what it proved


def test_unlisted_or_altered_external_data_is_never_loaded(served, tmp_path):
    server, root = served
    model = file_digest(root / "external.onnx")
    with pytest.raises(errors.ExternalDataNotListed):
        fetch_verified(f"{server.url}/external.onnx", model, tmp_path / "a", limits=LIMITS)
    with pytest.raises(errors.DigestMismatch, match="external data file weights.bin"):
        fetch_verified(f"{server.url}/external.onnx", model, tmp_path / "b", limits=LIMITS,
                       external_data={"weights.bin": "sha256:" + "4" * 64})
    # A kept copy whose weights were altered on disk is not reused: it is fetched and proven again.
    good = {"weights.bin": file_digest(root / "weights.bin")}
    fetched = fetch_verified(f"{server.url}/external.onnx", model, tmp_path / "c", limits=LIMITS, external_data=good)
    (fetched.path.parent / "weights.bin").write_bytes(b"tampered")
    again = fetch_verified(f"{server.url}/external.onnx", model, tmp_path / "c", limits=LIMITS, external_data=good)
    assert not again.reused and file_digest(again.path.parent / "weights.bin") == good["weights.bin"]
