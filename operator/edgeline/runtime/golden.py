"""The golden sample: known inputs and the outputs a good model gives for them, checked once
at start-up so that a model with the right digest but the wrong behaviour (a bad export, the
wrong weights) never becomes ready.

    {"inputs":  [{"name": "image", "datatype": "FP32", "shape": [1, 3, 64, 64], "data": [...]}],
     "outputs": [{"name": "probabilities", "shape": [1, 2], "data": [0.51, 0.49]}],
     "tolerance": {"absolute": 1e-5, "relative": 1e-4}}

`tolerance` may also be a single number (absolute); numbers are compared as
|actual - expected| <= absolute + relative * |expected|.

An EdgeDeployment names the file by URI and digest (spec.runtime.goldenSample); the runtime
fetches it beside the model, proves its digest (`fetch_golden_sample`), and stays unready with
`reason: GoldenSampleFailed` and the deviation in its log when the model does not reproduce
it. `make_golden_sample` writes one from a model's own outputs (`edgeline model golden`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeline.artifacts.fetch import Limits, fetch_artifact, sha256_of, verify_digest
from edgeline.runtime.tensors import BadRequest, InferRequest, TensorSpec, parse_infer_request

DEFAULT_ABSOLUTE = 1e-5
DEFAULT_RELATIVE = 1e-4


class GoldenSampleInvalid(ValueError):
    """The golden sample file itself is unusable (not JSON, wrong fields, does not fit the model)."""


@dataclass(frozen=True)
class GoldenSample:
    request: InferRequest
    expected: dict[str, np.ndarray]
    absolute: float
    relative: float
    shaped: frozenset[str] = frozenset()  # outputs whose expected shape is given, not just their values


def load_golden_sample(path: Path, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> GoldenSample:
    try:
        document = json.loads(Path(path).read_text())
    except OSError as exc:
        raise GoldenSampleInvalid(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise GoldenSampleInvalid(f"{path} is not JSON: {exc}") from None
    return parse_golden_sample(document, inputs, outputs)


def parse_golden_sample(document: object, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> GoldenSample:
    if not isinstance(document, dict) or not isinstance(document.get("outputs"), list) or not document["outputs"]:
        raise GoldenSampleInvalid("a golden sample needs `inputs` and a non-empty `outputs` list")
    try:
        request = parse_infer_request({"inputs": document.get("inputs")}, inputs, outputs)
    except BadRequest as exc:
        raise GoldenSampleInvalid(f"golden sample inputs: {exc}") from None
    known = {spec.name for spec in outputs}
    expected: dict[str, np.ndarray] = {}
    shaped = set()
    for position, tensor in enumerate(document["outputs"]):
        name = tensor.get("name") if isinstance(tensor, dict) else None
        if name not in known:
            raise GoldenSampleInvalid(f"golden sample outputs[{position}] names no output of the model "
                                      f"({', '.join(sorted(known))})")
        try:
            array = np.asarray(tensor.get("data"), dtype=np.float64)
            shape = tensor.get("shape")
            expected[name] = array.reshape(shape) if shape is not None else array.reshape(-1)
        except (TypeError, ValueError):
            raise GoldenSampleInvalid(f"golden sample output {name!r}: `data` must be numbers that fit `shape`") \
                from None
        if tensor.get("shape") is not None:
            shaped.add(name)
    absolute, relative = _tolerance(document.get("tolerance"))
    return GoldenSample(request, expected, absolute, relative, frozenset(shaped))


def _tolerance(value: object) -> tuple[float, float]:
    if value is None:
        return DEFAULT_ABSOLUTE, DEFAULT_RELATIVE
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value), 0.0
    if isinstance(value, dict) and set(value) <= {"absolute", "relative"}:
        try:
            absolute = float(value.get("absolute", DEFAULT_ABSOLUTE))
            relative = float(value.get("relative", DEFAULT_RELATIVE))
        except (TypeError, ValueError):
            absolute = relative = -1.0
        if absolute >= 0 and relative >= 0:
            return absolute, relative
    raise GoldenSampleInvalid("`tolerance` must be a non-negative number or {absolute, relative}")


def compare_outputs(sample: GoldenSample, actual: dict[str, np.ndarray]) -> str | None:
    """None when every expected output matches within tolerance, else what differs."""
    for name, expected in sample.expected.items():
        got = np.asarray(actual[name])
        if got.size != expected.size or (name in sample.shaped and got.shape != expected.shape):
            return f"output {name!r} has shape {list(got.shape)}, the golden sample expects {list(expected.shape)}"
        got = got.reshape(expected.shape).astype(np.float64)
        off = np.abs(got - expected) > sample.absolute + sample.relative * np.abs(expected)
        off |= np.isnan(got) != np.isnan(expected)
        if off.any():
            worst = float(np.nanmax(np.abs(got - expected), initial=0.0))
            return (f"output {name!r} differs from the golden sample in {int(off.sum())} of {off.size} values "
                    f"(largest difference {worst:.3g}; tolerance absolute {sample.absolute:g}, "
                    f"relative {sample.relative:g})")
    return None


# A golden sample holds a few inputs, not a data set.
MAX_BYTES = 64 * 1024**2


def fetch_golden_sample(uri: str, sha256: str, model_dir: Path, limits: Limits) -> Path:
    """The golden sample at `uri` on disk with its digest proven (ArtifactError otherwise)."""
    target = model_dir / "golden" / (sha256.removeprefix("sha256:") + ".json")
    if not (target.is_file() and sha256_of(target)[0] == sha256):
        result = fetch_artifact(uri, target, limits=dataclasses.replace(limits, max_bytes=MAX_BYTES))
        verify_digest(result, sha256, what="the golden sample")
    return target


def make_golden_sample(inputs: list[dict], outputs: dict[str, np.ndarray], absolute: float = DEFAULT_ABSOLUTE,
                       relative: float = DEFAULT_RELATIVE) -> dict:
    """The golden sample document for `inputs` (OIP v2 tensors) and the outputs a good model
    gave for them."""
    return {"inputs": inputs,
            "outputs": [{"name": name, "shape": list(np.shape(value)),
                         "data": np.asarray(value, dtype=np.float64).reshape(-1).tolist()}
                        for name, value in outputs.items()],
            "tolerance": {"absolute": absolute, "relative": relative}}
