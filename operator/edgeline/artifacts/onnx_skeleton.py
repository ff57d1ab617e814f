"""A copy of an ONNX file's structure that points at its weights instead of holding them.

Why: onnx's checker and `onnx.load` both read the whole file into one buffer and then
parse it, so a single-file model costs twice its size in memory to check, and again to
load. This module walks the protobuf wire format of the file with seeks, copying every
field except the big `raw_data` of the main graph's initializers; those become external
data references (location = the original file, offset and length of the bytes inside it).
The skeleton is a few KiB to a few MiB, so the checker and the loader work on it in a
small constant memory, and the weights stay on disk. Nothing is reinterpreted: the
skeleton is byte-for-byte the original except for those tensors.

Wire format in one paragraph: a message is a sequence of fields; each starts with a
varint tag (field number << 3 | wire type); wire type 0 is a varint, 1 eight bytes,
2 a varint length then that many bytes, 5 four bytes; 3 and 4 (groups) ONNX never uses.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from onnx import StringStringEntryProto, TensorProto

from edgeline.artifacts.errors import NotOnnx
from edgeline.artifacts.onnx_wire import Reader as _Reader, payload_start as _payload_start

# Inline tensors at least this big move out of the skeleton. Tensors whose values shape
# inference reads (the shape of a Reshape, axes, pads) are a few bytes and stay inline.
EXTERNALIZE_AT = 64 * 1024

# ModelProto fields ONNX defines, with their wire types: a file whose first fields
# contradict these is not an ONNX model, whatever protobuf would tolerate.
_MODEL_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}
_GRAPH = 7
_GRAPH_INITIALIZER = 5
_TENSOR_RAW_DATA = 9
_TENSOR_EXTERNAL_DATA = 13
_TENSOR_DATA_LOCATION = 14


@dataclass
class Skeleton:
    path: Path
    externalized: int = 0  # initializers whose inline bytes stay in the original file
    external_locations: set[str] = field(default_factory=set)  # external data files the model itself names


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def write_skeleton(model_path: Path, skeleton_path: Path, *, externalize_at: int = EXTERNALIZE_AT) -> Skeleton:
    """Writes the skeleton of `model_path` to `skeleton_path`, which must be in the same
    folder for the external data references (relative locations) to resolve."""
    skeleton = Skeleton(skeleton_path)
    size = model_path.stat().st_size
    with open(model_path, "rb") as f, open(skeleton_path, "wb") as out:
        reader = _Reader(f, size, model_path.name)
        position = 0
        while position < size:
            f.seek(position)
            number, wire, start, stop = reader.field(size)
            if _MODEL_FIELDS.get(number, wire) != wire:
                raise NotOnnx(f"{model_path.name} is not an ONNX model")
            if number == _GRAPH and wire == 2:
                with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as graph:
                    header_end = _payload_start(reader, start)
                    _write_graph(reader, header_end, stop, graph, skeleton, model_path.name, externalize_at)
                    out.write(_varint_bytes(_GRAPH << 3 | 2) + _varint_bytes(graph.tell()))
                    graph.seek(0)
                    shutil.copyfileobj(graph, out, 1024 * 1024)
            else:
                reader.copy(start, stop, out)
            position = stop
    return skeleton


def _write_graph(reader: _Reader, begin: int, end: int, out: BinaryIO, skeleton: Skeleton,
                 location: str, externalize_at: int) -> None:
    position = begin
    while position < end:
        reader.f.seek(position)
        number, wire, start, stop = reader.field(end)
        if number == _GRAPH_INITIALIZER and wire == 2:
            tensor = _tensor(reader, start, stop, skeleton, location, externalize_at)
            if tensor is not None:
                out.write(_varint_bytes(_GRAPH_INITIALIZER << 3 | 2) + _varint_bytes(len(tensor)) + tensor)
            else:
                reader.copy(start, stop, out)
        else:
            reader.copy(start, stop, out)
        position = stop


def _tensor(reader: _Reader, start: int, stop: int, skeleton: Skeleton, location: str,
            externalize_at: int) -> bytes | None:
    """The rewritten initializer, or None to copy it as it is."""
    begin = _payload_start(reader, start)
    kept: list[tuple[int, int]] = []
    raw: tuple[int, int] | None = None
    already_external = False
    position = begin
    while position < stop:
        reader.f.seek(position)
        number, wire, fstart, fstop = reader.field(stop)
        if number == _TENSOR_RAW_DATA and wire == 2:
            raw = (_payload_start(reader, fstart), fstop)
        else:
            kept.append((fstart, fstop))
            if number in (_TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION):
                already_external = True
        position = fstop
    if already_external:
        for fstart, fstop in kept:
            reader.f.seek(fstart)
            number, wire, _, _ = reader.field(fstop)
            if number == _TENSOR_EXTERNAL_DATA and wire == 2:
                entry = StringStringEntryProto.FromString(reader.read(_payload_start(reader, fstart), fstop))
                if entry.key == "location":
                    skeleton.external_locations.add(entry.value)
        return None
    if raw is None or raw[1] - raw[0] < externalize_at:
        return None
    tensor = TensorProto.FromString(b"".join(reader.read(a, b) for a, b in kept))
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(raw[0])), ("length", str(raw[1] - raw[0]))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    skeleton.externalized += 1
    return tensor.SerializeToString()


def skeleton_beside(model_path: Path) -> Path | None:
    """A fresh name for a skeleton next to the model, or None if that folder is read-only."""
    folder = model_path.parent
    if not os.access(folder, os.W_OK):
        return None
    handle, name = tempfile.mkstemp(prefix=f".{model_path.name}.", suffix=".skeleton.onnx", dir=folder)
    os.close(handle)
    return Path(name)
