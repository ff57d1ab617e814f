"""`edgeline rollback NAME --to REVISION`: put an earlier revision back by hand.

Sets the annotation edgeline.io/rollback-to=<revision> (the same path as an alert, mode
Manual, docs/rollback.md). The revision must be one the deployment knows (status.history,
current or desired); a unique prefix is enough and is expanded before the annotation is set.
"""

from __future__ import annotations

import argparse
import sys

from edgeline.commands.status import add_common_options, read_deployment

ROLLBACK_TO = "edgeline.io/rollback-to"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("rollback", help="roll an EdgeDeployment back to an earlier revision",
                            description=__doc__.splitlines()[0])
    parser.add_argument("name", help="EdgeDeployment name")
    parser.add_argument("--to", required=True, metavar="REVISION", help="revision (see `edgeline history NAME`)")
    add_common_options(parser)
    parser.set_defaults(func=run_rollback)


class UnknownRevision(ValueError):
    pass


def known_revisions(status: dict) -> list[str]:
    refs = [status.get("desiredRevision"), status.get("currentRevision"), status.get("lastKnownGood"),
            *((h or {}).get("revision") for h in status.get("history") or [])]
    seen: list[str] = []
    for ref in refs:
        revision = (ref or {}).get("revision")
        if revision and revision not in seen:
            seen.append(revision)
    return seen


def resolve_revision(status: dict, wanted: str) -> str:
    """The full revision `wanted` names (exactly or as a unique prefix); UnknownRevision says why not."""
    known = known_revisions(status)
    if wanted in known:
        return wanted
    matches = [r for r in known if r.startswith(wanted)] if wanted else []
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UnknownRevision(f"{wanted!r} is ambiguous: {', '.join(matches)}")
    raise UnknownRevision(f"no revision {wanted!r} in this deployment's history "
                          f"(known: {', '.join(known) or 'none'})")


def run_rollback(args: argparse.Namespace) -> int:
    from lightkube import ApiError
    from lightkube.types import PatchType

    from edgeline.clusters.resources import RESOURCES

    found = read_deployment(args)
    if found is None:
        return 1
    client, namespace, obj = found
    status = obj.get("status") or {}
    try:
        revision = resolve_revision(status, args.to)
    except UnknownRevision as exc:
        print(f"edgeline: {exc}", file=sys.stderr)
        return 1
    if revision == (status.get("currentRevision") or {}).get("revision") and \
            revision == (status.get("desiredRevision") or {}).get("revision"):
        print(f"edgeline: {namespace}/{args.name} already runs revision {revision}", file=sys.stderr)
        return 1
    if status.get("lastRollbackRequest") == revision:
        # The operator acts on a change of the annotation; the same value again would be ignored.
        patch = {"metadata": {"annotations": {ROLLBACK_TO: None}}}
        client.patch(RESOURCES["edgedeployments"], args.name, patch, namespace=namespace,
                     patch_type=PatchType.MERGE)
    try:
        client.patch(RESOURCES["edgedeployments"], args.name,
                     {"metadata": {"annotations": {ROLLBACK_TO: revision}}}, namespace=namespace,
                     patch_type=PatchType.MERGE)
    except ApiError as exc:
        print(f"edgeline: not rolled back: {exc.status.message}", file=sys.stderr)
        return 1
    print(f"rollback of {namespace}/{args.name} to revision {revision} requested; "
          f"follow it with: edgeline status {args.name} -n {namespace}")
    return 0
