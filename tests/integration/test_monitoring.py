"""Someone running Edgeline points a real Prometheus and Alertmanager at the edge
runtime's metrics with Edgeline's rules; when a model version starts failing, the alert
reaches Edgeline's webhook, authenticated, with the labels a rollback needs.

Prometheus, promtool and Alertmanager are Debian's, unpacked by dev/install-monitoring.sh.
No cluster is needed: the test serves the runtime's metrics (the runtime's own RuntimeMetrics, so
names and labels cannot drift from what the runtime exports) and the webhook itself.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from prometheus_client import start_http_server

from edgeline.devenv.environment import free_port
from edgeline.devenv.monitoring import (
    Monitoring,
    MonitoringBinaries,
    MonitoringError,
    ScrapeTarget,
    Webhook,
    find_binaries,
    promtool,
)
from edgeline.runtime.metrics import RuntimeMetrics
from tests.helpers.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "manifests" / "monitoring" / "prometheus-rules.yaml"
RULE_CASES = ROOT / "manifests" / "monitoring" / "prometheus-rules.test.yaml"
PROMETHEUS_RULE = ROOT / "manifests" / "monitoring" / "prometheusrule.yaml"
TOKEN = "s3cret-alert-token"
DEPLOYMENT = {"model": "yolo", "version": "v2", "deployment": "detector", "namespace": "shop", "cluster": "edge-a"}


@pytest.fixture(scope="module")
def binaries() -> MonitoringBinaries:
    try:
        return find_binaries()
    except MonitoringError as e:
        pytest.fail(str(e))  # never a skip: CI must install them (make tools)


# --- what the test serves -----------------------------------------------------------------

class SteeredRuntime:
    """The edge runtime's metrics as the runtime defines them (edgeline.runtime.metrics), with
    traffic the test steers: 20 requests a second of which `error_fraction` fail with 500."""

    def __init__(self) -> None:
        self.metrics = RuntimeMetrics(DEPLOYMENT)
        self.error_fraction = 0.0
        self._owed_errors = 0.0
        self._stop = threading.Event()
        self.port = free_port()
        self._server, _ = start_http_server(self.port, addr="127.0.0.1", registry=self.metrics.registry)
        self._traffic = threading.Thread(target=self._serve_traffic, daemon=True)
        self._traffic.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve_traffic(self) -> None:
        while not self._stop.wait(0.05):
            self._owed_errors += self.error_fraction
            failed = self._owed_errors >= 1
            if failed:
                self._owed_errors -= 1
                self.metrics.request(500)
            else:
                self.metrics.request(200)
                self.metrics.inference(0.02)

    def close(self) -> None:
        self._stop.set()
        self._traffic.join()
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Delivery:
    at: float
    authorization: str | None
    body: dict


@dataclass
class WebhookReceiver:
    """Edgeline's alert receiver as Alertmanager sees it: answers 200 and remembers."""

    port: int = field(default_factory=free_port)
    deliveries: list[Delivery] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/alerts"

    def __enter__(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                receiver.deliveries.append(Delivery(time.monotonic(), self.headers.get("Authorization"), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def firing(self, alertname: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.body.get("status") == "firing"
                and any(a["labels"].get("alertname") == alertname for a in d.body.get("alerts", []))]


@pytest.fixture
def runtime() -> Iterator[SteeredRuntime]:
    rt = SteeredRuntime()
    yield rt
    rt.close()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def monitoring(tmp_path, binaries, runtime, webhook) -> Iterator[Monitoring]:
    with Monitoring(tmp_path / "monitoring", binaries=binaries,
                    targets=[ScrapeTarget(runtime.address, {"node": "edge-a-1"})],
                    rule_files=[RULES], webhook=Webhook(webhook.url, bearer_token=TOKEN)) as mon:
        yield mon


# --- the rules as files ----------------------------------------------------------------------

def test_promtool_accepts_the_rules(binaries):
    checked = promtool("check", "rules", str(RULES), binaries=binaries)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_rules_behave_as_their_cases_say(binaries):
    tested = promtool("test", "rules", str(RULE_CASES), binaries=binaries)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_prometheusrule_holds_the_same_rules():
    plain = yaml.safe_load(RULES.read_text())
    resource = yaml.safe_load(PROMETHEUS_RULE.read_text())
    assert resource["kind"] == "PrometheusRule"
    assert resource["spec"]["groups"] == plain["groups"], \
        f"{PROMETHEUS_RULE.name} and {RULES.name} differ: edit both"


# --- the story --------------------------------------------------------------------------------

def test_a_failing_model_version_reaches_the_webhook(monitoring, runtime, webhook, record_property):
    # Given Prometheus scrapes the runtime while it serves without errors
    scraped = wait_for(lambda: monitoring.query('edgeline_runtime_requests_total{deployment="detector"}'),
                       timeout=30, what="Prometheus to scrape the runtime")
    assert scraped[0].value > 0
    assert scraped[0].labels["node"] == "edge-a-1"  # the caller's target label
    wait_for(lambda: monitoring.query("edgeline_deployment:runtime_requests:rate1m > 0"),
             timeout=30, what="the recording rules to see traffic")
    assert monitoring.query("ALERTS") == []
    assert webhook.deliveries == []

    # When the model version starts failing half of its requests
    went_bad = time.monotonic()
    runtime.error_fraction = 0.5

    # Then Alertmanager posts the alert to the webhook, with the token and the labels
    deliveries = wait_for(lambda: webhook.firing("EdgelineRuntimeErrorRateHigh"), timeout=60,
                          what="the webhook to receive EdgelineRuntimeErrorRateHigh")
    delivery = deliveries[0]
    latency = delivery.at - went_bad
    record_property("breach_to_webhook_s", round(latency, 2))
    print(f"\nbreach to webhook: {latency:.2f}s")

    assert delivery.authorization == f"Bearer {TOKEN}"
    assert delivery.body["version"] == "4"
    alert = next(a for a in delivery.body["alerts"] if a["labels"]["alertname"] == "EdgelineRuntimeErrorRateHigh")
    assert alert["status"] == "firing"
    assert alert["fingerprint"] and alert["startsAt"]
    assert {k: alert["labels"].get(k) for k in
            ("edgeline_deployment", "namespace", "cluster", "model_version", "severity")} == {
        "edgeline_deployment": "detector", "namespace": "shop", "cluster": "edge-a",
        "model_version": "v2", "severity": "critical"}
    assert "detector v2 fails" in alert["annotations"]["summary"]

    # And Alertmanager's own API shows the same alert
    held = monitoring.alerts()
    assert any(a["labels"]["alertname"] == "EdgelineRuntimeErrorRateHigh"
               and a["fingerprint"] == alert["fingerprint"] for a in held), held


def test_a_broken_rule_file_is_refused_on_reload(monitoring, tmp_path):
    broken = tmp_path / "broken-rules.yaml"
    broken.write_text("groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: rate(\n")
    with pytest.raises(MonitoringError, match="prometheus rejected its new configuration"):
        monitoring.reload(rule_files=[RULES, broken])
    # The running rules stay; a good configuration reloads fine.
    monitoring.reload(rule_files=[RULES])


def test_missing_binaries_name_the_install_script(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGELINE_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    for name in ("EDGELINE_PROMETHEUS", "EDGELINE_PROMTOOL", "EDGELINE_ALERTMANAGER"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(MonitoringError, match="dev/install-monitoring.sh"):
        find_binaries()
