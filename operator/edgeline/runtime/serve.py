"""The runtime's life: listen at once (live, not ready), then fetch, verify, load and self-test
the model in the background, and become ready only when all of that passed; stop on SIGTERM.

A model that can never be served (wrong digest, not loadable, failed golden sample) leaves the
runtime running but unready, rather than exiting: a crash loop would fetch the artifact again on
every restart and hide the reason behind back-off, while an unready Pod keeps its reason on
/v2/health/ready, in the log and in `edgeline_runtime_ready`, and a rollout stops at it.
Transient fetch failures are retried with back-off.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import urllib.parse

from edgeline import webserver
from edgeline.artifacts.errors import ArtifactError
from edgeline.artifacts.fetch import Limits
from edgeline.runtime.config import RuntimeConfig
from edgeline.runtime.events import EventLog
from edgeline.runtime.golden import GoldenSampleInvalid, compare_outputs, fetch_golden_sample, load_golden_sample
from edgeline.runtime.loader import InferenceFailed, fetch_verified, load_model
from edgeline.runtime.loader import load_profile
from edgeline.runtime.metrics import RuntimeMetrics
from edgeline.runtime.quality import ProfileInvalid, QualityTracker
from edgeline.runtime.server import Problem, Runtime

RETRY_FIRST_S = 2.0
RETRY_MAX_S = 300.0


def serve(config: RuntimeConfig, limits: Limits | None = None) -> int:
    """Runs until SIGTERM or SIGINT; 0 after a clean stop, 1 if the port cannot be opened."""
    log = EventLog(config.identity)
    runtime = Runtime(config, RuntimeMetrics(config.identity), log)
    return asyncio.run(_main(runtime, limits or Limits()))


async def _main(runtime: Runtime, limits: Limits) -> int:
    config, log = runtime.config, runtime.log
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    try:
        runner = await webserver.start(runtime.app(), config.host, config.port,
                                       shutdown_timeout=config.shutdown_grace_s)
    except OSError as exc:
        log("listen_failed", "error", host=config.host, port=config.port, error=exc.strerror or str(exc))
        return 1
    port = webserver.port(runner, config.port)
    log("listening", host=config.host, port=port, model_uri=_shown(config.model_uri))

    preparing = asyncio.create_task(_prepare_or_report(runtime, limits))
    await stop.wait()

    log("stopping", grace_s=config.shutdown_grace_s)
    runtime.state.ready = False
    runtime.state.stage = "Stopping"
    runtime.metrics.ready(False)
    preparing.cancel()
    await webserver.stop(runner)  # stops listening, lets in-flight requests finish within the grace period
    runtime.executor.shutdown(wait=False, cancel_futures=True)
    if runtime.shadow is not None:
        runtime.shadow.shutdown()
    log("stopped")
    return 0


async def _prepare_or_report(runtime: Runtime, limits: Limits) -> None:
    try:
        await _prepare(runtime, limits)
    except Exception as exc:  # a bug, not the model's fault: unready, with the reason in the log
        runtime.state.stage = "Failed"
        runtime.state.problem = Problem("InternalError", f"{type(exc).__name__}: {exc}")
        runtime.log("not_ready", "error", reason="InternalError", message=f"{type(exc).__name__}: {exc}")
        raise


async def _prepare(runtime: Runtime, limits: Limits) -> None:
    config, state, log, metrics = runtime.config, runtime.state, runtime.log, runtime.metrics

    def fail(reason: str, message: str) -> None:
        state.stage, state.problem = "Failed", Problem(reason, message)
        log("not_ready", "error", reason=reason, message=message)

    pause = RETRY_FIRST_S
    while True:
        state.stage = "Fetching"
        try:
            fetched = await _in_thread(fetch_verified, config.model_uri, config.model_sha256, config.model_dir,
                                       limits=limits, external_data=config.model_external_data)
            break
        except ArtifactError as exc:
            if not exc.transient:
                return fail(exc.reason, exc.message)
            state.problem = Problem(exc.reason, f"{exc.message} (retrying in {pause:g}s)")
            log("fetch_retry", "warning", reason=exc.reason, message=exc.message, retry_in_s=pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_MAX_S)
    state.problem = None
    log("model_verified", digest=fetched.sha256, size_bytes=fetched.size_bytes, reused=fetched.reused,
        seconds=round(fetched.seconds, 3))

    state.stage = "Loading"
    try:
        model = await _in_thread(load_model, fetched.path, fetched.sha256, config.provider,
                                 intra_op_threads=config.intra_op_threads)
    except ArtifactError as exc:
        return fail(exc.reason, exc.message)
    state.model = model
    metrics.model_loaded(model.digest)
    log("model_loaded", provider=model.provider, inputs=[s.to_metadata() for s in model.inputs],
        outputs=[s.to_metadata() for s in model.outputs])
    if config.quality_metrics:
        await _start_quality(runtime, model, limits)

    golden = config.golden_sample
    if config.golden_sample_uri:
        state.stage = "SelfTest"
        try:
            golden = await _in_thread(fetch_golden_sample, config.golden_sample_uri, config.golden_sample_sha256,
                                      config.model_dir, limits)
        except ArtifactError as exc:
            return fail("GoldenSampleInvalid", f"the golden sample cannot be used: {exc.reason}: {exc.message}")
    if golden:
        state.stage = "SelfTest"
        try:
            sample = load_golden_sample(golden, model.inputs, model.outputs)
        except GoldenSampleInvalid as exc:
            return fail("GoldenSampleInvalid", str(exc))
        try:
            actual = await _in_thread(model.infer, sample.request.inputs, list(sample.expected))
        except InferenceFailed as exc:
            return fail("GoldenSampleFailed", f"the model failed on the golden sample: {exc}")
        difference = compare_outputs(sample, actual)
        if difference:
            return fail("GoldenSampleFailed", difference)
        log("golden_sample_passed", outputs=sorted(sample.expected))

    state.stage, state.ready = "Ready", True
    metrics.ready(True)
    log("ready")
    if config.shadow_model_uri:
        # After ready, never before: the candidate must not delay (or fail) what serves.
        await _start_shadow(runtime, model, limits, fetched.size_bytes)


async def _start_shadow(runtime: Runtime, served, limits: Limits, served_bytes: int) -> None:
    """The candidate in shadow (edgeline.runtime.shadow): fetched and verified like the served
    model, then offered every answered request. A candidate that cannot be fetched, verified or
    loaded leaves the runtime serving as before: edgeline_runtime_shadow_ready{state="Failed"}
    and a `shadow_failed` log line say why."""
    from edgeline.runtime.metrics import INFERENCE_BUCKETS
    from edgeline.runtime.shadow import Shadow, ShadowMetrics

    config, log = runtime.config, runtime.log
    version = config.shadow_model_version or config.shadow_model_sha256.removeprefix("sha256:")[:12]
    shadow_metrics = ShadowMetrics(runtime.metrics.registry, runtime.metrics.identity, version, INFERENCE_BUCKETS)
    shadow = Shadow(shadow_metrics, log, queue=config.shadow_queue, tolerance=config.shadow_tolerance)
    runtime.shadow = shadow
    log("shadow_fetching", version=version, model_uri=_shown(config.shadow_model_uri))
    try:
        fetched = await _in_thread(fetch_verified, config.shadow_model_uri, config.shadow_model_sha256,
                                   config.model_dir / "shadow", limits=limits,
                                   external_data=config.shadow_model_external_data)
        if fetched.size_bytes > config.shadow_max_size_ratio * max(served_bytes, 1):
            shadow.failed()
            log("shadow_failed", "error", reason="CandidateTooLarge", version=version,
                message=f"the candidate has {fetched.size_bytes} bytes, more than {config.shadow_max_size_ratio:g} "
                        f"times the served model's {served_bytes}: not loaded beside it (EDGELINE_SHADOW_MAX_SIZE_RATIO)")
            return
        model = await _in_thread(load_model, fetched.path, fetched.sha256, config.provider,
                                 intra_op_threads=config.intra_op_threads)
    except ArtifactError as exc:
        shadow.failed()
        log("shadow_failed", "error", reason=exc.reason, message=exc.message, version=version)
        return
    tracker = None
    if config.shadow_reference_profile_uri:
        try:
            profile = await _in_thread(load_profile, config.shadow_reference_profile_uri,
                                       config.shadow_reference_profile_sha256, config.model_dir / "shadow", limits,
                                       model.inputs, model.outputs)
            tracker = QualityTracker(window=config.drift_window, profile=profile)
        except (ArtifactError, ProfileInvalid) as exc:
            log("shadow_reference_profile_invalid", "warning",
                message=exc.message if isinstance(exc, ArtifactError) else str(exc))
    missing = sorted({s.name for s in served.outputs} - {s.name for s in model.outputs})
    if missing:
        shadow.failed()
        log("shadow_failed", "error", reason="OutputsDiffer", version=version,
            message=f"the candidate lacks the served model's outputs {', '.join(missing)}: nothing to compare")
        return
    shadow.loaded(model, tracker)
    log("shadow_ready", version=version, digest=model.digest, drift_profile=tracker is not None)


async def _start_quality(runtime: Runtime, model, limits: Limits) -> None:
    """Quality statistics on, scored against the reference profile when one is configured. A
    profile that cannot be fetched, verified or used leaves the model served, without a drift
    score: edgeline_runtime_drift_reference{state="invalid"} and a `reference_profile_invalid`
    log line say why."""
    config, metrics, log = runtime.config, runtime.metrics, runtime.log
    tracker = QualityTracker(window=config.drift_window)
    metrics.enable_quality(tracker)
    if not config.reference_profile_uri:
        metrics.reference("missing")
        log("reference_profile_missing", message="no reference profile configured: no drift score")
        return
    try:
        profile = await _in_thread(load_profile, config.reference_profile_uri, config.reference_profile_sha256,
                                   config.model_dir, limits, model.inputs, model.outputs)
    except (ArtifactError, ProfileInvalid) as exc:
        reason = exc.reason if isinstance(exc, ArtifactError) else "ProfileInvalid"
        message = exc.message if isinstance(exc, ArtifactError) else str(exc)
        metrics.reference("invalid")
        log("reference_profile_invalid", "error", reason=reason, message=message)
        return
    tracker.set_profile(profile)
    metrics.reference("loaded", profile.pipeline)
    log("reference_profile_loaded", channels=profile.channels, input=profile.input,
        top_score_output=profile.top_score.output if profile.top_score else None, pipeline=profile.pipeline)


def _in_thread(fn, *args, **kwargs) -> asyncio.Future:
    """fn in a daemon thread: a download stuck in a read timeout must not hold the process
    after SIGTERM (asyncio.to_thread's pool threads are joined at interpreter exit)."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(outcome, failed: bool) -> None:
        if not future.done():
            future.set_exception(outcome) if failed else future.set_result(outcome)

    def work() -> None:
        try:
            result, failed = fn(*args, **kwargs), False
        except BaseException as exc:  # handed to the awaiting task, which decides
            result, failed = exc, True
        try:
            loop.call_soon_threadsafe(settle, result, failed)
        except RuntimeError:
            pass  # the loop has closed: the runtime stopped while this ran

    threading.Thread(target=work, name=getattr(fn, "__name__", "work"), daemon=True).start()
    return future


def _shown(uri: str) -> str:
    """The URI without user:password and query, which may carry tokens (pre-signed URLs)."""
    parts = urllib.parse.urlsplit(uri)
    host = parts.hostname or ""
    return urllib.parse.urlunsplit((parts.scheme, f"{host}:{parts.port}" if parts.port else host, parts.path, "", ""))
