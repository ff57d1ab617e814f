"""The site's own Alertmanager webhook receiver: the same payload and bearer-token rule as the
hub's (domain.alert_payload), answered on the site, so a matching alert rolls the runtime back
while the WAN is down. What it did is recorded in the agent's state and reported to the hub
when the link returns.

It serves HTTPS by default (agent/tls.py: the site's own CA, the certificate renewed while it
serves); plain HTTP only with `--alerts-plain-http`.

It is a deliberately small HTTP/1.1 server on asyncio streams (one POST per connection, then
close) rather than aiohttp: aiohttp costs the agent about 12 MiB of its < 60 MB budget
(docs/edge-autonomy.md), and this endpoint needs one route, a Content-Length body and a bearer
token. Header block and body are bounded in size and time."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from typing import Awaitable, Callable

from edgeline.domain.alert_payload import ValidationError, authorized, parse

log = logging.getLogger("edgeline.agent.alerts")

MAX_BODY = 2 * 2**20
MAX_HEADERS = 16 * 2**10
READ_TIMEOUT_S = 10.0
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 411: "Length Required", 413: "Payload Too Large"}

# on_alert(alertname, labels, fingerprint, startsAt, received_at) -> outcome text (Agent.on_alert)
OnAlert = Callable[[str, dict, str, object, float], Awaitable[str]]


async def handle(on_alert: OnAlert, token: str, method: str, path: str, headers: dict[str, str],
                 body: bytes, remote: str = "") -> tuple[int, str]:
    """One request -> (status, text). Pure of the transport, for the tests."""
    if path.split("?", 1)[0] != "/alerts":
        return 404, "not found"
    if method != "POST":
        return 405, "POST only"
    received_at = time.time()
    if not authorized(headers.get("authorization", ""), token):
        log.warning("alert webhook call without the right bearer token from %s", remote)
        return 401, "a valid bearer token is required"
    try:
        payload = parse(json.loads(body))
    except (ValueError, ValidationError) as exc:
        log.warning("alert webhook payload rejected: %s", str(exc).splitlines()[0])
        return 400, "expected an Alertmanager webhook payload (version 4)"
    outcomes = []
    for alert in payload.alerts:
        if alert.status != "firing":
            continue
        fingerprint = alert.fingerprint or str(abs(hash(json.dumps(alert.labels, sort_keys=True))))
        name = alert.labels.get("alertname", "unnamed")
        outcome = await on_alert(name, alert.labels, fingerprint, alert.startsAt, received_at)
        log.info("site alert %s: %s", name, outcome)
        outcomes.append(outcome)
    return 200, "\n".join(outcomes) or "ok"


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes] | int:
    """(method, path, headers, body), or the status to refuse the request with."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return 400
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if not sep:
                return 400
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return 411
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        return 400
    if length < 0:
        return 400
    if length > MAX_BODY:
        return 413
    body = await reader.readexactly(length) if length else b""
    return parts[0], parts[1], headers, body


def _response(status: int, text: str) -> bytes:
    body = text.encode()
    return (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


async def start(on_alert: OnAlert, token: str, host: str, port: int,
                ssl_context: ssl.SSLContext | None = None) -> asyncio.Server:
    """Listens on host:port (0: any free port, see `port`); raises OSError when it cannot. With
    `ssl_context`, HTTPS: a certificate loaded into the context later serves the next connections."""
    async def serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        remote = str(peer[0]) if peer else ""
        try:
            try:
                request = await asyncio.wait_for(_read_request(reader), READ_TIMEOUT_S)
            except asyncio.TimeoutError:
                request = 408
            except (asyncio.LimitOverrunError, ValueError):  # header block over MAX_HEADERS
                request = 413
            if isinstance(request, int):
                status, text = request, REASONS.get(request, "refused")
            else:
                status, text = await handle(on_alert, token, *request, remote=remote)
            writer.write(_response(status, text))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    return await asyncio.start_server(serve_one, host, port, limit=MAX_HEADERS, ssl=ssl_context,
                                      ssl_handshake_timeout=READ_TIMEOUT_S if ssl_context else None)


def port(server: asyncio.Server | None, default: int = 0) -> int:
    """The port the server listens on (the one chosen when started with port 0)."""
    return server.sockets[0].getsockname()[1] if server and server.sockets else default


async def stop(server: asyncio.Server | None) -> None:
    if server is not None:
        server.close()
        await server.wait_closed()
