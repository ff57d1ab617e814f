"""`edgeline models`: the MLModels of a namespace (or all, -A) with phase, version, the
default-domain opset and the size, as MLModel validation recorded them, and the EdgeDeployments
that use each (status.usedBy)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from edgeline.commands.history import format_table
from edgeline.commands.status import add_common_options, age, hub, render
from edgeline.domain.quantities import format_bytes


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("models", help="list MLModels with phase, version, opset and size",
                            description=__doc__.splitlines()[0])
    add_common_options(parser)
    parser.add_argument("-A", "--all-namespaces", action="store_true", help="MLModels of every namespace")
    parser.add_argument("-o", "--output", choices=["table", "json", "yaml"], default="table", help="output format")
    parser.set_defaults(func=run_models)


def model_row(obj: dict) -> dict:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    inspection = status.get("inspection") or {}
    opset = next((o.get("version") for o in inspection.get("opsetImports") or []
                  if o.get("domain", "") in ("", "ai.onnx")), None)
    size = inspection.get("sizeBytes") or (status.get("artifact") or {}).get("sizeBytes")
    reason = next((c.get("message") for c in status.get("conditions") or []
                   if c.get("type") == "Ready" and c.get("status") == "False"), None)
    return {"namespace": meta.get("namespace"), "name": meta.get("name"), "model": spec.get("model"),
            "version": spec.get("version"), "stage": spec.get("stage"), "phase": status.get("phase") or "Pending",
            "opset": opset, "sizeBytes": size, "digest": (status.get("artifact") or {}).get("digest"),
            "usedBy": status.get("usedBy") or [], "created": meta.get("creationTimestamp"),
            "message": reason if status.get("phase") == "Invalid" else None}


def format_models(rows: list[dict], now: dt.datetime, namespaces: bool = False) -> str:
    if not rows:
        return "no MLModels found"
    ordered = sorted(rows, key=lambda r: (r["namespace"] or "", r["model"] or "", r["version"] or "", r["name"]))
    table = [(["NAMESPACE"] if namespaces else []) + ["NAME", "MODEL", "VERSION", "PHASE", "OPSET", "SIZE",
                                                       "USED BY", "AGE"]]
    for r in ordered:
        table.append(([r["namespace"]] if namespaces else []) + [
            r["name"], r["model"] or "-", r["version"] or "-", r["phase"],
            str(r["opset"]) if r["opset"] is not None else "-",
            format_bytes(r["sizeBytes"]) if r["sizeBytes"] is not None else "-",
            ", ".join(r["usedBy"]) or "-", age(r["created"], now)])
    out = format_table(table)
    invalid = [r for r in ordered if r["message"]]
    if invalid:
        out += "\n\n" + "\n".join(f"{r['name']}: {r['message']}" for r in invalid)
    return out


def run_models(args: argparse.Namespace) -> int:
    from lightkube import ALL_NS, ApiError

    from edgeline.clusters.resources import RESOURCES

    client = hub(args.kubeconfig)
    namespace = ALL_NS if args.all_namespaces else (args.namespace or client.namespace)
    try:
        # status.usedBy: "namespace/deployment (roles)", kept by the MLModel controller
        rows = [model_row(m.to_dict()) for m in client.list(RESOURCES["mlmodels"], namespace=namespace)]
    except ApiError as exc:
        print(f"edgeline: {exc.status.message}", file=sys.stderr)
        return 1
    if args.output == "table":
        print(format_models(rows, dt.datetime.now(dt.timezone.utc), namespaces=args.all_namespaces))
    else:
        print(render(rows, args.output))
    return 0
