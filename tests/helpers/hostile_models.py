"""Artifacts made to hurt the one who inspects them (docs/security.md)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.onnx_models import varint


def memory_bomb(path: Path, nodes: int = 1_000_000) -> Path:
    """A ModelProto whose graph holds `nodes` empty NodeProtos: two bytes each on disk, a few
    hundred bytes each once parsed (1M nodes: 2 MB of file, ~350 MB to parse, ~700 MB for the
    checker). Valid protobuf, so only memory stops a parser."""
    graph = b"\x0a\x00" * nodes  # field 1 (node), length 0
    opset = b"\x10" + varint(17)  # OperatorSetIdProto.version = 17
    model = (b"\x08" + varint(8)  # ir_version 8
             + b"\x42" + varint(len(opset)) + opset  # opset_import
             + b"\x3a" + varint(len(graph)) + graph)  # graph
    path.write_bytes(model)
    return path
