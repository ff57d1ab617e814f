"""The production monitoring path as the chart and manifests/monitoring ship it: a PodMonitor
for the edge runtimes, rendered only where the Prometheus Operator's kind exists, that selects
exactly the Pods Edgeline renders, on their named port, and keeps the runtime's own labels
(honorLabels). The site files (plain Prometheus scrape job, Alertmanager to the hub over TLS)
say the same. Real helm, no cluster."""

from __future__ import annotations

import pytest
import yaml

from edgeline.api.edgedeployment import RevisionRef, Runtime
from edgeline.render.runtime import Target, render as render_runtime
from tests.helpers.chart import ROOT, helm_runner, one, render

MONITORING = ROOT / "manifests" / "monitoring"
HAS_PODMONITOR = ("--api-versions", "monitoring.coreos.com/v1/PodMonitor")


@pytest.fixture(scope="module")
def helm():
    return helm_runner()


def _runtime_pod() -> dict:
    revision = RevisionRef(revision="0123456789", mlmodel="detector-2", model="detector", version="2.0.0",
                           digest="sha256:" + "0" * 64, uri="https://models.example.com/d.onnx", runtime=Runtime())
    objects = render_runtime("factory", "detector", revision, Target("line-1", "edgeline-workloads"))
    return next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]


def test_without_the_prometheus_operator_no_monitor_is_rendered(helm):
    assert not [o for o in render(helm) if o["kind"] == "PodMonitor"]


def test_the_podmonitor_selects_the_runtime_pods_on_their_named_port_and_keeps_their_labels(helm):
    monitor = one(render(helm, *HAS_PODMONITOR), "PodMonitor", "edgeline-runtime")
    spec = monitor["spec"]
    pod = _runtime_pod()
    assert spec["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert spec["namespaceSelector"] == {"any": True}
    (endpoint,) = spec["podMetricsEndpoints"]
    ports = {p["name"]: p for c in pod["spec"]["containers"] for p in c["ports"]}
    assert endpoint["port"] in ports and endpoint["path"] == "/metrics"
    # The runtime's `namespace` is the EdgeDeployment's namespace on the hub; a target label must not replace it.
    assert endpoint["honorLabels"] is True
    assert {"sourceLabels": ["__meta_kubernetes_pod_label_edgeline_io_revision"], "targetLabel": "revision"} in \
        endpoint["relabelings"]
    assert "edgeline.io/revision" in pod["metadata"]["labels"]


def test_values_choose_namespaces_labels_interval_or_turn_it_off(helm):
    monitor = one(render(helm, *HAS_PODMONITOR, "--set", "runtimeMonitor.namespaces={edgeline-workloads},"
                         "runtimeMonitor.interval=5s,runtimeMonitor.labels.release=kube-prometheus-stack"),
                  "PodMonitor")
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["edgeline-workloads"]}
    assert monitor["spec"]["podMetricsEndpoints"][0]["interval"] == "5s"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert not [o for o in render(helm, *HAS_PODMONITOR, "--set", "runtimeMonitor.enabled=false")
                if o["kind"] == "PodMonitor"]


def test_the_site_files_say_what_the_chart_says(helm):
    chart = one(render(helm, *HAS_PODMONITOR), "PodMonitor")
    standalone = yaml.safe_load((MONITORING / "runtime-podmonitor.yaml").read_text())
    assert standalone["spec"] == chart["spec"]

    prometheus = yaml.safe_load((MONITORING / "site-prometheus.yaml").read_text())
    job = one([{"kind": "job", "metadata": {"name": j["job_name"]}, **j} for j in prometheus["scrape_configs"]],
              "job", "edgeline-runtime")
    assert job["honor_labels"] is True
    keep = job["relabel_configs"][0]
    labels = _runtime_pod()["metadata"]["labels"]
    assert keep["action"] == "keep" and keep["regex"] == \
        f"{labels['app.kubernetes.io/name']};{labels['app.kubernetes.io/managed-by']}"

    alertmanager = yaml.safe_load((MONITORING / "site-alertmanager.yaml").read_text())
    (receiver,) = alertmanager["receivers"]
    (webhook,) = receiver["webhook_configs"]
    assert webhook["url"].startswith("https://") and webhook["url"].endswith("/alerts")
    assert webhook["http_config"]["authorization"]["type"] == "Bearer"
    assert "credentials_file" in webhook["http_config"]["authorization"]    # never the token inline
    assert {"namespace", "edgeline_deployment", "cluster"} <= set(alertmanager["route"]["group_by"])
