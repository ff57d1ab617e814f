"""Prometheus metrics of one runtime, in a registry of its own (not the process-global one,
so that nothing else imported into the process can leak series into /metrics).

Every series carries the runtime's identity (model, version, deployment, namespace, cluster),
so that a hub-side Prometheus federating many edges can tell the runtimes apart."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST  # noqa: F401  (re-exported for the server)

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

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
