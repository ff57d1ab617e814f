"""`edgeline approve NAME`: approve the revision an EdgeDeployment waits for.

Shows what is being approved (model, runtime, placement, rollout, who changed it, the policy
that applies), asks the API server who you are (SelfSubjectReview), and creates an Approval
object in your name for exactly that revision of exactly that object (its uid). The API
server's admission policies refuse it if it is not you, not allowed, not the revision that
waits, or your own change (docs/approvals.md). With --revision only that revision is
approved, so a change that arrived after you looked is never approved by accident.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("approve", help="approve the revision an EdgeDeployment waits for",
                            description=__doc__.splitlines()[0])
    parser.add_argument("name", help="EdgeDeployment name")
    parser.add_argument("-n", "--namespace", default=None, help="namespace (default: the kubeconfig's)")
    parser.add_argument("--revision", help="approve exactly this revision (as in status.pendingApproval)")
    parser.add_argument("--comment", help="why, kept with the approval")
    parser.add_argument("--dry-run", action="store_true",
                        help="show what would be approved and the evidence (metrics, shadow run); approve nothing")
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    parser.set_defaults(func=run_approve)


def _selector(selector: dict | None) -> str:
    selector = selector or {}
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for e in selector.get("matchExpressions") or []:
        values = f" ({','.join(e.get('values') or [])})" if e.get("values") else ""
        parts.append(f"{e['key']} {e['operator']}{values}")
    return ", ".join(parts) or "(everything)"


def describe(obj: dict) -> list[str]:
    """What an approval of the pending revision covers, for the person about to give it."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    pending = status.get("pendingApproval") or {}
    revision = pending.get("revision") or {}
    policy = status.get("approvalPolicy") or {}
    rollout = spec.get("rollout") or {}
    waves = ", ".join(w["name"] for w in rollout.get("waves") or []) or "one wave"
    current = (status.get("currentRevision") or {})
    lines = [
        f"model:      {revision.get('model')} {revision.get('version')} (MLModel {revision.get('mlmodel')})",
        f"            {revision.get('digest')} from {revision.get('uri')}",
        f"runtime:    {json.dumps(revision.get('runtime') or {}, sort_keys=True)}"
        + (f" ({pending['runtimeChange']})" if pending.get("runtimeChange") else ""),
        f"placement:  clusters {_selector((spec.get('placement') or {}).get('clusterSelector'))}",
        f"rollout:    waves {waves}; soak {rollout.get('soakSeconds', 0)} s; "
        f"maxUnavailable {rollout.get('maxUnavailable', 0)}",
        f"replaces:   {current.get('version') or 'nothing'} ({current.get('revision') or 'first rollout'})",
        f"changed by: {', '.join(pending.get('authors') or []) or pending.get('requestedBy') or 'unknown'}",
        f"policy:     {policy.get('minApprovers', '?')} approver(s) from {', '.join(policy.get('approverGroups') or [])}"
        f" ({', '.join('ApprovalPolicy ' + s for s in policy.get('sources') or []) or 'built-in floor'}); "
        f"{len(pending.get('approvals') or [])} approval(s) so far",
    ]
    return lines + [f"not counted: {why}" for why in pending.get("refused") or []]


def approval_manifest(obj: dict, revision: str, user: str, groups: list[str], comment: str | None) -> dict:
    """The Approval object: in `user`'s name, for this object's uid and this revision, relying on
    the user's groups that the effective policy names (all of them if status does not say)."""
    meta = obj["metadata"]
    allowed = ((obj.get("status") or {}).get("approvalPolicy") or {}).get("approverGroups")
    relied_on = [g for g in groups if allowed is None or g in allowed]
    return {
        "apiVersion": "edgeline.io/v1alpha1", "kind": "Approval",
        "metadata": {"generateName": f"{meta['name'][:40]}-{revision[:10]}-", "namespace": meta["namespace"],
                     # Garbage-collected with the deployment.
                     "ownerReferences": [{"apiVersion": "edgeline.io/v1alpha1", "kind": "EdgeDeployment",
                                          "name": meta["name"], "uid": meta["uid"]}]},
        "spec": {"deployment": {"name": meta["name"], "uid": meta["uid"]}, "revision": revision, "approver": user,
                 "groups": relied_on, **({"comment": comment} if comment else {})},
    }


def run_approve(args: argparse.Namespace) -> int:
    from lightkube import ApiError, Client, KubeConfig
    from lightkube.resources.authentication_v1 import SelfSubjectReview

    from edgeline.clusters.resources import RESOURCES

    config = KubeConfig.from_file(args.kubeconfig) if args.kubeconfig else KubeConfig.from_env()
    client = Client(config)
    namespace = args.namespace or client.namespace
    try:
        obj = client.get(RESOURCES["edgedeployments"], args.name, namespace=namespace).to_dict()
        who = client.create(SelfSubjectReview(apiVersion="authentication.k8s.io/v1", kind="SelfSubjectReview"))
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
    user = who.status.userInfo
    print(f"approving {namespace}/{args.name} revision {target} as {user.username}: {revision.get('model')} "
          f"{revision.get('version')} ({revision.get('digest')}), requested by {pending.get('requestedBy') or 'unknown'}")
    for line in describe(obj):
        print("  " + line)
    for line in evidence_lines(pending):
        print(line)
    if args.dry_run:
        print("dry run: nothing approved")
        return 0
    manifest = approval_manifest(obj, target, user.username, list(user.groups or []), args.comment)
    try:
        created = client.create(RESOURCES["approvals"].from_dict(manifest))
    except ApiError as exc:
        print(f"edgeline: not approved: {exc.status.message}", file=sys.stderr)
        return 1
    print(f"approval recorded: approval/{created.metadata.name} (the operator counts it against the policy; "
          f"`kubectl get ed {args.name} -n {namespace}` shows the outcome)")
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
    return lines + shadow_lines(pending.get("shadow"))


def _figure(value, unit: str = "", digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}{unit}"


def _drift(drift: dict | None) -> str:
    return ", ".join(f"{k} {v:.3g}" for k, v in sorted((drift or {}).items())) or "-"


def shadow_lines(shadow: dict | None) -> list[str]:
    """Candidate against current on each cluster of the shadow run (status.pendingApproval.shadow),
    beside the metrics above: agreement, latency p50/p95 on the same mirrored requests, drift."""
    if not shadow:
        return []       # no spec.shadow: nothing ran in shadow
    lines = [f"shadow      {shadow.get('version')} beside {shadow.get('currentVersion')} on "
             f"{', '.join(shadow.get('clusters') or [])} since {shadow.get('since')} (answers discarded)"]
    compared = {c["cluster"]: c for c in shadow.get("comparisons") or []}
    for cluster in shadow.get("clusters") or []:
        c = compared.get(cluster)
        if c is None:
            lines.append(f"  {cluster}: not measured yet")
            continue
        agreement = "-" if c.get("agreement") is None else f"{c['agreement'] * 100:.1f}%"
        lines.append(f"  {cluster}: agreement {agreement} of {c.get('requests') or 0} requests"
                     f" ({c.get('failed') or 0} failed, {c.get('dropped') or 0} dropped)")
        lines.append(f"    latency p50/p95  candidate {_figure(c.get('candidateP50Ms'))}/"
                     f"{_figure(c.get('candidateP95Ms'))} ms, current {_figure(c.get('currentP50Ms'))}/"
                     f"{_figure(c.get('currentP95Ms'))} ms")
        lines.append(f"    drift            candidate {_drift(c.get('candidateDrift'))}; "
                     f"current {_drift(c.get('currentDrift'))}")
        if c.get("message"):
            lines.append(f"    note             {c['message']}")
    return lines
