"""Fetch, digest and inspection of large ONNX models: throughput and memory, in one run.

    .venv/bin/python bench/artifacts/bench_fetch.py [--mb 512] [--runs 3]

Writes a single-file model and an external-data model with --mb MiB of float32 weights each
(streamed, see tests/helpers/onnx_models.write_large_model), serves them from the test
artifact server in a process of its own on 127.0.0.1 (sendfile, like nginx), and measures:

  sha256sum            coreutils on the single-file model (best of --runs, warm page cache)
  fetch+digest         edgeline's http fetcher on the same file: streamed to disk, hashed
  validate             the controller's whole path: fetch, digest, external data, checker, inspection
  inspect              inspection of the files in place
  naive inspect        what inspection would cost with onnx.checker.check_model(path) + onnx.load

Every measured phase runs in a fresh Python process that has already imported edgeline and
onnx; it resets its peak RSS (/proc/self/clear_refs, 5) and reports VmHWM - VmRSS, so the
figure is the phase's own growth, not import noise. Results: a table, and
bench/results/artifacts.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "operator")]

from tests.helpers.onnx_models import write_large_model  # noqa: E402

MIB = 1024 * 1024

PHASE = r"""
import json, sys, time
from pathlib import Path
import onnx
from edgeline.artifacts.fetch import Limits, fetch_artifact
from edgeline.artifacts.onnx_inspect import inspect_model
from edgeline.artifacts.validation import validate_artifact
from edgeline.settings import Settings

def status(key):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024

def reset_peak():
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False

kind, arg, scratch = sys.argv[1], sys.argv[2], Path(sys.argv[3])
reset = reset_peak()
base = status('VmRSS:')
start = time.perf_counter()
extra = {}
if kind == 'fetch':
    result = fetch_artifact(arg, scratch / 'fetched.onnx', limits=Limits(max_bytes=64 * 2**30, retries=1))
    extra = {'bytes': result.size_bytes, 'sha256': result.sha256}
    (scratch / 'fetched.onnx').unlink()
elif kind == 'validate':
    outcome = validate_artifact(arg, None, settings=Settings(artifact_dir=scratch, artifact_max_bytes=64 * 2**30))
    assert outcome.ok, outcome.message
    extra = {'bytes': outcome.fetch.size_bytes + sum(f.size_bytes for f in outcome.external_files)}
elif kind == 'inspect':
    extra = {'parameters': inspect_model(Path(arg)).parameter_count}
elif kind == 'naive':
    onnx.checker.check_model(arg, full_check=True)
    model = onnx.load(arg, load_external_data=False)
    extra = {'parameters': len(model.graph.initializer)}
seconds = time.perf_counter() - start
print(json.dumps({'seconds': seconds, 'growth': status('VmHWM:') - base, 'peak_reset': reset, **extra}))
"""


def phase(kind: str, arg: str, scratch: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "operator"), str(ROOT)])}
    out = subprocess.run([sys.executable, "-c", PHASE, kind, arg, str(scratch)], check=True, capture_output=True,
                         text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def best(runs: int, measure) -> dict:
    results = [measure() for _ in range(runs)]
    return min(results, key=lambda r: r["seconds"]) | {"max_growth": max(r.get("growth", 0) for r in results)}


def sha256sum(path: Path) -> dict:
    start = time.perf_counter()
    out = subprocess.run(["sha256sum", str(path)], check=True, capture_output=True, text=True)
    return {"seconds": time.perf_counter() - start, "sha256": "sha256:" + out.stdout.split()[0]}


def openssl_sha256(path: Path) -> dict | None:
    """The same digest through OpenSSL (SHA-NI where the CPU has it): a stricter reference."""
    if not shutil.which("openssl"):
        return None
    start = time.perf_counter()
    subprocess.run(["openssl", "dgst", "-sha256", str(path)], check=True, capture_output=True)
    return {"seconds": time.perf_counter() - start}


def start_server(folder: Path) -> tuple[subprocess.Popen, str]:
    server = subprocess.Popen([sys.executable, "-m", "tests.helpers.artifact_server", str(folder)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    return server, server.stdout.readline().strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=512, help="MiB of weights per model (default 512)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each timed phase; the best counts")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="edgeline-bench-") as tmp:
        folder, scratch = Path(tmp) / "served", Path(tmp) / "scratch"
        folder.mkdir()
        scratch.mkdir()
        started = time.perf_counter()
        single = write_large_model(folder / "single.onnx", args.mb)
        external = write_large_model(folder / "external.onnx", args.mb, external=True)
        build_s = time.perf_counter() - started
        size = single.stat().st_size
        weights = (folder / "external.weights").stat().st_size
        server, url = start_server(folder)
        try:
            sha256sum(single)  # warm the page cache, as the server's reads are warm too
            reference = best(args.runs, lambda: sha256sum(single))
            openssl = best(args.runs, lambda: openssl_sha256(single)) if shutil.which("openssl") else None
            fetch = best(args.runs, lambda: phase("fetch", f"{url}/single.onnx", scratch))
            validate_single = best(1, lambda: phase("validate", f"{url}/single.onnx", scratch))
            validate_external = best(1, lambda: phase("validate", f"{url}/external.onnx", scratch))
        finally:
            server.terminate()
            server.wait()
        inspect_single = best(args.runs, lambda: phase("inspect", str(single), scratch))
        inspect_external = best(args.runs, lambda: phase("inspect", str(external), scratch))
        naive_single = best(1, lambda: phase("naive", str(single), scratch))
        naive_external = best(1, lambda: phase("naive", str(external), scratch))
    assert fetch["sha256"] == reference["sha256"], "the fetched bytes differ from the file"

    results = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()},
        "weights_mib": args.mb,
        "build_seconds": round(build_s, 2),
        "single_file_bytes": size,
        "external_weights_bytes": weights,
        "sha256sum_mib_s": size / MIB / reference["seconds"],
        "openssl_sha256_mib_s": size / MIB / openssl["seconds"] if openssl else None,
        "fetch_digest_mib_s": size / MIB / fetch["seconds"],
        "fetch_vs_openssl": openssl["seconds"] / fetch["seconds"] if openssl else None,
        "fetch_vs_sha256sum": reference["seconds"] / fetch["seconds"],
        "fetch_peak_rss_growth_mib": fetch["max_growth"] / MIB,
        "validate_single_seconds": validate_single["seconds"],
        "validate_single_peak_rss_growth_mib": validate_single["growth"] / MIB,
        "validate_external_seconds": validate_external["seconds"],
        "validate_external_peak_rss_growth_mib": validate_external["growth"] / MIB,
        "inspect_single_seconds": inspect_single["seconds"],
        "inspect_single_peak_rss_growth_mib": inspect_single["max_growth"] / MIB,
        "inspect_single_growth_vs_file": inspect_single["max_growth"] / size,
        "inspect_external_seconds": inspect_external["seconds"],
        "inspect_external_peak_rss_growth_mib": inspect_external["max_growth"] / MIB,
        "naive_inspect_single_peak_rss_growth_mib": naive_single["growth"] / MIB,
        "naive_inspect_single_growth_vs_file": naive_single["growth"] / size,
        "naive_inspect_external_peak_rss_growth_mib": naive_external["growth"] / MIB,
        "peak_rss_reset_supported": all(r.get("peak_reset") for r in (fetch, inspect_single, inspect_external)),
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "artifacts.json").write_text(json.dumps(results, indent=2) + "\n")

    r = results
    rows = [
        ("model file (single)", f"{size / MIB:.0f} MiB", f"external-data model: {weights / MIB:.0f} MiB of weights"),
        ("sha256sum", f"{r['sha256sum_mib_s']:.0f} MiB/s", "coreutils, warm page cache"),
        ("fetch + sha256 (http)", f"{r['fetch_digest_mib_s']:.0f} MiB/s",
         f"{r['fetch_vs_sha256sum']:.0%} of sha256sum (goal >= 70%)"),
        *([("openssl dgst -sha256", f"{r['openssl_sha256_mib_s']:.0f} MiB/s",
             f"fetch+sha256 is {r['fetch_vs_openssl']:.0%} of it (stricter reference)")] if openssl else []),
        ("fetch peak RSS growth", f"{r['fetch_peak_rss_growth_mib']:.1f} MiB", "flat: 1 MiB chunks"),
        ("validate single-file", f"{r['validate_single_seconds']:.2f} s",
         f"peak RSS +{r['validate_single_peak_rss_growth_mib']:.1f} MiB (fetch, digest, checker, inspection)"),
        ("validate external-data", f"{r['validate_external_seconds']:.2f} s",
         f"peak RSS +{r['validate_external_peak_rss_growth_mib']:.1f} MiB"),
        ("inspect single-file", f"{r['inspect_single_peak_rss_growth_mib']:.1f} MiB",
         f"{r['inspect_single_growth_vs_file']:.3f}x the file (goal <= 1.5x), {r['inspect_single_seconds']:.2f} s"),
        ("inspect external-data", f"{r['inspect_external_peak_rss_growth_mib']:.1f} MiB",
         f"weights not loaded (goal: small constant), {r['inspect_external_seconds']:.2f} s"),
        ("naive check+load single", f"{r['naive_inspect_single_peak_rss_growth_mib']:.0f} MiB",
         f"{r['naive_inspect_single_growth_vs_file']:.2f}x the file: why inspection uses a skeleton"),
    ]
    width = max(len(a) for a, _, _ in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>12}  {note}")
    print(f"results: {(out / 'artifacts.json').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
