"""A pull site on a real node: the agent runs as a real Pod from the Deployment `edgeline cluster
join` prints, its model cache is a PersistentVolumeClaim, and the runtime containers load their
models from that cache, so the site serves, restarts and rolls back with the model's origin down,
at Pod Security `restricted` (docs/edge-autonomy.md).

Given a hub and edge-a's real node (kubelet + containerd, images from the local registry), a site
admin's disk for the cache (a local PersistentVolume on that node) and a pull EdgeCluster for
edge-a under a name of its own (its own hub namespace and target namespace: other tests use edge-a
in push mode in the same session). The join's manifests are applied on edge-a as printed.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import numpy as np
import pytest
import yaml
from pathlib import Path

from tests.e2e.conftest import ROOT, wait_for
from tests.helpers import onnx_models, runtime_models
from tests.helpers.artifact_server import ArtifactServer
from tests.helpers.manifests import ADMIT_ALL, edge_deployment, mlmodel
# The real node's plumbing, shared with test_real_containers (the fixture `real` is used by name).
from tests.helpers.real_runtime import Real, infer, pods, probabilities, ready, real, real_node_runtime  # noqa: F401
from tests.helpers.real_runtime import REAL_NODE_LABEL, runtime_log

API = "edgeline.io/v1alpha1"
CLAIM = "site-models"
AGENT_USER = 65532          # the user the join's agent runs as with a claim (agent/bootstrap.py)
ROLLBACK = {"mode": "Automatic", "scope": "Cluster", "guardSeconds": 3600,
            "alertMatchers": [{"name": "severity", "value": "critical"}]}


def post_site_alert(url: str, token: str, labels: dict, cafile: Path, server_name: str) -> tuple[int, str]:
    """What the site's Alertmanager posts to the agent's receiver (the hub's payload and token rule),
    over HTTPS verified against the site CA the agent published, for its Service's name (the test
    reaches the Pod by its address: the name is checked, the address is where it connects)."""
    body = json.dumps({"version": "4", "status": "firing", "alerts": [{
        "status": "firing", "labels": labels, "startsAt": "2026-12-06T07:00:00Z",
        "fingerprint": uuid.uuid4().hex[:16]}]}).encode()
    parts = urllib.parse.urlsplit(url)
    context = ssl.create_default_context(cafile=str(cafile))
    connection = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=5, context=context)
    connection.sock = context.wrap_socket(socket.create_connection((parts.hostname, parts.port), timeout=5),
                                          server_hostname=server_name)
    try:
        connection.request("POST", parts.path, body, {"Content-Type": "application/json",
                                                      "Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def site_ca(edge, namespace: str, out: Path) -> Path:
    """The site CA's certificate the agent publishes (ConfigMap edgeline-agent-ca, key ca.crt)."""
    def published():
        proc = edge.kubectl("get", "configmap", "edgeline-agent-ca", "-n", namespace, "-o", "json", check=False)
        return proc.returncode == 0 and (json.loads(proc.stdout).get("data") or {}).get("ca.crt")
    out.write_text(wait_for(published, timeout=120, what="the agent's site CA published"))
    return out


def _pull_cluster(name: str, labels: dict[str, str]) -> dict:
    return {"apiVersion": API, "kind": "EdgeCluster", "metadata": {"name": name, "labels": labels},
            "spec": {"tier": "edge", "targetNamespace": f"ns-{name}", "staleAfterSeconds": 60,
                     "connection": {"mode": "pull"},
                     # The cache is a claim: the runtimes need no hostPath, restricted admits them.
                     "tenancy": {**ADMIT_ALL, "podSecurity": "restricted"}}}


def _site_disk(name: str, node_hostname: str, path: str) -> list[dict]:
    """What a site admin provides for the cache: a local disk of the node as a PersistentVolume."""
    return [{"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
             "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "WaitForFirstConsumer"},
            {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name}, "spec": {
                "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain", "storageClassName": name, "local": {"path": path},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [node_hostname]}]}]}}}}]


def _hub_server_for_pods(dev_env) -> str:
    config = yaml.safe_load(dev_env.pod_kubeconfig("hub").read_text())
    return config["clusters"][0]["cluster"]["server"]


def _join(hub, dev_env, cluster: str, image: str, storage_class: str) -> list[dict]:
    done = subprocess.run([sys.executable, "-m", "edgeline", "cluster", "join", cluster,
                           "--kubeconfig", str(hub.kubeconfig), "--hub-server", _hub_server_for_pods(dev_env),
                           "--image", image, "--cache-claim", CLAIM, "--cache-size", "1Gi",
                           "--cache-storage-class", storage_class,
                           "--toleration", f"{REAL_NODE_LABEL}=true:NoSchedule"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    return list(yaml.safe_load_all(done.stdout))


def _agent_pod(edge, namespace: str) -> dict | None:
    found = edge.get("pods", "-n", namespace, "-l", "app.kubernetes.io/name=edgeline-agent")["items"]
    live = [p for p in found if ready(p) and not p["metadata"].get("deletionTimestamp")]
    return live[0] if live else None


def _answer(pod: dict, frames) -> dict | None:
    try:
        code, answer = infer(pod["status"]["podIP"], frames)
    except OSError:
        return None
    return answer if code == 200 and isinstance(answer, dict) else None


def _serving(edge, cluster: str, revision: str, frames, not_named: str | None = None):
    """(pod, answer) once a ready runtime Pod of `revision` (other than `not_named`) answers."""
    for pod in pods(edge, cluster, revision):
        if ready(pod) and pod["metadata"]["name"] != not_named and not pod["metadata"].get("deletionTimestamp"):
            answer = _answer(pod, frames)
            if answer is not None:
                return pod, answer
    return None


def _status(hub, namespace: str) -> dict:
    return hub.get("edgedeployment", "detector", "-n", namespace).get("status") or {}


def test_a_pull_site_on_a_real_node_serves_restarts_and_rolls_back_from_its_claim_with_the_origin_down(
        hub, edge_a, dev_env, operator, namespace, real: Real, tmp_path):
    image = dev_env.images.get("agent") or pytest.fail(
        f"the local registry has no agent image ({sorted(dev_env.images)}): `make images` builds it", pytrace=False)
    tag = "r" + uuid.uuid4().hex[:5]
    cluster, labels = f"{tag}-line-3", {"edgeline.io/fleet": tag}
    target = f"ns-{cluster}"
    disk = (dev_env.state_dir / f"site-disk-{cluster}").resolve()
    storage = f"edgeline-{cluster}"
    root = tmp_path / "models"
    root.mkdir()
    (root / "v1.onnx").write_bytes(runtime_models.sample_model("1.0.0").read_bytes())
    (root / "v2.onnx").write_bytes(runtime_models.sample_model("2.0.0").read_bytes())
    digests = {v: onnx_models.file_digest(root / f"v{v[0]}.onnx") for v in ("1.0.0", "2.0.0")}
    origin = ArtifactServer(root, host=dev_env.pod_visible_host).start()
    origin_up = True
    try:
        # Given the site admin's disk on the real node, owned by the agent's user ...
        disk.mkdir(parents=True)
        os.chown(disk, AGENT_USER, AGENT_USER)
        hostname = edge_a.get("node", real.node)["metadata"]["labels"]["kubernetes.io/hostname"]
        edge_a.apply(_site_disk(storage, hostname, str(disk)))
        # ... a pull EdgeCluster at Pod Security restricted, and the join's manifests applied as printed.
        hub.apply(_pull_cluster(cluster, labels))
        bootstrap = _join(hub, dev_env, cluster, image, storage)
        assert "PersistentVolumeClaim" in {d["kind"] for d in bootstrap}
        assert "hostPath" not in json.dumps(bootstrap)
        edge_a.apply(bootstrap)

        # Then the agent runs as a real Pod on the real node, admitted at restricted, and the hub sees it.
        agent = wait_for(lambda: _agent_pod(edge_a, target), timeout=180, what="the agent Pod ready")
        assert agent["spec"]["nodeName"] == real.node
        assert edge_a.get("namespace", target)["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == \
            "restricted"
        hub.kubectl("wait", f"edgecluster/{cluster}", "--for=jsonpath={.status.phase}=Ready", "--timeout=120s",
                    timeout=150)
        secret = next(d for d in bootstrap if d["kind"] == "Secret")
        alerts_token = base64.b64decode(secret["data"]["alerts-token"]).decode()
        _story(hub, edge_a, namespace, real, cluster, labels, origin, digests, root, agent, alerts_token)
        origin_up = False
    except BaseException:
        logs = edge_a.kubectl("logs", "-n", target, "deployment/edgeline-agent", "--tail=80", check=False)
        print("--- agent log\n" + logs.stdout + logs.stderr)
        raise
    finally:
        if origin_up:
            origin.stop()
        hub.kubectl("delete", "edgedeployments", "--all", "-n", namespace, "--timeout=60s", check=False, timeout=90)
        hub.kubectl("delete", "edgecluster", cluster, "--wait=false", check=False)
        edge_a.kubectl("delete", "namespace", target, "--timeout=90s", check=False, timeout=120)
        edge_a.kubectl("delete", "clusterrolebinding,clusterrole", "edgeline-agent", check=False)
        edge_a.kubectl("delete", "pv,storageclass", storage, "--wait=false", check=False)
        shutil.rmtree(disk, ignore_errors=True)


def _story(hub, edge_a, namespace, real, cluster, labels, origin, digests, root, agent, alerts_token):
    frames = runtime_models.images(batch=2, seed=7)
    hub.apply([mlmodel(namespace, v, f"{origin.url}/v{v[0]}.onnx", d) for v, d in digests.items()])
    for version in digests:
        hub.kubectl("wait", f"mlmodel/detector-{version}", "-n", namespace, "--for=condition=Ready",
                    "--timeout=90s", timeout=120)

    def deploy(version):
        hub.apply(edge_deployment(namespace, labels, version, runtime=real_node_runtime(real), rollback=ROLLBACK,
                                  rollout={"waveTimeoutSeconds": 600}))

    def settled_on(version):
        def check():
            s = _status(hub, namespace)
            current = s.get("currentRevision") or {}
            row = next((c for c in s.get("clusters") or [] if c["name"] == cluster), {})
            return s if (current.get("version") == version and row.get("phase") == "Ready"
                         and row.get("revision") == current.get("revision")) else None
        return check

    # When 1.0.0 is deployed, the agent caches it and the real runtime loads it from the claim.
    deploy("1.0.0")
    good = wait_for(settled_on("1.0.0"), timeout=300, what="1.0.0 Ready on the pull site")["currentRevision"]
    pod, answer = wait_for(lambda: _serving(edge_a, cluster, good["revision"], frames), timeout=60,
                           what="the 1.0.0 runtime answering")
    assert pod["spec"]["nodeName"] == real.node
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["site-models"] == {"name": "site-models",
                                      "persistentVolumeClaim": {"claimName": CLAIM, "readOnly": True}}
    assert not any("hostPath" in v for v in volumes.values())
    assert answer["model_version"] == "1.0.0"
    np.testing.assert_allclose(probabilities(answer), runtime_models.run_directly(root / "v1.onnx", frames),
                               rtol=1e-5, atol=1e-6)
    loaded = [e for e in runtime_log(edge_a, cluster, pod["metadata"]["name"]) if e["event"] == "model_verified"]
    assert loaded and loaded[-1]["digest"] == digests["1.0.0"]

    deploy("2.0.0")
    bad = wait_for(settled_on("2.0.0"), timeout=300, what="2.0.0 Ready on the pull site")["currentRevision"]
    pod, answer = wait_for(lambda: _serving(edge_a, cluster, bad["revision"], frames), timeout=60,
                           what="the 2.0.0 runtime answering")
    assert answer["model_version"] == "2.0.0"
    config = next(c for c in edge_a.get("configmaps", "-n", f"ns-{cluster}")["items"]
                  if (c.get("data") or {}).get("EDGELINE_MODEL_SHA256") == digests["2.0.0"])
    assert config["data"]["EDGELINE_MODEL_URI"].startswith("file:///var/lib/edgeline-cache/")

    # When the model's origin is gone and the runtime Pod is deleted, it comes back from the site cache.
    origin.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{origin.url}/v2.onnx", timeout=3)
    deleted_at = time.monotonic()
    edge_a.kubectl("delete", "pod", "-n", f"ns-{cluster}", pod["metadata"]["name"], "--wait=false")
    back, answer = wait_for(lambda: _serving(edge_a, cluster, bad["revision"], frames, not_named=pod["metadata"]["name"]),
                            timeout=180, interval=0.5, what="a new 2.0.0 runtime Pod answering with the origin down")
    restart_s = time.monotonic() - deleted_at
    assert answer["model_version"] == "2.0.0" and back["spec"]["nodeName"] == real.node
    loaded = [e for e in runtime_log(edge_a, cluster, back["metadata"]["name"]) if e["event"] == "model_verified"]
    assert loaded and loaded[-1]["digest"] == digests["2.0.0"]

    # When a site alert names the deployment, the agent reverts to the cached 1.0.0 by itself ...
    ca = site_ca(edge_a, f"ns-{cluster}", root / "site-ca.crt")
    sent = time.monotonic()
    code, text = post_site_alert(f"https://{agent['status']['podIP']}:9094/alerts", alerts_token,
                                 {"alertname": "DefectRateHigh", "severity": "critical",
                                  "edgeline_deployment": "detector", "namespace": namespace},
                                 cafile=ca, server_name=f"edgeline-agent.ns-{cluster}.svc")
    assert code == 200 and "reverting" in text, text
    restored, answer = wait_for(lambda: _serving(edge_a, cluster, good["revision"], frames), timeout=180,
                                interval=0.5, what="the real runtime answering with the known-good 1.0.0")
    alert_to_answer_s = time.monotonic() - sent
    assert answer["model_version"] == "1.0.0" and restored["spec"]["nodeName"] == real.node
    np.testing.assert_allclose(probabilities(answer), runtime_models.run_directly(root / "v1.onnx", frames),
                               rtol=1e-5, atol=1e-6)
    logged = edge_a.kubectl("logs", "-n", f"ns-{cluster}", agent["metadata"]["name"]).stdout
    site_ms = [int(m) for m in re.findall(r"rolled back on the site \(alert received [^)]*, reverted in (\d+) ms\)",
                                           logged)]
    assert len(site_ms) == 1 and site_ms[0] < 2000, logged[-3000:]        # the site's own revert, no hub involved

    # ... and the hub records the site's rollback and marks 2.0.0 bad.
    def recorded():
        s = _status(hub, namespace)
        record = next((r for r in s.get("rollbacks") or [] if r.get("alert") == "DefectRateHigh"), None)
        return (s, record) if record and bad["revision"] in (s.get("badRevisions") or []) else None
    status, record = wait_for(recorded, timeout=120, what="the site rollback in the hub's status")
    assert record["fromRevision"] == bad["revision"] and record["toRevision"] == good["revision"]
    # (Its latencyMs is the site's own figure only when the hub had moved on; while it still rolls the bad
    # revision out it takes the rollback as its own and counts to its own apply: not asserted here.)
    assert record["clusters"] == [cluster]
    assert sum(1 for r in status["rollbacks"] if r.get("alert") == "DefectRateHigh") == 1
    assert any(e.get("reason") == "SiteRolledBack" for e in hub.events("detector", namespace))
    real.figures["pull_site_real_node"] = {
        "runtime_pod_deleted_to_answering_from_site_cache_origin_down_s": round(restart_s, 1),
        "site_alert_to_known_good_answering_s": round(alert_to_answer_s, 1),
        "site_alert_to_revert_applied_ms_agent_log": site_ms[0],
        "site_alert_to_revert_applied_ms_hub_record": record["latencyMs"],
    }
    print(f"figures: {json.dumps(real.figures['pull_site_real_node'])}")
