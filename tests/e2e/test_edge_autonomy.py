"""A pull site keeps producing when its WAN is cut, rolls back by itself on a site alert, and the
hub learns everything once the link returns (docs/edge-autonomy.md).

Given a hub and a pull site whose agent (the agent image of `make images`, run by podman) runs in
a network namespace of its own (devenv/netns.py): the site's cluster is edge-b's real
kube-apiserver with kwok nodes, reached over the site's LAN; the hub and the model server are its
WAN. The test cuts the WAN with a kernel drop rule, never by stopping a process. Alerts reach the site's
receiver over HTTPS, verified against the CA certificate the agent publishes on the site.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import json
import os
import random
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from edgeline.agent.bootstrap import AGENT, AGENT_NAMESPACE, CA_CONFIGMAP, TLS_SECRET
from edgeline.devenv.monitoring import Monitoring, Webhook
from edgeline.devenv.netns import SiteNetwork
from edgeline.domain.token_rotation import token_times
from edgeline.pki import CertificateAuthority
from edgeline.clusters.pull import site_namespace
from tests.e2e.conftest import ROOT, kubectl_binary, register_edge_cluster, wait_for
from tests.helpers import onnx_models, runtime_models
from tests.helpers.artifact_server import ArtifactServer
from tests.helpers.kubeconfig import token_kubeconfig
from tests.helpers.manifests import ADMIT_ALL, edge_deployment, mlmodel

API = "edgeline.io/v1alpha1"
STALE_AFTER = 10
# The hub judges a cluster on its probe tick (EDGELINE_CLUSTER_PROBE_INTERVAL_S, 10 s by default):
# a lease that expires is seen at the next tick at the latest.
PROBE_INTERVAL = 10
SITE_TOKEN = "site-alert-token"


def _images_env() -> dict[str, str]:
    path = ROOT / ".edgeline" / "images.env"
    if not path.exists():
        pytest.fail("no .edgeline/images.env: `make images` builds the agent image")
    found = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            found[key] = value
    return found


def _podman_env() -> dict[str, str]:
    out = subprocess.run(["bash", "dev/install-container-tools.sh", "--env"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    env = dict(os.environ)
    for line in out.splitlines():
        key, value = line.removeprefix("export ").split("=", 1)
        env[key] = value
    return env


class AgentContainer:
    """The agent image (images/agent, `make images`) run by podman inside the site's network
    namespace: the real container a site runs, with the hub and the model server as its WAN.
    Read-only root filesystem, every capability dropped; its cache is a folder of the host."""

    def __init__(self, site: SiteNetwork, cluster: str, hub_kubeconfig: Path, site_kubeconfig: Path,
                 cache_dir: Path, log: Path, alerts_port: int = 9094, extra_args: tuple[str, ...] = ()):
        self.site, self.cluster, self.log = site, cluster, log
        self.cache_dir = cache_dir
        self.alerts_port = alerts_port
        self.image = _images_env().get("AGENT_IMAGE") or pytest.fail("images.env names no AGENT_IMAGE")
        self.env = _podman_env()
        self.name = f"edgeline-agent-{cluster}"
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.argv = [
            "podman", "run", "--rm", "--name", self.name, "--network", f"ns:/run/netns/{site.namespace}",
            "--read-only", "--cap-drop", "ALL", "--pull", "never",
            "-v", f"{hub_kubeconfig}:{hub_kubeconfig}:ro", "-v", f"{site_kubeconfig}:{site_kubeconfig}:ro",
            "-v", f"{cache_dir}:{cache_dir}",
            "-e", f"EDGELINE_AGENT_ALERTS_TOKEN={SITE_TOKEN}",
            self.image, "agent", "--cluster", cluster, "--hub-kubeconfig", str(hub_kubeconfig),
            "--kubeconfig", str(site_kubeconfig), "--cache-dir", str(cache_dir), "--interval", "1",
            "--alerts-listen", site.site_address, "--alerts-port", str(alerts_port),
            # The receiver's certificate names the address the site's Alertmanager (here: the test) dials.
            "--alerts-tls-names", site.site_address, *extra_args]
        self.proc: subprocess.Popen | None = None

    @property
    def alerts_url(self) -> str:
        return f"https://{self.site.site_address}:{self.alerts_port}/alerts"

    def start(self) -> None:
        subprocess.run(["podman", "rm", "--force", "--ignore", self.name], env=self.env, capture_output=True,
                       timeout=60)
        out = self.log.open("ab")
        self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT)
        out.close()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        subprocess.run(["podman", "stop", "--time", "10", "--ignore", self.name], env=self.env,
                       capture_output=True, timeout=60)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def pid(self) -> int:
        """The agent's process id on the host (for its memory)."""
        found = subprocess.run(["podman", "inspect", "--format", "{{.State.Pid}}", self.name], env=self.env,
                               capture_output=True, text=True, timeout=60, check=True)
        return int(found.stdout.strip())


def pull_cluster(name: str, labels: dict[str, str]) -> dict:
    return {"apiVersion": API, "kind": "EdgeCluster", "metadata": {"name": name, "labels": labels},
            "spec": {"tier": "edge", "targetNamespace": f"ns-{name}", "staleAfterSeconds": STALE_AFTER,
                     "connection": {"mode": "pull"},
                     # The runtime mounts the node's model cache (hostPath): Pod Security privileged.
                     "tenancy": {**ADMIT_ALL, "podSecurity": "privileged"}}}


SITE_IDENTITY_KINDS = ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
                       "Secret", "ConfigMap")


def site_identity(edge, dev_env, site: str, bootstrap: list[dict], out: Path) -> Path:
    """The site side of the join: its Namespace, ServiceAccount and RBAC, the Secrets and the CA
    ConfigMap the agent fills in, applied on the site's cluster as printed, and a kubeconfig of that ServiceAccount (a TokenRequest, as the agent's
    Pod would get it mounted) for the agent container, which runs outside the cluster here."""
    edge.apply([d for d in bootstrap if d["kind"] in SITE_IDENTITY_KINDS])
    [account] = [d for d in bootstrap if d["kind"] == "ServiceAccount"]
    token = edge.kubectl("create", "token", account["metadata"]["name"], "-n", account["metadata"]["namespace"],
                         "--duration", "2h").stdout.strip()
    return token_kubeconfig(dev_env.pod_kubeconfig(site), "edgeline-agent", token, out)


def join(hub, dev_env, cluster: str, out: Path, *extra: str) -> list[dict]:
    """`edgeline cluster join` as the platform team runs it: the site's bootstrap manifests, and
    the site's hub kubeconfig written to `out`."""
    done = subprocess.run([sys.executable, "-m", "edgeline", "cluster", "join", cluster,
                           "--kubeconfig", str(hub.kubeconfig), "--hub-server", _hub_url(dev_env),
                           "--hub-kubeconfig-out", str(out), *extra],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    return list(yaml.safe_load_all(done.stdout))


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


def site_ca(edge, out: Path) -> Path:
    """The site CA certificate as the agent publishes it on the site (ConfigMap edgeline-agent-ca),
    written where a client reads it once, as Alertmanager reads `tls_config.ca_file`."""
    def published():
        found = edge.kubectl("get", "configmap", CA_CONFIGMAP, "-n", AGENT_NAMESPACE, "-o", "json", check=False)
        return found.returncode == 0 and (json.loads(found.stdout).get("data") or {}).get("ca.crt")
    out.write_text(wait_for(published, timeout=60, what="the site CA published by the agent"))
    return out


def _tls_context(cafile: Path | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cafile) if cafile else None)


def served_certificate(agent: AgentContainer, cafile: Path) -> x509.Certificate | None:
    """The certificate a fresh, verifying handshake with the site receiver gets (None: no answer yet)."""
    try:
        with socket.create_connection((agent.site.site_address, agent.alerts_port), timeout=5) as raw:
            with _tls_context(cafile).wrap_socket(raw, server_hostname=agent.site.site_address) as tls:
                return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
    except (ConnectionRefusedError, ConnectionResetError):
        return None


def _post_alert(url: str, labels: dict, token: str = SITE_TOKEN, cafile: Path | None = None) -> tuple[int, str]:
    body = json.dumps({"version": "4", "status": "firing", "alerts": [{
        "status": "firing", "labels": labels, "startsAt": "2026-12-05T10:00:00Z",
        "fingerprint": uuid.uuid4().hex[:16]}]}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json",
                                                 "Authorization": f"Bearer {token}"})
    try:
        context = _tls_context(cafile) if url.startswith("https:") else None
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_a_pull_site_rolls_back_alone_while_the_wan_is_cut_and_the_hub_learns_it_after(
        hub, edge_b, dev_env, operator, namespace, site_network, models, tmp_path):
    tag = "p" + uuid.uuid4().hex[:5]
    cluster = f"{tag}-line-9"

    # Given a pull EdgeCluster, registered the way a platform team does it: create, join, run the agent.
    hub.apply(pull_cluster(cluster, {"edgeline.io/fleet": tag}))
    site_hub_config = tmp_path / "site-hub.kubeconfig"
    bootstrap = join(hub, dev_env, cluster, site_hub_config)
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

    # On the site, the agent runs as the join's ServiceAccount with its ClusterRole, not as an admin.
    site_config = site_identity(edge_b, dev_env, "edge-b", bootstrap, tmp_path / "site-agent.kubeconfig")
    can = subprocess.run([kubectl_binary(), "--kubeconfig", str(site_config), "auth", "can-i", "delete", "nodes"],
                         capture_output=True, text=True, timeout=60)
    assert can.stdout.strip() == "no", (can.stdout, can.stderr)
    agent = AgentContainer(site_network, cluster, site_hub_config, site_config,
                         dev_env.state_dir / f"agent-{cluster}", tmp_path / "agent.log")
    agent.start()
    try:
        _story(hub, edge_b, dev_env, namespace, site_network, models, cluster, tag, agent,
               site_ca(edge_b, tmp_path / "site-ca.crt"))
    except BaseException:
        print("--- agent log\n" + agent.log_text()[-6000:])
        raise
    finally:
        agent.stop()
        hub.kubectl("delete", "edgedeployments", "--all", "-n", namespace, "--timeout=60s", check=False)
        hub.kubectl("delete", "edgecluster", cluster, "--wait=false", check=False)


def _story(hub, edge_b, dev_env, namespace, site_network, models, cluster, tag, agent, cafile):
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
                                                "edgeline_deployment": "detector", "namespace": namespace},
                             cafile=cafile)
    assert code == 200 and "reverting" in text, text
    wait_for(lambda: _site_revision(edge_b, cluster) == good, timeout=5, interval=0.1,
             what="the site back on the known-good revision")
    assert time.monotonic() - sent < 2.0 + 1.0          # the post, plus polling the site's API server
    assert _post_alert(agent.alerts_url, {"alertname": "x"}, token="wrong", cafile=cafile)[0] == 401

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


CHAOS_CYCLES = int(os.environ.get("EDGELINE_CHAOS_CYCLES", "5"))     # bench/agent runs 20


def test_one_deployment_spans_push_and_pull_clusters_through_random_cuts(
        hub, edge_a, edge_b, dev_env, operator, namespace, site_network, models, tmp_path):
    """Given one EdgeDeployment over a push cluster (edge-a) and a pull site (edge-b, agent in its
    namespace), when rollouts are made while the site's WAN is cut and restored at random, then
    at the end both clusters run the last approved revision, the hub shows every cluster Ready,
    and nothing was rolled back or reported twice."""
    tag = "c" + uuid.uuid4().hex[:5]
    site, push = f"{tag}-line-9", f"{tag}-line-1"
    labels = {"edgeline.io/fleet": tag}
    register_edge_cluster(hub, push, edge_a, labels, stale_after=STALE_AFTER)
    hub.apply(pull_cluster(site, labels))
    config = tmp_path / "site-hub.kubeconfig"
    bootstrap = join(hub, dev_env, site, config)
    site_config = site_identity(edge_b, dev_env, "edge-b", bootstrap, tmp_path / "site-agent.kubeconfig")
    agent = AgentContainer(site_network, site, config, site_config,
                           dev_env.state_dir / f"agent-{site}", tmp_path / "agent.log")
    agent.start()
    rng = random.Random(int(os.environ.get("EDGELINE_CHAOS_SEED", "17")))
    try:
        for cluster in (site, push):
            hub.kubectl("wait", f"edgecluster/{cluster}", "--for=jsonpath={.status.phase}=Ready",
                        "--timeout=120s", timeout=150)
        hub.apply([mlmodel(namespace, v, uri, digest) for v, (uri, digest) in models.items() if v != "3.0.0"])
        for version in ("1.0.0", "2.0.0"):
            hub.kubectl("wait", f"mlmodel/detector-{version}", "-n", namespace, "--for=condition=Ready",
                        "--timeout=90s", timeout=120)

        def deploy(version):
            hub.apply(edge_deployment(namespace, labels, version))

        def converged(version):
            s = _status(hub, "edgedeployment", "detector", namespace)
            current = s.get("currentRevision") or {}
            rows = {c["name"]: c for c in s.get("clusters") or []}
            return (current.get("version") == version and s.get("phase") == "Healthy"
                    and all(rows.get(c, {}).get("phase") == "Ready"
                            and rows[c].get("revision") == current.get("revision") for c in (site, push)))

        deploy("1.0.0")
        wait_for(lambda: converged("1.0.0"), timeout=180, what="1.0.0 on the push and the pull cluster")

        target, cuts = "1.0.0", 0
        for _ in range(CHAOS_CYCLES):
            target = "2.0.0" if target == "1.0.0" else "1.0.0"
            deploy(target)
            # Chaos timing (not a wait for a condition): the cut lands anywhere in the rollout.
            time.sleep(rng.uniform(0, 2))
            mark = len(agent.log_text())
            site_network.cut(lan_ports=[_site_port(dev_env)], served_ports=[agent.alerts_port])
            cuts += 1
            wait_for(lambda: "hub out of reach" in agent.log_text()[mark:], timeout=30,
                     what="the agent noticing the cut")
            time.sleep(rng.uniform(0, STALE_AFTER + 5))    # sometimes long enough for Stale, sometimes not
            mark = len(agent.log_text())
            site_network.restore()
            wait_for(lambda: "hub reached" in agent.log_text()[mark:], timeout=60,
                     what="the agent reaching the hub again")

        final = wait_for(lambda: converged(target) and _status(hub, "edgedeployment", "detector", namespace),
                         timeout=180, interval=0.5, what=f"{target} converged after {cuts} cuts")
        assert _status(hub, "edgecluster", site).get("phase") == "Ready"
        assert not final.get("rollbacks"), final.get("rollbacks")        # no alert: no rollback appeared
        assert not final.get("badRevisions")
        assert "agent cycle failed" not in agent.log_text()
        assert _site_revision(edge_b, site) == final["currentRevision"]["revision"]
    except BaseException:
        print("--- agent log\n" + agent.log_text()[-6000:])
        raise
    finally:
        agent.stop()
        hub.kubectl("delete", "edgedeployments", "--all", "-n", namespace, "--timeout=60s", check=False)
        hub.kubectl("delete", "edgecluster", site, push, "--wait=false", check=False)


def _hub_token(kubeconfig_text: str) -> str:
    return yaml.safe_load(kubeconfig_text)["users"][0]["user"]["token"]


def _lease_renewed(hub, cluster) -> str:
    return hub.get("lease", "edgeline-agent", "-n", site_namespace(cluster))["spec"].get("renewTime") or ""


def test_a_pull_site_renews_its_receiver_certificate_and_its_hub_token_while_it_runs(
        hub, edge_b, dev_env, operator, site_network, tmp_path):
    """Given a pull site joined with a 600 s hub token (TokenRequest's shortest), its agent told to
    rotate it after 5 % of its life and to serve 45-second receiver certificates, when it runs,
    then the receiver answers HTTPS only, verified against the CA the agent published on the site,
    a new certificate is served by the same process before the first expires, a real Alertmanager
    whose `tls_config.ca_file` is that CA delivers before and after the renewal, and the agent
    obtains a new hub token, keeps it in its state folder and the site Secret, and goes on
    renewing its Lease; the new token is as narrow as the join's."""
    tag = "t" + uuid.uuid4().hex[:5]
    cluster = f"{tag}-line-9"
    hub.apply(pull_cluster(cluster, {"edgeline.io/fleet": tag}))
    site_hub_config = tmp_path / "site-hub.kubeconfig"
    bootstrap = join(hub, dev_env, cluster, site_hub_config, "--token-seconds", "600")
    joined = _hub_token(site_hub_config.read_text())
    assert token_times(joined).lifetime_s == 600
    site_config = site_identity(edge_b, dev_env, "edge-b", bootstrap, tmp_path / "site-agent.kubeconfig")
    agent = AgentContainer(site_network, cluster, site_hub_config, site_config,
                           dev_env.state_dir / f"agent-{cluster}", tmp_path / "agent.log",
                           extra_args=("--token-rotate-after", "0.05", "--token-check-interval", "2",
                                       "--tls-validity", "45", "--tls-check-interval", "1"))
    agent.start()
    try:
        hub.kubectl("wait", f"edgecluster/{cluster}", "--for=jsonpath={.status.phase}=Ready", "--timeout=90s",
                    timeout=120)
        # The receiver: HTTPS with a certificate from the CA the agent published on the site.
        cafile = site_ca(edge_b, tmp_path / "site-ca.crt")      # read once, as Alertmanager does
        first = wait_for(lambda: served_certificate(agent, cafile), timeout=60,
                         what="the site receiver answering TLS")
        sans = first.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert {"edgeline-agent.edgeline-agent.svc", "edgeline-agent.edgeline-agent"} <= \
            set(sans.get_values_for_type(x509.DNSName))
        unrouted = {"alertname": "NotAboutAModel"}
        assert _post_alert(agent.alerts_url, unrouted, cafile=cafile)[0] == 200
        # Plain HTTP, and HTTPS checked against another CA, get nowhere.
        with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)) as plain:
            _post_alert(agent.alerts_url.replace("https:", "http:"), unrouted)
        assert not isinstance(plain.value, urllib.error.HTTPError)
        stranger = tmp_path / "stranger-ca.crt"
        stranger.write_bytes(CertificateAuthority.create("not-the-site").cert_pem)
        with pytest.raises(urllib.error.URLError) as wrong:
            _post_alert(agent.alerts_url, unrouted, cafile=stranger)
        assert isinstance(wrong.value.reason, ssl.SSLCertVerificationError)
        # The site Secret keeps the CA key on the site; the hub never saw it.
        stored = edge_b.get("secret", TLS_SECRET, "-n", AGENT_NAMESPACE)["data"]
        assert {"ca.crt", "ca.key", "tls.crt", "tls.key"} <= set(stored)

        # The site's Alertmanager, configured as docs/edge-autonomy.md says (ca_file: the published CA).
        webhook = Webhook(agent.alerts_url, bearer_token=SITE_TOKEN, ca_file=str(cafile))
        with Monitoring(tmp_path / "site-monitoring", webhook=webhook) as monitoring:
            monitoring.fire({"alertname": "SiteCheckBefore", "severity": "info"})
            wait_for(lambda: "site alert SiteCheckBefore" in agent.log_text(), timeout=60,
                     what="Alertmanager delivering to the site receiver over TLS")

            # Renewal while serving: a new certificate, same process, same CA file, before the first ends.
            pid = agent.pid()
            renewed = wait_for(lambda: (c := served_certificate(agent, cafile)) is not None
                               and c.serial_number != first.serial_number and c, timeout=60,
                               what="a renewed receiver certificate")
            # Issued (its end minus its 45 s) while the first one was still valid: renewed before expiry.
            assert renewed.not_valid_after_utc - dt.timedelta(seconds=45) < first.not_valid_after_utc
            assert renewed.not_valid_after_utc > first.not_valid_after_utc and renewed.issuer == first.issuer
            assert agent.pid() == pid and agent.running()
            assert _post_alert(agent.alerts_url, unrouted, cafile=cafile)[0] == 200
            monitoring.fire({"alertname": "SiteCheckAfter", "severity": "info"})
            wait_for(lambda: "site alert SiteCheckAfter" in agent.log_text(), timeout=60,
                     what="Alertmanager delivering with the renewed certificate")

        # The hub token: rotated after 5 % of its 600 s, kept where a restart finds it.
        wait_for(lambda: "rotated the site's hub token" in agent.log_text(), timeout=90,
                 what="the agent rotating its hub token")
        token_file = agent.cache_dir / "hub-token"
        rotated = wait_for(lambda: token_file.exists() and token_file.read_text().strip(), timeout=10,
                           what="the new token in the state folder")
        assert rotated != joined and token_times(rotated).lifetime_s == 600
        assert token_times(rotated).issued_at > token_times(joined).issued_at

        def secret_token():
            data = edge_b.get("secret", AGENT, "-n", AGENT_NAMESPACE)["data"]
            return _hub_token(base64.b64decode(data["hub-kubeconfig"]).decode())
        in_secret = wait_for(lambda: (t := secret_token()) != joined and t, timeout=30,
                             what="the new token in the site Secret")
        assert token_times(in_secret).issued_at >= token_times(rotated).issued_at
        # The Lease goes on being renewed after the swap (every hub call now carries the new token).
        mark = len(agent.log_text())
        before = _lease_renewed(hub, cluster)
        wait_for(lambda: _lease_renewed(hub, cluster) > before, timeout=30, what="the Lease renewed after rotating")
        assert "hub out of reach" not in agent.log_text()[mark:]
        assert _status(hub, "edgecluster", cluster).get("phase") == "Ready"

        # The new token is the site's identity, as narrow as the join's.
        as_rotated = token_kubeconfig(hub.kubeconfig, "site", rotated, tmp_path / "rotated.kubeconfig")
        own = site_namespace(cluster)

        def as_site(*args):
            return subprocess.run([kubectl_binary(), "--kubeconfig", str(as_rotated), *args],
                                  capture_output=True, text=True, timeout=60)
        assert as_site("get", "lease", "edgeline-agent", "-n", own).returncode == 0
        for forbidden in (["get", "configmaps", "-n", "default"],
                          ["create", "configmap", "forged", "-n", own],
                          ["create", "token", "default", "-n", own]):
            denied = as_site(*forbidden)
            assert denied.returncode != 0 and "forbidden" in denied.stderr.lower(), (forbidden, denied.stderr)
    except BaseException:
        print("--- agent log\n" + agent.log_text()[-6000:])
        raise
    finally:
        agent.stop()
        hub.kubectl("delete", "edgecluster", cluster, "--wait=false", check=False)
