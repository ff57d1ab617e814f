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
    agent.add_argument("--interval", type=float, default=float(_env("INTERVAL", "5")),
                       help="seconds between two syncs with the hub [EDGELINE_AGENT_INTERVAL]")
    agent.add_argument("--alerts-listen", default=_env("ALERTS_LISTEN", "0.0.0.0"),
                       help="address of the site alert receiver [EDGELINE_AGENT_ALERTS_LISTEN]")
    agent.add_argument("--alerts-port", type=int, default=int(_env("ALERTS_PORT", "9094")),
                       help="port of the site alert receiver, 0: off [EDGELINE_AGENT_ALERTS_PORT]")
    agent.add_argument("--prometheus-url", default=_env("PROMETHEUS_URL"),
                       help="the site's Prometheus, for the metric checks the site measures; default: the "
                            "EdgeCluster's spec.monitoring.prometheusUrl [EDGELINE_AGENT_PROMETHEUS_URL]")
    agent.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgeline.agent.main import serve
    from edgeline.agent.site import AgentConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if not args.cluster or not args.hub_kubeconfig:
        print("edgeline agent needs --cluster and --hub-kubeconfig (or EDGELINE_AGENT_CLUSTER/_HUB_KUBECONFIG)")
        return 2
    cache_dir = Path(args.cache_dir)
    config = AgentConfig(cluster=args.cluster, cache_dir=cache_dir,
                         cache_host_dir=args.cache_host_dir or str(cache_dir), interval_s=args.interval,
                         prometheus_url=args.prometheus_url or None)
    asyncio.run(serve(config, Path(args.hub_kubeconfig), Path(args.kubeconfig) if args.kubeconfig else None,
                      args.alerts_listen, args.alerts_port, _env("ALERTS_TOKEN")))
    return 0
