"""Prometheus metrics of one runtime, in a registry of its own (not the process-global one,
so that nothing else imported into the process can leak series into /metrics).

Every series carries the runtime's identity (model, version, deployment, namespace, cluster),
so that a hub-side Prometheus federating many edges can tell the runtimes apart."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST  # noqa: F401  (re-exported for the server)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from edgeline.runtime.quality import TOP_SCORE_BUCKETS, QualityTracker, Snapshot

IDENTITY = ("model", "version", "deployment", "namespace", "cluster")
# Edge CPUs: from a tiny model on a fast core (~0.1 ms) to a large one on a slow ARM board (seconds).
# The status codes inference answers with; their series start at 0 (see below).
ANSWER_CODES = (200, 400, 404, 413, 500, 503)
INFERENCE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class RuntimeMetrics:
    def __init__(self, identity: dict[str, str]):
        self.identity = {key: identity.get(key, "") for key in IDENTITY}
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter("edgeline_runtime_requests", "Inference requests answered, by HTTP status code",
                                 [*IDENTITY, "code"], registry=self.registry)
        self._errors = Counter("edgeline_runtime_request_errors",
                               "Inference requests answered with an error (4xx or 5xx), by HTTP status code",
                               [*IDENTITY, "code"], registry=self.registry)
        self._seconds = Histogram("edgeline_runtime_inference_seconds",
                                  "Time onnxruntime took to run the model, for runs that succeeded",
                                  IDENTITY, buckets=INFERENCE_BUCKETS, registry=self.registry)
        self._info = Gauge("edgeline_runtime_model_info", "The model this runtime serves (always 1)",
                           [*IDENTITY, "digest"], registry=self.registry)
        self._ready = Gauge("edgeline_runtime_ready",
                            "1 once the model is fetched, verified, loaded and passed its golden sample",
                            IDENTITY, registry=self.registry)
        self._reference = Gauge("edgeline_runtime_drift_reference",
                                "The reference profile drift is scored against (1 for the current state): "
                                "loaded, missing (none configured: no drift score) or invalid (see the log)",
                                [*IDENTITY, "state", "pipeline"], registry=self.registry)
        self.quality: QualityTracker | None = None
        self.reference("missing")
        # Families without samples until enable_quality(): /metrics and the dashboard know their names.
        self.registry.register(_QualityCollector(self.identity, self))
        # Series exist from the start, at zero: a counter that first appears at 1 hides its first
        # increase from rate(), so the first 500s of a broken version would not count towards an alert.
        self._ready.labels(**self.identity).set(0)
        self._seconds.labels(**self.identity)
        for code in ANSWER_CODES:
            self._requests.labels(**self.identity, code=str(code))
            if code >= 400:
                self._errors.labels(**self.identity, code=str(code))

    def request(self, code: int) -> None:
        self._requests.labels(**self.identity, code=str(code)).inc()
        if code >= 400:
            self._errors.labels(**self.identity, code=str(code)).inc()

    def inference(self, seconds: float) -> None:
        self._seconds.labels(**self.identity).observe(seconds)

    def model_loaded(self, digest: str) -> None:
        self._info.labels(**self.identity, digest=digest).set(1)

    def ready(self, value: bool) -> None:
        self._ready.labels(**self.identity).set(1 if value else 0)

    def enable_quality(self, tracker: QualityTracker) -> None:
        """Exports the tracker's statistics and drift scores on every scrape."""
        self.quality = tracker

    def reference(self, state: str, pipeline: str = "") -> None:
        """Which reference profile the drift score uses: one series at 1, the others removed."""
        self._reference.clear()
        self._reference.labels(**self.identity, state=state, pipeline=pipeline).set(1)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _QualityCollector:
    """The QualityTracker's snapshot as metric families, built at scrape time: the per-request
    path only updates numpy arrays (edgeline.runtime.quality), never prometheus_client objects."""

    def __init__(self, identity: dict[str, str], metrics: RuntimeMetrics):
        self.identity = identity
        self.metrics = metrics

    def collect(self):
        tracker = self.metrics.quality
        snap = tracker.snapshot() if tracker is not None else Snapshot(None, 0, None, None, {}, {}, {}, {})
        keys = list(IDENTITY)
        values = [self.identity[k] for k in keys]

        tops = HistogramMetricFamily("edgeline_runtime_top_score",
                                     "Top score (max of the output row) of each answered row, per output",
                                     labels=[*keys, "output"])
        for output in sorted(snap.top_score_counts):
            counts = snap.top_score_counts[output]
            cumulative = counts.cumsum()
            buckets = [(_le(b), float(c)) for b, c in zip(TOP_SCORE_BUCKETS, cumulative[:-1])]
            buckets.append(("+Inf", float(cumulative[-1])))
            tops.add_metric([*values, output], buckets, snap.top_score_sums[output])
        yield tops

        classes = CounterMetricFamily("edgeline_runtime_predicted_class",
                                      "Rows whose argmax was this class, per classifier-shaped output "
                                      "([batch, classes], at most 32 classes)", labels=[*keys, "output", "class"])
        for output in sorted(snap.class_counts):
            for index, count in enumerate(snap.class_counts[output]):
                classes.add_metric([*values, output, str(index)], float(count))
        yield classes

        mean = GaugeMetricFamily("edgeline_runtime_input_channel_mean",
                                 "Mean of the first input per channel (axis 1, first 16) over the drift window",
                                 labels=[*keys, "input", "channel"])
        std = GaugeMetricFamily("edgeline_runtime_input_channel_std",
                                "Standard deviation of the first input per channel over the drift window",
                                labels=[*keys, "input", "channel"])
        if snap.channel_mean is not None:
            for channel, (m, s) in enumerate(zip(snap.channel_mean, snap.channel_std)):
                mean.add_metric([*values, snap.input or "", str(channel)], float(m))
                std.add_metric([*values, snap.input or "", str(channel)], float(s))
        yield mean
        yield std

        window = GaugeMetricFamily("edgeline_runtime_drift_window_requests",
                                   "Requests in the sliding window the input statistics and drift scores cover",
                                   labels=keys)
        if tracker is not None:
            window.add_metric(values, float(snap.window_requests))
        yield window

        score = GaugeMetricFamily("edgeline_runtime_drift_score",
                                  "Drift of the window against the reference profile: kind=input is the largest "
                                  "standardized channel mean shift (in reference stds), kind=prediction the PSI "
                                  "of the top score; absent without a profile or with too few requests",
                                  labels=[*keys, "kind"])
        for kind in sorted(snap.scores):
            score.add_metric([*values, kind], snap.scores[kind])
        yield score


def _le(bound: float) -> str:
    return repr(float(bound))
