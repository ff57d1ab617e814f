"""The site's own metric checks (domain.site_checks): each query of its assignments' terms sent to
the site's Prometheus, on the site's LAN, and read with the hub's parser (analysis.answers).
Every failure is an answer (a result with `error`, verdict NoData), never an exception."""

from __future__ import annotations

import time

import httpx2 as httpx

from edgeline.analysis.answers import QueryFailed, read_answer
from edgeline.domain.site_checks import SiteCheck, SiteCheckResult, evaluate

MAX_BODY = 1024 * 1024          # one check's answer is small; a runaway one is refused


async def query(client: httpx.AsyncClient, base_url: str, promql: str, timeout_s: float) -> tuple[float, ...]:
    url = base_url.rstrip("/") + "/api/v1/query"
    try:
        response = await client.get(url, params={"query": promql, "timeout": f"{timeout_s:g}s"},
                                    headers={"Accept": "application/json"}, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise QueryFailed(f"{url}: {type(exc).__name__}: {exc}") from None
    return read_answer(response.status_code, response.content, url, MAX_BODY)


async def measure(client: httpx.AsyncClient, base_url: str | None, check: SiteCheck,
                  timeout_s: float) -> SiteCheckResult:
    if not base_url:
        return evaluate(check, (), "the site has no Prometheus to query (the agent's --prometheus-url or the "
                                   "EdgeCluster's spec.monitoring.prometheusUrl)", time.time())
    try:
        values = await query(client, base_url, check.promql, timeout_s)
    except QueryFailed as exc:
        return evaluate(check, (), str(exc), time.time())
    return evaluate(check, values, None, time.time())
