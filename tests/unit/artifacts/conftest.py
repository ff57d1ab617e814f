"""Fixtures shared by the artifact tests: a folder of real models served over loopback HTTP."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgeline.artifacts.fetch import Limits
from tests.helpers import hostile_models, onnx_models
from tests.helpers.artifact_server import ArtifactServer

# Tiny timeouts and pauses keep the failure cases fast.
LIMITS = Limits(max_bytes=1024 * 1024, connect_timeout_s=2, read_timeout_s=0.3, retries=3, backoff_s=0.01,
                max_redirects=3)


@pytest.fixture
def limits() -> Limits:
    return LIMITS


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    onnx_models.write(onnx_models.gemm_relu(), root / "gemm.onnx")
    onnx_models.write(onnx_models.gemm_relu(opset=21), root / "opset21.onnx")
    onnx_models.write_with_external_data(onnx_models.gemm_relu(hidden=64), root / "external.onnx")
    shutil.copy(onnx_models.shipped_model(), root / "squeezenet.onnx")
    (root / "not-onnx.onnx").write_bytes(b"this is a README, not a model\n" * 10)
    (root / "big.onnx").write_bytes(b"\0" * (LIMITS.max_bytes + 1))
    hostile_models.memory_bomb(root / "memory-bomb.onnx")
    return root


@pytest.fixture(scope="module")
def server(models):
    with ArtifactServer(models, stall_s=2.0) as running:
        yield running


@pytest.fixture(scope="module")
def tls_server(models):
    """The same folder over HTTPS (https://localhost:<port>), trusted through server.ca_bundle."""
    with ArtifactServer(models, stall_s=2.0, tls=True) as running:
        yield running
