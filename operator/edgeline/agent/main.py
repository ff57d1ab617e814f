"""Starting the agent: two clients (the hub, through the site's own kubeconfig for the hub; the
site's cluster, in-cluster or from a kubeconfig), the loop and the site's alert receiver."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import httpx2 as httpx
from lightkube import AsyncClient, KubeConfig
from lightkube.config.client_adapter import verify_cluster

from edgeline.agent import receiver
from edgeline.agent.site import Agent, AgentConfig
from edgeline.clusters import pull

FIELD_MANAGER = "edgeline-agent"
log = logging.getLogger("edgeline.agent")


def _client(kubeconfig: Path | None, namespace: str | None, timeout_s: float,
            keepalive_s: float | None = None) -> AsyncClient:
    config = KubeConfig.from_file(str(kubeconfig)) if kubeconfig else KubeConfig.from_env()
    transport = None
    if keepalive_s is not None:
        # The transport carries the TLS settings when one is given: the kubeconfig's, as lightkube makes them.
        single = config.get()
        transport = httpx.AsyncHTTPTransport(
            verify=verify_cluster(single.cluster, single.user, single.abs_file, trust_env=False),
            limits=httpx.Limits(keepalive_expiry=keepalive_s))
    return AsyncClient(config, namespace=namespace, timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 3.0)),
                       field_manager=FIELD_MANAGER, trust_env=False, transport=transport)


def hub_keepalive_s(interval_s: float) -> float:
    """How long the agent keeps an idle connection to the hub: longer than its cycle. httpx closes a
    connection idle for 5 s, the default interval, so every cycle paid a new TCP and TLS handshake
    (docs/decisions.md, idle-sites); the API server keeps idle connections far longer."""
    return max(30.0, 3 * interval_s)


def hub_client(kubeconfig: Path, config: AgentConfig) -> AsyncClient:
    """The agent's client of the hub (bench/agent/bench_idle_sites.py builds its agents' the same way)."""
    return _client(kubeconfig, pull.site_namespace(config.cluster), config.hub_timeout_s,
                   keepalive_s=hub_keepalive_s(config.interval_s))


async def serve(config: AgentConfig, hub_kubeconfig: Path, site_kubeconfig: Path | None, alerts_listen: str,
                alerts_port: int, alerts_token: str | None) -> None:
    hub = hub_client(hub_kubeconfig, config)
    # The site's API server is local: a longer deadline is fine, the WAN is not in the way.
    site = _client(site_kubeconfig, None, 15.0)
    agent = Agent(config, hub, site)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = None
    if alerts_port and alerts_token:
        runner = await receiver.start(agent.on_alert, alerts_token, alerts_listen, alerts_port)
        log.info("site alert receiver on %s:%d/alerts", alerts_listen, receiver.port(runner, alerts_port))
    elif alerts_port:
        log.warning("no alert token (EDGELINE_AGENT_ALERTS_TOKEN): the site alert receiver stays off")
    log.info("agent of cluster %s started; hub namespace %s", config.cluster, agent.namespace)
    try:
        await agent.run(stop)
    finally:
        await receiver.stop(runner)
        await hub.close()
        await site.close()
