"""The Prometheus client: what an instant query's answer means, and every way a query can fail
coming back as missing data (never an exception), against a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import json
import math
import socket

import pytest
from aiohttp import web

from edgeline.analysis.prometheus import Endpoint, QueryFailed, measure, parse_result
from edgeline.domain.analysis import Query


@pytest.mark.parametrize("body, values", [
    ({"status": "success", "data": {"resultType": "vector", "result": []}}, ()),
    ({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"cluster": "a"}, "value": [1.0, "0.25"]}, {"metric": {"cluster": "b"}, "value": [1.0, "1"]}]}},
     (0.25, 1.0)),
    ({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "3"]}}, (3.0,)),
])
def test_vectors_and_scalars_become_values(body, values):
    assert parse_result(body) == values


def test_nan_and_infinity_are_values_the_checks_judge():
    (nan,) = parse_result({"status": "success", "data": {"resultType": "scalar", "result": [1, "NaN"]}})
    assert math.isnan(nan)
    assert parse_result({"status": "success", "data": {"resultType": "scalar", "result": [1, "+Inf"]}}) == \
        (math.inf,)


@pytest.mark.parametrize("body, message", [
    ({"status": "error", "errorType": "bad_data", "error": "parse error at char 5"}, "bad_data: parse error"),
    ({"status": "success", "data": {"resultType": "matrix", "result": []}}, "returned a matrix"),
    ({"status": "success", "data": {"resultType": "vector", "result": [{"value": "x"}]}}, "unreadable vector"),
    ("not a dict", "answered with an error"),
])
def test_errors_and_other_result_types_are_refused_with_the_reason(body, message):
    with pytest.raises(QueryFailed, match=message):
        parse_result(body)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _serve(handler):
    app = web.Application()
    app.router.add_get("/api/v1/query", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


def test_measure_sends_each_query_with_its_token_and_reports_every_failure_as_missing_data():
    seen = []

    async def handler(request: web.Request):
        seen.append((request.query["query"], request.headers.get("Authorization")))
        query = request.query["query"]
        if query == "slow":
            await asyncio.sleep(2)
        if query == "broken":
            return web.Response(status=502, text="bad gateway")
        if query == "bad":
            return web.json_response({"status": "error", "errorType": "bad_data", "error": "unexpected"}, status=400)
        return web.json_response({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {}, "value": [1, "0.01"]}]}})

    async def run():
        runner, url = await _serve(handler)
        try:
            endpoints = {"a": Endpoint(url, bearer_token="t0k"), "b": None,
                         "c": Endpoint(f"http://127.0.0.1:{_free_port()}")}
            return await measure([Query("ok", "a", 'up{cluster="a"}'), Query("slow", "a", "slow"),
                                  Query("broken", "a", "broken"), Query("bad", "a", "bad"),
                                  Query("ok", "b", "up"), Query("ok", "c", "up"),
                                  Query("tmpl", "a", None, "CheckTemplateMissing: gone")],
                                 endpoints.get, timeout_s=0.5)
        finally:
            await runner.cleanup()

    ok, slow, broken, bad, unconfigured, refused, template = asyncio.run(run())
    assert ok.values == (0.01,) and ok.error is None
    assert ('up{cluster="a"}', "Bearer t0k") in seen
    assert "did not answer within 0.5s" in slow.error
    assert "HTTP 502" in broken.error
    assert "bad_data: unexpected" in bad.error
    assert "no Prometheus is configured for cluster b" in unconfigured.error
    assert "ClientConnectorError" in refused.error or "Connect" in refused.error
    assert template.error == "CheckTemplateMissing: gone" and "tmpl" not in json.dumps(seen)
