"""The agent's queries to the site's Prometheus (agent.checks): a real HTTP server on loopback
answering as Prometheus does; every failure comes back as a NoData result, never an exception."""

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import httpx2 as httpx
import pytest

from edgeline.agent.checks import measure
from edgeline.domain.site_checks import FAIL, NO_DATA, PASS, SiteCheck

ANSWERS = {
    "good": (200, {"status": "success", "data": {"resultType": "vector",
                                                 "result": [{"metric": {}, "value": [1, "0.01"]}]}}),
    "bad": (200, {"status": "success", "data": {"resultType": "scalar", "result": [1, "0.4"]}}),
    "empty": (200, {"status": "success", "data": {"resultType": "vector", "result": []}}),
    "broken": (400, {"status": "error", "errorType": "bad_data", "error": "parse error"}),
    "matrix": (200, {"status": "success", "data": {"resultType": "matrix", "result": []}}),
}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        url = urlparse(self.path)
        query = parse_qs(url.query).get("query", [""])[0]
        code, body = ANSWERS.get(query, (500, None))
        raw = json.dumps(body).encode() if body is not None else b"<html>oops</html>"
        self.send_response(code if url.path == "/api/v1/query" else 404)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def prometheus():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _measure(url, promql):
    async def go():
        async with httpx.AsyncClient(trust_env=False) as client:
            return await measure(client, url, SiteCheck("errors", promql, "result < 0.05", 30), 2.0)
    return asyncio.run(go())


@pytest.mark.parametrize("promql, verdict, values, error", [
    ("good", PASS, (0.01,), None),
    ("bad", FAIL, (0.4,), None),
    ("empty", NO_DATA, (), "no data"),
    ("broken", NO_DATA, (), "bad_data: parse error"),
    ("matrix", NO_DATA, (), "not a vector or scalar"),
    ("unknown", NO_DATA, (), "not JSON"),
])
def test_the_site_reads_prometheus_answers_as_the_hub_does(prometheus, promql, verdict, values, error):
    got = _measure(prometheus, promql)
    assert (got.verdict, got.values) == (verdict, values)
    assert (error is None and got.error is None) or error in got.error


def test_an_unreachable_or_unnamed_prometheus_is_missing_data():
    refused = _measure("http://127.0.0.1:9", "good")
    assert refused.verdict == NO_DATA and "127.0.0.1:9" in refused.error
    unnamed = _measure(None, "good")
    assert unnamed.verdict == NO_DATA and "--prometheus-url" in unnamed.error
