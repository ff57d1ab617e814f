"""Markers by folder, so that `-m e2e`, `-m "not e2e"` and `-m integration` select what they say:

- tests/unit: pure logic, milliseconds, no process or binary of its own;
- tests/integration: real processes and binaries (the runtime with onnxruntime, Prometheus,
  Alertmanager, promtool, helm, gopher-lua), no cluster;
- tests/e2e: the local hub and edge control planes (started by tests/e2e/conftest.py).

A `pytestmark` in a conftest.py marks nothing, hence this hook.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
MARKED_FOLDERS = {"e2e": TESTS / "e2e", "integration": TESTS / "integration"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: runs real binaries or processes but needs no cluster")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.path)).resolve()
        for marker, folder in MARKED_FOLDERS.items():
            if path.is_relative_to(folder):
                item.add_marker(getattr(pytest.mark, marker))
