"""`edgeline cluster join NAME`: the bootstrap of a pull site (docs/edge-autonomy.md).

Prepares the hub side of EdgeCluster NAME (connection.mode: pull): its namespace, report,
Lease, ServiceAccount and narrow Role; asks the hub for a token of that identity; and prints
the manifests to apply on the site (kubectl apply -f - on the site's cluster). The hub never
needs a way into the site.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import secrets
import sys
from pathlib import Path

from edgeline import __version__

DEFAULT_IMAGE = f"ghcr.io/edgeline/agent:{__version__}"     # images/agent/Containerfile (not yet built by dev/build-images.sh)


def register(sub: argparse._SubParsersAction) -> None:
    cluster = sub.add_parser("cluster", help="register pull sites (edgeline cluster join)",
                             description="Work with EdgeClusters.")
    actions = cluster.add_subparsers(dest="action", required=True, metavar="ACTION")
    join = actions.add_parser("join", help="print the bootstrap of a pull site",
                              description=__doc__.splitlines()[0])
    join.add_argument("name", help="EdgeCluster (connection.mode: pull)")
    join.add_argument("--kubeconfig", help="kubeconfig of the hub (default: $KUBECONFIG / ~/.kube/config)")
    join.add_argument("--hub-server", help="hub API URL as the site reaches it (default: the kubeconfig's)")
    join.add_argument("--image", default=DEFAULT_IMAGE, help=f"agent image (default: {DEFAULT_IMAGE})")
    join.add_argument("--token-seconds", type=int, default=30 * 24 * 3600,
                      help="lifetime of the site's hub token (default: 30 days; the agent rotates it at 80 %%, "
                           "asking for the same lifetime; at least 600)")
    join.add_argument("--hub-kubeconfig-out", help="also write the site's hub kubeconfig to this file")
    join.add_argument("--registry-mirror", default=None, metavar="URL", type=_http_url,
                      help="site-local registry mirror (http(s)://host:port, a pull-through cache) the agent asks "
                           "first for oci:// models (docs/edge-autonomy.md)")
    join.add_argument("--cache-claim", metavar="NAME",
                      help="keep the site's model cache on a PersistentVolumeClaim of this name (printed too), "
                           "admitted at Pod Security restricted, instead of a hostPath (privileged); the agent then "
                           "runs in the EdgeCluster's targetNamespace, beside the runtimes that mount the claim")
    join.add_argument("--cache-size", default="5Gi", help="size the claim requests (default: 5Gi)")
    join.add_argument("--cache-storage-class", help="storageClassName of the claim (default: the site's default)")
    join.add_argument("--toleration", action="append", default=[], metavar="KEY[=VALUE][:EFFECT]",
                      help="a taint of the site's nodes the agent tolerates (repeatable)")
    join.set_defaults(func=run_join)


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"{value!r} is not an http:// or https:// URL")
    return value.rstrip("/")


def run_join(args: argparse.Namespace) -> int:
    return asyncio.run(_join(args))


async def _join(args: argparse.Namespace) -> int:
    import yaml
    from lightkube import ApiError, AsyncClient, KubeConfig

    from edgeline.agent.bootstrap import CacheClaim, hub_kubeconfig, parse_toleration, site_manifests, with_site_options
    from edgeline.clusters import pull
    from edgeline.clusters.resources import RESOURCES
    from edgeline.domain.tenancy import TenancyFacts, effective_level

    try:
        tolerations = [parse_toleration(t) for t in args.toleration]
    except ValueError as exc:
        print(f"--toleration {exc}", file=sys.stderr)
        return 2
    config = KubeConfig.from_file(args.kubeconfig) if args.kubeconfig else KubeConfig.from_env()
    hub = AsyncClient(config, field_manager="edgeline")
    try:
        try:
            found = (await hub.get(RESOURCES["edgeclusters"], args.name)).to_dict()
        except ApiError as exc:
            print(f"EdgeCluster {args.name}: {exc.status.message}", file=sys.stderr)
            return 1
        mode = ((found.get("spec") or {}).get("connection") or {}).get("mode", "push")
        if mode != "pull":
            print(f"EdgeCluster {args.name} has connection.mode {mode}; join is for pull sites", file=sys.stderr)
            return 1
        await pull.ensure_site(hub, args.name)
        token = await pull.agent_token(hub, args.name, args.token_seconds)
    finally:
        await hub.close()
    single = config.get()
    cluster = single.cluster
    ca = None
    if cluster.certificate_auth_data:
        ca = cluster.certificate_auth_data
    elif cluster.certificate_auth:
        path = Path(cluster.certificate_auth)
        if not path.is_absolute() and single.fname:
            path = Path(single.fname).parent / path
        ca = base64.b64encode(path.read_bytes()).decode()
    kubeconfig = yaml.safe_dump(hub_kubeconfig(args.name, args.hub_server or cluster.server, ca, token,
                                               pull.site_namespace(args.name), bool(cluster.insecure)))
    if args.hub_kubeconfig_out:
        out = Path(args.hub_kubeconfig_out)
        out.write_text(kubeconfig)
        out.chmod(0o600)
    manifests = site_manifests(args.name, kubeconfig, secrets.token_urlsafe(24), args.image,
                               registry_mirror=args.registry_mirror)
    spec = found.get("spec") or {}
    claim = CacheClaim(args.cache_claim, args.cache_size, args.cache_storage_class) if args.cache_claim else None
    manifests = with_site_options(manifests, claim=claim, tolerations=tolerations,
                                  namespace=spec.get("targetNamespace", "edgeline-workloads"),
                                  pod_security=effective_level(TenancyFacts.from_spec(spec.get("tenancy"))))
    sys.stdout.write(yaml.safe_dump_all(manifests, sort_keys=False))
    print(f"# apply on the site: kubectl apply -f - ; EdgeCluster {args.name} turns Ready once the agent "
          "renews its Lease", file=sys.stderr)
    return 0
