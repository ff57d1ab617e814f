"""`edgeline model golden MODEL --inputs REQUEST.json`: a golden sample from a model that is known
to be good and inputs it must keep answering the same way (docs/line-schedules.md).

    edgeline model golden detector-1.2.0.onnx --inputs frames.json -o golden.json
    # prints sha256:<hex> of golden.json for spec.runtime.goldenSample.sha256

REQUEST.json is an Open Inference Protocol v2 request body (`{"inputs": [...]}`); the model runs
it with onnxruntime on the CPU, as the edge runtime does, and its outputs become the expected
values.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(actions: argparse._SubParsersAction) -> None:
    golden = actions.add_parser(
        "golden", help="make a golden sample from a model and inputs",
        description="Run inputs (an Open Inference Protocol v2 request body) through a known-good ONNX model and "
                    "write a golden sample: the inputs, the outputs the model gave, and a tolerance. Prints the "
                    "file's sha256 for spec.runtime.goldenSample.")
    golden.add_argument("model", metavar="MODEL.onnx")
    golden.add_argument("--inputs", required=True, metavar="REQUEST.json", help='{"inputs": [...]} as for /infer')
    golden.add_argument("-o", "--output", default="-", metavar="FILE", help="where to write it (default: stdout)")
    golden.add_argument("--absolute", type=float, default=None, help="absolute tolerance (default 1e-5)")
    golden.add_argument("--relative", type=float, default=None, help="relative tolerance (default 1e-4)")
    golden.set_defaults(func=run_golden)


def run_golden(args: argparse.Namespace) -> int:
    from edgeline.artifacts.errors import ArtifactError
    from edgeline.runtime.golden import GoldenSampleInvalid

    try:
        document = golden_sample(Path(args.model), Path(args.inputs), args.absolute, args.relative)
    except (ArtifactError, GoldenSampleInvalid, OSError, ValueError) as exc:
        message = f"{exc.reason}: {exc.message}" if isinstance(exc, ArtifactError) else str(exc)
        print(f"edgeline model golden: {message}", file=sys.stderr)
        return 1
    text = json.dumps(document) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        from edgeline.artifacts.fetch import sha256_of

        Path(args.output).write_text(text)
        print(sha256_of(Path(args.output))[0])
    return 0


def golden_sample(model: Path, inputs: Path, absolute: float | None = None, relative: float | None = None) -> dict:
    from edgeline.artifacts.fetch import sha256_of
    from edgeline.runtime.golden import (DEFAULT_ABSOLUTE, DEFAULT_RELATIVE, GoldenSampleInvalid, make_golden_sample,
                                         parse_golden_sample)
    from edgeline.runtime.loader import load_model
    from edgeline.runtime.tensors import BadRequest, parse_infer_request

    loaded = load_model(model, sha256_of(model)[0], "CPUExecutionProvider")
    body = json.loads(inputs.read_text())
    try:
        request = parse_infer_request(body, loaded.inputs, loaded.outputs)
    except BadRequest as exc:
        raise GoldenSampleInvalid(f"{inputs}: {exc}") from None
    outputs = loaded.infer(request.inputs, request.outputs)
    document = make_golden_sample(body["inputs"], outputs, DEFAULT_ABSOLUTE if absolute is None else absolute,
                                  DEFAULT_RELATIVE if relative is None else relative)
    parse_golden_sample(document, loaded.inputs, loaded.outputs)     # what the runtime will read, read back
    return document
