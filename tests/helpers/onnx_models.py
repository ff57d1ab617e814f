"""Real ONNX models for tests and benches: built with onnx.helper, or shipped by the onnx
package in its backend test data. Large ones are written in a stream, never held whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ONNX_DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"


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
                             producer_version="1.0", ir_version=8 if opset <= 17 else 10)


def gemm_relu_int8(opset: int = 17, hidden: int = 4) -> onnx.ModelProto:
    """The same signature as gemm_relu (x (batch, 3) -> y (batch, hidden)), with int8 weights that
    DequantizeLinear turns back into floats: what a weight-quantized build for a small gateway is."""
    w = numpy_helper.from_array(np.ones((3, hidden), np.int8) * 64, "W_q")
    scale = numpy_helper.from_array(np.array(1 / 64, np.float32), "W_scale")
    zero = numpy_helper.from_array(np.array(0, np.int8), "W_zero")
    b = numpy_helper.from_array(np.zeros(hidden, np.float32), "B")
    graph = helper.make_graph(
        [helper.make_node("DequantizeLinear", ["W_q", "W_scale", "W_zero"], ["W"]),
         helper.make_node("Gemm", ["x", "W", "B"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "gemm_relu_int8",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", hidden])],
        initializer=[w, scale, zero, b],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="edgeline-tests",
                             producer_version="1.0", ir_version=8 if opset <= 17 else 10)


def gemm_relu_fp16(opset: int = 17, hidden: int = 4) -> onnx.ModelProto:
    """The same signature as gemm_relu, computed in float16 between two Casts: what a GPU build is."""
    w = numpy_helper.from_array(np.ones((3, hidden), np.float16), "W")
    b = numpy_helper.from_array(np.zeros(hidden, np.float16), "B")
    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["x16"], to=TensorProto.FLOAT16),
         helper.make_node("Gemm", ["x16", "W", "B"], ["h"]), helper.make_node("Relu", ["h"], ["y16"]),
         helper.make_node("Cast", ["y16"], ["y"], to=TensorProto.FLOAT)],
        "gemm_relu_fp16",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", hidden])],
        initializer=[w, b],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="edgeline-tests",
                             producer_version="1.0", ir_version=8 if opset <= 17 else 10)


def write(model: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def write_with_external_data(model: onnx.ModelProto, path: Path, location: str = "weights.bin") -> Path:
    """Saves `model` with every initializer of 16 bytes or more in `location` beside it."""
    model = onnx.ModelProto.FromString(model.SerializeToString())  # the caller's copy stays as it was
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=16)
    return path


def shipped_model() -> Path:
    """A real model the onnx package ships in its backend test data (SqueezeNet, 52 initializers)."""
    return ONNX_DATA / "light" / "light_squeezenet.onnx"


def shipped_models(limit: int = 5) -> list[Path]:
    """Some of the small operator test models the onnx package ships (node/*/model.onnx and more)."""
    found = sorted(ONNX_DATA.glob("**/model.onnx"), key=lambda p: (p.stat().st_size, str(p)))
    return found[:limit]


def _matmul_model(rows: int, cols: int, weights: TensorProto) -> tuple[onnx.ModelProto, onnx.GraphProto]:
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], "large",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", rows])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", cols])],
        initializer=[weights] if weights is not None else [],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8,
                              producer_name="edgeline-bench")
    return model, graph


def varint(value: int) -> bytes:
    """A protobuf varint: how ONNX files spell lengths and small numbers."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _write_weights(out, size: int) -> None:
    block = np.linspace(-1, 1, 1024 * 1024 // 4, dtype=np.float32).tobytes()
    left = size
    while left:
        out.write(block[: min(left, len(block))])
        left -= min(left, len(block))


def write_large_model(path: Path, weight_mib: int, *, external: bool = False) -> Path:
    """A MatMul model with `weight_mib` MiB of float32 weights, inline or in `<name>.weights`.
    Written field by field so that building a 2 GB model costs no more memory than a small one."""
    cols = 1024
    rows = weight_mib * 1024 * 1024 // 4 // cols
    size = rows * cols * 4
    if external:
        tensor = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[rows, cols])
        location = path.name.rsplit(".", 1)[0] + ".weights"
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", "0"), ("length", str(size))):
            tensor.external_data.add(key=key, value=value)
        with open(path.parent / location, "wb") as out:
            _write_weights(out, size)
        model, _ = _matmul_model(rows, cols, tensor)
        return write(model, path)
    # ModelProto.graph is field 7 and GraphProto.initializer field 5, TensorProto.raw_data field 9
    # (all length-delimited): the initializer goes last in the graph, its bytes last in the tensor.
    model, graph = _matmul_model(rows, cols, None)
    header = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[rows, cols]).SerializeToString()
    tensor_length = len(header) + 1 + len(varint(size)) + size
    graph_bytes = graph.SerializeToString()
    initializer_field = bytes([5 << 3 | 2]) + varint(tensor_length)
    graph_length = len(graph_bytes) + len(initializer_field) + tensor_length
    model.ClearField("graph")
    with open(path, "wb") as out:
        out.write(model.SerializeToString())
        out.write(bytes([7 << 3 | 2]) + varint(graph_length))
        out.write(graph_bytes + initializer_field + header + bytes([9 << 3 | 2]) + varint(size))
        _write_weights(out, size)
    return path


def file_digest(path: Path) -> str:
    """sha256:<hex> of a file, as a manifest's artifact.sha256 wants it."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1024 * 1024):
            digest.update(block)
    return "sha256:" + digest.hexdigest()
