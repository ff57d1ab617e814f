"""Builds the sample defect-detection models (ONNX) that manifests/samples refer to.

The bytes are deterministic (fixed seed, fixed producer), so the sha256 digests in the
samples stay valid; tests/unit/test_samples_models.py checks that they match.

    python dev/sample_models.py [OUT_DIR]   (default: manifests/samples/models)
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]


def defect_detector(version: str, seed: int, channels: int) -> onnx.ModelProto:
    """Camera frame (N, 3, 64, 64) -> probabilities of (ok, defect)."""
    rng = np.random.default_rng(seed)
    weights = {
        "conv_w": rng.normal(0, 0.1, (channels, 3, 3, 3)).astype(np.float32),
        "conv_b": np.zeros(channels, np.float32),
        "fc_w": rng.normal(0, 0.1, (channels, 2)).astype(np.float32),
        "fc_b": np.zeros(2, np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["image", "conv_w", "conv_b"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["features"]),
        helper.make_node("Gemm", ["features", "fc_w", "fc_b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "defect_detector",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 64, 64])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 2])],
        initializer=[numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17)],
        producer_name="edgeline-samples",
        producer_version=version,
        ir_version=8,
    )
    model.doc_string = f"Sample surface-defect detector {version} for the Edgeline demo"
    onnx.checker.check_model(model, full_check=True)
    return model


MODELS = {
    "defect-detector-1.0.0.onnx": ("1.0.0", 1, 8),
    "defect-detector-2.0.0.onnx": ("2.0.0", 2, 16),
}


def build(out_dir: Path) -> dict[str, str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    digests = {}
    for name, (version, seed, channels) in MODELS.items():
        data = defect_detector(version, seed, channels).SerializeToString(deterministic=True)
        (out_dir / name).write_bytes(data)
        digests[name] = "sha256:" + hashlib.sha256(data).hexdigest()
    return digests


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "manifests" / "samples" / "models"
    for file_name, digest in build(target).items():
        print(f"{file_name}  {digest}")
