"""The agent's small alert receiver, over a real loopback socket: the same token and payload
rules as the hub's receiver, bounded request sizes, firing alerts only."""

from __future__ import annotations

import asyncio
import functools
import json

from edgeline.agent import receiver

TOKEN = "s3cret"
PAYLOAD = {"version": "4", "alerts": [
    {"status": "firing", "labels": {"alertname": "HighLatency", "edgeline_cluster": "edge-b"},
     "startsAt": "2026-01-01T00:00:00Z", "fingerprint": "abc"},
    {"status": "resolved", "labels": {"alertname": "Old"}, "fingerprint": "def"},
]}


def _sync(test):
    @functools.wraps(test)
    def run():
        asyncio.run(test())
    return run


async def _serve():
    seen = []

    async def on_alert(name, labels, fingerprint, starts_at, received_at):
        seen.append((name, labels["edgeline_cluster"], fingerprint, starts_at))
        return f"reverted {name}"

    server = await receiver.start(on_alert, TOKEN, "127.0.0.1", 0)
    return server, seen


async def _request(port: int, raw: bytes) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body.decode()


def _post(body: bytes, token: str | None = TOKEN, path: str = "/alerts") -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (f"POST {path} HTTP/1.1\r\nHost: site\r\n{auth}Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


@_sync
async def test_a_firing_alert_with_the_token_reaches_the_agent_and_resolved_ones_do_not():
    server, seen = await _serve()
    try:
        status, text = await _request(receiver.port(server), _post(json.dumps(PAYLOAD).encode()))
    finally:
        await receiver.stop(server)
    assert (status, text) == (200, "reverted HighLatency")
    assert seen == [("HighLatency", "edge-b", "abc", "2026-01-01T00:00:00Z")]


@_sync
async def test_wrong_token_bad_payload_wrong_route_and_oversized_bodies_are_refused():
    server, seen = await _serve()
    port = receiver.port(server)
    try:
        assert (await _request(port, _post(json.dumps(PAYLOAD).encode(), token="wrong")))[0] == 401
        assert (await _request(port, _post(json.dumps(PAYLOAD).encode(), token=None)))[0] == 401
        status, text = await _request(port, _post(b'{"alerts": "nope"}'))
        assert status == 400 and "Alertmanager webhook payload" in text
        assert (await _request(port, _post(b"not json")))[0] == 400
        assert (await _request(port, _post(b"{}", path="/other")))[0] == 404
        assert (await _request(port, b"GET /alerts HTTP/1.1\r\nHost: site\r\n\r\n"))[0] == 405
        big = (f"POST /alerts HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n"
               f"Content-Length: {receiver.MAX_BODY + 1}\r\n\r\n").encode()
        assert (await _request(port, big))[0] == 413
        huge_header = b"POST /alerts HTTP/1.1\r\nX-Pad: " + b"a" * (receiver.MAX_HEADERS + 10) + b"\r\n\r\n"
        assert (await _request(port, huge_header))[0] == 413
    finally:
        await receiver.stop(server)
    assert seen == []
