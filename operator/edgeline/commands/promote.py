"""`edgeline promote MLMODEL --to production`: move a model version up a stage, on the record.

Writes the promotion record onto the MLModel: the annotations `edgeline.io/promote` (the
stage) and `edgeline.io/promoted-by` (you, as the API server authenticates you: asked with a
SelfSubjectReview). The admission policy `edgeline-promotions` refuses the change unless you
may `promote` mlmodels and the name is your own, so nobody records a promotion for someone
else and no pipeline promotes its own candidate. EdgeDeployments that follow LatestReady at
that stage pick the version up (and wait for approval where their policy asks for it).
"""

from __future__ import annotations

import argparse
import sys

STAGES = ("staging", "production")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("promote", help="promote an MLModel to staging or production (recorded)",
                            description=__doc__.splitlines()[0])
    parser.add_argument("name", help="MLModel name")
    parser.add_argument("--to", choices=STAGES, default="production", help="stage (default: production)")
    parser.add_argument("-n", "--namespace", default=None, help="namespace (default: the kubeconfig's)")
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    parser.set_defaults(func=run_promote)


def whoami(client) -> str:
    """The username the API server authenticates this client as."""
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.authentication_v1 import SelfSubjectReview

    review = client.create(SelfSubjectReview(metadata=ObjectMeta()))
    return review.status.userInfo.username


def run_promote(args: argparse.Namespace) -> int:
    from lightkube import ApiError, Client, KubeConfig
    from lightkube.types import PatchType

    from edgeline.clusters.resources import RESOURCES
    from edgeline.domain.stages import PROMOTE, PROMOTED_BY, effective_stage, rank

    config = KubeConfig.from_file(args.kubeconfig) if args.kubeconfig else KubeConfig.from_env()
    client = Client(config, field_manager="edgeline-cli")
    namespace = args.namespace or client.namespace
    resource = RESOURCES["mlmodels"]
    try:
        obj = client.get(resource, args.name, namespace=namespace).to_dict()
        user = whoami(client)
    except ApiError as exc:
        print(f"edgeline: {exc.status.message}", file=sys.stderr)
        return 1
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    now = effective_stage(spec.get("stage"), (obj.get("metadata") or {}).get("annotations"))
    if rank(now.stage) >= rank(args.to):
        print(f"edgeline: {namespace}/{args.name} is {now.stage} already", file=sys.stderr)
        return 1
    if status.get("phase") != "Ready":
        print(f"edgeline: {namespace}/{args.name} is {status.get('phase') or 'not validated yet'}; only a Ready "
              "model is promoted", file=sys.stderr)
        return 1
    print(f"promoting {namespace}/{args.name} ({spec.get('model')} {spec.get('version')}) from {now.stage} to "
          f"{args.to} as {user}")
    patch = {"metadata": {"annotations": {PROMOTE: args.to, PROMOTED_BY: user}}}
    try:
        client.patch(resource, args.name, patch, namespace=namespace, patch_type=PatchType.MERGE)
    except ApiError as exc:
        print(f"edgeline: not promoted: {exc.status.message}", file=sys.stderr)
        return 1
    print("promotion recorded")
    return 0
