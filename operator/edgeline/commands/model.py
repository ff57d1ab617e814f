"""`edgeline model inspect PATH_OR_URI`: what Edgeline would record about a model."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml


def register(sub: argparse._SubParsersAction) -> None:
    model = sub.add_parser("model", help="work with model artifacts")
    actions = model.add_subparsers(dest="action", required=True, metavar="ACTION")
    inspect = actions.add_parser("inspect", help="fetch, hash and inspect an ONNX model (path, file:// or http(s)://)")
    inspect.add_argument("source", metavar="PATH_OR_URI")
    inspect.add_argument("--digest", action="store_true", help="print only sha256:<hex>, for a manifest")
    inspect.add_argument("-o", "--output", choices=("text", "json", "yaml"), default="text")
    inspect.set_defaults(func=_inspect)


def _inspect(args) -> int:
    from edgeline.artifacts.fetch import ArtifactError
    from edgeline.artifacts.validation import validate_artifact
    from edgeline.settings import get_settings

    uri = args.source if "://" in args.source else Path(args.source).resolve().as_uri()
    outcome = validate_artifact(uri, None, get_settings())
    if outcome.error and not (args.digest and outcome.fetch):
        print(f"edgeline: {outcome.error.reason}: {outcome.error.message}", file=sys.stderr)
        return 1
    if args.digest:
        print(outcome.fetch.sha256)
        return 0
    report = {"uri": uri, "sha256": outcome.fetch.sha256, **outcome.inspection.to_status()}
    if args.output == "json":
        print(json.dumps(report, indent=2))
    elif args.output == "yaml":
        print(yaml.safe_dump(report, sort_keys=False), end="")
    else:
        print(_text(report))
    return 0


def _text(r: dict) -> str:
    from edgeline.domain.quantities import format_bytes

    opsets = ", ".join(f"{o['domain'] or 'ai.onnx'} {o['version']}" for o in r["opsetImports"])
    lines = [
        f"model     {r['uri']}",
        f"sha256    {r['sha256']}",
        f"size      {format_bytes(r['sizeBytes'])} ({r['sizeBytes']} bytes)"
        + (", external data" if r["externalData"] else ""),
        f"onnx      IR {r['irVersion']}, opsets {opsets}, producer {r['producer']['name'] or '?'} "
        f"{r['producer']['version'] or ''}".rstrip(),
        f"weights   {r['initializerCount']} initializers, {r['parameterCount']:,} parameters",
    ]
    for label, tensors in (("input", r["inputs"]), ("output", r["outputs"])):
        for t in tensors:
            lines.append(f"{label:9} {t['name']:24} {t['elemType']:8} [{', '.join(t['shape'])}]")
    return "\n".join(lines)
