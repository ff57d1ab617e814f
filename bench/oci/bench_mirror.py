"""oci:// models on real registries: push, fetch from the origin, and fetch through a site's
pull-through mirror (cold: it fills itself; warm: with the origin stopped, as with the WAN down).

    .venv/bin/python bench/oci/bench_mirror.py [--mb 256] [--runs 3]

Two docker-registry processes on 127.0.0.1 (the origin, and a mirror with proxy.remoteurl
pointing at it); the model is a single-file ONNX model of --mb MiB of float32 weights. Each
fetch goes to a fresh cache folder through the pull site's cache (agent.cache.ensure: manifest
and blob digests, the file's sha256 checked again from disk). Loopback only: this measures
Edgeline's and the registry's own cost, not a WAN; the same file from the test artifact
server (http://, sendfile) is the comparison. Results: a table and bench/results/oci.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "operator")]

from edgeline.agent import cache  # noqa: E402
from edgeline.api.edgedeployment import RevisionRef  # noqa: E402
from tests.helpers.artifact_server import ArtifactServer  # noqa: E402
from tests.helpers.onnx_models import write_large_model  # noqa: E402
from tests.helpers.registry import RunningRegistry, push  # noqa: E402

MIB = 1024 * 1024


def timed(fn) -> float:
    started = time.monotonic()
    fn()
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-oci-") as tmp:
        tmp = Path(tmp)
        model = tmp / "model.onnx"
        write_large_model(model, args.mb)
        size = model.stat().st_size
        origin = RunningRegistry(tmp / "origin")
        (tmp / "mirror").mkdir()
        mirror = RunningRegistry(tmp / "mirror", upstream=origin.url)
        try:
            started = time.monotonic()
            pushed = push(model, f"oci://{origin.address}/m/big:1")
            push_s = time.monotonic() - started
            revision = RevisionRef(revision="r", digest=pushed["sha256"], uri=pushed["uri"])
            n = iter(range(10**6))

            def fetch(mirrors=()):
                cache.ensure(tmp / f"cache-{next(n)}", revision, mirrors=mirrors)

            origin_s = [timed(fetch) for _ in range(args.runs)]
            with ArtifactServer(tmp, host="127.0.0.1") as server:  # the same file over plain http://
                plain = revision.model_copy(update={"uri": f"{server.url}/model.onnx"})
                http_s = [timed(lambda: cache.ensure(tmp / f"cache-{next(n)}", plain)) for _ in range(args.runs)]
            cold_s = timed(lambda: fetch((mirror.url,)))
            # The mirror writes the blob it passed on just after serving it.
            deadline = time.monotonic() + 60
            while pushed["sha256"] not in mirror.blobs() and time.monotonic() < deadline:
                time.sleep(0.2)
            warm_with_origin_s = [timed(lambda: fetch((mirror.url,))) for _ in range(args.runs)]
            origin.stop()
            warm_s = [timed(lambda: fetch((mirror.url,))) for _ in range(args.runs)]
        finally:
            mirror.stop()
            origin.stop()
    results = {
        "machine": {"cpus": 2, "python": platform.python_version(), "kernel": platform.release()},
        "model_bytes": size,
        "push_seconds": push_s,
        "origin_fetch_seconds_median": statistics.median(origin_s),
        "http_server_fetch_seconds_median": statistics.median(http_s),
        "mirror_cold_fetch_seconds": cold_s,
        "mirror_warm_fetch_seconds_median": statistics.median(warm_with_origin_s),
        "mirror_warm_origin_stopped_fetch_seconds_median": statistics.median(warm_s),
        "origin_fetch_mib_s": size / MIB / statistics.median(origin_s),
        "mirror_warm_origin_stopped_mib_s": size / MIB / statistics.median(warm_s),
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for key, value in results.items():
        if key != "machine":
            print(f"{key:50s} {value:.3f}" if isinstance(value, float) else f"{key:50s} {value}")
    (ROOT / "bench" / "results" / "oci.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
