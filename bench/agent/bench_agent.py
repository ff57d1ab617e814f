"""The pull site's agent: its memory, what an idle site costs the hub, and how fast the hub's
status converges after the WAN returns (docs/edge-autonomy.md). Optionally a chaos run: many
random cut/restore cycles during rollouts, then a check that nothing was lost.

Runs on the test session's real environment (hub, edge-b as the site's cluster, the operator as a
process, the agent image run by podman in the site's own network namespace), through the e2e slots:

    BENCH_RESTORES=3 BENCH_CHAOS=20 .venv/bin/python -m pytest bench/agent/bench_agent.py -q -s

and writes bench/results/agent.json.

Figures:
- agent RSS: VmRSS and VmHWM of the agent's process (in its container) after an idle minute with one
  runtime assigned;
- hub requests per idle site: the agent's own count of requests to the hub (lease, list, report) over
  an idle window, plus the operator's reads for that site (Lease + report per EdgeCluster probe and
  per EdgeDeployment tick), from the hub API server's request counters for leases during the window;
  both projected to 1,000 sites;
- restore -> converged: from removing the drop rule to the hub showing the EdgeCluster Ready and the
  deployment's row for the site Ready on the revision approved during the cut.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
import uuid
from pathlib import Path

from tests.e2e.conftest import ROOT
from tests.e2e.test_edge_autonomy import (PROBE_INTERVAL, STALE_AFTER, AgentContainer, _site_port,  # noqa: F401
                                          _status, join, models, pull_cluster, site_identity, site_network)
from tests.e2e.conftest import wait_for
from tests.helpers.manifests import edge_deployment, mlmodel

RESULTS = ROOT / "bench" / "results" / "agent.json"
IDLE_S = 60


def _rss(pid: int) -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _lease_requests(hub) -> float:
    text = hub.kubectl("get", "--raw", "/metrics").stdout
    return sum(float(m.group(1)) for m in re.finditer(
        r'^apiserver_request_total\{[^}]*resource="leases"[^}]*\} ([0-9.e+]+)$', text, re.M))


def test_bench_agent(hub, edge_b, dev_env, operator, namespace, site_network, models, tmp_path):

    restores = int(os.environ.get("BENCH_RESTORES", "3"))
    chaos = int(os.environ.get("BENCH_CHAOS", "0"))
    tag = "b" + uuid.uuid4().hex[:5]
    cluster = f"{tag}-line-9"
    hub.apply(pull_cluster(cluster, {"edgeline.io/fleet": tag}))
    config = tmp_path / "site-hub.kubeconfig"
    bootstrap = join(hub, dev_env, cluster, config)
    site_config = site_identity(edge_b, dev_env, "edge-b", bootstrap, tmp_path / "site-agent.kubeconfig")
    interval = float(os.environ.get("BENCH_AGENT_INTERVAL", "5"))
    agent = AgentContainer(site_network, cluster, config, site_config,
                         dev_env.state_dir / f"agent-{cluster}", tmp_path / "agent.log")
    agent.argv[agent.argv.index("--interval") + 1] = str(interval)
    agent.start()
    results: dict = {"agent_interval_s": interval, "stale_after_s": STALE_AFTER,
                     "operator_probe_interval_s": PROBE_INTERVAL}
    try:
        hub.kubectl("wait", f"edgecluster/{cluster}", "--for=jsonpath={.status.phase}=Ready", "--timeout=90s",
                    timeout=120)
        hub.apply([mlmodel(namespace, v, uri, digest) for v, (uri, digest) in models.items()])
        for version in models:
            hub.kubectl("wait", f"mlmodel/detector-{version}", "-n", namespace, "--for=condition=Ready",
                        "--timeout=90s", timeout=120)

        def deploy(version):
            hub.apply(edge_deployment(namespace, {"edgeline.io/fleet": tag}, version))

        def settled(version):
            s = _status(hub, "edgedeployment", "detector", namespace)
            row = next((c for c in s.get("clusters") or [] if c["name"] == cluster), {})
            return ((s.get("currentRevision") or {}).get("version") == version and row.get("phase") == "Ready"
                    and row.get("revision") == (s.get("currentRevision") or {}).get("revision")
                    and _status(hub, "edgecluster", cluster).get("phase") == "Ready")

        deploy("1.0.0")
        wait_for(lambda: settled("1.0.0"), timeout=120, what="1.0.0 Ready on the pull site")

        # --- idle: memory and requests
        leases_before, started = _lease_requests(hub), time.monotonic()
        log_mark = len(agent.log_text())
        wait_for(lambda: "hub requests:" in agent.log_text()[log_mark:], timeout=IDLE_S + 30, interval=1,
                 what="the agent's request count after an idle minute")
        line = re.findall(r"hub requests: (\d+) in (\d+) s", agent.log_text()[log_mark:])[-1]
        leases = (_lease_requests(hub) - leases_before) / (time.monotonic() - started)
        agent_rate = int(line[0]) / int(line[1])
        rss, hwm = _rss(agent.pid())
        results.update(agent_rss_mib=round(rss, 1), agent_peak_rss_mib=round(hwm, 1),
                       agent_hub_requests_per_s=round(agent_rate, 3),
                       hub_lease_requests_per_s_all_clients=round(leases, 3),
                       projected_agent_requests_per_s_for_1000_sites=round(agent_rate * 1000, 1))
        print(json.dumps(results), flush=True)

        # --- restore -> converged, with a change made during each cut
        times = []
        versions = ["2.0.0", "1.0.0"]
        for n in range(restores):
            version = versions[n % 2]
            site_network.cut(lan_ports=[_site_port(dev_env)], served_ports=[agent.alerts_port])
            wait_for(lambda: _status(hub, "edgecluster", cluster).get("phase") == "Stale",
                     timeout=STALE_AFTER + PROBE_INTERVAL + 15, what="Stale")
            deploy(version)
            wait_for(lambda: (_status(hub, "edgedeployment", "detector", namespace).get("desiredRevision") or {})
                     .get("version") == version, timeout=30, what="desired")
            restored = time.monotonic()
            site_network.restore()
            wait_for(lambda: settled(version), timeout=120, interval=0.2, what=f"{version} converged after restore")
            times.append(round(time.monotonic() - restored, 2))
            print(f"restore -> converged: {times[-1]} s", flush=True)
        results["restore_to_converged_s"] = times

        # --- chaos: random cuts during rollouts; at the end, converged, nothing lost or doubled
        if chaos:
            rng = random.Random(17)
            target = "1.0.0" if restores % 2 == 0 else "2.0.0"
            for n in range(chaos):
                target = "2.0.0" if target == "1.0.0" else "1.0.0"
                deploy(target)
                time.sleep(rng.uniform(0, 2))       # chaos timing, not a wait for a condition
                site_network.cut(lan_ports=[_site_port(dev_env)], served_ports=[agent.alerts_port])
                time.sleep(rng.uniform(1, STALE_AFTER + 5))
                site_network.restore()
            results_chaos_settle = time.monotonic()
            wait_for(lambda: settled(target), timeout=180, interval=0.5, what="converged after the chaos run")
            final = _status(hub, "edgedeployment", "detector", namespace)
            results["chaos"] = {"cycles": chaos, "converged_on": target,
                                "last_restore_to_converged_s": round(time.monotonic() - results_chaos_settle, 2),
                                "rollbacks": len(final.get("rollbacks") or []),
                                "history": len(final.get("history") or [])}
            assert not final.get("rollbacks"), final.get("rollbacks")      # no alert: no rollback may appear
    finally:
        agent.stop()
        hub.kubectl("delete", "edgedeployments", "--all", "-n", namespace, "--timeout=60s", check=False)
        hub.kubectl("delete", "edgecluster", cluster, "--wait=false", check=False)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
