"""What choosing a variant per cluster costs the rollout loop: one `decide()` tick and one
`place()` over N clusters, for a model with three variants and for the same model without
variants. Pure functions, no clusters: the figure is the CPU time the operator spends per
EdgeDeployment per tick. Run: .venv/bin/python bench/variants/bench_variant_choice.py
[--sizes 10 200 1000]; writes bench/results/variants.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

from edgeline.api.edgedeployment import (EdgeDeploymentSpec, EdgeDeploymentStatus, Placement,  # noqa: E402
                                         RevisionRef, Runtime, VariantRef)
from edgeline.domain.placement import ClusterFacts, place  # noqa: E402
from edgeline.domain.rollout import Inputs, Observation, decide  # noqa: E402
from edgeline.domain.waves import WavePlan  # noqa: E402

VARIANTS = [VariantRef(name="default", uri="https://m/fp32.onnx", digest="sha256:1", architecture="amd64", opset=17),
            VariantRef(name="arm64-int8", uri="https://m/int8.onnx", digest="sha256:2", architecture="arm64",
                       min_runtime_version="1.18", opset=17),
            VariantRef(name="gpu-fp16", uri="https://m/fp16.onnx", digest="sha256:3", accelerator="gpu",
                       execution_provider="CUDA", opset=17)]


def _fleet(n: int) -> list[ClusterFacts]:
    return [ClusterFacts(f"c{i:04d}", {"fleet": "x"}, architectures=("arm64",) if i % 3 == 0 else ("amd64",),
                         gpus=1 if i % 5 == 0 else 0, memory="8Gi", probed=True, reachable=True) for i in range(n)]


def _time(fn, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def measure(n: int, repeat: int) -> dict:
    fleet = _fleet(n)
    names = tuple(c.name for c in fleet)
    spec = EdgeDeploymentSpec.model_validate({"modelRef": {"name": "m"}, "approval": {"required": False},
                                              "placement": {"clusterSelector": {"matchLabels": {"fleet": "x"}}}})
    placement = Placement.model_validate({"clusterSelector": {"matchLabels": {"fleet": "x"}}})
    with_variants = RevisionRef(revision="r1", mlmodel="m", digest="sha256:1", uri="https://m/fp32.onnx",
                                runtime=Runtime(), variants=VARIANTS, variants_digest="sha256:f")
    without = with_variants.model_copy(update={"variants": None, "variants_digest": None})
    observations = {c: Observation(c, reachable=True, exists=True, revision="r1", ready=True, replicas=1,
                                   ready_replicas=1) for c in names}
    now = dt.datetime(2026, 12, 6, tzinfo=dt.timezone.utc)

    def tick(desired):
        return lambda: decide(Inputs(spec=spec, status=EdgeDeploymentStatus(), desired=desired,
                                     waves=[WavePlan("all", names, 0)], excluded=[], observations=observations,
                                     stale_after={}, approved=True, paused=False, rollback_to=None, now=now,
                                     facts={c.name: c for c in fleet}))
    return {"clusters": n,
            "decide_ms_with_variants": round(_time(tick(with_variants), repeat), 2),
            "decide_ms_without_variants": round(_time(tick(without), repeat), 2),
            "place_ms_with_variants": round(_time(lambda: place(placement, fleet, tuple(VARIANTS), Runtime()),
                                                  repeat), 2),
            "place_ms_without_model": round(_time(lambda: place(placement, fleet), repeat), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 200, 1000])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    results = [measure(n, args.repeat) for n in args.sizes]
    for row in results:
        print(json.dumps(row))
    out = ROOT / "bench" / "results" / "variants.json"
    out.write_text(json.dumps({"note": "median of --repeat runs, ms, one CPU", "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
