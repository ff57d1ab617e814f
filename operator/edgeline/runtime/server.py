"""The HTTP face of the runtime: Open Inference Protocol v2 over JSON, and /metrics.

Decoding, inference and encoding run in a small thread pool (onnxruntime releases the GIL),
so the event loop keeps answering health checks while a slow model works.
"""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from aiohttp import web

from edgeline.runtime.config import RuntimeConfig
from edgeline.runtime.events import EventLog
from edgeline.runtime.loader import InferenceFailed, LoadedModel
from edgeline.runtime.metrics import CONTENT_TYPE_LATEST, RuntimeMetrics
from edgeline.runtime.tensors import BadRequest, encode_infer_response, parse_infer_request

try:
    # msgspec (a dependency of lightkube) decodes a 250 kB image tensor in 1 ms, json in 7 ms:
    # JSON decoding, not the model, is most of a small model's request time.
    from msgspec.json import decode as decode_json, encode as encode_json
except ImportError:  # pragma: no cover - the standard library does the same, slower
    def decode_json(raw: bytes):
        return json.loads(raw)

    def encode_json(value) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()


# status, body, error message, and (inputs, outputs, first input name, inference seconds) for the
# quality statistics and the shadow candidate
_Outcome = tuple[int, bytes, "str | None", "tuple[dict, dict, str, float] | None"]


@dataclass
class Problem:
    reason: str  # CamelCase, like the operator's condition reasons
    message: str


class ModelState:
    """Where the one model of this runtime stands. Written by the start-up task only."""

    def __init__(self):
        self.model: LoadedModel | None = None
        self.ready = False
        self.stage = "Fetching"  # Fetching, Loading, SelfTest, Ready, Failed, Stopping
        self.problem: Problem | None = None

    def why_not_ready(self) -> Problem:
        if self.problem:
            return self.problem
        if self.stage == "Stopping":
            return Problem("Stopping", "the runtime is shutting down")
        return Problem(self.stage, {"Fetching": "the model is being fetched and verified",
                                    "Loading": "the model is being loaded",
                                    "SelfTest": "the model is running its golden sample"}.get(self.stage, self.stage))


class Runtime:
    def __init__(self, config: RuntimeConfig, metrics: RuntimeMetrics, log: EventLog):
        self.config = config
        self.metrics = metrics
        self.log = log
        self.state = ModelState()
        self.executor = ThreadPoolExecutor(max_workers=config.inference_threads, thread_name_prefix="infer")
        self.shadow = None  # edgeline.runtime.shadow.Shadow, when a candidate runs in shadow

    # -- routes -----------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.max_request_bytes)
        app.add_routes([
            web.get("/v2/health/live", self.live),
            web.get("/v2/health/ready", self.ready),
            web.get("/v2", self.server_metadata),
            web.get("/v2/models/{name}", self.model_metadata),
            web.get("/v2/models/{name}/versions/{version}", self.model_metadata),
            web.get("/v2/models/{name}/ready", self.model_ready),
            web.get("/v2/models/{name}/versions/{version}/ready", self.model_ready),
            web.post("/v2/models/{name}/infer", self.infer),
            web.post("/v2/models/{name}/versions/{version}/infer", self.infer),
            web.get("/metrics", self.metrics_page),
        ])
        return app

    async def live(self, request: web.Request) -> web.Response:
        return web.json_response({"live": True})

    async def ready(self, request: web.Request) -> web.Response:
        if self.state.ready:
            return web.json_response({"ready": True})
        problem = self.state.why_not_ready()
        return web.json_response({"ready": False, "reason": problem.reason, "message": problem.message}, status=503)

    async def server_metadata(self, request: web.Request) -> web.Response:
        return web.json_response({"name": "edgeline-runtime", "version": _package_version(), "extensions": []})

    async def model_metadata(self, request: web.Request) -> web.Response:
        unknown = self._unknown(request)
        if unknown:
            return unknown
        model = self.state.model
        if model is None:
            return _error(503, f"model {self.config.model_name!r} is not loaded: {self.state.why_not_ready().message}")
        return web.json_response({
            "name": self.config.model_name,
            "versions": [self.config.model_version],
            "platform": "onnx",
            "inputs": [spec.to_metadata() for spec in model.inputs],
            "outputs": [spec.to_metadata() for spec in model.outputs],
        })

    async def model_ready(self, request: web.Request) -> web.Response:
        unknown = self._unknown(request)
        if unknown:
            return unknown
        return web.json_response({"name": self.config.model_name, "ready": self.state.ready},
                                 status=200 if self.state.ready else 503)

    async def metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def infer(self, request: web.Request) -> web.Response:
        status, body, error, observed = await self._infer(request)
        self.metrics.request(status)
        if error:
            self.log("infer_failed" if status >= 500 else "infer_rejected", "error" if status >= 500 else "warning",
                     code=status, error=error, path=request.path)
            body = json.dumps({"error": error}).encode()
        response = web.Response(body=body, status=status, content_type="application/json")
        if observed is not None:
            # The answer first, then its quality statistics: they never delay an answer.
            await response.prepare(request)
            await response.write_eof()
            self._observe_later(*observed)
        return response

    # -- inference --------------------------------------------------------------------------

    async def _infer(self, request: web.Request) -> _Outcome:
        unknown = self._unknown_name(request)
        if unknown:
            return 404, b"", unknown, None
        model = self.state.model
        if not self.state.ready or model is None:
            return (503, b"", f"model {self.config.model_name!r} is not ready: "
                    f"{self.state.why_not_ready().message}", None)
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return 413, b"", f"the request is larger than {self.config.max_request_bytes} bytes", None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self._infer_blocking, model, raw)

    def _observe_later(self, inputs: dict, outputs: dict, first_input: str, seconds: float) -> None:
        """Queues the quality statistics of one answered request (edgeline.runtime.quality) in the
        inference pool, and offers it to the shadow candidate (its own thread), once the answer
        was handed to the connection."""
        if self.shadow is not None:
            self.shadow.offer(inputs, outputs, seconds, first_input)
        if self.metrics.quality is None:
            return
        try:
            self.executor.submit(self._observe, inputs, outputs, first_input)
        except RuntimeError:
            pass  # the pool is shut down: the runtime is stopping

    def _observe(self, inputs: dict, outputs: dict, first_input: str) -> None:
        try:
            self.metrics.quality.observe(inputs, outputs, first_input)
        except Exception as exc:  # statistics must never cost an answer, nor stop the next ones
            self.log("quality_failed", "warning", error=f"{type(exc).__name__}: {exc}")

    def _infer_blocking(self, model: LoadedModel, raw: bytes) -> _Outcome:
        try:
            body = decode_json(raw)
        except ValueError as exc:  # msgspec.DecodeError is a ValueError too
            return 400, b"", f"the request body is not JSON: {exc}", None
        try:
            parsed = parse_infer_request(body, model.inputs, model.outputs)
        except BadRequest as exc:
            return 400, b"", str(exc), None
        started = time.perf_counter()
        try:
            outputs = model.infer(parsed.inputs, parsed.outputs)
        except InferenceFailed as exc:
            return 500, b"", f"inference failed: {exc}", None
        seconds = time.perf_counter() - started
        self.metrics.inference(seconds)
        response = encode_infer_response(self.config.model_name, self.config.model_version, parsed.id, outputs)
        if self.metrics.quality is not None or self.shadow is not None:
            return 200, encode_json(response), None, (parsed.inputs, outputs, model.inputs[0].name, seconds)
        return 200, encode_json(response), None, None

    # -- names ------------------------------------------------------------------------------

    def _unknown_name(self, request: web.Request) -> str | None:
        name = request.match_info["name"]
        version = request.match_info.get("version")
        if name != self.config.model_name:
            return f"unknown model {name!r}: this runtime serves {self.config.model_name!r}"
        if version is not None and version != self.config.model_version:
            return f"model {name!r} has no version {version!r}: this runtime serves {self.config.model_version!r}"
        return None

    def _unknown(self, request: web.Request) -> web.Response | None:
        message = self._unknown_name(request)
        return _error(404, message) if message else None


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("edgeline")
    except PackageNotFoundError:
        return "unknown"
