"""The agent keeps its connection to the hub open across cycles: a new TCP and TLS handshake every
cycle cost the hub more than the requests themselves (docs/decisions.md, idle-sites). Over a real
loopback HTTP/1.1 server that counts connections."""

from __future__ import annotations

import asyncio
import json

import pytest
import yaml
from lightkube.resources.core_v1 import ConfigMap

from edgeline.agent.main import _client, hub_keepalive_s

EMPTY_LIST = json.dumps({"apiVersion": "v1", "kind": "ConfigMapList", "metadata": {"resourceVersion": "1"},
                         "items": []}).encode()


async def _server():
    connections = []

    async def handle(reader, writer):
        connections.append(writer)
        try:
            while (await reader.readuntil(b"\r\n\r\n")):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(EMPTY_LIST) + EMPTY_LIST)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, connections


def _kubeconfig(tmp_path, port):
    path = tmp_path / "hub.kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "hub",
        "clusters": [{"name": "hub", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "site", "user": {"token": "t"}}],
        "contexts": [{"name": "hub", "context": {"cluster": "hub", "user": "site", "namespace": "edgeline-site-a"}}]}))
    return path


async def _connections_for_two_lists(tmp_path, keepalive_s, gap_s):
    server, connections = await _server()
    client = _client(_kubeconfig(tmp_path, server.sockets[0].getsockname()[1]), "edgeline-site-a", 5.0,
                     keepalive_s=keepalive_s)
    try:
        for n in range(2):
            if n:
                await asyncio.sleep(gap_s)      # the agent's pause between two cycles
            assert [cm async for cm in client.list(ConfigMap, namespace="edgeline-site-a")] == []
    finally:
        await client.close()
        server.close()
    return len(connections)


@pytest.mark.parametrize("keepalive_s, connections", [(2.0, 1), (0.1, 2)])
def test_a_connection_is_reused_across_a_pause_shorter_than_the_keepalive(tmp_path, keepalive_s, connections):
    assert asyncio.run(_connections_for_two_lists(tmp_path, keepalive_s, gap_s=0.3)) == connections


@pytest.mark.parametrize("interval_s", [1, 5, 10, 60])
def test_the_hub_connection_outlives_the_agent_cycle(interval_s):
    # httpx's own default (5 s) equals the default cycle: the connection expired just before each cycle.
    assert hub_keepalive_s(interval_s) > interval_s + 5
