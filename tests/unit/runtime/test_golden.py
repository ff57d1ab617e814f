"""The golden sample: parsing the file, and comparing a model's answers with tolerance."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeline.runtime.golden import (
    DEFAULT_ABSOLUTE,
    DEFAULT_RELATIVE,
    GoldenSampleInvalid,
    compare_outputs,
    load_golden_sample,
    parse_golden_sample,
)
from edgeline.runtime.tensors import TensorSpec

INPUTS = [TensorSpec("x", "FP32", (-1, 2))]
OUTPUTS = [TensorSpec("y", "FP32", (-1, 2))]


def document(**overrides):
    return {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}],
            "outputs": [{"name": "y", "shape": [1, 2], "data": [0.5, 100.0]}], **overrides}


def test_a_sample_carries_the_request_the_expected_values_and_the_tolerance():
    sample = parse_golden_sample(document(tolerance={"absolute": 0.1, "relative": 0.01}), INPUTS, OUTPUTS)
    assert sample.request.inputs["x"].tolist() == [[1, 2]]
    assert sample.expected["y"].tolist() == [[0.5, 100.0]]
    assert (sample.absolute, sample.relative) == (0.1, 0.01)
    assert (parse_golden_sample(document(), INPUTS, OUTPUTS).absolute,
            parse_golden_sample(document(), INPUTS, OUTPUTS).relative) == (DEFAULT_ABSOLUTE, DEFAULT_RELATIVE)
    assert parse_golden_sample(document(tolerance=0.2), INPUTS, OUTPUTS).relative == 0.0


@pytest.mark.parametrize("tolerance, actual, differs", [
    (0.0, [[0.5, 100.0]], False),
    ({"absolute": 0.01, "relative": 0}, [[0.509, 100.0]], False),
    ({"absolute": 0.01, "relative": 0}, [[0.52, 100.0]], True),
    ({"absolute": 0, "relative": 0.01}, [[0.5, 100.9]], False),  # 1% of 100
    ({"absolute": 0, "relative": 0.01}, [[0.5, 101.5]], True),
    (1.0, [[np.nan, 100.0]], True),  # a NaN never matches a number
])
def test_answers_match_within_absolute_plus_relative_tolerance(tolerance, actual, differs):
    sample = parse_golden_sample(document(tolerance=tolerance), INPUTS, OUTPUTS)
    difference = compare_outputs(sample, {"y": np.array(actual, np.float32)})
    assert bool(difference) == differs, difference
    if differs:
        assert "output 'y' differs from the golden sample in 1 of 2 values" in difference


def test_shapes_are_compared_when_the_sample_gives_one():
    sample = parse_golden_sample(document(), INPUTS, OUTPUTS)
    assert "has shape [2, 1], the golden sample expects [1, 2]" in compare_outputs(
        sample, {"y": np.array([[0.5], [100.0]], np.float32)})
    flat = document(outputs=[{"name": "y", "data": [0.5, 100.0]}])
    assert compare_outputs(parse_golden_sample(flat, INPUTS, OUTPUTS), {"y": np.array([[0.5, 100.0]])}) is None


@pytest.mark.parametrize("doc, message", [
    ([], "needs `inputs` and a non-empty `outputs`"),
    (document(outputs=[]), "needs `inputs` and a non-empty `outputs`"),
    (document(inputs=[{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}]),
     "golden sample inputs: input 'x' is FP64"),
    (document(outputs=[{"name": "z", "data": [1]}]), "outputs[0] names no output of the model"),
    (document(outputs=[{"name": "y", "shape": [3], "data": [1, 2]}]), "`data` must be numbers that fit `shape`"),
    (document(outputs=[{"name": "y", "data": ["high", "low"]}]), "`data` must be numbers"),
    (document(tolerance=-1), "`tolerance` must be"),
    (document(tolerance={"abs": 1}), "`tolerance` must be"),
    (document(tolerance={"absolute": "tight"}), "`tolerance` must be"),
])
def test_an_unusable_sample_says_why(doc, message):
    with pytest.raises(GoldenSampleInvalid) as invalid:
        parse_golden_sample(doc, INPUTS, OUTPUTS)
    assert message in str(invalid.value)


def test_files_that_are_not_json_or_missing_are_invalid(tmp_path):
    (tmp_path / "sample.json").write_text("{")
    with pytest.raises(GoldenSampleInvalid, match="is not JSON"):
        load_golden_sample(tmp_path / "sample.json", INPUTS, OUTPUTS)
    with pytest.raises(GoldenSampleInvalid, match="cannot read"):
        load_golden_sample(tmp_path / "absent.json", INPUTS, OUTPUTS)
    (tmp_path / "ok.json").write_text(json.dumps(document()))
    assert load_golden_sample(tmp_path / "ok.json", INPUTS, OUTPUTS).expected["y"].shape == (1, 2)


def test_the_sample_golden_sample_is_quoted_with_its_digest_and_the_sample_models_are_judged_by_it():
    import re
    from pathlib import Path

    from edgeline.artifacts.fetch import sha256_of
    from edgeline.runtime.loader import load_model

    samples = Path(__file__).resolve().parents[3] / "manifests" / "samples"
    golden = samples / "models" / "defect-detector-1.0.0.golden.json"
    quoted = re.search(r"/models/defect-detector-1\.0\.0\.golden\.json\s*\n\s*sha256:\s*(sha256:[0-9a-f]{64})",
                       (samples / "factory-line-schedule.yaml").read_text())
    assert quoted and quoted.group(1) == sha256_of(golden)[0]
    for version, passes in (("1.0.0", True), ("2.0.0", False)):
        path = samples / "models" / f"defect-detector-{version}.onnx"
        model = load_model(path, sha256_of(path)[0], "CPUExecutionProvider")
        sample = load_golden_sample(golden, model.inputs, model.outputs)
        assert (compare_outputs(sample, model.infer(sample.request.inputs, list(sample.expected))) is None) is passes
