"""The shadow candidate: agreement of two answers, and that the candidate's failures and slowness
stay in its own metrics (a stuck candidate drops requests instead of queueing them)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from edgeline.runtime.metrics import INFERENCE_BUCKETS, RuntimeMetrics
from edgeline.runtime.shadow import Shadow, ShadowMetrics, compare

IDENTITY = {"model": "detector", "version": "1.0.0", "deployment": "line-3", "namespace": "factory",
            "cluster": "edge-a"}
PROBS = np.array([[0.9, 0.1], [0.2, 0.8]], np.float32)


@pytest.mark.parametrize("live, candidate, tolerance, agree", [
    ({"p": PROBS}, {"p": PROBS + 0.05}, 1e-3, True),                           # same top class: agree
    ({"p": PROBS}, {"p": PROBS[:, ::-1].copy()}, 1e-3, False),                  # top class flipped
    ({"y": np.array([1.0, 2.0])}, {"y": np.array([1.0, 2.0005])}, 1e-3, True),  # regression within tolerance
    ({"y": np.array([1.0, 2.0])}, {"y": np.array([1.0, 2.1])}, 1e-3, False),
    ({"p": PROBS}, {"p": PROBS[:1]}, 1e-3, False),                              # another shape
    ({"p": PROBS}, {"q": PROBS}, 1e-3, False),                                  # nothing in common
])
def test_agreement(live, candidate, tolerance, agree):
    assert compare(live, candidate, tolerance).agree is agree


def test_max_abs_diff_is_reported():
    assert compare({"p": PROBS}, {"p": PROBS + 0.25}, 1e-3).max_abs_diff == pytest.approx(0.25)


class Model:
    def __init__(self, answer=None, fail=False, gate: threading.Event | None = None):
        self.answer, self.fail, self.gate = answer, fail, gate

    def infer(self, inputs, outputs):
        if self.gate is not None:
            self.gate.wait(5)
        if self.fail:
            raise RuntimeError("Reshape: 8 values cannot make 9")
        return self.answer


def make(model, queue=2):
    metrics = RuntimeMetrics(IDENTITY)
    shadow_metrics = ShadowMetrics(metrics.registry, metrics.identity, "2.0.0", INFERENCE_BUCKETS)
    log = []
    shadow = Shadow(shadow_metrics, lambda *a, **k: log.append((a, k)), queue=queue)
    shadow.loaded(model)
    return metrics, shadow, log


def count(metrics, outcome):
    return metrics.registry.get_sample_value("edgeline_runtime_shadow_requests_total",
                                             {**IDENTITY, "shadow_version": "2.0.0", "role": "shadow",
                                              "outcome": outcome})


def ready(metrics, state):
    return metrics.registry.get_sample_value("edgeline_runtime_shadow_ready",
                                             {**IDENTITY, "shadow_version": "2.0.0", "role": "shadow", "state": state})


def settle(shadow):
    deadline = time.monotonic() + 5
    while shadow._pending and time.monotonic() < deadline:
        time.sleep(0.01)


def test_agreeing_answers_are_counted_with_both_latencies():
    metrics, shadow, _ = make(Model({"p": PROBS}), queue=10)
    for _ in range(3):
        shadow.offer({"image": np.zeros((2, 3))}, {"p": PROBS}, 0.002, "image")
    settle(shadow)
    assert count(metrics, "agree") == 3 and count(metrics, "disagree") == 0
    for role in ("shadow", "live"):
        assert metrics.registry.get_sample_value("edgeline_runtime_shadow_inference_seconds_count",
                                                 {**IDENTITY, "shadow_version": "2.0.0", "role": role}) == 3
    assert ready(metrics, "Ready") == 1 and ready(metrics, "Loading") == 0


def test_a_failing_candidate_is_counted_and_logged_a_few_times_never_raised():
    metrics, shadow, log = make(Model(fail=True), queue=100)
    for _ in range(15):
        shadow.offer({"image": np.zeros((1, 3))}, {"p": PROBS[:1]}, 0.001, "image")
    settle(shadow)
    assert count(metrics, "failed") == 15
    assert len(log) == 10 and log[0][0][0] == "shadow_infer_failed"


def test_a_stuck_candidate_drops_requests_and_offer_returns_at_once():
    gate = threading.Event()
    metrics, shadow, _ = make(Model({"p": PROBS}, gate=gate), queue=2)
    started = time.perf_counter()
    for _ in range(50):
        shadow.offer({"image": np.zeros((2, 3))}, {"p": PROBS}, 0.001, "image")
    offered = time.perf_counter() - started
    assert count(metrics, "dropped") == 48
    gate.set()
    settle(shadow)
    assert count(metrics, "agree") == 2
    assert offered < 1.0        # 50 offers never waited for the candidate (generous: a loaded machine)


def test_nothing_is_offered_before_the_candidate_is_loaded():
    metrics = RuntimeMetrics(IDENTITY)
    shadow = Shadow(ShadowMetrics(metrics.registry, metrics.identity, "2.0.0", INFERENCE_BUCKETS), lambda *a, **k: None)
    shadow.offer({"image": np.zeros((1, 3))}, {"p": PROBS[:1]}, 0.001, "image")
    assert count(metrics, "dropped") == 0 and count(metrics, "agree") == 0
    assert ready(metrics, "Loading") == 1 and ready(metrics, "Ready") == 0
