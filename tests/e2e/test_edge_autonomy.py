"""A pull site keeps producing when its WAN is cut, rolls back by itself on a site alert, and the
hub learns everything once the link returns (docs/edge-autonomy.md).

Given a hub and a pull site whose agent (`edgeline agent`, a real process) runs in a network
namespace of its own (devenv/netns.py): the site's cluster is edge-b's real kube-apiserver with
kwok nodes, reached over the site's LAN; the hub and the model server are its WAN. The test cuts
the WAN with a kernel drop rule, never by stopping a process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from edgeline.devenv.netns import SiteNetwork
from edgeline.clusters.pull import site_namespace
from tests.e2e.conftest import ROOT, kubectl_binary, wait_for
from tests.helpers import onnx_models, runtime_models
from tests.helpers.artifact_server import ArtifactServer
from tests.helpers.manifests import edge_deployment, mlmodel

API = "edgeline.io/v1alpha1"
STALE_AFTER = 10
# The hub judges a cluster on its probe tick (EDGELINE_CLUSTER_PROBE_INTERVAL_S, 10 s by default):
# a lease that expires is seen at the next tick at the latest.
PROBE_INTERVAL = 10
SITE_TOKEN = "site-alert-token"


class AgentProcess:
    """`edgeline agent` inside the site's network namespace."""

    def __init__(self, site: SiteNetwork, cluster: str, hub_kubeconfig: Path, site_kubeconfig: Path,
                 cache_dir: Path, log: Path, alerts_port: int = 9094):
        self.site, self.cluster, self.log = site, cluster, log
        self.alerts_port = alerts_port
        self.argv = site.command([sys.executable, "-m", "edgeline", "agent", "--cluster", cluster,
                                  "--hub-kubeconfig", str(hub_kubeconfig), "--kubeconfig", str(site_kubeconfig),
                                  "--cache-dir", str(cache_dir), "--interval", "1",
                                  "--alerts-listen", site.site_address, "--alerts-port", str(alerts_port)])
        self.proc: subprocess.Popen | None = None

    @property
    def alerts_url(self) -> str:
        return f"http://{self.site.site_address}:{self.alerts_port}/alerts"

    def start(self) -> None:
        out = self.log.open("ab")
        env = {**os.environ, "EDGELINE_AGENT_ALERTS_TOKEN": SITE_TOKEN, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        out.close()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture
def site_network(dev_env):
    net = SiteNetwork(dev_env.cluster_addresses("hub").slot)
    net.create()
    yield net
    net.delete()


@pytest.fixture
def models(dev_env, tmp_path_factory):
    """Served where the site reaches it over the WAN: the host's pod-visible address."""
    root = tmp_path_factory.mktemp("autonomy-models")
    (root / "v1.onnx").write_bytes(runtime_models.sample_model("1.0.0").read_bytes())
    (root / "v2.onnx").write_bytes(runtime_models.sample_model("2.0.0").read_bytes())
    onnx_models.write(runtime_models.broken_defect_detector("3.0.0"), root / "v3.onnx")
    with ArtifactServer(root, host=dev_env.pod_visible_host) as server:
        yield {v: (f"{server.url}/v{v[0]}.onnx", onnx_models.file_digest(root / f"v{v[0]}.onnx"))
               for v in ("1.0.0", "2.0.0", "3.0.0")}


def _hub_url(dev_env) -> str:
    port = dev_env.access("hub").server.rsplit(":", 1)[1]
    return f"https://{dev_env.pod_visible_host}:{port}"


def _site_port(dev_env) -> int:
    return int(dev_env.access("edge-b").server.rsplit(":", 1)[1])


def _status(hub, kind, name, namespace=None):
    args = [kind, name] + (["-n", namespace] if namespace else [])
    return hub.get(*args).get("status") or {}


def _site_revision(edge_b, cluster) -> str | None:
    found = edge_b.kubectl("get", "deployment", "-n", f"ns-{cluster}", "-o", "json", check=False)
    if found.returncode != 0:
        return None
    items = json.loads(found.stdout)["items"]
    return items[0]["spec"]["template"]["metadata"]["labels"].get("edgeline.io/revision") if items else None


def _post_alert(url: str, labels: dict, token: str = SITE_TOKEN) -> tuple[int, str]:
    body = json.dumps({"version": "4", "status": "firing", "alerts": [{
        "status": "firing", "labels": labels, "startsAt": "2026-12-05T10:00:00Z",
        "fingerprint": uuid.uuid4().hex[:16]}]}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json",
                                                 "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_a_pull_site_rolls_back_alone_while_the_wan_is_cut_and_the_hub_learns_it_after(
        hub, edge_b, dev_env, operator, namespace, site_network, models, tmp_path):
    tag = "p" + uuid.uuid4().hex[:5]
    cluster = f"{tag}-line-9"

    # Given a pull EdgeCluster, registered the way a platform team does it: create, join, run the agent.
    hub.apply({"apiVersion": API, "kind": "EdgeCluster", "metadata": {"name": cluster, "labels": {
        "edgeline.io/fleet": tag}}, "spec": {"tier": "edge", "targetNamespace": f"ns-{cluster}",
                                            "staleAfterSeconds": STALE_AFTER, "connection": {"mode": "pull"}}})
    site_hub_config = tmp_path / "site-hub.kubeconfig"
    join = subprocess.run([sys.executable, "-m", "edgeline", "cluster", "join", cluster,
                           "--kubeconfig", str(hub.kubeconfig), "--hub-server", _hub_url(dev_env),
                           "--hub-kubeconfig-out", str(site_hub_config)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert join.returncode == 0, join.stderr
    bootstrap = list(yaml.safe_load_all(join.stdout))
    assert {"Namespace", "Secret", "Deployment", "ClusterRole"} <= {d["kind"] for d in bootstrap}

    # The site's hub identity reads its own assignments and writes nothing but its report and Lease.
    def as_site(*args):
        return subprocess.run([kubectl_binary(), "--kubeconfig", str(site_hub_config), *args],
                              capture_output=True, text=True, timeout=60)

    own = site_namespace(cluster)
    allowed = as_site("get", "configmaps", "-n", own)
    assert allowed.returncode == 0, allowed.stderr
    for forbidden in (["get", "configmaps", "-n", "default"],
                      ["get", "edgedeployments", "-A"],
                      ["create", "configmap", "forged", "-n", own],
                      ["delete", "configmap", "edgeline-report", "-n", own]):
        denied = as_site(*forbidden)
        assert denied.returncode != 0 and "forbidden" in denied.stderr.lower(), (forbidden, denied.stderr)

    agent = AgentProcess(site_network, cluster, site_hub_config, dev_env.pod_kubeconfig("edge-b"),
                         dev_env.state_dir / f"agent-{cluster}", tmp_path / "agent.log")
    agent.start()
    try:
        _story(hub, edge_b, dev_env, namespace, site_network, models, cluster, tag, agent)
    except BaseException:
        print("--- agent log\n" + agent.log_text()[-6000:])
        raise
    finally:
        agent.stop()
        hub.kubectl("delete", "edgedeployments", "--all", "-n", namespace, "--timeout=60s", check=False)
        hub.kubectl("delete", "edgecluster", cluster, "--wait=false", check=False)


def _story(hub, edge_b, dev_env, namespace, site_network, models, cluster, tag, agent):
    hub.kubectl("wait", f"edgecluster/{cluster}", "--for=jsonpath={.status.phase}=Ready", "--timeout=90s",
                timeout=120)
    hub.apply([mlmodel(namespace, v, uri, digest) for v, (uri, digest) in models.items()])
    for version in models:
        hub.kubectl("wait", f"mlmodel/detector-{version}", "-n", namespace, "--for=condition=Ready",
                    "--timeout=90s", timeout=120)

    def deployment(version):
        return edge_deployment(namespace, {"edgeline.io/fleet": tag}, version, rollback={
            "mode": "Automatic", "scope": "Cluster", "guardSeconds": 3600,
            "alertMatchers": [{"name": "severity", "value": "critical"}]})

    def settled_on(version):
        def check():
            s = _status(hub, "edgedeployment", "detector", namespace)
            current = (s.get("currentRevision") or {})
            row = next((c for c in s.get("clusters") or [] if c["name"] == cluster), {})
            ok = (current.get("version") == version and row.get("phase") == "Ready"
                  and row.get("revision") == current.get("revision"))
            return s if ok else None
        return check

    # When a model is deployed, the site runs it from its own cache, and the hub sees it Ready.
    hub.apply(deployment("1.0.0"))
    first = wait_for(settled_on("1.0.0"), timeout=120, what="1.0.0 Ready on the pull site")
    good = first["currentRevision"]["revision"]
    config = next(c for c in json.loads(edge_b.kubectl("get", "configmaps", "-n", f"ns-{cluster}", "-o",
                                                        "json").stdout)["items"]
                  if c["data"].get("EDGELINE_MODEL_SHA256") == models["1.0.0"][1])
    assert config["data"]["EDGELINE_MODEL_URI"].startswith("file:///var/lib/edgeline-cache/")
    assert (dev_env.state_dir / f"agent-{cluster}" / "models" / models["1.0.0"][1].removeprefix("sha256:")
            / "model.onnx").is_file()

    hub.apply(deployment("2.0.0"))
    second = wait_for(settled_on("2.0.0"), timeout=120, what="2.0.0 Ready on the pull site")
    bad = second["currentRevision"]["revision"]
    assert _site_revision(edge_b, cluster) == bad

    # When the WAN is cut (the hub and the model server), the hub says Stale, never Healthy/Ready.
    log_mark = len(agent.log_text())
    cut_at = time.monotonic()
    site_network.cut(lan_ports=[_site_port(dev_env)], served_ports=[agent.alerts_port])
    wait_for(lambda: _status(hub, "edgecluster", cluster).get("phase") == "Stale",
             timeout=STALE_AFTER + PROBE_INTERVAL + 10, what="the pull cluster Stale on the hub")
    stale_after_s = time.monotonic() - cut_at
    assert stale_after_s <= STALE_AFTER + PROBE_INTERVAL + 5
    assert _status(hub, "edgecluster", cluster).get("conditions")
    wait_for(lambda: "hub out of reach" in agent.log_text()[log_mark:], timeout=30, what="the agent noticing the cut")

    # A site alert reverts the site by itself, from its cache, within 2 s, with no hub.
    sent = time.monotonic()
    code, text = _post_alert(agent.alerts_url, {"alertname": "DefectRateHigh", "severity": "critical",
                                                "edgeline_deployment": "detector", "namespace": namespace})
    assert code == 200 and "reverting" in text, text
    wait_for(lambda: _site_revision(edge_b, cluster) == good, timeout=5, interval=0.1,
             what="the site back on the known-good revision")
    assert time.monotonic() - sent < 2.0 + 1.0          # the post, plus polling the site's API server
    assert _post_alert(agent.alerts_url, {"alertname": "x"}, token="wrong")[0] == 401

    # A restart of the agent during the cut keeps the site on what it chose (state on the site's disk).
    agent.stop()
    log_mark = len(agent.log_text())
    agent.start()
    wait_for(lambda: "hub out of reach" in agent.log_text()[log_mark:], timeout=30,
             what="the restarted agent running without the hub")
    assert _site_revision(edge_b, cluster) == good

    # A change made on the hub during the cut...
    hub.apply(deployment("3.0.0"))
    wait_for(lambda: (_status(hub, "edgedeployment", "detector", namespace).get("desiredRevision") or {})
             .get("version") == "3.0.0", timeout=30, what="the hub taking 3.0.0 as desired")
    assert _site_revision(edge_b, cluster) == good

    # ...reaches the site after the link returns; the hub records the site's rollback with its own time.
    site_network.restore()
    hub.kubectl("wait", f"edgecluster/{cluster}", "--for=jsonpath={.status.phase}=Ready", "--timeout=60s",
                timeout=90)
    final = wait_for(settled_on("3.0.0"), timeout=120, what="3.0.0 Ready on the pull site after the cut")
    record = next((r for r in final.get("rollbacks") or [] if r.get("alert") == "DefectRateHigh"), None)
    assert record is not None, final.get("rollbacks")
    assert record["fromRevision"] == bad and record["toRevision"] == good and record["clusters"] == [cluster]
    assert record["latencyMs"] < 2000                       # the site's own revert, not the outage
    assert bad in final.get("badRevisions", [])
    assert sum(1 for r in final["rollbacks"] if r.get("alert") == "DefectRateHigh") == 1
    events = hub.events("detector", namespace)
    assert any(e.get("reason") == "SiteRolledBack" for e in events)
