"""What an ONNX file is: checked with onnx's full checker (shape inference included), then
described for MLModel.status.inspection.

Weights are never loaded: the checker and the loader see a skeleton of the file whose big
initializers point back into it (see onnx_skeleton), so inspecting a 2 GB model costs a few
MiB, and external data files are only looked at for their size.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import onnx
from google.protobuf.message import DecodeError
from onnx import TensorProto

from edgeline.artifacts.errors import CheckerFailed, NotOnnx
from edgeline.artifacts.onnx_skeleton import Skeleton, skeleton_beside, write_skeleton

DEFAULT_DOMAINS = ("", "ai.onnx")
_CHECKER_ERRORS = (onnx.checker.ValidationError, onnx.shape_inference.InferenceError, onnx.defs.SchemaError)


@dataclass(frozen=True)
class TensorSpec:
    name: str
    elem_type: str  # FLOAT, INT64, ...; seq(...)/map(...)/optional(...) for non-tensors
    shape: list[str]  # numbers, symbolic dim names, "?" for an unknown dim; [] for a scalar

    def to_status(self) -> dict:
        return {"name": self.name, "elemType": self.elem_type, "shape": list(self.shape)}


@dataclass(frozen=True)
class Inspection:
    ir_version: int
    producer_name: str
    producer_version: str
    opset_imports: list[tuple[str, int]]  # (domain, version); "" is the default ONNX domain
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    initializer_count: int
    parameter_count: int
    external_data: bool
    file_size_bytes: int  # the .onnx file
    total_size_bytes: int  # plus its external data files
    external_files: list[str] = field(default_factory=list)

    @property
    def size_bytes(self) -> int:
        """What a runtime has to load: the file and its external data."""
        return self.total_size_bytes

    def default_opset(self) -> int | None:
        return next((v for d, v in self.opset_imports if d in DEFAULT_DOMAINS), None)

    def to_status(self) -> dict:
        """The camelCase shape of MLModel.status.inspection."""
        return {
            "irVersion": self.ir_version,
            "producer": {"name": self.producer_name, "version": self.producer_version},
            "opsetImports": [{"domain": d, "version": v} for d, v in self.opset_imports],
            "inputs": [t.to_status() for t in self.inputs],
            "outputs": [t.to_status() for t in self.outputs],
            "initializerCount": self.initializer_count,
            "parameterCount": self.parameter_count,
            "externalData": self.external_data,
            "sizeBytes": self.total_size_bytes,
        }


def external_data_files(path: Path) -> list[str]:
    """Relative locations of the external data files a model names (empty for a single file).
    Cheap: reads the structure only. Raises NotOnnx like inspect_model."""
    with tempfile.TemporaryDirectory(prefix="edgeline-onnx-") as tmp:
        return sorted(write_skeleton(path, Path(tmp) / "skeleton.onnx").external_locations)


def inspect_model(path: Path) -> Inspection:
    """Checks and describes the ONNX model at `path`; its external data files, if any, must
    sit where it names them (relative to its folder). Raises NotOnnx or CheckerFailed."""
    path = Path(path)
    skeleton_path = skeleton_beside(path)
    scratch = None
    if skeleton_path is None:  # a read-only folder (a PVC mounted read-only): skeleton elsewhere
        scratch = tempfile.TemporaryDirectory(prefix="edgeline-onnx-")
        skeleton_path = Path(scratch.name) / "skeleton.onnx"
    try:
        skeleton = write_skeleton(path, skeleton_path)
        model = _load(skeleton_path, path.name)
        _check(path, skeleton, beside=scratch is None)
        return _describe(path, model, skeleton)
    finally:
        skeleton_path.unlink(missing_ok=True)
        if scratch is not None:
            scratch.cleanup()


def _load(skeleton_path: Path, name: str) -> onnx.ModelProto:
    try:
        model = onnx.load(str(skeleton_path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError):
        raise NotOnnx(f"{name} is not an ONNX model (its bytes do not parse as an ONNX ModelProto)") from None
    if not model.HasField("graph") or not (model.graph.node or model.graph.output):
        raise NotOnnx(f"{name} is not an ONNX model (it holds no graph)")
    return model


def _check(path: Path, skeleton: Skeleton, *, beside: bool) -> None:
    """onnx.checker with shape inference, through the path-based checker (no 2 GB limit,
    external data resolved next to the model)."""
    target = skeleton.path if beside else path
    try:
        onnx.checker.check_model(str(target), full_check=True)
        return
    except _CHECKER_ERRORS as exc:
        error = exc
    if target != path and skeleton.externalized:
        # The skeleton differs from the file only in where big weights are read from. A
        # verdict against a model comes from the file itself, whatever it costs in memory.
        try:
            onnx.checker.check_model(str(path), full_check=True)
            return
        except _CHECKER_ERRORS as exc:
            error = exc
    raise CheckerFailed(f"onnx.checker rejected {path.name}: {_first_line(error, skeleton.path, path)}") from None


def _first_line(exc: BaseException, skeleton_path: Path, path: Path) -> str:
    text = str(exc).replace(str(skeleton_path), path.name).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]


def _describe(path: Path, model: onnx.ModelProto, skeleton: Skeleton) -> Inspection:
    graph = model.graph
    weights = {t.name for t in graph.initializer} | {t.values.name for t in graph.sparse_initializer}
    file_size = path.stat().st_size
    external = sorted(skeleton.external_locations)
    return Inspection(
        ir_version=model.ir_version,
        producer_name=model.producer_name,
        producer_version=model.producer_version,
        opset_imports=[(o.domain, o.version) for o in model.opset_import],
        # Before IR 4, initializers were also listed as graph inputs; they are not inputs to feed.
        inputs=[_tensor_spec(v) for v in graph.input if v.name not in weights],
        outputs=[_tensor_spec(v) for v in graph.output],
        initializer_count=len(graph.initializer) + len(graph.sparse_initializer),
        parameter_count=sum(math.prod(t.dims) for t in graph.initializer)
        + sum(math.prod(t.values.dims) for t in graph.sparse_initializer),
        external_data=bool(external),
        file_size_bytes=file_size,
        total_size_bytes=file_size + sum(_size_of(path.parent, f) for f in external),
        external_files=external,
    )


def _size_of(folder: Path, location: str) -> int:
    # The checker has already refused locations outside the model's folder.
    candidate = folder / PurePosixPath(location)
    return candidate.stat().st_size if candidate.is_file() else 0


def _tensor_spec(value_info: onnx.ValueInfoProto) -> TensorSpec:
    kind = value_info.type.WhichOneof("value")
    if kind in ("tensor_type", "sparse_tensor_type"):
        tensor = getattr(value_info.type, kind)
        shape = [_dim(d) for d in tensor.shape.dim] if tensor.HasField("shape") else []
        return TensorSpec(value_info.name, _elem_name(tensor.elem_type), shape)
    return TensorSpec(value_info.name, _type_name(value_info.type), [])


def _dim(dim) -> str:
    if dim.HasField("dim_value"):
        return str(dim.dim_value)
    if dim.HasField("dim_param") and dim.dim_param:
        return dim.dim_param
    return "?"


def _elem_name(elem_type: int) -> str:
    try:
        return TensorProto.DataType.Name(elem_type)
    except ValueError:
        return f"UNKNOWN({elem_type})"


def _type_name(type_proto: onnx.TypeProto) -> str:
    kind = type_proto.WhichOneof("value")
    if kind in ("tensor_type", "sparse_tensor_type"):
        return _elem_name(getattr(type_proto, kind).elem_type)
    if kind == "sequence_type":
        return f"seq({_type_name(type_proto.sequence_type.elem_type)})"
    if kind == "map_type":
        return f"map({_elem_name(type_proto.map_type.key_type)},{_type_name(type_proto.map_type.value_type)})"
    if kind == "optional_type":
        return f"optional({_type_name(type_proto.optional_type.elem_type)})"
    return "UNDEFINED"
