"""`edgeline status NAME`: an EdgeDeployment as a tree, deployment -> waves -> clusters.

Everything shown comes from the object's status on the hub (what the operator last saw); a
cluster whose observation is too old to trust is marked STALE. `-o json|yaml` prints the same
tree as data. Also `kubectl edgeline status NAME` (the kubectl-edgeline entry point).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

import yaml

from edgeline import timestamps

REST_WAVE = "rest"   # clusters no named wave selects (domain.waves)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("status", help="show an EdgeDeployment as a tree of waves and clusters",
                            description=__doc__.splitlines()[0])
    parser.add_argument("name", help="EdgeDeployment name")
    add_common_options(parser)
    parser.add_argument("-o", "--output", choices=["tree", "json", "yaml"], default="tree", help="output format")
    parser.set_defaults(func=run_status)


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--namespace", default=None, help="namespace (default: the kubeconfig's)")
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")


# --- pure: status -> tree -------------------------------------------------------------------------

def _parse_time(text: str | None) -> dt.datetime | None:
    try:
        return timestamps.parse(text)
    except ValueError:
        return None


def age(since: str | None, now: dt.datetime) -> str:
    """'12s', '5m', '3h', '2d' since an RFC 3339 time; '-' when unknown."""
    then = _parse_time(since)
    if then is None:
        return "-"
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _wave_order(spec: dict, clusters: list[dict]) -> list[str]:
    names = [w.get("name") for w in (spec.get("rollout") or {}).get("waves") or [] if w.get("name")]
    for cluster in clusters:
        wave = cluster.get("wave") or REST_WAVE
        if wave not in names:
            names.append(wave)
    return names


def status_summary(obj: dict, now: dt.datetime) -> dict:
    """The tree as data: deployment, its waves in rollout order, each with its clusters."""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    clusters = status.get("clusters") or []
    rollout = status.get("rollout") or {}
    current = status.get("currentRevision") or {}
    desired = status.get("desiredRevision") or {}
    target = desired.get("revision")
    analysis = status.get("analysis") or {}
    waves = []
    for wave in _wave_order(spec, clusters):
        members = [c for c in clusters if (c.get("wave") or REST_WAVE) == wave]
        ready = sum(1 for c in members if c.get("phase") == "Ready" and c.get("revision") == target)
        waves.append({
            "name": wave, "current": rollout.get("waveName") == wave and status.get("phase") == "Progressing",
            "ready": f"{ready}/{len(members)}",
            "clusters": [{
                "name": c.get("name"), "phase": c.get("phase") or "Pending", "revision": c.get("revision"),
                "replicas": f"{c.get('readyReplicas') or 0}/{c.get('replicas') or 0}",
                "lastObserved": c.get("lastObserved"), "observedAgo": age(c.get("lastObserved"), now),
                "stale": bool(c.get("stale")), "outdated": bool(target and c.get("revision") != target),
                "message": c.get("message"),
                # Why its runtime is not ready, and what its change waits for (domain.windows), when so.
                **{k: c[k] for k in ("reason", "waitingFor", "waitingSince", "waitingUntil") if c.get(k)},
                "variant": c.get("variant"), "variantReason": c.get("variantReason"),
            } for c in members],
            "checks": _checks(analysis, wave, now),
        })
    pending = status.get("pendingApproval") or {}
    return {
        "name": meta.get("name"), "namespace": meta.get("namespace"),
        "phase": status.get("phase") or "Pending", "ready": status.get("ready") or "0/0",
        "approval": status.get("approval"),
        "desiredRevision": _revision(desired), "currentRevision": _revision(current),
        "pendingApproval": {"revision": (pending.get("revision") or {}).get("revision"),
                            "approvals": len(pending.get("approvals") or []), "needed": pending.get("needed"),
                            "requestedBy": pending.get("requestedBy"),
                            "shadow": pending.get("shadow")} if pending else None,
        "paused": (meta.get("annotations") or {}).get("edgeline.io/pause") == "true",
        "message": _ready_message(status),
        "waves": waves,
        "excluded": [{"name": e.get("name"), "reason": e.get("reason"), "message": e.get("message")}
                     for e in status.get("excluded") or []],
        "pinned": [{"cluster": p.get("cluster"), "revision": (p.get("revision") or {}).get("revision"),
                    "reason": p.get("reason")} for p in status.get("pinned") or []],
    }


def _checks(analysis: dict, wave: str, now: dt.datetime) -> list[dict]:
    """The metric checks measured in this wave (status.analysis holds the latest analysed wave)."""
    if analysis.get("wave") != wave:
        return []
    return [{"name": c.get("name"), "cluster": c.get("cluster"), "phase": c.get("phase"), "reason": c.get("reason"),
             "message": c.get("message"), "revision": analysis.get("revision"),
             "successes": c.get("successes") or 0, "failures": c.get("failures") or 0,
             "inconclusive": c.get("inconclusive") or 0, "count": c.get("count"),
             "failureLimit": c.get("failureLimit"), "lastValue": c.get("lastValue"),
             "lastMeasuredAt": c.get("lastMeasuredAt"), "measuredAgo": age(c.get("lastMeasuredAt"), now)}
            for c in analysis.get("checks") or []]


def _check_text(c: dict) -> str:
    text = (f"check {c['name']} on {c['cluster']}  {c['phase']}  {c['successes']}/{c['count'] or '?'} ok, "
            f"{c['failures']} failed ({c['failureLimit'] or 0} tolerated)")
    if c["inconclusive"]:
        text += f", {c['inconclusive']} without data"
    if c["lastValue"] is not None or c["lastMeasuredAt"]:
        text += f"  last {c['lastValue'] if c['lastValue'] is not None else 'no data'} {c['measuredAgo']} ago"
    if c["phase"] != "Passed" and c["message"]:
        text += f"  ({c['reason']}: {c['message']})"
    return text


def _revision(ref: dict) -> dict | None:
    if not ref.get("revision"):
        return None
    return {"revision": ref["revision"], "model": ref.get("model"), "version": ref.get("version"),
            "mlmodel": ref.get("mlmodel")}


def _ready_message(status: dict) -> str | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") != "True":
            return condition.get("message")
    return None


def _rev_text(rev: dict | None) -> str:
    if not rev:
        return "none"
    what = " ".join(x for x in (rev.get("model"), rev.get("version")) if x)
    return f"{rev['revision']} ({what})" if what else rev["revision"]


def format_tree(summary: dict) -> str:
    """The summary as lines for people, e.g.

    factory/detector  Progressing  1/3 ready  revision 5d41c7a9e0 (defect-detector 2.0.0)
    ├── wave pilot  1/1 ready
    │   └── line-1  Ready  5d41c7a9e0  2/2 pods  seen 3s ago
    └── wave rest  0/2 ready  <- current
        ├── line-2  Progressing  5d41c7a9e0  1/2 pods  seen 2s ago
        └── brno  Ready  0a1b2c3d4e (outdated)  2/2 pods  seen 9m ago  STALE
    """
    lines = [f"{summary['namespace']}/{summary['name']}  {summary['phase']}  {summary['ready']} ready  "
             f"revision {_rev_text(summary['desiredRevision'])}"]
    current, desired = summary["currentRevision"], summary["desiredRevision"]
    details = []
    if current and (not desired or current["revision"] != desired["revision"]):
        details.append(f"running before: {_rev_text(current)}")
    if summary["approval"]:
        details.append(f"approval: {summary['approval']}")
    pending = summary["pendingApproval"]
    if pending and pending["revision"]:
        details.append(f"waiting for approval of {pending['revision']}: {pending['approvals']}/"
                       f"{pending['needed'] or 1} (requested by {pending['requestedBy'] or 'unknown'})")
    if summary["paused"]:
        details.append("paused (edgeline.io/pause)")
    if summary["message"]:
        details.append(f"why: {summary['message']}")
    branches: list[tuple[str, list[str]]] = [(d, []) for d in details]
    for wave in summary["waves"]:
        head = f"wave {wave['name']}  {wave['ready']} ready" + ("  <- current" if wave["current"] else "")
        leaves = []
        for c in wave["clusters"]:
            rev = (c["revision"] or "-") + (" (outdated)" if c["outdated"] and c["revision"] else "")
            leaf = f"{c['name']}  {c['phase']}  {rev}  {c['replicas']} pods  seen {c['observedAgo']} ago"
            if c.get("variant"):
                leaf += f"  variant {c['variantReason'] or c['variant']}"
            if c["stale"]:
                leaf += "  STALE"
            if c["message"] and c["phase"] != "Ready":
                leaf += f"  ({c['message']})"
            leaves.append(leaf)
        leaves += [_check_text(c) for c in wave.get("checks") or []]
        branches.append((head, leaves))
    if pending and pending.get("shadow"):
        from edgeline.commands.approve import shadow_lines

        shown = shadow_lines(pending["shadow"])
        branches.append((shown[0].replace("shadow      ", "shadow: ", 1), [line.strip() for line in shown[1:]]))
    for pin in summary["pinned"]:
        branches.append((f"pinned: {pin['cluster']} stays on {pin['revision']} ({pin['reason'] or 'rollback'})", []))
    for excluded in summary["excluded"]:
        branches.append((f"excluded: {excluded['name']} ({excluded['reason']}"
                         + (f": {excluded['message']}" if excluded["message"] else "") + ")", []))
    for i, (head, leaves) in enumerate(branches):
        last = i == len(branches) - 1
        lines.append(("└── " if last else "├── ") + head)
        for j, leaf in enumerate(leaves):
            lines.append(("    " if last else "│   ") + ("└── " if j == len(leaves) - 1 else "├── ") + leaf)
    return "\n".join(lines)


def render(data, output: str) -> str:
    if output == "json":
        return json.dumps(data, indent=2)
    return yaml.safe_dump(data, sort_keys=False).rstrip("\n")


# --- the command ------------------------------------------------------------------------------------

def hub(kubeconfig: str | None):
    """A client for the hub from --kubeconfig, else $KUBECONFIG / ~/.kube/config / in-cluster."""
    from lightkube import Client, KubeConfig

    config = KubeConfig.from_file(kubeconfig) if kubeconfig else KubeConfig.from_env()
    return Client(config, field_manager="edgeline-cli")


def read_deployment(args: argparse.Namespace) -> tuple[object, str, dict] | None:
    """(client, namespace, object) or None after printing why not."""
    from lightkube import ApiError

    from edgeline.clusters.resources import RESOURCES

    client = hub(args.kubeconfig)
    namespace = args.namespace or client.namespace
    try:
        obj = client.get(RESOURCES["edgedeployments"], args.name, namespace=namespace).to_dict()
    except ApiError as exc:
        print(f"edgeline: {exc.status.message}", file=sys.stderr)
        return None
    return client, namespace, obj


def run_status(args: argparse.Namespace) -> int:
    found = read_deployment(args)
    if found is None:
        return 1
    summary = status_summary(found[2], dt.datetime.now(dt.timezone.utc))
    print(format_tree(summary) if args.output == "tree" else render(summary, args.output))
    return 0
