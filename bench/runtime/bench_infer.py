"""Inference latency and throughput of `edgeline runtime serve` over loopback, for the sample
defect detector (1, 3, 64, 64 float32 -> 2 probabilities), in one run.

    .venv/bin/python bench/runtime/bench_infer.py [--requests 1000] [--seconds 5] [--concurrency 8]

Starts the runtime as a subprocess (file:// model, sha256 verified as in a Pod), waits until it is
ready, then measures:

  direct           onnxruntime in this process, same input: the floor
  sequential       one keep-alive connection, one request at a time: p50 / p99 latency and requests/s
  concurrent       --concurrency keep-alive connections (aiohttp client) for --seconds: requests/s, p50/p99
  in-server        edgeline_runtime_inference_seconds sum/count: the model's share of a request

Client and server share the machine's CPUs, so throughput is a lower bound. Results: a table, and
bench/results/runtime.json.

    .venv/bin/python bench/runtime/bench_infer.py --quality [--rounds 10] [--requests 300]

measures instead what the model-quality metrics cost (edgeline.runtime.quality): two runtimes side
by side, one with EDGELINE_QUALITY_METRICS=false and one with the metrics on and a reference
profile (so drift is scored), one request to each in turns (so that other work on the machine
hits both alike), /metrics scraped between rounds; p50/p99 of each and the p50
overhead, plus QualityTracker.observe timed in process for batches of 1 and 32. Results:
bench/results/runtime_quality.json.

    .venv/bin/python bench/runtime/bench_infer.py --shadow [--rounds 10] [--requests 300]

measures what a candidate in shadow costs the served model (edgeline.runtime.shadow): two runtimes
serving 1.0.0 side by side, one alone and one mirroring every request to the sample 2.0.0 in shadow,
in turns as above; p50/p99 of each, the p50 overhead, and the shadow's own counts (compared,
dropped). Results: bench/results/runtime_shadow.json.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "operator")]

import numpy as np  # noqa: E402

from tests.helpers.onnx_models import file_digest  # noqa: E402
from tests.helpers.runtime_models import MODEL_NAME, images, infer_body, sample_model  # noqa: E402

PATH = f"/v2/models/{MODEL_NAME}/infer"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def start_runtime(model: Path, model_dir: Path, extra_env: dict | None = None) -> tuple[subprocess.Popen, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGELINE_")}
    env["EDGELINE_MODEL_DIR"] = str(model_dir)
    env.update(extra_env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeline", "runtime", "serve", "--model-uri", model.as_uri(),
         "--sha256", file_digest(model), "--model-name", MODEL_NAME, "--model-version", "1.0.0",
         "--host", "127.0.0.1", "--port", "0"],
        env=env, stderr=subprocess.PIPE, text=True)
    port = None
    for line in proc.stderr:
        event = json.loads(line)
        if event["event"] == "listening":
            port = event["port"]
        if event["event"] == "ready":
            return proc, port
        if event["event"] == "not_ready":
            break
    proc.terminate()
    proc.wait(timeout=30)
    raise SystemExit(f"the runtime did not become ready: {line.strip()}")


def sequential(port: int, body: bytes, count: int) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Content-Type": "application/json"}
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        connection.request("POST", PATH, body, headers)
        response = connection.getresponse()
        response.read()
        latencies.append(time.perf_counter() - started)
        assert response.status == 200, response.status
    connection.close()
    return latencies


async def concurrent(port: int, body: bytes, seconds: float, concurrency: int) -> tuple[list[float], float]:
    import aiohttp

    url = f"http://127.0.0.1:{port}{PATH}"
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker(session):
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
                await response.read()
                assert response.status == 200, response.status
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return latencies, elapsed


def in_server(port: int) -> tuple[float, float]:
    connection = http.client.HTTPConnection("127.0.0.1", port)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    total = float(re.search(r"^edgeline_runtime_inference_seconds_sum\{.*\} (\S+)$", text, re.M).group(1))
    count = float(re.search(r"^edgeline_runtime_inference_seconds_count\{.*\} (\S+)$", text, re.M).group(1))
    return total, count


def direct(model: Path, frames: np.ndarray, count: int) -> list[float]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    session.run(None, {"image": frames})
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        session.run(None, {"image": frames})
        latencies.append(time.perf_counter() - started)
    return latencies


def scrape(port: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port)
    connection.request("GET", "/metrics")
    connection.getresponse().read()
    connection.close()


def observe_cost(batch: int, count: int = 2000) -> list[float]:
    """Seconds QualityTracker.observe takes for one request of `batch` frames, with a profile."""
    from edgeline.runtime.quality import QualityTracker, build_profile, check_profile, parse_profile
    from edgeline.runtime.tensors import TensorSpec

    frames = images(batch, seed=1)
    outputs = {"probabilities": np.random.default_rng(1).random((batch, 2), dtype=np.float32)}
    profile = build_profile(images(64, seed=2), top_scores=np.full(64, 0.9), output="probabilities")
    profile = check_profile(parse_profile(profile), [TensorSpec("image", "FP32", [-1, 3, 64, 64])],
                            [TensorSpec("probabilities", "FP32", [-1, 2])])
    tracker = QualityTracker(window=256, profile=profile)
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        tracker.observe({"image": frames}, outputs, "image")
        latencies.append(time.perf_counter() - started)
    return latencies


def quality_overhead(args) -> None:
    from edgeline.runtime.quality import build_profile

    load_at_start = round(os.getloadavg()[0], 2)
    model = sample_model("1.0.0")
    frames = images(1, seed=0)
    body = json.dumps(infer_body(frames)).encode()
    with tempfile.TemporaryDirectory(prefix="edgeline-bench-") as scratch:
        profile = Path(scratch) / "profile.json"
        profile.write_text(json.dumps(build_profile(images(64, seed=2), top_scores=np.full(64, 0.9),
                                                    output="probabilities", pipeline="bench")))
        off, off_port = start_runtime(model, Path(scratch) / "off", {"EDGELINE_QUALITY_METRICS": "false"})
        on, on_port = start_runtime(model, Path(scratch) / "on", {
            "EDGELINE_REFERENCE_PROFILE_URI": profile.as_uri(),
            "EDGELINE_REFERENCE_PROFILE_SHA256": file_digest(profile)})
        timings: dict[str, list[float]] = {"off": [], "on": []}
        try:
            connections = {name: http.client.HTTPConnection("127.0.0.1", port)
                           for name, port in (("off", off_port), ("on", on_port))}
            headers = {"Content-Type": "application/json"}
            for round_ in range(args.rounds + 1):  # round 0 warms both up and is not counted
                for i in range(args.requests):
                    # one request to each, in turns, so that other work on the machine hits both alike
                    for name in (("off", "on") if i % 2 == 0 else ("on", "off")):
                        started = time.perf_counter()
                        connections[name].request("POST", PATH, body, headers)
                        response = connections[name].getresponse()
                        response.read()
                        assert response.status == 200, response.status
                        if round_:
                            timings[name].append(time.perf_counter() - started)
                for port in (off_port, on_port):
                    scrape(port)  # a scrape between rounds, as Prometheus would
            for connection in connections.values():
                connection.close()
        finally:
            for proc in (off, on):
                proc.terminate()
                proc.wait(timeout=30)
    one, many = observe_cost(1), observe_cost(32)
    off_p50, on_p50 = percentile(timings["off"], 50), percentile(timings["on"], 50)
    results = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release(),
                    "load_average_1m_at_start": load_at_start},
        "model": f"{MODEL_NAME} 1.0.0, input (1, 3, 64, 64) FP32, batch 1; drift window 256, profile loaded",
        "rounds": args.rounds,
        "requests_per_round": args.requests,
        "quality_off_p50_ms": off_p50 * 1000,
        "quality_off_p99_ms": percentile(timings["off"], 99) * 1000,
        "quality_on_p50_ms": on_p50 * 1000,
        "quality_on_p99_ms": percentile(timings["on"], 99) * 1000,
        "p50_overhead_percent": (on_p50 - off_p50) / off_p50 * 100,
        "observe_batch1_p50_us": percentile(one, 50) * 1e6,
        "observe_batch32_p50_us": percentile(many, 50) * 1e6,
    }
    args.out = args.out if args.out != ROOT / "bench" / "results" / "runtime.json" else \
        ROOT / "bench" / "results" / "runtime_quality.json"
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"quality metrics off   p50 {results['quality_off_p50_ms']:.2f} ms  p99 {results['quality_off_p99_ms']:.2f} ms")
    print(f"quality metrics on    p50 {results['quality_on_p50_ms']:.2f} ms  p99 {results['quality_on_p99_ms']:.2f} ms")
    print(f"p50 overhead          {results['p50_overhead_percent']:+.1f} %")
    print(f"observe() in process  batch 1: {results['observe_batch1_p50_us']:.0f} us, "
          f"batch 32: {results['observe_batch32_p50_us']:.0f} us (p50)")
    print(f"wrote {args.out}")


def alternate(ports: dict[str, int], body: bytes, rounds: int, requests: int) -> dict[str, list[float]]:
    """Latency of one request to each runtime in turns (round 0 warms up, not counted), a scrape
    of each between rounds."""
    timings: dict[str, list[float]] = {name: [] for name in ports}
    connections = {name: http.client.HTTPConnection("127.0.0.1", port) for name, port in ports.items()}
    headers = {"Content-Type": "application/json"}
    names = list(ports)
    for round_ in range(rounds + 1):
        for i in range(requests):
            for name in (names if i % 2 == 0 else names[::-1]):
                started = time.perf_counter()
                connections[name].request("POST", PATH, body, headers)
                response = connections[name].getresponse()
                response.read()
                assert response.status == 200, response.status
                if round_:
                    timings[name].append(time.perf_counter() - started)
        for port in ports.values():
            scrape(port)
    for connection in connections.values():
        connection.close()
    return timings


def shadow_counts(port: int) -> dict[str, float]:
    connection = http.client.HTTPConnection("127.0.0.1", port)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    counts = {}
    for outcome in ("agree", "disagree", "failed", "dropped"):
        found = re.search(rf'edgeline_runtime_shadow_requests_total\{{[^}}]*outcome="{outcome}"[^}}]*\}} (\S+)', text)
        counts[outcome] = float(found.group(1)) if found else 0.0
    return counts


def shadow_overhead(args) -> None:
    load_at_start = round(os.getloadavg()[0], 2)
    model, candidate = sample_model("1.0.0"), sample_model("2.0.0")
    body = json.dumps(infer_body(images(1, seed=0))).encode()
    with tempfile.TemporaryDirectory(prefix="edgeline-bench-") as scratch:
        alone, alone_port = start_runtime(model, Path(scratch) / "alone")
        shadowed, shadowed_port = start_runtime(model, Path(scratch) / "shadowed", {
            "EDGELINE_SHADOW_MODEL_URI": candidate.as_uri(), "EDGELINE_SHADOW_MODEL_SHA256": file_digest(candidate),
            "EDGELINE_SHADOW_MODEL_VERSION": "2.0.0"})
        try:
            deadline = time.monotonic() + 60
            while 'state="Ready"} 1.0' not in _metrics_text(shadowed_port) and time.monotonic() < deadline:
                time.sleep(0.2)
            timings = alternate({"alone": alone_port, "shadow": shadowed_port}, body, args.rounds, args.requests)
            counts = shadow_counts(shadowed_port)
        finally:
            for proc in (alone, shadowed):
                proc.terminate()
                proc.wait(timeout=30)
    off_p50, on_p50 = percentile(timings["alone"], 50), percentile(timings["shadow"], 50)
    results = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release(),
                    "load_average_1m_at_start": load_at_start},
        "model": f"{MODEL_NAME} 1.0.0 served, 2.0.0 in shadow; input (1, 3, 64, 64) FP32, batch 1; quality "
                 "metrics on in both (no profile)",
        "rounds": args.rounds, "requests_per_round": args.requests,
        "shadow_off_p50_ms": off_p50 * 1000, "shadow_off_p99_ms": percentile(timings["alone"], 99) * 1000,
        "shadow_on_p50_ms": on_p50 * 1000, "shadow_on_p99_ms": percentile(timings["shadow"], 99) * 1000,
        "p50_overhead_percent": (on_p50 - off_p50) / off_p50 * 100,
        "shadow_outcomes": counts,
    }
    out = args.out if args.out != ROOT / "bench" / "results" / "runtime.json" else \
        ROOT / "bench" / "results" / "runtime_shadow.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"served alone          p50 {results['shadow_off_p50_ms']:.2f} ms  p99 {results['shadow_off_p99_ms']:.2f} ms")
    print(f"with 2.0.0 in shadow  p50 {results['shadow_on_p50_ms']:.2f} ms  p99 {results['shadow_on_p99_ms']:.2f} ms")
    print(f"p50 overhead          {results['p50_overhead_percent']:+.1f} %   shadow outcomes {counts}")
    print(f"wrote {out}")


def _metrics_text(port: int) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="sequential requests (per round with --quality)")
    parser.add_argument("--quality", action="store_true", help="measure the quality metrics' overhead instead")
    parser.add_argument("--shadow", action="store_true", help="measure a shadow candidate's overhead instead")
    parser.add_argument("--rounds", type=int, default=10, help="alternating rounds of --quality or --shadow")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of the concurrent phase")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "runtime.json")
    args = parser.parse_args()
    if args.quality:
        return quality_overhead(args)
    if args.shadow:
        return shadow_overhead(args)

    load_at_start = round(os.getloadavg()[0], 2)  # other work on the machine skews the figures
    model = sample_model("1.0.0")
    frames = images(1, seed=0)
    body = json.dumps(infer_body(frames)).encode()
    with tempfile.TemporaryDirectory(prefix="edgeline-bench-") as scratch:
        proc, port = start_runtime(model, Path(scratch))
        try:
            sequential(port, body, 50)  # warm-up
            seq = sequential(port, body, args.requests)
            seq_elapsed = sum(seq)
            conc, conc_elapsed = asyncio.run(concurrent(port, body, args.seconds, args.concurrency))
            server_sum, server_count = in_server(port)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    floor = direct(model, frames, args.requests)

    results = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release(),
                    "load_average_1m_at_start": load_at_start},
        "model": f"{MODEL_NAME} 1.0.0, input (1, 3, 64, 64) FP32",
        "request_body_bytes": len(body),
        "direct_onnxruntime_p50_ms": percentile(floor, 50) * 1000,
        "direct_onnxruntime_p99_ms": percentile(floor, 99) * 1000,
        "sequential_requests": len(seq),
        "sequential_p50_ms": percentile(seq, 50) * 1000,
        "sequential_p99_ms": percentile(seq, 99) * 1000,
        "sequential_requests_per_s": len(seq) / seq_elapsed,
        "concurrency": args.concurrency,
        "concurrent_requests": len(conc),
        "concurrent_p50_ms": percentile(conc, 50) * 1000,
        "concurrent_p99_ms": percentile(conc, 99) * 1000,
        "concurrent_requests_per_s": len(conc) / conc_elapsed,
        "in_server_inference_mean_ms": server_sum / server_count * 1000 if server_count else None,
        "runtime_exit_code": proc.returncode,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'direct onnxruntime':<22} p50 {results['direct_onnxruntime_p50_ms']:.2f} ms  "
          f"p99 {results['direct_onnxruntime_p99_ms']:.2f} ms")
    print(f"{'sequential (1 conn)':<22} p50 {results['sequential_p50_ms']:.2f} ms  "
          f"p99 {results['sequential_p99_ms']:.2f} ms  {results['sequential_requests_per_s']:.0f} req/s")
    print(f"{f'concurrent ({args.concurrency} conns)':<22} p50 {results['concurrent_p50_ms']:.2f} ms  "
          f"p99 {results['concurrent_p99_ms']:.2f} ms  {results['concurrent_requests_per_s']:.0f} req/s")
    print(f"{'in-server inference':<22} mean {results['in_server_inference_mean_ms']:.2f} ms")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
