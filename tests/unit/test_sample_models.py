"""The committed sample models are exactly what dev/sample_models.py builds, and every
digest the samples quote matches the file it names."""

import hashlib
import importlib.util
import re
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "manifests" / "samples" / "models"


def _generator():
    spec = importlib.util.spec_from_file_location("sample_models", ROOT / "dev" / "sample_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_models_are_reproducible(tmp_path):
    digests = _generator().build(tmp_path)
    for name, digest in digests.items():
        committed = (MODELS / name).read_bytes()
        assert "sha256:" + hashlib.sha256(committed).hexdigest() == digest, f"{name} differs from its generator"
        onnx.checker.check_model(onnx.load_from_string(committed), full_check=True)


def test_sample_manifests_quote_the_digests_of_the_files_they_name():
    digests = {p.name: "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest() for p in MODELS.glob("*.onnx")}
    quoted = 0
    for manifest in (ROOT / "manifests" / "samples").glob("*.yaml"):
        text = manifest.read_text()
        for uri_file, digest in re.findall(r"/models/([\w.-]+\.onnx)\s*\n\s*sha256:\s*[\"']?(sha256:[0-9a-f]{64})", text):
            assert digests.get(uri_file) == digest, f"{manifest.name}: {uri_file} is quoted with a wrong digest"
            quoted += 1
    assert quoted >= 2, "the samples should quote the digests of both sample models"
