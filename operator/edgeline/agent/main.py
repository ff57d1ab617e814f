"""Starting the agent: two clients (the hub, through the site's own kubeconfig for the hub; the
site's cluster, in-cluster or from a kubeconfig), the loop and the site's alert receiver."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import httpx2 as httpx
from lightkube import AsyncClient, KubeConfig

from edgeline.agent import receiver
from edgeline.agent.site import Agent, AgentConfig
from edgeline.clusters import pull

FIELD_MANAGER = "edgeline-agent"
log = logging.getLogger("edgeline.agent")


def _client(kubeconfig: Path | None, namespace: str | None, timeout_s: float) -> AsyncClient:
    config = KubeConfig.from_file(str(kubeconfig)) if kubeconfig else KubeConfig.from_env()
    return AsyncClient(config, namespace=namespace, timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 3.0)),
                       field_manager=FIELD_MANAGER, trust_env=False)


async def serve(config: AgentConfig, hub_kubeconfig: Path, site_kubeconfig: Path | None, alerts_listen: str,
                alerts_port: int, alerts_token: str | None) -> None:
    hub = _client(hub_kubeconfig, pull.site_namespace(config.cluster), config.hub_timeout_s)
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
        await agent.close()
        await hub.close()
        await site.close()
