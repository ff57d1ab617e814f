"""The aiohttp server start/stop that the webhook, the alert receiver and the runtime share,
against a real socket on loopback."""

import asyncio
import socket
import urllib.request

import pytest
from aiohttp import web

from edgeline import webserver


async def _pong(_: web.Request) -> web.Response:
    return web.Response(text="pong")


def _app() -> web.Application:
    app = web.Application()
    app.router.add_get("/ping", _pong)
    return app


def test_a_started_server_answers_on_its_port_and_stops_listening_when_stopped():
    async def scenario():
        runner = await webserver.start(_app(), "127.0.0.1", 0)
        port = webserver.port(runner)
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/ping",
                                                                      timeout=5).read())
        await webserver.stop(runner)
        await webserver.stop(None)              # a server that never started: nothing to do
        return port, body

    port, body = asyncio.run(scenario())
    assert body == b"pong"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_a_port_in_use_raises_oserror():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(OSError):
            asyncio.run(webserver.start(_app(), "127.0.0.1", taken.getsockname()[1]))
    finally:
        taken.close()
