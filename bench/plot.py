"""The scale figure of the README: time, operator CPU and memory against cluster count, from
bench/results/scale.json (stand-in members: a simulation), fanout.json (real API servers,
with the kubectl loops of the same run). Writes bench/results/scale.png.
Run: .venv/bin/python bench/plot.py   (needs the `bench` extra: pip install -e '.[bench]')"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def load(name: str) -> dict:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else {}


def main() -> None:
    scale, real = load("scale.json"), load("fanout.json")
    fig, (time_ax, revert_ax, cpu_ax, mem_ax) = plt.subplots(1, 4, figsize=(19, 4.6))

    sim = scale.get("fanout", [])
    if sim:
        time_ax.plot([r["clusters"] for r in sim], [r["seconds_to_all_ready"] for r in sim], "o-",
                     label="Edgeline, stand-in members (simulation)")
    runs = [r for r in real.get("runs", []) if "kubectl_loop_seconds" in r]
    if real.get("runs"):
        time_ax.plot([r["clusters"] for r in real["runs"]], [r["seconds_to_all_ready"] for r in real["runs"]], "s-",
                     label="Edgeline, real API servers")
    if runs:
        time_ax.plot([r["clusters"] for r in runs], [r["kubectl_loop_seconds"]["sequential"] for r in runs], "x--",
                     label="kubectl apply+wait loop, sequential")
        time_ax.plot([r["clusters"] for r in runs], [r["kubectl_loop_seconds"]["parallel_16"] for r in runs], "x:",
                     label="kubectl loop, 16 at a time")
    earlier = (scale.get("earlier_run_1000") or {}).get("fanout")
    if earlier:
        time_ax.plot([earlier["clusters"]], [earlier["seconds_to_all_ready"]], "o", mfc="none", color="C0",
                     label="1,000, earlier build (see scale.json)")
        cpu_ax.plot([earlier["clusters"]], [earlier["operator_cpu_s_per_cluster"]], "o", mfc="none", color="C0",
                    label="1,000, earlier build")
        mem_ax.plot([earlier["clusters"]], [earlier["operator_memory_mib"]["VmRSS"]], "o", mfc="none", color="C0",
                    label="1,000, earlier build")
    time_ax.axhline(60, color="grey", lw=0.8, ls="--")
    time_ax.set(title="apply -> all clusters ready", xlabel="clusters", ylabel="seconds", xscale="log", yscale="log")
    time_ax.legend(fontsize=7)

    reverts = scale.get("revert", [])
    if reverts:
        n = [r["clusters"] for r in reverts]
        revert_ax.plot(n, [r["operator_ms"]["p99"] for r in reverts], "o-", label="receipt -> last write (p99)")
        revert_ax.plot(n, [r["edge_ms"]["p99"] for r in reverts], "s-", label="POST -> last member has it (p99)")
        revert_ax.plot([10, 100, 1000], [200, 1000, 5000], "k--", lw=0.8, label="goal")
    revert_ax.set(title="alert -> reverted (simulation)", xlabel="clusters", ylabel="ms", xscale="log", yscale="log")
    revert_ax.legend(fontsize=7)

    if sim:
        cpu_ax.plot([r["clusters"] for r in sim], [r["operator_cpu_s_per_cluster"] for r in sim], "o-",
                    label="stand-in members (simulation)")
    real_cpu = [r for r in real.get("runs", []) if "operator_cpu_s_per_cluster" in r]
    if real_cpu:
        cpu_ax.plot([r["clusters"] for r in real_cpu], [r["operator_cpu_s_per_cluster"] for r in real_cpu], "s-",
                    label="real API servers")
    cpu_ax.set(title="operator CPU per cluster, one fan-out", xlabel="clusters", ylabel="CPU seconds / cluster",
               xscale="log")
    cpu_ax.set_ylim(bottom=0)
    cpu_ax.legend(fontsize=7)

    mem = [r for r in sim if "operator_memory_mib" in r]
    if mem:
        mem_ax.plot([r["clusters"] for r in mem], [r["operator_memory_mib"].get("VmRSS") for r in mem], "o-",
                    label="operator RSS after fan-out (1 deployment)")
    many = scale.get("many")
    if many:
        mem_ax.plot([many["clusters"]], [many["operator_memory_mib"]["VmRSS"]], "r^",
                    label=f"RSS, {many['deployments']} deployments")
    mem_ax.axhline(150, color="grey", lw=0.8, ls="--")
    mem_ax.set(title="operator memory (simulation)", xlabel="clusters", ylabel="MiB", xscale="log")
    mem_ax.set_ylim(bottom=0)
    mem_ax.legend(fontsize=7)

    fig.suptitle(f"Edgeline at scale ({scale.get('machine') or real.get('machine') or '?'}; stand-in members are a "
                 "simulation, see bench/README.md)", fontsize=10)
    fig.tight_layout()
    fig.savefig(RESULTS / "scale.png", dpi=110)
    print(RESULTS / "scale.png")


if __name__ == "__main__":
    main()
