"""A candidate model running in shadow beside the served one (docs/analysis.md#shadow-runs).

The runtime loads the candidate (fetched and digest-verified like the served model) once the
served model is ready. Every answered request is offered to it after the answer was written: the
candidate runs on the same decoded inputs in a thread of its own, its answer is compared with the
live one and then discarded. What it costs the live path is one queue put; when the candidate
falls behind (slow, or stuck), requests are dropped from the shadow, never queued without bound,
and a candidate that fails to load or raises only shows up in its own metrics and log lines.

Metrics (all labelled role="shadow" for the candidate, role="live" for the served model's times
on the same mirrored requests, and shadow_version = the candidate's version):
  edgeline_runtime_shadow_ready               1 once the candidate is loaded, with state and reason
  edgeline_runtime_shadow_requests_total      mirrored requests by outcome: agree, disagree, failed, dropped
  edgeline_runtime_shadow_inference_seconds   inference time of candidate (shadow) and served model (live)
  edgeline_runtime_shadow_drift_score         the candidate's drift against its own reference profile
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

from edgeline.runtime.quality import QualityTracker, is_classifier

OUTCOMES = ("agree", "disagree", "failed", "dropped")
STATES = ("Loading", "Ready", "Failed")


@dataclass(frozen=True)
class Agreement:
    agree: bool
    max_abs_diff: float          # over the compared outputs (nan when no float output was compared)
    compared: tuple[str, ...]    # output names compared
    detail: str = ""             # why they disagree, for the log


def compare(live: dict[str, np.ndarray], candidate: dict[str, np.ndarray], tolerance: float) -> Agreement:
    """Whether the candidate's answer agrees with the live one, output by output (those both
    have): a classifier-shaped output ([batch, classes]) agrees when every row has the same
    argmax (top-class agreement); any other output when no value differs by more than
    `tolerance`. Outputs of another shape disagree."""
    names = tuple(sorted(set(live) & set(candidate)))
    if not names:
        return Agreement(False, float("nan"), (), "no output in common")
    worst = float("nan")
    for name in names:
        a, b = np.asarray(live[name]), np.asarray(candidate[name])
        if a.shape != b.shape:
            return Agreement(False, worst, names, f"output {name}: shape {list(b.shape)} != {list(a.shape)}")
        if a.dtype.kind in "fiub" and b.dtype.kind in "fiub" and a.size:
            diff = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
            worst = diff if np.isnan(worst) else max(worst, diff)
        else:
            diff = 0.0 if np.array_equal(a, b) else float("inf")
        if is_classifier(a):
            if not np.array_equal(a.argmax(axis=1), b.argmax(axis=1)):
                return Agreement(False, worst, names, f"output {name}: top class differs")
        elif diff > tolerance:
            return Agreement(False, worst, names, f"output {name}: differs by {diff:.3g} > {tolerance:g}")
    return Agreement(True, worst, names)


class ShadowMetrics:
    """The shadow's families in the runtime's registry. `identity` is the runtime's (the served
    version in `version`); every series adds role and shadow_version."""

    def __init__(self, registry, identity: dict[str, str], shadow_version: str, buckets):
        self.identity = {**identity, "shadow_version": shadow_version}
        keys = list(self.identity)
        self._ready = Gauge("edgeline_runtime_shadow_ready",
                            "1 once the shadow candidate is fetched, verified and loaded; state Loading, Ready or "
                            "Failed (reason in the log)", [*keys, "role", "state"], registry=registry)
        self._requests = Counter("edgeline_runtime_shadow_requests",
                                 "Requests mirrored to the shadow candidate, by outcome: agree, disagree (with the "
                                 "served answer), failed (the candidate raised), dropped (it was behind)",
                                 [*keys, "role", "outcome"], registry=registry)
        self._seconds = Histogram("edgeline_runtime_shadow_inference_seconds",
                                  "Inference time on mirrored requests: role=shadow the candidate, role=live the "
                                  "served model on the same requests", [*keys, "role"], buckets=buckets,
                                  registry=registry)
        self.tracker: QualityTracker | None = None
        registry.register(_DriftCollector(self))
        for outcome in OUTCOMES:
            self._requests.labels(**self.identity, role="shadow", outcome=outcome)
        for role in ("shadow", "live"):
            self._seconds.labels(**self.identity, role=role)
        self.state("Loading")

    def state(self, state: str) -> None:
        for known in STATES:
            self._ready.labels(**self.identity, role="shadow", state=known).set(1 if known == state else 0)

    def outcome(self, outcome: str) -> None:
        self._requests.labels(**self.identity, role="shadow", outcome=outcome).inc()

    def seconds(self, role: str, value: float) -> None:
        self._seconds.labels(**self.identity, role=role).observe(value)


class _DriftCollector:
    def __init__(self, metrics: ShadowMetrics):
        self.metrics = metrics

    def collect(self):
        family = GaugeMetricFamily("edgeline_runtime_shadow_drift_score",
                                   "The shadow candidate's drift against its own reference profile (kind as for "
                                   "edgeline_runtime_drift_score)", labels=[*self.metrics.identity, "role", "kind"])
        tracker = self.metrics.tracker
        if tracker is not None:
            values = list(self.metrics.identity.values())
            for kind, score in sorted(tracker.snapshot().scores.items()):
                family.add_metric([*values, "shadow", kind], score)
        yield family


class Shadow:
    """The candidate and its one worker thread. `offer` is called from the inference threads
    after an answer was written; it never blocks and never raises."""

    def __init__(self, metrics: ShadowMetrics, log, *, queue: int = 4, tolerance: float = 1e-3):
        self.metrics = metrics
        self.log = log
        self.model = None
        self.queue = queue
        self.tolerance = tolerance
        self._pending = 0
        self._lock = threading.Lock()
        self._failures_logged = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadow")

    def loaded(self, model, tracker: QualityTracker | None = None) -> None:
        self.metrics.tracker = tracker
        self.model = model
        self.metrics.state("Ready")

    def failed(self) -> None:
        self.metrics.state("Failed")

    def offer(self, inputs: dict, live_outputs: dict, live_seconds: float, first_input: str) -> None:
        if self.model is None:
            return
        with self._lock:
            if self._pending >= self.queue:
                self.metrics.outcome("dropped")
                return
            self._pending += 1
        try:
            self._executor.submit(self._run, inputs, live_outputs, live_seconds, first_input)
        except RuntimeError:  # shut down: the runtime is stopping
            with self._lock:
                self._pending -= 1

    def _run(self, inputs: dict, live_outputs: dict, live_seconds: float, first_input: str) -> None:
        try:
            started = time.perf_counter()
            try:
                answer = self.model.infer(inputs, list(live_outputs))
            except Exception as exc:  # the candidate's failure is its own: counted and logged, never raised
                self.metrics.outcome("failed")
                self._log_failure(f"{type(exc).__name__}: {exc}")
                return
            self.metrics.seconds("shadow", time.perf_counter() - started)
            self.metrics.seconds("live", live_seconds)
            verdict = compare(live_outputs, answer, self.tolerance)
            self.metrics.outcome("agree" if verdict.agree else "disagree")
            tracker = self.metrics.tracker
            if tracker is not None:
                tracker.observe(inputs, answer, first_input)
        except Exception as exc:  # a bug here must not stop the next comparisons
            self.metrics.outcome("failed")
            self._log_failure(f"{type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._pending -= 1

    def _log_failure(self, error: str) -> None:
        # The first ten failures are logged; after that the counter tells the story.
        if self._failures_logged < 10:
            self._failures_logged += 1
            self.log("shadow_infer_failed", "warning", error=error[:500])

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
