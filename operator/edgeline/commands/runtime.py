"""`edgeline runtime serve`: the inference server an edge Deployment runs (edgeline.runtime).

    edgeline runtime serve --model-uri https://models.example/detector-1.2.0.onnx \\
        --sha256 sha256:<hex> --model-name detector --model-version 1.2.0

Every option has an EDGELINE_* environment variable, so a Deployment configures it with env;
an option given on the command line wins over its variable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# option -> (RuntimeConfig field, environment variable, help)
OPTIONS = {
    "--model-uri": ("model_uri", "EDGELINE_MODEL_URI", "http(s):// or file:// URI of the ONNX model (required)"),
    "--sha256": ("model_sha256", "EDGELINE_MODEL_SHA256",
                 "sha256:<hex> the model must have; the runtime never serves other bytes (required)"),
    "--external-data": ("model_external_data", "EDGELINE_MODEL_EXTERNAL_DATA",
                        'digests of the model\'s external data files, JSON {"weights.bin": "sha256:..."}'),
    "--model-name": ("model_name", "EDGELINE_MODEL_NAME", "name the model is served under (default: model)"),
    "--model-version": ("model_version", "EDGELINE_MODEL_VERSION", "version it is served as (default: 1)"),
    "--deployment": ("deployment", "EDGELINE_DEPLOYMENT", "EdgeDeployment this runtime belongs to"),
    "--namespace": ("namespace", "EDGELINE_NAMESPACE", "namespace of that EdgeDeployment"),
    "--cluster": ("cluster", "EDGELINE_CLUSTER", "EdgeCluster the runtime runs on"),
    "--host": ("host", "EDGELINE_HOST", "address to listen on (default: 0.0.0.0)"),
    "--port": ("port", "EDGELINE_PORT", "port to listen on (default: 8080; 0: any free port, logged)"),
    "--execution-provider": ("execution_provider", "EDGELINE_EXECUTION_PROVIDER",
                             "onnxruntime execution provider: CPU (default), CUDA, TensorRT, OpenVINO, ..."),
    "--golden-sample": ("golden_sample", "EDGELINE_GOLDEN_SAMPLE",
                        "JSON file with inputs, expected outputs and tolerance; checked before becoming ready"),
    "--model-dir": ("model_dir", "EDGELINE_MODEL_DIR", "where the fetched model is kept "
                                                         "(default: /tmp/edgeline-runtime; an emptyDir in a Pod)"),
    "--inference-threads": ("inference_threads", "EDGELINE_INFERENCE_THREADS",
                            "inference requests run at once (default: 2)"),
    "--intra-op-threads": ("intra_op_threads", "EDGELINE_INTRA_OP_THREADS",
                           "onnxruntime threads per inference (default: 0, one per core)"),
}
FLAGS = {field: (flag, env) for flag, (field, env, _) in OPTIONS.items()}


def register(sub: argparse._SubParsersAction) -> None:
    runtime = sub.add_parser("runtime", help="the edge inference server",
                             description="The inference server edge Deployments run.")
    actions = runtime.add_subparsers(dest="action", required=True, metavar="ACTION")
    serve = actions.add_parser(
        "serve", help="fetch, verify and serve one ONNX model over the Open Inference Protocol v2",
        description="Fetch one ONNX model, verify its sha256, load it with onnxruntime and serve it over the "
                    "Open Inference Protocol v2 (HTTP/JSON) with Prometheus metrics on /metrics. Every option "
                    "can also be set by the environment variable named in brackets.")
    for flag, (field, env, text) in OPTIONS.items():
        serve.add_argument(flag, dest=field, default=None, metavar=field.split("_")[-1].upper(),
                           help=f"{text} [{env}]")
    serve.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from edgeline.artifacts.fetch import Limits
    from edgeline.runtime.config import RuntimeConfig
    from edgeline.runtime.serve import serve
    from edgeline.settings import get_settings

    given = {field: getattr(args, field) for field, _ in FLAGS.items() if getattr(args, field) is not None}
    try:
        config = RuntimeConfig(**given)
    except ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            flag, env = FLAGS.get(field, (field, ""))
            problem = "is required" if error["type"] == "missing" else error["msg"].removeprefix("Value error, ")
            print(f"edgeline runtime serve: {flag} ({env}) {problem}", file=sys.stderr)
        return 2
    if config.golden_sample is not None and not Path(config.golden_sample).is_file():
        print(f"edgeline runtime serve: --golden-sample {config.golden_sample} is not a file", file=sys.stderr)
        return 2
    # Download limits (size, timeouts, retries, CA bundle) are the operator's EDGELINE_ARTIFACT_* settings.
    return serve(config, Limits.from_settings(get_settings()))
