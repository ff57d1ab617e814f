"""Models, golden samples and requests for tests and benches of the edge runtime.

The sample defect detectors (dev/sample_models.py) are the good versions; `broken_defect_detector`
is a bad version that a real export bug could produce: it passes onnx.checker with full shape
inference and loads in onnxruntime, but every inference fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_MODELS = ROOT / "manifests" / "samples" / "models"
MODEL_NAME = "defect-detector"


def sample_model(version: str) -> Path:
    """The committed sample defect detector of that version (1.0.0 or 2.0.0)."""
    return SAMPLE_MODELS / f"{MODEL_NAME}-{version}.onnx"


def broken_defect_detector(version: str = "3.0.0") -> onnx.ModelProto:
    """defect-detector 1.0.0 with a Reshape of its 8 pooled features to (batch, 3, 3) before the
    classifier (whose weights are widened to 9 inputs to match). The batch dimension is symbolic,
    so shape inference cannot see that 8 values never make 9; onnxruntime fails on every run."""
    model = onnx.load(str(sample_model("1.0.0")))
    graph = model.graph
    nodes = list(graph.node)
    gemm = next(i for i, node in enumerate(nodes) if node.op_type == "Gemm")
    nodes[gemm].input[0] = "features9"
    reshape = [onnx.helper.make_node("Reshape", ["features", "bad_shape"], ["reshaped"]),
               onnx.helper.make_node("Flatten", ["reshaped"], ["features9"])]
    del graph.node[:]
    graph.node.extend(nodes[:gemm] + reshape + nodes[gemm:])
    kept = [init for init in graph.initializer if init.name != "fc_w"]
    del graph.initializer[:]
    graph.initializer.extend(kept + [
        numpy_helper.from_array(np.array([0, 3, 3], np.int64), "bad_shape"),  # 0: keep the batch dimension
        numpy_helper.from_array(np.full((9, 2), 0.1, np.float32), "fc_w"),
    ])
    model.producer_version = version
    model.doc_string = f"Broken defect detector {version}: loads, but cannot run"
    onnx.checker.check_model(model, full_check=True)
    return model


def images(batch: int = 1, seed: int = 0) -> np.ndarray:
    """Camera frames the defect detector takes: (batch, 3, 64, 64) float32 in [0, 1)."""
    return np.random.default_rng(seed).random((batch, 3, 64, 64), dtype=np.float32)


def infer_body(frames: np.ndarray, *, request_id: str | None = None, outputs: list[str] | None = None) -> dict:
    """An OIP v2 inference request for the defect detector, data flat in row-major order."""
    body: dict = {"inputs": [{"name": "image", "shape": list(frames.shape), "datatype": "FP32",
                              "data": frames.reshape(-1).tolist()}]}
    if request_id is not None:
        body["id"] = request_id
    if outputs is not None:
        body["outputs"] = [{"name": name} for name in outputs]
    return body


def run_directly(model_path: Path, frames: np.ndarray) -> np.ndarray:
    """What onnxruntime itself computes for `frames`: the reference a runtime's answer must match."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {"image": frames})[0]


def golden_sample(model_path: Path, *, batch: int = 2, seed: int = 7, absolute: float = 1e-5,
                  relative: float = 1e-4) -> dict:
    """A golden sample for a defect detector: frames, and what the model at model_path answers."""
    frames = images(batch, seed)
    expected = run_directly(model_path, frames)
    return {**infer_body(frames),
            "outputs": [{"name": "probabilities", "shape": list(expected.shape),
                         "data": expected.reshape(-1).tolist()}],
            "tolerance": {"absolute": absolute, "relative": relative}}


def write_json(document: dict, path: Path) -> Path:
    path.write_text(json.dumps(document))
    return path


def slow_defect_detector(version: str = "2.0.0", rounds: int = 6) -> onnx.ModelProto:
    """defect-detector 1.0.0 that answers exactly as 1.0.0 does, after `rounds` 1024x1024
    MatMuls over the image that it adds to its probabilities times zero (hundreds of ms on one
    core): a candidate that is correct but slow."""
    model = onnx.load(str(sample_model("1.0.0")))
    graph = model.graph
    image = graph.input[0].name
    final = graph.output[0].name
    for node in graph.node:
        node.output[:] = ["probs_raw" if out == final else out for out in node.output]
    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array(np.array([-1, 64], np.int64), "slow_shape"),
             numpy_helper.from_array((rng.random((64, 1024), dtype=np.float32) * 1e-3), "slow_w0"),
             numpy_helper.from_array((rng.random((1024, 1024), dtype=np.float32) * 1e-3), "slow_w"),
             numpy_helper.from_array(np.array(0.0, np.float32), "slow_zero")]
    nodes = [onnx.helper.make_node("Reshape", [image, "slow_shape"], ["slow_rows"]),
             onnx.helper.make_node("MatMul", ["slow_rows", "slow_w0"], ["slow_0"])]
    for i in range(rounds):
        nodes.append(onnx.helper.make_node("MatMul", [f"slow_{i}", "slow_w"], [f"slow_{i + 1}"]))
    nodes += [onnx.helper.make_node("ReduceSum", [f"slow_{rounds}"], ["slow_sum"], keepdims=0),
              onnx.helper.make_node("Mul", ["slow_sum", "slow_zero"], ["slow_nothing"]),
              onnx.helper.make_node("Add", ["probs_raw", "slow_nothing"], [final])]
    graph.node.extend(nodes)
    graph.initializer.extend(inits)
    model.producer_version = version
    model.doc_string = f"Slow defect detector {version}: the answers of 1.0.0, slowly"
    onnx.checker.check_model(model, full_check=True)
    return model
