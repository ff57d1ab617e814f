"""`edgeline model inspect`, as a person and a manifest author use it."""

import json
from pathlib import Path

import pytest
import yaml

from edgeline.cli import main
from tests.helpers import onnx_models
from tests.helpers.artifact_server import serve

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "manifests" / "samples" / "models" / "defect-detector-1.0.0.onnx"


def test_inspect_prints_a_table_of_io_and_opsets_for_a_person(capsys):
    assert main(["model", "inspect", str(SAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "ai.onnx 17" in out and "242 parameters" in out
    rows = [line.split() for line in out.splitlines() if line.startswith(("input", "output"))]
    assert rows == [["input", "image", "FLOAT", "[batch,", "3,", "64,", "64]"],
                    ["output", "probabilities", "FLOAT", "[batch,", "2]"]]


def test_digest_prints_exactly_what_a_manifest_needs(capsys):
    assert main(["model", "inspect", "--digest", str(SAMPLE)]) == 0
    out = capsys.readouterr().out
    assert out == onnx_models.file_digest(SAMPLE) + "\n"
    assert out.strip() in (ROOT / "manifests" / "samples" / "20-mlmodels.yaml").read_text()


@pytest.mark.parametrize("fmt, parse", [("json", json.loads), ("yaml", yaml.safe_load)])
def test_machine_output_has_the_status_fields(capsys, fmt, parse):
    assert main(["model", "inspect", "-o", fmt, str(SAMPLE)]) == 0
    report = parse(capsys.readouterr().out)
    assert report["outputs"] == [{"name": "probabilities", "elemType": "FLOAT", "shape": ["batch", "2"]}]
    assert report["sha256"] == onnx_models.file_digest(SAMPLE) and report["irVersion"] == 8


def test_a_local_model_with_external_data_is_read_in_place(tmp_path, capsys):
    path = onnx_models.write_with_external_data(onnx_models.gemm_relu(hidden=64), tmp_path / "m.onnx")
    assert main(["model", "inspect", "-o", "json", path.as_uri()]) == 0
    assert json.loads(capsys.readouterr().out)["externalData"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "weights.bin"]


def test_a_model_over_http_is_fetched_and_inspected(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EDGELINE_ARTIFACT_DIR", str(tmp_path / "scratch"))
    onnx_models.write(onnx_models.gemm_relu(opset=21), tmp_path / "m.onnx")
    with serve(tmp_path) as url:
        assert main(["model", "inspect", f"{url}/m.onnx"]) == 0
        assert "ai.onnx 21" in capsys.readouterr().out
        assert main(["model", "inspect", "--digest", f"{url}/m.onnx"]) == 0
        assert capsys.readouterr().out.strip() == onnx_models.file_digest(tmp_path / "m.onnx")
        assert main(["model", "inspect", f"{url}/status/404"]) == 1
        assert capsys.readouterr().err.startswith("edgeline: NotFound:")


@pytest.mark.parametrize("source, reason", [
    ("notes.onnx", "NotOnnx"), ("missing.onnx", "NotFound"), ("s3://models/m.onnx", "UnsupportedScheme"),
])
def test_errors_are_one_clear_line(tmp_path, capsys, monkeypatch, source, reason):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.onnx").write_text("hello")
    assert main(["model", "inspect", source]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"edgeline: {reason}:") and err.count("\n") == 1 and "Traceback" not in err


def _cluster(name, arches, gpus=0, memory="8Gi"):
    return {"metadata": {"name": name}, "status": {"kubernetesVersion": "v1.36.3+k3s1", "architectures": arches,
                                                   "allocatable": {"gpu": gpus, "memory": memory}}}


VARIANT_MODEL = {
    "metadata": {"name": "detector-3", "namespace": "factory"},
    "spec": {"model": "detector", "version": "3.0.0", "artifact": {"uri": "https://m/fp32.onnx"},
             "platform": {"architecture": "amd64"},
             "variants": [{"name": "arm64-int8", "artifact": {"uri": "https://m/int8.onnx"},
                           "platform": {"architecture": "arm64"}}]},
    "status": {"phase": "Ready", "variants": [{"name": "default", "opset": 17}, {"name": "arm64-int8", "opset": 17}]}}


def test_which_variant_would_go_to_each_registered_cluster():
    from edgeline.commands.model import render_where, where_rows

    rows = where_rows(VARIANT_MODEL, [_cluster("edge-b", ["arm64"]), _cluster("edge-a", ["amd64"], gpus=1),
                                      _cluster("plc", ["arm"])])
    assert [(r["cluster"], r["variant"], r["reason"]) for r in rows] == [
        ("edge-a", "default", "VariantChosen"), ("edge-b", "arm64-int8", "VariantChosen"),
        ("plc", None, "NoVariantFits")]
    text = render_where(VARIANT_MODEL, rows)
    assert "edge-b   arm64  0     arm64-int8  arm64-int8: built for arm64" in text
    assert "NoVariantFits: no variant fits" in text


def test_an_old_runtime_keeps_every_cluster_out():
    from edgeline.commands.model import where_rows

    model = {**VARIANT_MODEL, "spec": {**VARIANT_MODEL["spec"], "requirements": {"minRuntimeVersion": "1.22"}}}
    rows = where_rows(model, [_cluster("edge-a", ["amd64"])], onnxruntime="1.20")
    assert (rows[0]["variant"], rows[0]["reason"]) == (None, "NoVariantFits")
    assert "needs onnxruntime 1.22; the runtime has 1.20" in rows[0]["message"]
