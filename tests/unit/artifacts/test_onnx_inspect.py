"""Inspecting real ONNX files: built here with onnx.helper, or shipped by the onnx package."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeline.artifacts import onnx_inspect
from edgeline.artifacts.errors import CheckerFailed, NotOnnx
from edgeline.artifacts.onnx_inspect import external_data_files, inspect_model
from edgeline.artifacts.onnx_skeleton import write_skeleton
from tests.helpers import onnx_models

STATUS_KEYS = {"irVersion", "producer", "opsetImports", "inputs", "outputs", "initializerCount", "parameterCount",
               "externalData", "sizeBytes"}


def test_a_small_model_is_described_for_status(tmp_path):
    path = onnx_models.write(onnx_models.gemm_relu(), tmp_path / "gemm.onnx")
    found = inspect_model(path).to_status()
    assert set(found) == STATUS_KEYS
    assert found["irVersion"] == 8 and found["producer"] == {"name": "edgeline-tests", "version": "1.0"}
    assert found["opsetImports"] == [{"domain": "", "version": 17}]
    assert found["inputs"] == [{"name": "x", "elemType": "FLOAT", "shape": ["batch", "3"]}]
    assert found["outputs"] == [{"name": "y", "elemType": "FLOAT", "shape": ["batch", "4"]}]
    assert (found["initializerCount"], found["parameterCount"]) == (2, 3 * 4 + 4)
    assert found["externalData"] is False and found["sizeBytes"] == path.stat().st_size
    assert os.listdir(tmp_path) == ["gemm.onnx"]  # the skeleton is gone


def test_a_newer_opset_is_reported_as_it_is(tmp_path):
    found = inspect_model(onnx_models.write(onnx_models.gemm_relu(opset=21), tmp_path / "m.onnx"))
    assert found.default_opset() == 21 and found.ir_version == 10


def test_external_data_is_counted_not_loaded(tmp_path):
    path = onnx_models.write_with_external_data(onnx_models.gemm_relu(hidden=64), tmp_path / "m.onnx")
    weights = tmp_path / "weights.bin"
    found = inspect_model(path)
    assert found.external_data and found.external_files == ["weights.bin"]
    assert found.parameter_count == 3 * 64 + 64
    assert found.size_bytes == path.stat().st_size + weights.stat().st_size
    assert external_data_files(path) == ["weights.bin"]
    weights.unlink()
    with pytest.raises(CheckerFailed, match="weights.bin"):
        inspect_model(path)


def test_big_inline_weights_are_checked_through_a_skeleton_equal_to_the_model(tmp_path):
    path = onnx_models.write_large_model(tmp_path / "big.onnx", 1)
    skeleton = write_skeleton(path, tmp_path / "skeleton.onnx")
    assert skeleton.externalized == 1 and (tmp_path / "skeleton.onnx").stat().st_size < 4096
    # Loading the skeleton with its external data gives back the original model (onnx.load
    # leaves data_location set to DEFAULT, which the original simply omits).
    restored = onnx.load(str(tmp_path / "skeleton.onnx"))
    restored.graph.initializer[0].ClearField("data_location")
    assert restored == onnx.load(str(path))
    found = inspect_model(path)
    assert found.parameter_count == 1024 * 1024 // 4 and not found.external_data
    assert found.inputs[0].shape == ["batch", "256"]


@pytest.mark.parametrize("model", onnx_models.shipped_models(8) + [onnx_models.shipped_model()],
                         ids=lambda p: p.parent.name if p.name == "model.onnx" else p.stem)
def test_models_the_onnx_package_ships_are_inspected(model):
    found = inspect_model(model).to_status()
    assert set(found) == STATUS_KEYS and found["inputs"] and found["outputs"]
    assert all(isinstance(d, str) for t in found["inputs"] + found["outputs"] for d in t["shape"])


def test_squeezenet_has_its_known_shape():
    found = inspect_model(onnx_models.shipped_model()).to_status()
    assert found["inputs"][0]["shape"] == ["1", "3", "224", "224"] and found["initializerCount"] == 52


@pytest.mark.parametrize("content", [
    b"this is a README, not a model\n" * 10,
    b"",
    b"\x00" * 64,
    np.random.default_rng(7).bytes(4096),
    onnx_models.gemm_relu().graph.initializer[0].SerializeToString(),  # protobuf, but a tensor
], ids=["text", "empty", "zeros", "random", "a-tensor"])
def test_bytes_that_are_not_onnx_are_named(tmp_path, content):
    path = tmp_path / "m.onnx"
    path.write_bytes(content)
    with pytest.raises(NotOnnx) as err:
        inspect_model(path)
    assert err.value.reason == "NotOnnx" and not err.value.transient and "\n" not in err.value.message


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.99])
def test_a_truncated_model_is_named(tmp_path, fraction):
    data = onnx_models.shipped_model().read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises((NotOnnx, CheckerFailed)) as err:
        inspect_model(path)
    assert "truncated" in err.value.message
    assert os.listdir(tmp_path) == ["cut.onnx"]


def _broken(tmp_path, hidden: int):
    """Gemm of x (batch, 3) with W (5, hidden): shape inference finds the mismatch."""
    model = onnx_models.gemm_relu(hidden=hidden)
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.ones((5, hidden), np.float32), "W"))
    return onnx_models.write(model, tmp_path / "broken.onnx")


@pytest.mark.parametrize("hidden", [4, 8192], ids=["small", "big-weights"])
def test_shape_inference_failures_are_checker_failures(tmp_path, hidden):
    with pytest.raises(CheckerFailed) as err:
        inspect_model(_broken(tmp_path, hidden))
    message = err.value.message
    assert message.startswith("onnx.checker rejected broken.onnx") and "\n" not in message
    assert "skeleton" not in message and "Traceback" not in message


def test_an_unknown_operator_fails_the_checker(tmp_path):
    model = onnx_models.gemm_relu()
    model.graph.node[1].op_type = "NoSuchOp"
    with pytest.raises(CheckerFailed, match="NoSuchOp"):
        inspect_model(onnx_models.write(model, tmp_path / "m.onnx"))


def test_a_read_only_folder_is_inspected_without_writing_to_it(tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_inspect, "skeleton_beside", lambda path: None)
    path = onnx_models.write_large_model(tmp_path / "big.onnx", 1)
    assert inspect_model(path).parameter_count == 1024 * 1024 // 4
    assert os.listdir(tmp_path) == ["big.onnx"]


def test_non_tensor_outputs_are_named_by_type(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("SequenceConstruct", ["x"], ["seq"])], "seq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, "n"])],
        [helper.make_tensor_sequence_value_info("seq", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    found = inspect_model(onnx_models.write(model, tmp_path / "m.onnx")).to_status()
    assert found["inputs"][0]["shape"] == ["?", "n"]
    assert found["outputs"][0]["elemType"] == "seq(FLOAT)"
