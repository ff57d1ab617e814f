"""CRDs generated from the API models: `python -m edgeline.api.crdgen --out crds`
writes them, `--check crds` exits 1 when the files differ from the models.

Pydantic's JSON schema is not a structural schema (it uses $ref, anyOf for optional
fields, titles); `structural()` turns it into one the API server accepts.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

import yaml

from edgeline import GROUP, VERSION
from edgeline.api.analysis import MetricCheckTemplate
from edgeline.api.approval import Approval
from edgeline.api.approvalpolicy import ApprovalPolicy
from edgeline.api.datapipeline import DataPipeline
from edgeline.api.edgecluster import EdgeCluster
from edgeline.api.edgedeployment import EdgeDeployment
from edgeline.api.mlmodel import MLModel

KINDS = [EdgeCluster, MLModel, EdgeDeployment, DataPipeline, MetricCheckTemplate, ApprovalPolicy, Approval]
CATEGORY = "edgeline"
_KEEP = ("type", "description", "enum", "pattern", "minimum", "maximum", "minLength", "maxLength",
         "minItems", "maxItems", "maxProperties", "default", "format", "x-kubernetes-validations")


def structural(schema: dict, defs: dict) -> dict:
    if "$ref" in schema:
        target = defs[schema["$ref"].split("/")[-1]]
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return structural(merged, defs)
    if "anyOf" in schema:
        # Optional[X] is anyOf [X, null]: the field is simply not required.
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"unions other than Optional cannot be expressed structurally: {schema}")
        merged = {**options[0], **{k: v for k, v in schema.items() if k != "anyOf"}}
        if merged.get("default", 0) is None:
            merged.pop("default")
        return structural(merged, defs)
    if "const" in schema:
        schema = {**schema, "enum": [schema["const"]]}
    out = {k: v for k, v in schema.items() if k in _KEEP}
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    kind = out.get("type")
    if kind == "object" or "properties" in schema:
        out["type"] = "object"
        if "properties" in schema:
            out["properties"] = {name: structural(sub, defs) for name, sub in schema["properties"].items()}
            if schema.get("required"):
                out["required"] = list(schema["required"])
        elif isinstance(schema.get("additionalProperties"), dict):
            out["additionalProperties"] = structural(schema["additionalProperties"], defs)
    elif kind == "array":
        out["items"] = structural(schema.get("items", {}), defs)
    # Items and map values are explained by the field that holds them.
    if "description" in out:
        for child in ("items", "additionalProperties"):
            if isinstance(out.get(child), dict) and "description" not in out[child]:
                out[child]["description"] = out["description"]
    if out.get("default") in ({}, []) and "properties" not in out:
        out.pop("default")  # empty maps and lists add noise; an empty object lets its fields' defaults apply
    return out


def _model_schema(model) -> dict:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return structural(raw, raw.get("$defs", {}))


def _at(schema: dict, path: str) -> dict:
    """The schema node at a dotted path below spec; `[]` steps into a list's items. Rules placed
    this way bind to spec alone, where a rule on a shared type would also apply to status."""
    node = schema
    for part in path.split("."):
        items = part.endswith("[]")
        node = node["properties"][part.removesuffix("[]")]
        if items:
            node = node["items"]
    return node


def crd(kind) -> dict:
    spec_model = kind.model_fields["spec"].annotation
    spec_schema = _model_schema(spec_model)
    spec_schema["description"] = f"Desired state of the {kind.KIND}."
    if kind.SPEC_VALIDATIONS:
        spec_schema["x-kubernetes-validations"] = kind.SPEC_VALIDATIONS
    for path, rules in getattr(kind, "SPEC_FIELD_VALIDATIONS", {}).items():
        _at(spec_schema, path).setdefault("x-kubernetes-validations", []).extend(rules)
    properties = {
        "apiVersion": {"type": "string", "description": "edgeline.io/v1alpha1"},
        "kind": {"type": "string", "description": kind.KIND},
        "metadata": {"type": "object"},
        "spec": spec_schema,
    }
    if "status" in kind.model_fields:     # kinds without status (policies, approvals) have no subresource
        status_schema = _model_schema(kind.model_fields["status"].annotation.__args__[0])
        status_schema["description"] = f"Observed state of the {kind.KIND}, written by the operator alone."
        properties["status"] = status_schema
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.PLURAL}.{GROUP}", "labels": {"app.kubernetes.io/part-of": "edgeline"}},
        "spec": {
            "group": GROUP,
            "scope": kind.SCOPE,
            "names": {"kind": kind.KIND, "plural": kind.PLURAL, "singular": kind.SINGULAR,
                      "shortNames": kind.SHORT_NAMES, "categories": [CATEGORY]},
            "versions": [{
                "name": VERSION, "served": True, "storage": True,
                **({"subresources": {"status": {}}} if "status" in properties else {}),
                "additionalPrinterColumns": kind.PRINTER_COLUMNS,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": kind.DESCRIPTION,
                    "required": ["spec"],
                    "properties": properties,
                }},
            }],
        },
    }


def render_all() -> dict[str, str]:
    header = "# Generated from edgeline.api by `make crds`; do not edit.\n"
    return {f"{k.PLURAL}.{GROUP}.yaml": header + yaml.safe_dump(crd(k), sort_keys=False, width=120)
            for k in KINDS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--out", type=Path, help="write the CRDs into this folder")
    group.add_argument("--check", type=Path, help="exit 1 when this folder differs from the models")
    args = parser.parse_args(argv)
    rendered = render_all()
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, text in rendered.items():
            (args.out / name).write_text(text)
        return 0
    stale = []
    for name, text in rendered.items():
        path = args.check / name
        current = path.read_text() if path.exists() else ""
        if current != text:
            diff = difflib.unified_diff(current.splitlines(), text.splitlines(), str(path), "generated", lineterm="")
            stale.append("\n".join(list(diff)[:40]))
    extra = sorted(p.name for p in args.check.glob("*.yaml") if p.name not in rendered)
    if stale or extra:
        print("crds/ is out of date with edgeline.api; run `make crds`.", file=sys.stderr)
        for d in stale:
            print(d, file=sys.stderr)
        for name in extra:
            print(f"{name}: not generated by any model", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
