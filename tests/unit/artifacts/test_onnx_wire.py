"""The onnx-free reader the edge runtime uses to find a model's external data files agrees
with onnx's own view of real models."""

from __future__ import annotations

import pytest

from edgeline.artifacts.errors import NotOnnx
from edgeline.artifacts.onnx_inspect import external_data_files
from edgeline.artifacts.onnx_wire import external_locations
from tests.helpers import onnx_models


def test_a_single_file_model_names_no_external_files(tmp_path):
    path = onnx_models.write(onnx_models.gemm_relu(), tmp_path / "m.onnx")
    assert external_locations(path) == []


@pytest.mark.parametrize("location", ["weights.bin", "data/w eights.bin"])
def test_external_files_are_named_as_onnx_names_them(tmp_path, location):
    (tmp_path / "data").mkdir()
    path = onnx_models.write_with_external_data(onnx_models.gemm_relu(hidden=64), tmp_path / "m.onnx", location)
    assert external_locations(path) == [location] == external_data_files(path)


def test_a_big_model_written_with_external_weights_is_read_by_seeking(tmp_path):
    path = onnx_models.write_large_model(tmp_path / "big.onnx", 1, external=True)
    assert external_locations(path) == external_data_files(path) != []


def test_models_the_onnx_package_ships_name_no_external_files():
    for model in [onnx_models.shipped_model(), *onnx_models.shipped_models()]:
        assert external_locations(model) == []


@pytest.mark.parametrize("content", [b"\xff" * 64, b"\x0a\xff\xff\xff\xff\x0f"])
def test_bytes_that_are_not_a_protobuf_message_are_named(tmp_path, content):
    path = tmp_path / "junk.onnx"
    path.write_bytes(content)
    with pytest.raises(NotOnnx, match="junk.onnx"):
        external_locations(path)
