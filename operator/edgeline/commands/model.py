"""`edgeline model inspect PATH_OR_URI`: what Edgeline would record about a model, for a person.

    edgeline model inspect model.onnx              # a compact table of inputs, outputs and opsets
    edgeline model inspect --digest model.onnx     # sha256:<hex>, for artifact.sha256 in a manifest
    edgeline model inspect -o json https://models.example/detector-1.2.0.onnx
    edgeline model inspect mlmodel/detector-2-0-0 -n factory   # which variant would go to which EdgeCluster
    edgeline model push detector.onnx oci://registry.example:5000/models/detector:1.2.0
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
                    "file://, http://, https:// or oci://REGISTRY/REPOSITORY@sha256:DIGEST. Prints what Edgeline writes into MLModel.status.inspection.")
    inspect.add_argument("source", metavar="PATH_OR_URI",
                         help="a file or URI; or mlmodel/NAME: which of its variants each registered EdgeCluster "
                              "would get, and why")
    inspect.add_argument("-n", "--namespace", default=None, help="with mlmodel/NAME: its namespace")
    inspect.add_argument("--kubeconfig", default=None, help="with mlmodel/NAME: the hub's kubeconfig")
    inspect.add_argument("--onnxruntime", default=None,
                         help="with mlmodel/NAME: onnxruntime version of the runtime (default: Edgeline's image)")
    inspect.add_argument("--digest", action="store_true", help="print only sha256:<hex>, for a manifest")
    inspect.add_argument("-o", "--output", choices=("text", "json", "yaml"), default="text",
                         help="text (default) for people, json or yaml for tools")
    inspect.set_defaults(func=run_inspect)
    push = actions.add_parser(
        "push", help="upload an ONNX file to an OCI registry as a model artifact",
        description="Upload an ONNX file to an OCI registry as a model artifact (an OCI manifest with the empty "
                    "config and one layer of type application/vnd.edgeline.model.onnx.v1) and print the "
                    "digest-pinned reference and the file's sha256, for MLModel spec.artifact. Speaks https; "
                    "plain http only to a registry on a non-public address (loopback, a lab range) that does not "
                    "answer https.")
    push.add_argument("file", metavar="FILE.onnx")
    push.add_argument("target", metavar="oci://REGISTRY/REPOSITORY[:TAG]")
    push.add_argument("--username", default=None, help="registry user (the password comes from "
                                                       "EDGELINE_REGISTRY_PASSWORD); default: anonymous")
    push.add_argument("-o", "--output", choices=("text", "json", "yaml"), default="text",
                      help="text (default): a spec.artifact block to paste; json or yaml for tools")
    push.set_defaults(func=run_push)
    from edgeline.commands import golden

    golden.register(actions)


def run_inspect(args: argparse.Namespace) -> int:
    from edgeline.artifacts.errors import ArtifactError

    if args.source.startswith(("mlmodel/", "mlmodels/")):
        return run_where(args)
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


def run_push(args: argparse.Namespace) -> int:
    import os

    from edgeline.artifacts.errors import ArtifactError
    from edgeline.artifacts.fetch import Limits
    from edgeline.artifacts.oci import push
    from edgeline.settings import get_settings

    path = Path(args.file)
    if not path.is_file():
        print(f"edgeline: {path} does not exist or is not a file", file=sys.stderr)
        return 1
    credentials = None
    if args.username:
        credentials = {"username": args.username, "password": os.environ.get("EDGELINE_REGISTRY_PASSWORD", "")}
    try:
        # The person's own upload: no fetch policy (that guards the operator's network position).
        pushed = push(path, args.target, Limits.from_settings(get_settings()), credentials)
    except (ArtifactError, OSError) as exc:
        reason = getattr(exc, "reason", type(exc).__name__)
        print(f"edgeline: {reason}: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 1
    report = {"uri": str(pushed.reference), "sha256": pushed.sha256, "sizeBytes": pushed.size_bytes}
    if pushed.tag:
        report["tag"] = pushed.tag
    if args.output == "json":
        print(json.dumps(report, indent=2))
    elif args.output == "yaml":
        import yaml

        print(yaml.safe_dump(report, sort_keys=False), end="")
    else:
        print(f"pushed {path.name} ({pushed.size_bytes:,} bytes)" + (f" as tag {pushed.tag}" if pushed.tag else ""))
        print("artifact:")
        print(f"  uri: {report['uri']}")
        print(f"  sha256: {report['sha256']}")
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



# --- mlmodel/NAME: which variant would go where ------------------------------------------------------

def where_rows(model: dict, clusters: list[dict], onnxruntime: str | None = None) -> list[dict]:
    """Per EdgeCluster (hub objects as dicts): the variant of `model` it would get and why, or
    why none fits, by the same decision the operator makes (domain.variants.pick)."""
    from edgeline.api.edgedeployment import Runtime
    from edgeline.domain.placement import ClusterFacts
    from edgeline.domain.variants import Runs, pick, variants_of

    variants = variants_of(model.get("spec") or {}, model.get("status") or {})
    runs = Runs.of(Runtime(onnxruntime_version=onnxruntime))
    rows = []
    for obj in sorted(clusters, key=lambda c: c["metadata"]["name"]):
        status = obj.get("status") or {}
        allocatable = status.get("allocatable") or {}
        facts = ClusterFacts(name=obj["metadata"]["name"], architectures=tuple(status.get("architectures") or ()),
                             gpus=int(allocatable.get("gpu") or 0), memory=allocatable.get("memory"),
                             probed=bool(status.get("kubernetesVersion")), stale=bool(status.get("stale")))
        chosen = pick(variants, facts, runs)
        rows.append({"cluster": facts.name, "architectures": list(facts.architectures), "gpus": facts.gpus,
                     "memory": facts.memory, "stale": facts.stale,
                     "variant": chosen.variant.name if chosen.variant else None,
                     "reason": chosen.reason, "message": chosen.message})
    return rows


def render_where(model: dict, rows: list[dict]) -> str:
    spec = model.get("spec") or {}
    lines = [f"{model['metadata']['namespace']}/{model['metadata']['name']}  {spec.get('model')} "
             f"{spec.get('version')}  {(model.get('status') or {}).get('phase') or 'Pending'}", ""]
    table = [("CLUSTER", "NODES", "GPUS", "VARIANT", "WHY")]
    table += [(r["cluster"] + (" (stale)" if r["stale"] else ""), ",".join(r["architectures"]) or "-",
               str(r["gpus"]), r["variant"] or "none", r["message"] if r["variant"] else
               f"{r['reason']}: {r['message']}") for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    lines += ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4] for row in table]
    return "\n".join(line.rstrip() for line in lines)


def run_where(args: argparse.Namespace) -> int:
    from lightkube import ApiError, Client, KubeConfig

    from edgeline.clusters.resources import RESOURCES

    config = KubeConfig.from_file(args.kubeconfig) if args.kubeconfig else KubeConfig.from_env()
    client = Client(config)
    namespace = args.namespace or client.namespace
    try:
        model = client.get(RESOURCES["mlmodels"], args.source.split("/", 1)[1], namespace=namespace).to_dict()
        clusters = [c.to_dict() for c in client.list(RESOURCES["edgeclusters"])]
    except ApiError as exc:
        print(f"edgeline: {exc.status.message}", file=sys.stderr)
        return 1
    rows = where_rows(model, clusters, args.onnxruntime)
    if args.output == "json":
        print(json.dumps(rows, indent=2))
    elif args.output == "yaml":
        import yaml

        print(yaml.safe_dump(rows, sort_keys=False), end="")
    else:
        print(render_where(model, rows))
    return 0
