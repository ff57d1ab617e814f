"""Breach to reverted through a metric check: how long a degraded version serves on the pilot
line before the check that watches it has it reverted, for the check intervals given.

Each run is tests/e2e/test_analysis.py's first story on the real environment (the runtime as a
real container on edge-a's real node, real Prometheus scraping it every second, the operator
as a process): 1.0.0 serves both lines with traffic, then a 2.0.0 that fails every inference
rolls out with the check `error-rate < 0.05` (count 3, failureLimit 0, missingData Inconclusive,
a 20 s window) on the pilot wave. Figures per run, appended to bench/results/analysis.json:
  - first failed request -> revert applied on the pilot (status.rollbacks[0].appliedAt)
  - first failed request -> first good answer of the restored 1.0.0 Pod
  - check failed -> revert applied (status.rollbacks[0].latencyMs)

Run: .venv/bin/python bench/analysis/bench_analysis.py [--intervals 15 30] [--runs 1]
(`--runner CMD` runs the story with another pytest command, e.g. a wrapper that queues test environments).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST = "tests/e2e/test_analysis.py::test_a_degraded_version_fails_its_check_in_the_pilot_and_is_reverted_before_the_next_wave"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intervals", type=int, nargs="+", default=[15, 30], help="check intervals (s) to measure")
    parser.add_argument("--runs", type=int, default=1, help="runs per interval")
    parser.add_argument("--runner", default=None, help="command that runs pytest (default: this Python's pytest)")
    args = parser.parse_args()
    base = [args.runner] if args.runner else [sys.executable, "-m", "pytest"]
    for interval in args.intervals:
        for _ in range(args.runs):
            env = {**os.environ, "EDGELINE_RECORD_BENCH": "1", "EDGELINE_ANALYSIS_INTERVAL_S": str(interval)}
            proc = subprocess.run([*base, TEST, "-x", "-q", "-p", "no:cacheprovider"], cwd=ROOT, env=env)
            if proc.returncode != 0:
                return proc.returncode
    print((ROOT / "bench" / "results" / "analysis.json").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
