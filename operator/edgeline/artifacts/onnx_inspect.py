"""What an ONNX file is: checked with onnx's full checker, then described.

Weights in external data files are never loaded: the graph and the initializers'
dims are enough to count parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx import TensorProto

from edgeline.artifacts.fetch import ArtifactError


@dataclass(frozen=True)
class Inspection:
    ir_version: int
    producer_name: str
    producer_version: str
    opset_imports: list[tuple[str, int]]
    inputs: list[dict]
    outputs: list[dict]
    initializer_count: int
    parameter_count: int
    external_data: bool
    size_bytes: int
    extra: dict = field(default_factory=dict)

    def default_opset(self) -> int | None:
        return next((v for d, v in self.opset_imports if d in ("", "ai.onnx")), None)

    def to_status(self) -> dict:
        return {
            "irVersion": self.ir_version,
            "producer": {"name": self.producer_name, "version": self.producer_version},
            "opsetImports": [{"domain": d, "version": v} for d, v in self.opset_imports],
            "inputs": self.inputs,
            "outputs": self.outputs,
            "initializerCount": self.initializer_count,
            "parameterCount": self.parameter_count,
            "externalData": self.external_data,
            "sizeBytes": self.size_bytes,
        }


def _tensor(value_info) -> dict:
    tensor_type = value_info.type.tensor_type
    shape = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            shape.append(str(dim.dim_value))
        elif dim.HasField("dim_param"):
            shape.append(dim.dim_param)
        else:
            shape.append("?")
    return {"name": value_info.name, "elemType": TensorProto.DataType.Name(tensor_type.elem_type), "shape": shape}


def inspect_model(path: Path) -> Inspection:
    size = path.stat().st_size
    # The checker runs first and frees its copy before Python loads the graph, so peak
    # memory is the larger of the two, not their sum. Its path form handles models over
    # 2 GB and external data.
    try:
        onnx.checker.check_model(str(path), full_check=True)
        checker_error = None
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        checker_error = exc
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ArtifactError("NotOnnx", f"the artifact is not an ONNX model ({exc.__class__.__name__})") from None
    if not model.graph.node and not model.opset_import:
        raise ArtifactError("NotOnnx", "the artifact parsed as protobuf but holds no ONNX graph")
    if checker_error is not None:
        text = str(checker_error).strip()
        first = text.splitlines()[0][:300] if text else checker_error.__class__.__name__
        raise ArtifactError("CheckerFailed", f"onnx.checker rejected the model: {first}")
    graph = model.graph
    initializer_names = {i.name for i in graph.initializer}
    external = any(i.data_location == TensorProto.EXTERNAL for i in graph.initializer)
    total = size
    if external:
        files = {e.value for i in graph.initializer for e in i.external_data if e.key == "location"}
        total += sum((path.parent / f).stat().st_size for f in files if (path.parent / f).exists())
    return Inspection(
        ir_version=model.ir_version,
        producer_name=model.producer_name,
        producer_version=model.producer_version,
        opset_imports=[(o.domain, o.version) for o in model.opset_import],
        inputs=[_tensor(v) for v in graph.input if v.name not in initializer_names],
        outputs=[_tensor(v) for v in graph.output],
        initializer_count=len(graph.initializer),
        parameter_count=sum(math.prod(i.dims) for i in graph.initializer),
        external_data=external,
        size_bytes=total,
    )
