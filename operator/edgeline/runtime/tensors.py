"""Open Inference Protocol v2 tensors in JSON: datatypes, request parsing, response encoding.

Pure functions over numpy, so that every rule a client can break is a unit test. Parsing is
strict: a tensor whose datatype or shape the model does not accept is a 400 that names it,
never a silent cast (a float sent to an INT64 input would otherwise be truncated).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# OIP datatype -> numpy dtype. BYTES travel as JSON strings.
NUMPY_TYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}

# onnxruntime's type strings -> OIP datatype.
ONNX_TYPES: dict[str, str] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}

# numpy kinds of the JSON values each datatype accepts: JSON has numbers, booleans and strings only.
_ACCEPTED_KINDS = {"BOOL": "b", "BYTES": "U", "FP16": "iuf", "FP32": "iuf", "FP64": "iuf"}
_INTEGER_KINDS = "iu"


class BadRequest(ValueError):
    """The request cannot be served as sent; the message says what to change."""


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of the model, as metadata shows it: -1 for a dimension of any size."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_metadata(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def oip_datatype(onnx_type: str) -> str:
    """The OIP datatype of an onnxruntime type string; types OIP has no name for keep theirs."""
    return ONNX_TYPES.get(onnx_type, onnx_type)


def metadata_shape(dims) -> tuple[int, ...]:
    """onnxruntime shape (ints, symbolic names or None) -> OIP shape, -1 for variable dimensions."""
    return tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (dims or ()))


def datatype_of(array: np.ndarray) -> str:
    if array.dtype.kind in "OUS":
        return "BYTES"
    for name, dtype in NUMPY_TYPES.items():
        if dtype == array.dtype:
            return name
    raise ValueError(f"no OIP datatype for numpy {array.dtype}")


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: list[str] | None  # names asked for; None: all of them


def parse_infer_request(body: object, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> InferRequest:
    """A decoded JSON body -> numpy inputs, checked against the model's inputs and outputs."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object with an `inputs` list")
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest("`id` must be a string")
    tensors = body.get("inputs")
    if not isinstance(tensors, list) or not tensors:
        raise BadRequest("`inputs` must be a non-empty list of tensors")
    expected = {spec.name: spec for spec in inputs}
    arrays: dict[str, np.ndarray] = {}
    for position, tensor in enumerate(tensors):
        name = tensor.get("name") if isinstance(tensor, dict) else None
        if not isinstance(name, str):
            raise BadRequest(f"inputs[{position}] must be an object with a string `name`")
        if name not in expected:
            raise BadRequest(f"the model has no input {name!r}; its inputs are {_names(inputs)}")
        if name in arrays:
            raise BadRequest(f"input {name!r} is given twice")
        arrays[name] = decode_tensor(tensor, expected[name])
    missing = [spec.name for spec in inputs if spec.name not in arrays]
    if missing:
        raise BadRequest(f"missing input(s) {', '.join(map(repr, missing))}; the model needs {_names(inputs)}")
    return InferRequest(request_id, arrays, _requested_outputs(body.get("outputs"), outputs))


def decode_tensor(tensor: dict, spec: TensorSpec) -> np.ndarray:
    """One OIP JSON tensor (flat or nested `data` in row-major order) -> a numpy array of spec's type."""
    name = spec.name
    datatype = tensor.get("datatype")
    if datatype not in NUMPY_TYPES:
        raise BadRequest(f"input {name!r}: datatype must be one of {', '.join(NUMPY_TYPES)}, not {datatype!r}")
    if datatype != spec.datatype:
        raise BadRequest(f"input {name!r} is {datatype}, but the model expects {spec.datatype}")
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise BadRequest(f"input {name!r}: `shape` must be a list of non-negative integers")
    if len(shape) != len(spec.shape) or any(want not in (-1, got) for want, got in zip(spec.shape, shape)):
        raise BadRequest(f"input {name!r} has shape {shape}, but the model expects {list(spec.shape)} "
                         "(-1: any size)")
    data = tensor.get("data")
    if not isinstance(data, list):
        raise BadRequest(f"input {name!r}: `data` must be a list of the tensor's elements in row-major order")
    try:
        loose = np.asarray(data)
    except ValueError:
        raise BadRequest(f"input {name!r}: `data` is a ragged nested list") from None
    count = math.prod(shape)
    if loose.size != count:
        raise BadRequest(f"input {name!r}: shape {shape} needs {count} elements, `data` has {loose.size}")
    kinds = _ACCEPTED_KINDS.get(datatype, _INTEGER_KINDS)
    if loose.size and loose.dtype.kind not in kinds:
        raise BadRequest(f"input {name!r}: {datatype} data must be {_kind_words(kinds)}")
    dtype = NUMPY_TYPES[datatype]
    # One pass over the JSON list (np.asarray above), then vectorised casts: astype wraps integers
    # silently, so their range is checked first.
    if loose.size and kinds == _INTEGER_KINDS:
        info = np.iinfo(dtype)
        if int(loose.min()) < info.min or int(loose.max()) > info.max:
            raise BadRequest(f"input {name!r}: a value does not fit in {datatype}")
    return loose.astype(dtype, copy=False).reshape(shape)


def _requested_outputs(requested: object, outputs: list[TensorSpec]) -> list[str] | None:
    if requested is None:
        return None
    if not isinstance(requested, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                  for o in requested):
        raise BadRequest("`outputs` must be a list of objects with a `name`")
    known = {spec.name for spec in outputs}
    names = [o["name"] for o in requested]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BadRequest(f"the model has no output(s) {', '.join(map(repr, unknown))}; "
                         f"its outputs are {_names(outputs)}")
    return names or None


def encode_tensor(name: str, array: np.ndarray) -> dict:
    """A numpy array -> an OIP JSON tensor with flat data."""
    array = np.asarray(array)
    datatype = datatype_of(array)
    flat = array.reshape(-1)
    data = [v.decode() if isinstance(v, bytes) else v for v in flat.tolist()] if datatype == "BYTES" \
        else flat.tolist()
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def encode_infer_response(model: str, version: str, request_id: str | None,
                          outputs: dict[str, np.ndarray]) -> dict:
    response = {"model_name": model, "model_version": version,
                "outputs": [encode_tensor(name, array) for name, array in outputs.items()]}
    if request_id is not None:
        response["id"] = request_id
    return response


def _names(specs: list[TensorSpec]) -> str:
    return ", ".join(repr(s.name) for s in specs)


def _kind_words(kinds: str) -> str:
    return {"b": "JSON booleans", "U": "JSON strings", "iuf": "JSON numbers"}.get(kinds, "JSON integers")
