"""A small client for the Prometheus HTTP API's instant queries (`GET /api/v1/query`), as
Prometheus, Thanos Query and VictoriaMetrics serve it.

Every failure is an answer, never an exception the caller must guess: `measure` turns a
refused connection, a timeout, an HTTP error, a PromQL error or an unexpected result type into
a Measurement with `error` set, which the checks count as missing data (docs/analysis.md).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from edgeline.analysis.answers import QueryFailed, parse_result, read_answer  # noqa: F401 (parse_result: re-exported)
from edgeline.domain.analysis import Measurement, Query

_MAX_BODY = 4 * 1024 * 1024       # an instant query for one check is small; a runaway one is refused


@dataclass(frozen=True)
class Endpoint:
    """Where one cluster's series are queried."""

    url: str                               # base URL, e.g. http://prometheus.monitoring:9090
    bearer_token: str | None = None
    ca_file: Path | None = None


async def instant_query(session: aiohttp.ClientSession, endpoint: Endpoint, promql: str,
                        timeout_s: float) -> tuple[float, ...]:
    url = endpoint.url.rstrip("/") + "/api/v1/query"
    headers = {"Accept": "application/json"}
    if endpoint.bearer_token:
        headers["Authorization"] = f"Bearer {endpoint.bearer_token}"
    ssl_context: ssl.SSLContext | bool = True
    if endpoint.ca_file:
        ssl_context = ssl.create_default_context(cafile=str(endpoint.ca_file))
    try:
        async with session.get(url, params={"query": promql, "timeout": f"{timeout_s:g}s"}, headers=headers,
                               timeout=aiohttp.ClientTimeout(total=timeout_s), ssl=ssl_context,
                               allow_redirects=False) as response:
            raw = await response.content.read(_MAX_BODY + 1)
            # Parsed off the event loop: a large answer must not stall the operator's other work.
            return await asyncio.to_thread(read_answer, response.status, raw, url, _MAX_BODY)
    except asyncio.TimeoutError:
        raise QueryFailed(f"{url} did not answer within {timeout_s:g}s") from None
    except aiohttp.ClientError as exc:
        raise QueryFailed(f"{url}: {type(exc).__name__}: {exc}") from None


async def measure(queries: list[Query], endpoint_for: Callable[[str], Endpoint | None],
                  timeout_s: float) -> list[Measurement]:
    """Every query at once, each with its deadline; what each came to, never an exception."""
    if not queries:
        return []
    async with aiohttp.ClientSession() as session:
        async def one(query: Query) -> Measurement:
            if query.promql is None:
                return Measurement(query.check, query.cluster, _now(), error=query.error or "nothing to query")
            endpoint = endpoint_for(query.cluster)
            if endpoint is None:
                return Measurement(query.check, query.cluster, _now(),
                                   error=f"no Prometheus is configured for cluster {query.cluster} "
                                         "(EdgeCluster spec.monitoring.prometheusUrl or EDGELINE_PROMETHEUS_URL)")
            try:
                values = await instant_query(session, endpoint, query.promql, timeout_s)
            except QueryFailed as exc:
                return Measurement(query.check, query.cluster, _now(), error=str(exc))
            return Measurement(query.check, query.cluster, _now(), values=values)

        return list(await asyncio.gather(*(one(q) for q in queries)))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
