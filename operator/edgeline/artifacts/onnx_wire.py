"""Reading the protobuf wire format of ONNX files without the onnx package.

The edge runtime image carries onnxruntime, not onnx (nor protobuf's generated ONNX classes),
yet it must know which external data files a model names before onnxruntime loads it. The
operator's skeleton writer (onnx_skeleton) walks files with the same reader.

Wire format in one paragraph: a message is a sequence of fields; each starts with a
varint tag (field number << 3 | wire type); wire type 0 is a varint, 1 eight bytes,
2 a varint length then that many bytes, 5 four bytes; 3 and 4 (groups) ONNX never uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from edgeline.artifacts.errors import NotOnnx

# Field numbers from onnx.proto (ModelProto.graph, GraphProto.initializer,
# TensorProto.external_data, StringStringEntryProto.key/value).
MODEL_GRAPH = 7
GRAPH_INITIALIZER = 5
TENSOR_EXTERNAL_DATA = 13
ENTRY_KEY = 1
ENTRY_VALUE = 2


class Reader:
    def __init__(self, f: BinaryIO, size: int, name: str):
        self.f, self.size, self.name = f, size, name

    def varint(self) -> int:
        result = shift = 0
        while True:
            byte = self.f.read(1)
            if not byte:
                raise NotOnnx(f"{self.name} ends in the middle of a field: the file is truncated")
            result |= (byte[0] & 0x7F) << shift
            if byte[0] < 0x80:
                return result
            shift += 7
            if shift > 63:
                raise NotOnnx(f"{self.name} is not an ONNX model (malformed protobuf)")

    def field(self, end: int) -> tuple[int, int, int, int]:
        """Reads one field header at the current position; returns (number, wire type,
        start of field, end of field) and leaves the position after the header."""
        start = self.f.tell()
        tag = self.varint()
        number, wire = tag >> 3, tag & 7
        if number == 0 or wire in (3, 4, 6, 7):
            raise NotOnnx(f"{self.name} is not an ONNX model (not a protobuf message)")
        if wire == 0:
            self.varint()
            stop = self.f.tell()
        elif wire == 1:
            stop = self.f.tell() + 8
        elif wire == 5:
            stop = self.f.tell() + 4
        else:
            length = self.varint()
            stop = self.f.tell() + length
        if stop > end:
            if end == self.size:
                raise NotOnnx(f"{self.name} ends in the middle of a field: the file is truncated")
            raise NotOnnx(f"{self.name} is not an ONNX model (a field runs past its message)")
        return number, wire, start, stop

    def copy(self, start: int, stop: int, out: BinaryIO) -> None:
        self.f.seek(start)
        remaining = stop - start
        while remaining:
            block = self.f.read(min(remaining, 1024 * 1024))
            if not block:
                raise NotOnnx(f"{self.name} is truncated")
            out.write(block)
            remaining -= len(block)

    def read(self, start: int, stop: int) -> bytes:
        self.f.seek(start)
        return self.f.read(stop - start)


def payload_start(reader: Reader, start: int) -> int:
    """Position of the first payload byte of the length-delimited field at `start`."""
    reader.f.seek(start)
    reader.varint()
    reader.varint()
    return reader.f.tell()


def _fields(reader: Reader, begin: int, end: int):
    """(number, wire type, start, stop) of each field of the message between begin and end."""
    position = begin
    while position < end:
        reader.f.seek(position)
        number, wire, start, stop = reader.field(end)
        yield number, wire, start, stop
        position = stop


def external_locations(path: Path) -> list[str]:
    """Relative locations of the external data files the initializers of a model's main graph
    name, sorted (empty for a single-file model). Reads the structure only, with seeks;
    raises NotOnnx for bytes that are not a protobuf message."""
    path = Path(path)
    size = path.stat().st_size
    found: set[str] = set()
    with open(path, "rb") as f:
        reader = Reader(f, size, path.name)
        for number, wire, start, stop in _fields(reader, 0, size):
            if number != MODEL_GRAPH or wire != 2:
                continue
            for g_number, g_wire, g_start, g_stop in _fields(reader, payload_start(reader, start), stop):
                if g_number != GRAPH_INITIALIZER or g_wire != 2:
                    continue
                for t_number, t_wire, t_start, t_stop in _fields(reader, payload_start(reader, g_start), g_stop):
                    if t_number != TENSOR_EXTERNAL_DATA or t_wire != 2:
                        continue
                    entry = {}
                    for e_number, e_wire, e_start, e_stop in _fields(reader, payload_start(reader, t_start), t_stop):
                        if e_number in (ENTRY_KEY, ENTRY_VALUE) and e_wire == 2:
                            entry[e_number] = reader.read(payload_start(reader, e_start), e_stop).decode(
                                "utf-8", errors="replace")
                    if entry.get(ENTRY_KEY) == "location" and entry.get(ENTRY_VALUE):
                        found.add(entry[ENTRY_VALUE])
    return sorted(found)
