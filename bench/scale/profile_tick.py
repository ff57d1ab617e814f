"""cProfile of the CPU work of one EdgeDeployment tick at N clusters, without I/O: placement,
waves, the decision, rendering each cluster's objects (a rollout's first tick) and the status
patch. Run: .venv/bin/python bench/scale/profile_tick.py [--clusters 1000] [--top 20]"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "operator"))

from edgeline.api.edgedeployment import EdgeDeploymentSpec, EdgeDeploymentStatus, RevisionRef, Runtime  # noqa: E402
from edgeline.clusters.resources import merge_patch  # noqa: E402
from edgeline.domain.placement import ClusterFacts, place  # noqa: E402
from edgeline.domain.rollout import Apply, Inputs, Observation, decide  # noqa: E402
from edgeline.domain.waves import plan_waves  # noqa: E402
from edgeline.render.runtime import Target, render  # noqa: E402


def tick(spec, status, facts, desired, observations, now):
    placement = place(spec.placement, facts)
    waves = plan_waves(spec.rollout, list(placement.selected), {f.name: f.labels for f in facts})
    decision = decide(Inputs(spec=spec, status=status, desired=desired, waves=waves, excluded=list(placement.excluded),
                             observations=observations, stale_after={f.name: 300 for f in facts}, approved=True,
                             paused=False, rollback_to=None, now=now))
    for action in decision.actions:
        if isinstance(action, Apply):
            render("bench", "d", action.revision, Target(action.cluster, "site"))
    new = decision.status.dump()
    merge_patch(status.dump(), new)
    return decision


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    n = args.clusters
    facts = [ClusterFacts(name=f"site-{i:04d}", labels={"sim": "1"}, tier="edge", architectures=("amd64",), gpus=0,
                          memory="8Gi", reachable=True, stale=False, probed=True) for i in range(n)]
    spec = EdgeDeploymentSpec.model_validate({"modelRef": {"name": "m"}, "approval": {"required": False},
                                              "placement": {"clusterSelector": {"matchLabels": {"sim": "1"}}}})
    desired = RevisionRef(revision="r1", mlmodel="m", model="m", version="1", digest="sha256:" + "0" * 64,
                          uri="http://127.0.0.1/m.onnx", runtime=Runtime())
    now = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
    nothing = {f.name: Observation(f.name, reachable=True) for f in facts}
    first = tick(spec, EdgeDeploymentStatus(), facts, desired, nothing, now)        # the rollout's first tick
    ready = {f.name: Observation(f.name, reachable=True, exists=True, revision="r1", ready=True, ready_replicas=1,
                                 replicas=1) for f in facts}
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    tick(spec, EdgeDeploymentStatus(), facts, desired, nothing, now)
    tick(spec, first.status, facts, desired, ready, now + dt.timedelta(seconds=1))
    profiler.disable()
    print(f"{n} clusters: first tick + settled tick {time.perf_counter() - start:.3f} s (under the profiler)")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(args.top)
    print(out.getvalue())


if __name__ == "__main__":
    main()
