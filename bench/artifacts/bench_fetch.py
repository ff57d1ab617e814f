"""Fetch + digest + inspection of large ONNX models: throughput and memory.

    python bench/artifacts/bench_fetch.py [--mb 512]

Builds a single-file model and an external-data model of about --mb MiB of weights,
serves them from a separate `python -m http.server` process on 127.0.0.1, and measures
in one run: sha256sum's throughput on the file, Edgeline's fetch+digest throughput over
loopback HTTP, peak RSS growth while fetching, and peak RSS growth while inspecting.
Each measured phase runs in a fresh Python process, so its peak RSS (VmHWM) is its own.
Results: a table on stdout and bench/results/artifacts.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PHASE = r"""
import json, sys, time
from pathlib import Path
def hwm():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) * 1024
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) * 1024
from edgeline.artifacts.fetch import Limits, fetch_artifact
from edgeline.artifacts.onnx_inspect import inspect_model
kind, arg, dest = sys.argv[1], sys.argv[2], sys.argv[3]
base = rss()
start = time.monotonic()
if kind == 'fetch':
    limits = Limits(max_bytes=64 * 2**30, connect_timeout_s=5, read_timeout_s=60, retries=1, max_redirects=3)
    result = fetch_artifact(arg, Path(dest), limits)
    extra = {'bytes': result.size_bytes}
else:
    found = inspect_model(Path(arg))
    extra = {'parameters': found.parameter_count}
print(json.dumps({'seconds': time.monotonic() - start, 'peak_growth': hwm() - base, **extra}))
"""


def build_models(folder: Path, mb: int) -> dict[str, Path]:
    script = r"""
import sys, numpy as np, onnx
from onnx import TensorProto, helper, numpy_helper
folder, mb = sys.argv[1], int(sys.argv[2])
n = mb * 2**20 // 4
def model():
    w = numpy_helper.from_array(np.full((n // 1024, 1024), 0.5, np.float32), 'W')
    g = helper.make_graph([helper.make_node('MatMul', ['x', 'W'], ['y'])], 'big',
        [helper.make_tensor_value_info('x', TensorProto.FLOAT, ['batch', n // 1024])],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, ['batch', 1024])], initializer=[w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid('', 17)], ir_version=8)
onnx.save_model(model(), f'{folder}/single.onnx')
onnx.save_model(model(), f'{folder}/external.onnx', save_as_external_data=True, location='external.weights')
"""
    subprocess.run([sys.executable, "-c", script, str(folder), str(mb)], check=True)
    return {"single": folder / "single.onnx", "external": folder / "external.onnx"}


def phase(kind: str, arg: str, dest: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PHASE, kind, arg, dest], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def sha256sum_seconds(path: Path) -> float:
    start = time.monotonic()
    subprocess.run(["sha256sum", str(path)], check=True, capture_output=True)
    return time.monotonic() - start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=512, help="MiB of weights per model")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgeline-bench-") as tmp:
        folder = Path(tmp)
        models = build_models(folder, args.mb)
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                   "--directory", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(1.0)
            size = models["single"].stat().st_size
            sha_s = min(sha256sum_seconds(models["single"]) for _ in range(2))
            fetch = min((phase("fetch", f"http://127.0.0.1:{port}/single.onnx", str(folder / "fetched.onnx"))
                         for _ in range(2)), key=lambda r: r["seconds"])
            inspect_single = phase("inspect", str(models["single"]), "-")
            inspect_external = phase("inspect", str(models["external"]), "-")
        finally:
            server.terminate()
        weights = (folder / "external.weights").stat().st_size
    mib = 2**20
    results = {
        "file_bytes": size,
        "sha256sum_mib_s": size / mib / sha_s,
        "fetch_digest_mib_s": size / mib / fetch["seconds"],
        "fetch_vs_sha256sum": (size / fetch["seconds"]) / (size / sha_s),
        "fetch_peak_rss_growth_mib": fetch["peak_growth"] / mib,
        "inspect_single_peak_rss_growth_mib": inspect_single["peak_growth"] / mib,
        "inspect_single_growth_vs_file": inspect_single["peak_growth"] / size,
        "inspect_external_peak_rss_growth_mib": inspect_external["peak_growth"] / mib,
        "external_weights_bytes": weights,
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "artifacts.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"model file                       {size / mib:8.0f} MiB")
    print(f"sha256sum                        {results['sha256sum_mib_s']:8.0f} MiB/s")
    print(f"fetch + sha256 over loopback     {results['fetch_digest_mib_s']:8.0f} MiB/s"
          f"  ({results['fetch_vs_sha256sum']:.0%} of sha256sum; goal >= 70%)")
    print(f"fetch peak RSS growth            {results['fetch_peak_rss_growth_mib']:8.1f} MiB (flat: chunks of 1 MiB)")
    print(f"inspect single-file growth       {results['inspect_single_peak_rss_growth_mib']:8.0f} MiB"
          f"  ({results['inspect_single_growth_vs_file']:.2f}x the file; goal <= 1.5x)")
    print(f"inspect external-data growth     {results['inspect_external_peak_rss_growth_mib']:8.1f} MiB"
          f"  (weights {weights / mib:.0f} MiB not loaded)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
