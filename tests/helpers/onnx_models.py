"""Small real ONNX models for tests, built with onnx.helper."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def gemm_relu(opset: int = 17, hidden: int = 4) -> onnx.ModelProto:
    """x (batch, 3) -> relu(x @ W + b) (batch, hidden), with a symbolic batch dim."""
    w = numpy_helper.from_array(np.ones((3, hidden), np.float32), "W")
    b = numpy_helper.from_array(np.zeros(hidden, np.float32), "B")
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W", "B"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "gemm_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", hidden])],
        initializer=[w, b],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="edgeline-tests",
                             ir_version=8 if opset <= 17 else 10)


def write(model: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def shipped_model() -> Path:
    """A real model the onnx package ships in its backend test data."""
    return Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / "light_squeezenet.onnx"
