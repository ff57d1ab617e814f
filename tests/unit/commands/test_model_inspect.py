import json
from pathlib import Path

from edgeline.cli import main

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "manifests" / "samples" / "models" / "defect-detector-1.0.0.onnx"


def test_inspect_prints_io_and_opsets_for_a_person(capsys):
    assert main(["model", "inspect", str(SAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "image" in out and "[batch, 3, 64, 64]" in out and "ai.onnx 17" in out


def test_digest_prints_exactly_what_a_manifest_needs(capsys):
    assert main(["model", "inspect", "--digest", str(SAMPLE)]) == 0
    assert capsys.readouterr().out.strip() in (ROOT / "manifests" / "samples" / "20-mlmodels.yaml").read_text()


def test_json_output_matches_the_status_fields(capsys):
    assert main(["model", "inspect", "-o", "json", str(SAMPLE)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["outputs"] == [{"name": "probabilities", "elemType": "FLOAT", "shape": ["batch", "2"]}]


def test_a_file_that_is_not_a_model_is_one_clear_line(tmp_path, capsys):
    junk = tmp_path / "notes.onnx"
    junk.write_text("hello")
    assert main(["model", "inspect", str(junk)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("edgeline: NotOnnx:") and "Traceback" not in err
