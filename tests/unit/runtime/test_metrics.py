"""Runtime metrics: identity labels on every series, errors counted apart, an own registry."""

from __future__ import annotations

from prometheus_client import REGISTRY

from edgeline.runtime.metrics import RuntimeMetrics

IDENTITY = {"model": "detector", "version": "2.0.0", "deployment": "line-3", "namespace": "factory",
            "cluster": "edge-a"}


def value(metrics: RuntimeMetrics, name: str, **labels) -> float | None:
    return metrics.registry.get_sample_value(name, {**IDENTITY, **labels})


def test_requests_are_counted_by_code_and_errors_apart():
    metrics = RuntimeMetrics(IDENTITY)
    # present at 0 before the first request, so that rate() sees the first error
    assert value(metrics, "edgeline_runtime_request_errors_total", code="500") == 0
    assert value(metrics, "edgeline_runtime_requests_total", code="200") == 0
    for code in (200, 200, 400, 500):
        metrics.request(code)
    assert value(metrics, "edgeline_runtime_requests_total", code="200") == 2
    assert value(metrics, "edgeline_runtime_requests_total", code="500") == 1
    assert value(metrics, "edgeline_runtime_request_errors_total", code="400") == 1
    assert value(metrics, "edgeline_runtime_request_errors_total", code="200") is None


def test_readiness_model_info_and_latency_carry_the_identity():
    metrics = RuntimeMetrics(IDENTITY)
    assert value(metrics, "edgeline_runtime_ready") == 0
    assert value(metrics, "edgeline_runtime_inference_seconds_count") == 0
    metrics.model_loaded("sha256:" + "ab" * 32)
    metrics.ready(True)
    metrics.inference(0.003)
    assert value(metrics, "edgeline_runtime_model_info", digest="sha256:" + "ab" * 32) == 1
    assert value(metrics, "edgeline_runtime_ready") == 1
    assert value(metrics, "edgeline_runtime_inference_seconds_bucket", le="0.005") == 1
    assert b'edgeline_runtime_ready{cluster="edge-a",deployment="line-3"' in metrics.exposition()


def test_two_runtimes_in_one_process_do_not_share_series():
    first, second = RuntimeMetrics(IDENTITY), RuntimeMetrics(IDENTITY)
    first.request(200)
    assert value(first, "edgeline_runtime_requests_total", code="200") == 1
    assert value(second, "edgeline_runtime_requests_total", code="200") == 0
    assert REGISTRY.get_sample_value("edgeline_runtime_requests_total", {**IDENTITY, "code": "200"}) is None
