"""Starting the agent: two clients (the hub, through the site's own kubeconfig for the hub; the
site's cluster, in-cluster or from a kubeconfig), the loop, the site's alert receiver (HTTPS,
agent/tls.py) and the rotation of the site's hub token (agent/tokens.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import signal
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.config.client_adapter import verify_cluster

from edgeline.agent import receiver
from edgeline.agent.bootstrap import AGENT_NAMESPACE
from edgeline.agent.site import Agent, AgentConfig
from edgeline.agent.tls import IssueFailed, SiteTls, service_names
from edgeline.agent.tokens import HubCredentials, TokenRotation
from edgeline.clusters import pull
from edgeline.domain.serving_renewal import SERVING_VALIDITY
from edgeline.domain.token_rotation import DEFAULT_ROTATE_AFTER

FIELD_MANAGER = "edgeline-agent"
log = logging.getLogger("edgeline.agent")


@dataclass(frozen=True)
class CredentialOptions:
    alerts_plain_http: bool = False                 # --alerts-plain-http: no TLS on the receiver (not advised)
    alerts_tls_names: tuple[str, ...] = ()          # names and addresses besides the Service's
    tls_validity_s: float = SERVING_VALIDITY.total_seconds()
    tls_check_interval_s: float = 60.0
    token_rotate_after: float = DEFAULT_ROTATE_AFTER    # < 1: fraction of the token's life; else seconds
    token_check_interval_s: float = 60.0
    namespace: str = AGENT_NAMESPACE                # the agent's own on the site (its Secrets and CA ConfigMap)


def _client(kubeconfig: Path | dict | None, namespace: str | None, timeout_s: float,
            keepalive_s: float | None = None) -> AsyncClient:
    if isinstance(kubeconfig, dict):
        config = KubeConfig.from_dict(kubeconfig)
    else:
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


def hub_client(kubeconfig: Path | dict, config: AgentConfig) -> AsyncClient:
    """The agent's client of the hub (bench/agent/bench_idle_sites.py builds its agents' the same way)."""
    return _client(kubeconfig, pull.site_namespace(config.cluster), config.hub_timeout_s,
                   keepalive_s=hub_keepalive_s(config.interval_s))


async def _start_receiver(agent: Agent, site: AsyncClient, options: CredentialOptions, listen: str, port: int,
                          token: str, stop: asyncio.Event, tasks: list[asyncio.Task]) -> asyncio.Server | None:
    """The receiver, once it has a certificate (the site's API server may not answer yet: retried)."""
    if options.alerts_plain_http:
        log.warning("the site alert receiver serves plain HTTP (--alerts-plain-http): tokens and alerts cross "
                    "the line's network in clear")
        return await receiver.start(agent.on_alert, token, listen, port)
    tls = SiteTls(site, service_names(options.alerts_tls_names, options.namespace),
                  dt.timedelta(seconds=options.tls_validity_s), namespace=options.namespace)
    while not stop.is_set():
        try:
            await tls.refresh()
            break
        except (ApiError, httpx.HTTPError, OSError, IssueFailed, asyncio.TimeoutError, ValueError) as exc:
            log.warning("no certificate for the site alert receiver yet (%s); trying again in 5 s", exc)
            try:
                await asyncio.wait_for(stop.wait(), 5.0)
            except asyncio.TimeoutError:
                pass
    if stop.is_set():
        return None
    tasks.append(asyncio.create_task(tls.keep_fresh(stop, options.tls_check_interval_s)))
    return await receiver.start(agent.on_alert, token, listen, port, ssl_context=tls.context)


async def serve(config: AgentConfig, hub_kubeconfig: Path, site_kubeconfig: Path | None, alerts_listen: str,
                alerts_port: int, alerts_token: str | None, options: CredentialOptions = CredentialOptions()) -> None:
    credentials = HubCredentials(hub_kubeconfig, config.cache_dir)
    hub = hub_client(credentials.config, config)
    # The site's API server is local: a longer deadline is fine, the WAN is not in the way.
    site = _client(site_kubeconfig, None, 15.0)
    agent = Agent(config, hub, site)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    retired: list[AsyncClient] = []

    def swap(kubeconfig: dict) -> None:
        # Every later hub call uses the new token; a call under way finishes on the old client.
        # Clients retired a rotation ago have no call left: closed.
        for old in retired:
            tasks.append(asyncio.create_task(old.close()))
        retired[:] = [agent.hub]
        agent.hub = hub_client(kubeconfig, config)

    tasks: list[asyncio.Task] = []
    rotation = TokenRotation(credentials, config.cluster, site, lambda: agent.hub, swap,
                             options.token_rotate_after, config.hub_timeout_s,
                             namespace=options.namespace)
    tasks.append(asyncio.create_task(rotation.run(stop, options.token_check_interval_s)))
    server: list[asyncio.Server | None] = [None]

    async def receiver_up() -> None:
        server[0] = await _start_receiver(agent, site, options, alerts_listen, alerts_port, alerts_token or "",
                                          stop, tasks)
        if server[0] is not None:
            log.info("site alert receiver on %s://%s:%d/alerts", "http" if options.alerts_plain_http else "https",
                     alerts_listen, receiver.port(server[0], alerts_port))

    if alerts_port and alerts_token:
        tasks.append(asyncio.create_task(receiver_up()))
    elif alerts_port:
        log.warning("no alert token (EDGELINE_AGENT_ALERTS_TOKEN): the site alert receiver stays off")
    log.info("agent of cluster %s started; hub namespace %s", config.cluster, agent.namespace)
    try:
        await agent.run(stop)
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await receiver.stop(server[0])
        await agent.close()
        for client in (*retired, agent.hub, site):
            await client.close()
