"""Starting and stopping the small aiohttp servers Edgeline runs: the operator's approval
webhook and alert receiver, and the edge runtime's inference server."""

from __future__ import annotations

import ssl

from aiohttp import web


async def start(app: web.Application, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None,
                shutdown_timeout: float = 60.0) -> web.AppRunner:
    """Serves `app` on host:port (port 0: any free port, see `port`). No access log: each
    server logs what matters itself. Raises OSError when the port cannot be opened, after
    releasing what was set up."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    except OSError:
        await runner.cleanup()
        raise
    return runner


def port(runner: web.AppRunner, default: int = 0) -> int:
    """The port the server listens on (the one chosen when started with port 0)."""
    return runner.addresses[0][1] if runner.addresses else default


async def stop(runner: web.AppRunner | None) -> None:
    """Stops listening and lets requests in flight finish within the shutdown timeout;
    nothing for None (a server that was never started)."""
    if runner is not None:
        await runner.cleanup()
