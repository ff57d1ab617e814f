"""What the local Prometheus scrapes among a cluster's Pods (the rules of the usual
kubernetes_sd_configs relabelling for role pod)."""

import pytest

from edgeline.devenv.monitoring import HttpDiscovery, Timings, prometheus_config
from edgeline.devenv.pod_discovery import targets_of


def pod(name="runtime-1", ip="198.18.2.7", phase="Running", deleting=False, **annotations):
    annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": "8080", **annotations}
    meta = {"name": name, "namespace": "ns-line", "annotations": {k: v for k, v in annotations.items() if v}}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-30T01:00:00Z"
    return {"metadata": meta, "status": {"phase": phase, "podIP": ip}}


@pytest.mark.parametrize("what,pods,targets", [
    ("annotated and running", [pod()], ["198.18.2.7:8080"]),
    ("not annotated", [pod(**{"prometheus.io/scrape": None})], []),
    ("scrape false", [pod(**{"prometheus.io/scrape": "false"})], []),
    ("pending, no IP yet", [pod(phase="Pending", ip=None)], []),
    ("being deleted", [pod(deleting=True)], []),
    ("no port", [pod(**{"prometheus.io/port": None})], []),
    ("IPv6", [pod(ip="2001:db8::7")], ["[2001:db8::7]:8080"]),
    ("several, sorted", [pod("b", ip="198.18.2.9"), pod("a", ip="198.18.2.8")], ["198.18.2.8:8080", "198.18.2.9:8080"]),
], ids=lambda v: v if isinstance(v, str) else None)
def test_targets(what, pods, targets):
    assert [g["targets"][0] for g in targets_of(pods)] == targets


def test_labels_and_path():
    group = targets_of([pod(**{"prometheus.io/path": "/custom"})])[0]
    assert group["labels"] == {"__metrics_path__": "/custom", "pod": "runtime-1", "pod_namespace": "ns-line"}
    assert targets_of([pod()])[0]["labels"]["__metrics_path__"] == "/metrics"


def test_prometheus_reads_them_over_http_sd_and_keeps_the_series_own_labels():
    config = prometheus_config([], [], "127.0.0.1:9093", Timings(), [HttpDiscovery("edge-a-pods", "http://x/targets")])
    job = config["scrape_configs"][1]
    assert job == {"job_name": "edge-a-pods", "honor_labels": True,
                   "http_sd_configs": [{"url": "http://x/targets", "refresh_interval": "1s"}]}
