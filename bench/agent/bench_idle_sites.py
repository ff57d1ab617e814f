"""What N idle pull sites cost the hub, measured (not projected): docs/edge-autonomy.md, issue 17 item 8.

One real hub (the dev environment's kube-apiserver + etcd, hub only, `.edgeline/bench-idle`), the real
operator as a process (as bench/scale runs it) and N EdgeClusters with `connection.mode: pull`. The
operator prepares each site's hub namespace, ServiceAccount, Role, report ConfigMap and Lease as in
production; the bench then asks the hub for one TokenRequest token per site (what `edgeline cluster
join` does) and runs N agents with that identity.

Each agent is the real `edgeline.agent.site.Agent` with its real hub client (`agent.main._client`)
and its real cycle: renew the Lease, list the assignments, read the report, write the report only
when it changed. **The site side is a stub**: no site API server; the agent reports fixed cluster
facts and has no runtime to observe (an idle site with nothing assigned). That is enough here: the
bench measures the hub. Agents run in a few processes (`--per-worker` each), started at random
offsets within one interval, as real sites would be. Per size, one new site runs alone in its own
process so that it can be killed after the window to time "killed site -> Stale".

Per size (cumulative: the sites of a smaller size stay for the next) over a steady window, with
everything Ready: hub API requests/s by verb and resource (deltas of `apiserver_request_total` from
the hub's /metrics), CPU-s/s and RSS of the hub's kube-apiserver, etcd and the operator, the agents'
own count of hub requests, agent cycle time p50/p99 (one cycle: all of its hub calls), whether the
operator still runs; then one site's process is killed (SIGKILL) and the time until its EdgeCluster
shows Stale is taken (that site stays dead for the larger sizes: `sites_alive`).

    .venv/bin/python bench/agent/bench_idle_sites.py [--sizes 100 1000] [--window 120] [--label L]

writes bench/results/idle_sites.json (one entry per --label, so a before/after pair stays side by
side). Runs outside `make test`; about 10 minutes for 1,000 sites on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "operator"))

from bench.common.hub import apply, kubectl, wait  # noqa: E402

STATE = ROOT / ".edgeline" / "bench-idle"
RESULTS = ROOT / "bench" / "results" / "idle_sites.json"
SYSTEM = "edgeline-system"
LABEL = "bench.edgeline.io/idle"
# What a small K3s site would report (the stub's facts): one arm64 node, Ready.
FACTS = {"kubernetes_version": "v1.36.3+k3s1", "distribution": "k3s", "node_count": 1, "ready_nodes": 1,
         "architectures": ["arm64"], "cpu_millicores": 4000, "memory_bytes": 8 * 2**30, "gpus": 0,
         "node_labels": {}}


# --- the agents (worker processes) ----------------------------------------------------

def worker(args) -> int:
    import logging

    from edgeline.agent.site import Agent, AgentConfig
    try:        # the agent's own construction of its hub client
        from edgeline.agent.main import hub_client as make_hub_client
    except ImportError:         # before it had one (the "before" runs in idle_sites.json)
        from edgeline.agent.main import _client
        from edgeline.clusters import pull

        def make_hub_client(path, config):
            return _client(path, pull.site_namespace(config.cluster), config.hub_timeout_s)

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    facts = json.dumps(FACTS, sort_keys=True)

    class HubOnlyAgent(Agent):
        """The agent's real hub cycle; the site side is a stub (see the module's docstring)."""

        timings: list

        async def _prefetch(self) -> None:
            return None

        async def _converge(self, remove_unassigned: bool) -> None:
            return None

        def _save(self) -> None:
            return None

        async def _observe(self):
            self.facts = facts
            return {}

        async def cycle(self) -> None:
            at, start = time.time(), time.perf_counter()
            await super().cycle()
            self.timings.append((round(at, 3), round(time.perf_counter() - start, 5), bool(self.hub_ok)))

    names = Path(args.sites_file).read_text().split()
    out = Path(args.out)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        agents = []
        for name in names:
            config = AgentConfig(cluster=name, cache_dir=Path(args.cache_dir) / name, cache_host_dir="/unused",
                                 interval_s=args.interval)
            hub = make_hub_client(Path(args.kubeconfig_dir) / f"{name}.yaml", config)
            agent = HubOnlyAgent(config, hub, None)
            agent.timings = []
            agents.append(agent)

        def dump() -> None:
            tmp = out.with_suffix(".tmp")
            tmp.write_text(json.dumps({"sites": len(agents), "hub_calls": sum(a.hub_calls for a in agents),
                                       "timings": [t for a in agents for t in a.timings]}))
            tmp.rename(out)

        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, dump)

        async def one(agent) -> None:
            # Real sites start at any moment: spread the first cycles over one interval.
            try:
                await asyncio.wait_for(stop.wait(), random.uniform(0, args.interval))
                return
            except asyncio.TimeoutError:
                pass
            await agent.run(stop)

        await asyncio.gather(*(one(a) for a in agents))
        for agent in agents:
            await agent.hub.close()

    asyncio.run(main())
    return 0


# --- the bench ------------------------------------------------------------------------

def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))] if ordered else None


def request_counts(access) -> dict[str, float]:
    """apiserver_request_total summed by 'VERB resource[/subresource]'."""
    text = access.request("GET", "/metrics", timeout=30)
    out: dict[str, float] = {}
    for m in re.finditer(r"^apiserver_request_total\{([^}]*)\} ([0-9.e+]+)$", text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        key = f"{labels.get('verb')} {labels.get('resource')}" + (
            f"/{labels['subresource']}" if labels.get("subresource") else "")
        out[key] = out.get(key, 0.0) + float(m.group(2))
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def pull_cluster(name: str, stale_after: int) -> dict:
    return {"apiVersion": "edgeline.io/v1alpha1", "kind": "EdgeCluster",
            "metadata": {"name": name, "labels": {LABEL: "true"}},
            "spec": {"tier": "edge", "staleAfterSeconds": stale_after, "connection": {"mode": "pull"}}}


def clusters(access) -> list[dict]:
    return access.request("GET", f"/apis/edgeline.io/v1alpha1/edgeclusters?labelSelector={LABEL}%3Dtrue",
                          timeout=60)["items"]


def prepared(access) -> int:
    """Site namespaces whose Lease the operator has created (it is made last by ensure_site)."""
    return len(access.request("GET", "/apis/coordination.k8s.io/v1/leases?fieldSelector=metadata.name%3D"
                                     "edgeline-agent", timeout=60)["items"])


async def tokens(env, names: list[str], out_dir: Path) -> None:
    """One TokenRequest per site and its hub kubeconfig, as `edgeline cluster join` writes it."""
    from lightkube import AsyncClient, KubeConfig

    from edgeline.agent.bootstrap import hub_kubeconfig
    from edgeline.clusters import pull

    access = env.access("hub")
    ca = base64.b64encode(Path(access.ca).read_bytes()).decode()
    hub = AsyncClient(KubeConfig.from_file(str(env.kubeconfig("hub"))), field_manager="edgeline")
    gate = asyncio.Semaphore(16)

    async def one(name: str) -> None:
        async with gate:
            token = await pull.agent_token(hub, name, 4 * 3600)
        path = out_dir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(hub_kubeconfig(name, access.server, ca, token, pull.site_namespace(name))))
        path.chmod(0o600)

    try:
        await asyncio.gather(*(one(n) for n in names))
    finally:
        await hub.close()


class Workers:
    def __init__(self, root: Path, interval: float):
        self.root, self.interval = root, interval
        self.procs: list[subprocess.Popen] = []
        (root / "cache").mkdir(parents=True, exist_ok=True)

    def start(self, names: list[str]) -> subprocess.Popen:
        i = len(self.procs)
        sites = self.root / f"sites-{i}.txt"
        sites.write_text("\n".join(names))
        proc = subprocess.Popen([sys.executable, __file__, "--worker", "--sites-file", str(sites),
                                 "--kubeconfig-dir", str(self.root / "kubeconfigs"),
                                 "--cache-dir", str(self.root / "cache"), "--interval", str(self.interval),
                                 "--out", str(self.root / f"cycles-{i}.json")],
                                stdout=subprocess.DEVNULL, stderr=(self.root / f"worker-{i}.log").open("ab"),
                                cwd=ROOT)
        self.procs.append(proc)
        return proc

    def alive(self) -> list[subprocess.Popen]:
        return [p for p in self.procs if p.poll() is None]

    def collect(self) -> list[dict]:
        """Each live worker's cycle timings and request count so far."""
        live = self.alive()
        stamps = {}
        for p in live:
            path = self.root / f"cycles-{self.procs.index(p)}.json"
            stamps[p.pid] = path.stat().st_mtime if path.exists() else 0
            p.send_signal(signal.SIGUSR1)
        out = []
        for p in live:
            path = self.root / f"cycles-{self.procs.index(p)}.json"
            wait(lambda: path.exists() and path.stat().st_mtime != stamps[p.pid], 60, "a worker's figures", 0.2)
            out.append(json.loads(path.read_text()))
        return out

    def stop(self) -> None:
        for p in self.alive():
            p.terminate()
        for p in self.procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)


def measure(env, pids: dict[str, int], workers: Workers, window: float) -> dict:
    access = env.access("hub")
    before_req = request_counts(access)
    before_cpu = {k: cpu_seconds(p) for k, p in pids.items()}
    agents_cpu0 = sum(cpu_seconds(p.pid) for p in workers.alive())
    calls0 = sum(w["hub_calls"] for w in workers.collect())
    load0 = os.getloadavg()
    t0 = time.time()
    time.sleep(window)
    elapsed = time.time() - t0
    after_req = request_counts(access)
    after_cpu = {k: cpu_seconds(p) for k, p in pids.items()}
    agents_cpu1 = sum(cpu_seconds(p.pid) for p in workers.alive())
    collected = workers.collect()
    calls1 = sum(w["hub_calls"] for w in collected)
    cycles = [t for w in collected for t in w["timings"] if t0 <= t[0] <= t0 + elapsed]
    by = {k: round((v - before_req.get(k, 0.0)) / elapsed, 2) for k, v in sorted(after_req.items())
          if v - before_req.get(k, 0.0) > 0}
    durations = [t[1] * 1000 for t in cycles]
    return {
        "window_s": round(elapsed, 1),
        "hub_requests_per_s": round(sum(by.values()), 1),
        "hub_requests_per_s_by_verb_resource": dict(sorted(by.items(), key=lambda kv: -kv[1])),
        "agent_hub_requests_per_s": round((calls1 - calls0) / elapsed, 1),
        "cpu_s_per_s": {k: round((after_cpu[k] - before_cpu[k]) / elapsed, 3) for k in pids},
        "rss_mib": {k: rss_mib(p) for k, p in pids.items()},
        "agents_processes_cpu_s_per_s": round((agents_cpu1 - agents_cpu0) / elapsed, 3),
        "agents_processes_rss_mib": round(sum(rss_mib(p.pid) for p in workers.alive()), 1),
        "agent_cycles": len(cycles),
        "agent_cycles_failed": sum(1 for t in cycles if not t[2]),
        "agent_cycle_ms": {"p50": round(percentile(durations, 0.5), 1), "p99": round(percentile(durations, 0.99), 1),
                           "max": round(max(durations), 1)} if durations else None,
        "load_average_1_5_at_start": [round(x, 2) for x in load0[:2]],
        "load_average_1_5_at_end": [round(x, 2) for x in os.getloadavg()[:2]],
    }


def killed_site(access, name: str, proc: subprocess.Popen, operator: subprocess.Popen) -> dict:
    """Kills one site's agent (SIGKILL, as a power cut would) and times its EdgeCluster to Stale."""
    lease = access.request("GET", f"/apis/coordination.k8s.io/v1/namespaces/edgeline-site-{name}/leases/"
                                  "edgeline-agent")
    killed = time.monotonic()
    proc.kill()
    proc.wait(10)
    path = f"/apis/edgeline.io/v1alpha1/edgeclusters/{name}"
    try:
        wait(lambda: (access.request("GET", path, timeout=30).get("status") or {}).get("phase") == "Stale"
             or operator.poll() is not None, 300, "the killed site Stale", 0.5)
    except TimeoutError:
        return {"killed_site_to_stale_s": None, "killed_site_note": "not Stale within 300 s"}
    if operator.poll() is not None:
        return {"killed_site_to_stale_s": None, "killed_site_note": "the operator had exited"}
    return {"killed_site_to_stale_s": round(time.monotonic() - killed, 1),
            "killed_site_last_renewal": lease["spec"].get("renewTime")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--window", type=float, default=120.0, help="steady window per size, seconds")
    parser.add_argument("--warmup", type=float, default=20.0, help="after all sites are Ready, before the window")
    parser.add_argument("--interval", type=float, default=5.0, help="the agent's cycle (its default: 5 s)")
    parser.add_argument("--stale-after", type=int, default=30, help="EdgeCluster staleAfterSeconds")
    parser.add_argument("--per-worker", type=int, default=250, help="agents per worker process")
    parser.add_argument("--probe-interval", type=float, default=None,
                        help="EDGELINE_CLUSTER_PROBE_INTERVAL_S for the operator (default: the operator's, 10 s)")
    parser.add_argument("--label", default="now", help="key of this run in the results file")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sites-file")
    parser.add_argument("--kubeconfig-dir")
    parser.add_argument("--cache-dir")
    args, _ = parser.parse_known_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))     # a connection per site
    if args.worker:
        args.out = str(args.out)
        return worker(args)

    from bench.common.alerts import AlertReceiver
    from edgeline.devenv.environment import DevEnvironment, free_port
    from edgeline.devenv.topology import HUB

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    env = DevEnvironment(STATE, clusters=(HUB,), real_nodes=False)
    env.down()
    shutil.rmtree(STATE, ignore_errors=True)
    env.up(timeout_s=300)
    pids = {"kube-apiserver": env._load_state()["clusters"]["hub"]["pids"]["kube-apiserver"],
            "etcd": env._load_state()["clusters"]["hub"]["pids"]["etcd"]}
    work = Path(tempfile.mkdtemp(prefix="edgeline-idle-sites-"))
    (work / "kubeconfigs").mkdir()
    workers = Workers(work, args.interval)
    kubectl(env, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kubectl(env, "wait", "--for=condition=Established", "-f", str(ROOT / "crds"))
    apply(env, [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM}}])
    receiver = AlertReceiver(env.kubeconfig("hub"), free_port())
    operator = subprocess.Popen(
        [sys.executable, "-m", "edgeline", "run", "--liveness", f"http://127.0.0.1:{free_port()}/healthz"],
        stdout=(STATE / "operator.log").open("ab"), stderr=subprocess.STDOUT, cwd=ROOT,
        env={**os.environ, "KUBECONFIG": str(env.kubeconfig("hub")), "EDGELINE_NAMESPACE": SYSTEM,
             "EDGELINE_METRICS_PORT": str(free_port()), "EDGELINE_WEBHOOK_PORT": "0", **receiver.env(),
             # As bench/scale: the shared machine's load must not end the run through a missed renewal.
             "EDGELINE_LEADER_LEASE_DURATION_S": "60", "EDGELINE_LEADER_RENEW_DEADLINE_S": "45",
             **({"EDGELINE_CLUSTER_PROBE_INTERVAL_S": str(args.probe_interval)} if args.probe_interval else {})})
    pids["operator"] = operator.pid
    everything = json.loads(args.out.read_text()) if args.out.exists() else {}
    registered: list[str] = []
    dead = 0
    access = env.access("hub")
    results = {"machine": f"{os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 2**30}"
                          " GiB, shared with other sessions' e2e environments",
               "agent_interval_s": args.interval, "stale_after_s": args.stale_after,
               "operator_probe_interval_s": args.probe_interval or 10.0,
               "site_side": "stub (no site API server; fixed facts, nothing assigned): the hub side is real",
               "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "sizes": []}
    try:
        for n in sorted(args.sizes):
            new = [f"idle-{i:04d}" for i in range(len(registered), n)]
            start = time.monotonic()
            apply(env, [pull_cluster(name, args.stale_after) for name in new])
            wait(lambda: prepared(access) >= n, 900, f"{n} site namespaces prepared by the operator", 2.0)
            asyncio.run(tokens(env, new, work / "kubeconfigs"))
            # The first new site runs alone in its process: it is killed after the window.
            victim = workers.start(new[:1])
            for i in range(1, len(new), args.per_worker):
                workers.start(new[i:i + args.per_worker])
            registered += new
            wait(lambda: sum(1 for c in clusters(access) if (c.get("status") or {}).get("phase") == "Ready")
                 >= n - dead, 900, f"{n} pull EdgeClusters Ready", 2.0)
            ready_s = round(time.monotonic() - start, 1)
            print(f"{n} pull sites Ready in {ready_s} s", flush=True)
            time.sleep(args.warmup)
            entry = {"sites": n, "sites_alive": n - dead, "registered_to_ready_s": ready_s,
                     **measure(env, pids, workers, args.window), "operator_alive": operator.poll() is None}
            entry.update(killed_site(access, new[0], victim, operator))
            dead += 1
            results["sizes"].append(entry)
            print(json.dumps(entry), flush=True)
            args.out.write_text(json.dumps({**everything, args.label: results}, indent=2) + "\n")
    except (TimeoutError, RuntimeError) as exc:
        results["error"] = f"{type(exc).__name__}: {exc}"
        print(results["error"], flush=True)
    finally:
        workers.stop()
        operator.terminate()
        try:
            operator.wait(120)
        except subprocess.TimeoutExpired:
            operator.kill()
        if os.environ.get("EDGELINE_KEEP_ENV") != "1":
            env.down()
        shutil.rmtree(work, ignore_errors=True)
        results["load_average_1_5_at_end"] = [round(x, 2) for x in os.getloadavg()[:2]]
        args.out.write_text(json.dumps({**everything, args.label: results}, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
