"""`edgeline model inspect PATH_OR_URI`: what Edgeline would record about a model, for a person.

    edgeline model inspect model.onnx              # a compact table of inputs, outputs and opsets
    edgeline model inspect --digest model.onnx     # sha256:<hex>, for artifact.sha256 in a manifest
    edgeline model inspect -o json https://models.example/detector-1.2.0.onnx
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    model = sub.add_parser("model", help="work with model artifacts",
                           description="Work with model artifacts (ONNX files).")
    actions = model.add_subparsers(dest="action", required=True, metavar="ACTION")
    inspect = actions.add_parser(
        "inspect", help="hash, check and describe an ONNX model",
        description="Hash, check (onnx.checker with shape inference) and describe an ONNX model: a local path, "
                    "file://, http:// or https://. Prints what Edgeline writes into MLModel.status.inspection.")
    inspect.add_argument("source", metavar="PATH_OR_URI")
    inspect.add_argument("--digest", action="store_true", help="print only sha256:<hex>, for a manifest")
    inspect.add_argument("-o", "--output", choices=("text", "json", "yaml"), default="text",
                         help="text (default) for people, json or yaml for tools")
    inspect.set_defaults(func=run_inspect)
    from edgeline.commands import golden

    golden.register(actions)


def run_inspect(args: argparse.Namespace) -> int:
    from edgeline.artifacts.errors import ArtifactError

    try:
        report = inspect_source(args.source, digest_only=args.digest)
    except ArtifactError as exc:
        print(f"edgeline: {exc.reason}: {exc.message}", file=sys.stderr)
        return 1
    if args.digest:
        print(report["sha256"])
    elif args.output == "json":
        print(json.dumps(report, indent=2))
    elif args.output == "yaml":
        import yaml

        print(yaml.safe_dump(report, sort_keys=False), end="")
    else:
        print(render_text(report))
    return 0


def inspect_source(source: str, *, digest_only: bool = False) -> dict:
    """{uri, sha256, **inspection.to_status()}. A local file is read where it is (no copy, and
    its external data files are found beside it); a URI goes through the operator's own path."""
    from edgeline.artifacts.errors import NotFound
    from edgeline.artifacts.fetch import Limits, local_path, sha256_of
    from edgeline.artifacts.onnx_inspect import inspect_model
    from edgeline.artifacts.validation import validate_artifact
    from edgeline.settings import get_settings

    if "://" not in source or source.startswith("file://"):
        path = local_path(source) if source.startswith("file://") else Path(source).resolve()
        if not path.is_file():
            raise NotFound(f"{source} does not exist or is not a file")
        sha256, _ = sha256_of(path)
        report = {"uri": path.as_uri(), "sha256": sha256}
        if not digest_only:
            report.update(inspect_model(path).to_status())
        return report
    # A person inspecting their own file: no fetch policy (that guards the operator's network position).
    outcome = validate_artifact(source, None, settings=get_settings(), limits=Limits.from_settings(get_settings()))
    if outcome.fetch and digest_only:
        return {"uri": source, "sha256": outcome.fetch.sha256}
    if outcome.error:
        raise outcome.error
    return {"uri": source, "sha256": outcome.fetch.sha256, **outcome.inspection.to_status()}


def render_text(r: dict) -> str:
    from edgeline.domain.quantities import format_bytes

    opsets = ", ".join(f"{o['domain'] or 'ai.onnx'} {o['version']}" for o in r["opsetImports"])
    producer = " ".join(p for p in (r["producer"]["name"], r["producer"]["version"]) if p) or "unknown"
    size = f"{format_bytes(r['sizeBytes'])} ({r['sizeBytes']:,} bytes)"
    lines = [
        f"model       {r['uri']}",
        f"sha256      {r['sha256']}",
        f"size        {size}" + (", weights in external data files" if r["externalData"] else ""),
        f"onnx        IR {r['irVersion']}, producer {producer}",
        f"opsets      {opsets}",
        f"weights     {r['initializerCount']:,} initializers, {r['parameterCount']:,} parameters",
        "",
    ]
    rows = [("", "NAME", "TYPE", "SHAPE")]
    rows += [("input", t["name"], t["elemType"], "[" + ", ".join(t["shape"]) + "]") for t in r["inputs"]]
    rows += [("output", t["name"], t["elemType"], "[" + ", ".join(t["shape"]) + "]") for t in r["outputs"]]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
    return "\n".join(line.rstrip() for line in lines)
