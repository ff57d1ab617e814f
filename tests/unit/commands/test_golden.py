"""`edgeline model golden`: a golden sample made from a good model passes that model and
catches a model with other weights, as the runtime would judge them."""

import json
import subprocess
import sys

from edgeline.artifacts.fetch import sha256_of
from edgeline.runtime.golden import compare_outputs, load_golden_sample
from edgeline.runtime.loader import load_model
from tests.helpers import runtime_models


def test_a_golden_sample_from_a_good_model_passes_it_and_catches_another(tmp_path):
    request = tmp_path / "frames.json"
    request.write_text(json.dumps(runtime_models.infer_body(runtime_models.images(2, seed=3))))
    out = tmp_path / "golden.json"
    good, other = runtime_models.sample_model("1.0.0"), runtime_models.sample_model("2.0.0")
    done = subprocess.run([sys.executable, "-m", "edgeline", "model", "golden", str(good), "--inputs", str(request),
                           "-o", str(out), "--absolute", "1e-4"], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == sha256_of(out)[0]       # what goes into spec.runtime.goldenSample.sha256
    for model, passes in ((good, True), (other, False)):
        loaded = load_model(model, sha256_of(model)[0], "CPUExecutionProvider")
        sample = load_golden_sample(out, loaded.inputs, loaded.outputs)
        assert sample.absolute == 1e-4
        difference = compare_outputs(sample, loaded.infer(sample.request.inputs, list(sample.expected)))
        assert (difference is None) is passes, difference


def test_inputs_that_do_not_fit_the_model_are_refused_with_a_reason(tmp_path):
    request = tmp_path / "bad.json"
    request.write_text(json.dumps({"inputs": [{"name": "nope", "datatype": "FP32", "shape": [1], "data": [1]}]}))
    done = subprocess.run([sys.executable, "-m", "edgeline", "model", "golden",
                           str(runtime_models.sample_model("1.0.0")), "--inputs", str(request)],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "edgeline model golden:" in done.stderr and "nope" in done.stderr
