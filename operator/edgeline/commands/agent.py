"""`edgeline agent`: the pull site's agent (docs/edge-autonomy.md). It runs in the site's own
cluster and only dials out to the hub.

    edgeline agent --cluster line-7 --hub-kubeconfig /etc/edgeline/hub/kubeconfig \\
        --cache-dir /var/lib/edgeline-agent --alerts-port 9094

Options fall back to EDGELINE_AGENT_* environment variables (the Deployment `edgeline cluster
join` prints sets them)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"EDGELINE_AGENT_{name}", default)


def register(sub: argparse._SubParsersAction) -> None:
    agent = sub.add_parser("agent", help="the pull site's agent (dials out to the hub)",
                           description="Run the agent of a pull cluster: it reads its cluster's assignments on the "
                                       "hub, runs them on this cluster from a local model cache, reports back, "
                                       "renews its Lease, and rolls back on site alerts while the hub is away.")
    agent.add_argument("--cluster", default=_env("CLUSTER"), help="EdgeCluster name [EDGELINE_AGENT_CLUSTER]")
    agent.add_argument("--hub-kubeconfig", default=_env("HUB_KUBECONFIG"),
                       help="kubeconfig of the site's identity on the hub [EDGELINE_AGENT_HUB_KUBECONFIG]")
    agent.add_argument("--kubeconfig", default=_env("KUBECONFIG"),
                       help="kubeconfig of this site's cluster; default: in-cluster [EDGELINE_AGENT_KUBECONFIG]")
    agent.add_argument("--cache-dir", default=_env("CACHE_DIR", "/var/lib/edgeline-agent"),
                       help="persistent folder for models and state [EDGELINE_AGENT_CACHE_DIR]")
    agent.add_argument("--cache-host-dir", default=_env("CACHE_HOST_DIR"),
                       help="the same folder as the node sees it (hostPath for the runtime Pods); default: "
                            "--cache-dir [EDGELINE_AGENT_CACHE_HOST_DIR]")
    agent.add_argument("--cache-claim", default=_env("CACHE_CLAIM"),
                       help="the cache folder is this PersistentVolumeClaim, which the runtime Pods mount read-only "
                            "(instead of --cache-host-dir) [EDGELINE_AGENT_CACHE_CLAIM]")
    agent.add_argument("--node-name", default=_env("NODE_NAME"),
                       help="the node this agent runs on; the runtime Pods are pinned to it, where the cache is "
                            "[EDGELINE_AGENT_NODE_NAME]")
    agent.add_argument("--interval", type=float, default=float(_env("INTERVAL", "5")),
                       help="seconds between two syncs with the hub [EDGELINE_AGENT_INTERVAL]")
    agent.add_argument("--alerts-listen", default=_env("ALERTS_LISTEN", "0.0.0.0"),
                       help="address of the site alert receiver [EDGELINE_AGENT_ALERTS_LISTEN]")
    agent.add_argument("--alerts-port", type=int, default=int(_env("ALERTS_PORT", "9094")),
                       help="port of the site alert receiver, 0: off [EDGELINE_AGENT_ALERTS_PORT]")
    agent.add_argument("--registry-mirror", action="append", default=None, metavar="URL",
                       help="site-local registry mirror (http(s)://host:port, a pull-through cache) asked first "
                            "for oci:// models; repeatable [EDGELINE_AGENT_REGISTRY_MIRROR, comma-separated]")
    agent.add_argument("--alerts-tls-names", default=_env("ALERTS_TLS_NAMES", ""),
                       help="comma-separated names and addresses for the receiver's certificate besides the "
                            "Service's (edgeline-agent.edgeline-agent.svc, ...) [EDGELINE_AGENT_ALERTS_TLS_NAMES]")
    agent.add_argument("--alerts-plain-http", action="store_true",
                       default=_env("ALERTS_PLAIN_HTTP", "") in ("1", "true"),
                       help="serve the alert receiver over plain HTTP (not advised: the bearer token crosses the "
                            "network in clear) [EDGELINE_AGENT_ALERTS_PLAIN_HTTP]")
    agent.add_argument("--tls-validity", type=float, default=float(_env("TLS_VALIDITY", str(90 * 86400))),
                       help="seconds a receiver certificate is valid; renewed with a third left (default 90 days) "
                            "[EDGELINE_AGENT_TLS_VALIDITY]")
    agent.add_argument("--tls-check-interval", type=float, default=float(_env("TLS_CHECK_INTERVAL", "60")),
                       help="seconds between two checks of the receiver certificate [EDGELINE_AGENT_TLS_CHECK_INTERVAL]")
    agent.add_argument("--token-rotate-after", type=float, default=float(_env("TOKEN_ROTATE_AFTER", "0.8")),
                       help="when to replace the site's hub token: below 1 a fraction of its lifetime (default 0.8), "
                            "else seconds after it was issued [EDGELINE_AGENT_TOKEN_ROTATE_AFTER]")
    agent.add_argument("--token-check-interval", type=float, default=float(_env("TOKEN_CHECK_INTERVAL", "60")),
                       help="seconds between two checks of the hub token [EDGELINE_AGENT_TOKEN_CHECK_INTERVAL]")
    agent.add_argument("--namespace", default=_env("NAMESPACE", "edgeline-agent"),
                       help="the agent's own namespace on the site, holding its Secrets and the CA ConfigMap "
                            "(the join's Deployment sets it) [EDGELINE_AGENT_NAMESPACE]")
    agent.add_argument("--prometheus-url", default=_env("PROMETHEUS_URL"),
                       help="the site's Prometheus, for the metric checks the site measures; default: the "
                            "EdgeCluster's spec.monitoring.prometheusUrl [EDGELINE_AGENT_PROMETHEUS_URL]")
    agent.set_defaults(func=run)


def registry_mirrors(given: list[str] | None, env: str | None) -> tuple[str, ...]:
    """The mirrors from the flags, else from the environment; each an http(s):// URL."""
    items = given if given else [item.strip() for item in (env or "").split(",") if item.strip()]
    for item in items:
        if not item.startswith(("http://", "https://")):
            raise SystemExit(f"edgeline agent: --registry-mirror {item!r} must be an http:// or https:// URL")
    return tuple(item.rstrip("/") for item in items)


def run(args: argparse.Namespace) -> int:
    from edgeline.agent.main import CredentialOptions, serve
    from edgeline.agent.site import AgentConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if not args.cluster or not args.hub_kubeconfig:
        print("edgeline agent needs --cluster and --hub-kubeconfig (or EDGELINE_AGENT_CLUSTER/_HUB_KUBECONFIG)")
        return 2
    if args.token_rotate_after <= 0 or args.tls_validity < 30 or args.tls_check_interval <= 0 \
            or args.token_check_interval <= 0:
        print("edgeline agent: --token-rotate-after and the check intervals must be above 0, --tls-validity at "
              "least 30 seconds")
        return 2
    cache_dir = Path(args.cache_dir)
    config = AgentConfig(cluster=args.cluster, cache_dir=cache_dir,
                         cache_host_dir=args.cache_host_dir or str(cache_dir), interval_s=args.interval,
                         registry_mirrors=registry_mirrors(args.registry_mirror, _env("REGISTRY_MIRROR")),
                         cache_claim=args.cache_claim or None, node=args.node_name or None,
                         prometheus_url=args.prometheus_url or None)
    asyncio.run(serve(config, Path(args.hub_kubeconfig), Path(args.kubeconfig) if args.kubeconfig else None,
                      args.alerts_listen, args.alerts_port, _env("ALERTS_TOKEN"),
                      CredentialOptions(alerts_plain_http=args.alerts_plain_http,
                                        alerts_tls_names=tuple(n for n in args.alerts_tls_names.split(",") if n),
                                        tls_validity_s=args.tls_validity, tls_check_interval_s=args.tls_check_interval,
                                        token_rotate_after=args.token_rotate_after,
                                        token_check_interval_s=args.token_check_interval,
                                        namespace=args.namespace)))
    return 0
