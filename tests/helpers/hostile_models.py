"""Artifacts made to hurt the one who inspects them (docs/security.md)."""

from __future__ import annotations

from pathlib import Path


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def memory_bomb(path: Path, nodes: int = 1_000_000) -> Path:
    """A ModelProto whose graph holds `nodes` empty NodeProtos: two bytes each on disk, a few
    hundred bytes each once parsed (1M nodes: 2 MB of file, ~350 MB to parse, ~700 MB for the
    checker). Valid protobuf, so only memory stops a parser."""
    graph = b"\x0a\x00" * nodes  # field 1 (node), length 0
    opset = b"\x10" + _varint(17)  # OperatorSetIdProto.version = 17
    model = (b"\x08" + _varint(8)  # ir_version 8
             + b"\x42" + _varint(len(opset)) + opset  # opset_import
             + b"\x3a" + _varint(len(graph)) + graph)  # graph
    path.write_bytes(model)
    return path
