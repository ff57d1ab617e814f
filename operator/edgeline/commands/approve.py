"""`edgeline approve NAME`: approve the revision an EdgeDeployment waits for.

Same effect as `kubectl annotate edgedeployment NAME edgeline.io/approve=<revision>`: the
approval webhook checks who you are and records the approval. Without --revision the
pending revision is shown and approved; with it, only that revision is approved, so a
change that arrived after you looked is never approved by accident.
"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("approve", help="approve the revision an EdgeDeployment waits for",
                            description=__doc__.splitlines()[0])
    parser.add_argument("name", help="EdgeDeployment name")
    parser.add_argument("-n", "--namespace", default=None, help="namespace (default: the kubeconfig's)")
    parser.add_argument("--revision", help="approve exactly this revision (as in status.pendingApproval)")
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    parser.set_defaults(func=run_approve)


def run_approve(args: argparse.Namespace) -> int:
    from lightkube import ApiError, Client, KubeConfig
    from lightkube.types import PatchType

    from edgeline.clusters.resources import RESOURCES

    config = KubeConfig.from_file(args.kubeconfig) if args.kubeconfig else KubeConfig.from_env()
    client = Client(config)
    namespace = args.namespace or client.namespace
    resource = RESOURCES["edgedeployments"]
    try:
        obj = client.get(resource, args.name, namespace=namespace).to_dict()
    except ApiError as exc:
        print(f"edgeline: {exc.status.message}", file=sys.stderr)
        return 1
    pending = (obj.get("status") or {}).get("pendingApproval") or {}
    revision = pending.get("revision") or {}
    if not revision.get("revision"):
        print(f"edgeline: {namespace}/{args.name} has no revision waiting for approval "
              f"(phase {(obj.get('status') or {}).get('phase', 'unknown')})", file=sys.stderr)
        return 1
    target = args.revision or revision["revision"]
    for line in evidence_lines(pending):
        print(line)
    print(f"approving {namespace}/{args.name} revision {target}: {revision.get('model')} {revision.get('version')} "
          f"({revision.get('digest')}), requested by {pending.get('requestedBy') or 'unknown'}")
    patch = {"metadata": {"annotations": {"edgeline.io/approve": target}}}
    try:
        client.patch(resource, args.name, patch, namespace=namespace, patch_type=PatchType.MERGE)
    except ApiError as exc:
        print(f"edgeline: not approved: {exc.status.message}", file=sys.stderr)
        return 1
    print("approval recorded")
    return 0


def evidence_lines(pending: dict) -> list[str]:
    """What the approver judges the version by: its stage and evaluation metrics
    (status.pendingApproval, from MLModel spec.metrics), and its variants."""
    revision = pending.get("revision") or {}
    metrics = pending.get("metrics") or {}
    lines = [f"stage       {pending.get('stage') or 'unknown'}"]
    lines.append("metrics     " + (", ".join(f"{k} {v:g}" for k, v in sorted(metrics.items())) if metrics
                                  else "none recorded (MLModel spec.metrics is empty)"))
    variants = revision.get("variants") or []
    if variants:
        lines.append("variants    " + ", ".join(
            f"{v.get('name')} ({'/'.join(x for x in (v.get('architecture'), v.get('accelerator')) if x) or 'any'}"
            f", {v.get('digest') or 'no digest'})" for v in variants))
    return lines
