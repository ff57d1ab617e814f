"""The catalogue of bad input in tests/e2e/invalid/: each file is rejected by the real hub
API server with a message that names the field and the reason, and nothing is lost.

A case is one YAML file. Its comments say what the message must contain (`# expect: ...`);
all documents but the last must be accepted (set-up), the last must be rejected. Names and
namespaces are rewritten per case so that cases cannot disturb each other.
"""

from __future__ import annotations

import json
import pytest
import yaml

from tests.helpers.invalid_cases import CASES, expectations as _expectations


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_invalid_object_is_rejected_with_a_clear_message(hub, crds_installed, namespace, path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    name = "case-" + path.stem.split("-", 1)[0]
    for doc in docs:
        doc["metadata"]["name"] = f"{name}-{namespace}" if doc["kind"] == "EdgeCluster" else name
        if "namespace" in doc["metadata"]:
            doc["metadata"]["namespace"] = namespace
    *setup, bad = docs
    for doc in setup:
        hub.apply(doc, "--validate=strict")
    before = _current(hub, bad)

    result = hub.apply(bad, "--validate=strict", check=False)

    try:
        assert result.returncode != 0, f"{path.name} was accepted:\n{result.stdout}"
        for expected in _expectations(path):
            assert expected in result.stderr, f"{path.name}: {expected!r} not in:\n{result.stderr}"
        assert "Traceback" not in result.stderr
        assert _current(hub, bad) == before, "a rejected apply changed the stored object"
    finally:
        if bad["kind"] == "EdgeCluster":
            hub.kubectl("delete", "edgecluster", bad["metadata"]["name"], "--ignore-not-found", check=False)


def _current(hub, doc) -> dict | None:
    args = [doc["kind"].lower() + "." + doc["apiVersion"].split("/")[0], doc["metadata"]["name"]]
    if "namespace" in doc["metadata"]:
        args += ["-n", doc["metadata"]["namespace"]]
    proc = hub.kubectl("get", *args, "-o", "json", "--ignore-not-found", check=False)
    return json.loads(proc.stdout)["spec"] if proc.stdout.strip() else None
