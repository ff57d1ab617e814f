"""Reading the Prometheus HTTP API's answer to an instant query (`GET /api/v1/query`), without
an HTTP client: the hub's client (analysis.prometheus, aiohttp) and the pull site's agent
(agent.checks, httpx) read answers the same way."""

from __future__ import annotations

import json


class QueryFailed(Exception):
    pass


def read_answer(status: int, raw: bytes, url: str, max_body: int) -> tuple[float, ...]:
    """The values of an answer's body as read (at most `max_body` + 1 bytes), with the HTTP status:
    refused when too large, not JSON, or an HTTP error that is not Prometheus's own error body."""
    if len(raw) > max_body:
        raise QueryFailed(f"the answer is larger than {max_body} bytes")
    try:
        body = json.loads(raw)
    except ValueError:
        raise QueryFailed(f"HTTP {status} from {url}: not JSON: {raw[:200].decode('utf-8', 'replace')}") from None
    if status != 200 and not (isinstance(body, dict) and body.get("status") == "error"):
        raise QueryFailed(f"HTTP {status} from {url}")
    return parse_result(body)


def parse_result(body: dict) -> tuple[float, ...]:
    """The values of an instant query's answer: one per series of a vector, one for a scalar."""
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error") if isinstance(body, dict) else None
        kind = body.get("errorType") if isinstance(body, dict) else None
        raise QueryFailed(f"Prometheus answered with an error: {kind or 'unknown'}: {error if error else repr(body)}"[:500])
    data = body.get("data") or {}
    kind = data.get("resultType")
    try:
        if kind == "vector":
            return tuple(float(sample["value"][1]) for sample in data.get("result") or [])
        if kind == "scalar":
            return (float(data["result"][1]),)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise QueryFailed(f"unreadable {kind} in the answer: {exc}") from None
    raise QueryFailed(f"the query returned a {kind}, not a vector or scalar (use an instant vector expression)")
