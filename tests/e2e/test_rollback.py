"""When a new model misbehaves on a line, Edgeline reverts to the last known-good version as
soon as the alert arrives: during the rollout and after it.

The end-to-end case uses every real part: the edge runtime (started from the ConfigMap the
operator put on each edge cluster, as the kubelet would start the Pod), Prometheus scraping
it, the shipped alerting rules, Alertmanager, and the operator's receiver.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest

from edgeline.devenv.monitoring import Monitoring, ScrapeTarget, Webhook
from tests.e2e.conftest import ALERTS_TOKEN, ROOT, register_edge_cluster, runtime_config, wait_for
from tests.helpers.runtime_process import RuntimeProcess
from tests.helpers import onnx_models, runtime_models
from tests.helpers.artifact_server import ArtifactServer
from tests.helpers.manifests import edge_deployment, mlmodel

RULES = ROOT / "manifests" / "monitoring" / "prometheus-rules.yaml"


@pytest.fixture(scope="module")
def model_server(tmp_path_factory):
    """Version 1.0.0 is the good sample model; 2.0.0 passes every check but fails at inference."""
    root = tmp_path_factory.mktemp("rollback-models")
    (root / "good.onnx").write_bytes(runtime_models.sample_model("1.0.0").read_bytes())
    onnx_models.write(runtime_models.broken_defect_detector("2.0.0"), root / "broken.onnx")
    with ArtifactServer(root) as server:
        yield server, {"1.0.0": (f"{server.url}/good.onnx", onnx_models.file_digest(root / "good.onnx")),
                       "2.0.0": (f"{server.url}/broken.onnx", onnx_models.file_digest(root / "broken.onnx"))}


@pytest.fixture
def setup(hub, edge_a, edge_b, operator, namespace, model_server):
    _, models = model_server
    tag = "r" + uuid.uuid4().hex[:5]
    members = {f"{tag}-line-1": edge_a, f"{tag}-brno": edge_b}
    for name, member in members.items():
        register_edge_cluster(hub, name, member, {"edgeline.io/fleet": tag,
                                                  "edgeline.io/line": name.split("-", 1)[1]})
    hub.apply([mlmodel(namespace, version, uri, digest) for version, (uri, digest) in models.items()])
    for version in models:
        hub.kubectl("wait", f"mlmodel/detector-{version}", "-n", namespace, "--for=condition=Ready", "--timeout=60s")
    for name in members:
        hub.kubectl("wait", f"edgecluster/{name}", "--for=condition=Ready", "--timeout=60s")
    yield tag, members
    hub.kubectl("delete", "edgedeployments", "--all", "-n", namespace, "--timeout=60s", check=False)
    for name in members:
        hub.kubectl("delete", "edgecluster", name, "--wait=false", check=False)


def _deployment(namespace, tag, version, waves=None, **rollback):
    return edge_deployment(namespace, {"edgeline.io/fleet": tag}, version, rollout={"waves": waves or []},
                           rollback={"mode": "Automatic", "scope": "Deployment", "guardSeconds": 600,
                                     "alertMatchers": [{"name": "severity", "value": "critical"}], **rollback})


def _status(hub, namespace):
    return hub.get("edgedeployment", "detector", "-n", namespace).get("status") or {}


def _wait(hub, namespace, check, what, timeout=90):
    return wait_for(lambda: (s := _status(hub, namespace)) and check(s) and s, timeout=timeout,
                    what=f"{what} (last: {json.dumps(_status(hub, namespace))[:1200]})")


def _config(member, cluster) -> dict:
    return runtime_config(member, f"ns-{cluster}")


class Line:
    """Stands in for the kubelet and the line's camera: runs the runtime exactly as the
    ConfigMap on the edge cluster says, and sends it frames."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.runtimes: list[RuntimeProcess] = []
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self, config: dict) -> RuntimeProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGELINE_")}
        env.update(config)
        env["EDGELINE_MODEL_DIR"] = str(self.tmp_path / f"models-{len(self.runtimes)}")
        runtime = RuntimeProcess(["--host", "127.0.0.1", "--port", "0"], env)
        self.runtimes.append(runtime)
        wait_for(lambda: runtime.get("/v2/health/ready")[0] == 200, timeout=60, what="the runtime to be ready")
        thread = threading.Thread(target=self._traffic, args=(runtime,), daemon=True)
        thread.start()
        self.threads.append(thread)
        return runtime

    def _traffic(self, runtime: RuntimeProcess) -> None:
        body = runtime_models.infer_body(runtime_models.images(1))
        while not self.stop.is_set():
            runtime.infer(body)
            time.sleep(0.1)

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=5)
        for runtime in self.runtimes:
            runtime.stop()


def _roll_out_good_then_bad(hub, namespace, tag) -> tuple[dict, dict]:
    """1.0.0 rolled out and Healthy, then 2.0.0 likewise: the revisions a rollback goes between."""
    hub.apply(_deployment(namespace, tag, "1.0.0"))
    good = _wait(hub, namespace, lambda s: s.get("phase") == "Healthy", "1.0.0 rolled out")["currentRevision"]
    hub.apply(_deployment(namespace, tag, "2.0.0"))
    bad = _wait(hub, namespace, lambda s: s.get("phase") == "Healthy" and s["currentRevision"]["version"] == "2.0.0",
                "2.0.0 rolled out")["currentRevision"]
    return good, bad


def test_an_alert_from_prometheus_rolls_the_line_back_to_the_known_good_model(hub, setup, namespace, operator,
                                                                              tmp_path):
    tag, members = setup
    good, bad = _roll_out_good_then_bad(hub, namespace, tag)

    line = Line(tmp_path)
    try:
        runtimes = {cluster: line.start(_config(member, cluster)) for cluster, member in members.items()}
        assert all(r.infer(runtime_models.infer_body(runtime_models.images(1)))[0] == 500 for r in runtimes.values())
        targets = [ScrapeTarget(r.url.removeprefix("http://")) for r in runtimes.values()]
        with Monitoring(tmp_path / "monitoring", targets=targets, rule_files=[RULES],
                        webhook=Webhook(operator.alerts_url, bearer_token=ALERTS_TOKEN,
                                        ca_file=operator.alerts_ca_file())):
            status = _wait(hub, namespace, lambda s: s.get("phase") == "RolledBack", "the automatic rollback",
                           timeout=120)
    finally:
        line.close()

    record = status["rollbacks"][0]
    assert record["alert"] == "EdgelineRuntimeErrorRateHigh" and record["mode"] == "Automatic"
    assert record["fromRevision"] == bad["revision"] and record["toRevision"] == good["revision"]
    assert sorted(record["clusters"]) == sorted(members) and record["latencyMs"] > 0 and record["appliedAt"]
    assert status["badRevisions"] == [bad["revision"]]
    assert status["currentRevision"]["revision"] == good["revision"]
    for cluster, member in members.items():
        assert _config(member, cluster)["EDGELINE_MODEL_SHA256"] == good["digest"]
    assert any(e["reason"] == "RolledBack" and e["type"] == "Warning" for e in hub.events("detector", namespace))
    metrics = urllib.request.urlopen(operator.metrics_url, timeout=5).read().decode()
    assert 'edgeline_rollbacks_total{reason="alert"}' in metrics

    # The line now runs what the hub says: the restored model serves.
    line = Line(tmp_path)
    try:
        restored = line.start(_config(members[next(iter(members))], next(iter(members))))
        assert restored.infer(runtime_models.infer_body(runtime_models.images(1)))[0] == 200
    finally:
        line.close()
    # The bad revision stays away until it is approved again or replaced: once the operator has
    # observed every cluster again after the rollback, nothing has moved back to it.
    reverted = _when(record["appliedAt"])
    status = _wait(hub, namespace, lambda s: all(_when(c.get("lastObserved")) > reverted + dt.timedelta(seconds=1)
                                                 for c in s["clusters"]), "a reconcile after the rollback")
    assert status["phase"] == "RolledBack" and status["currentRevision"]["revision"] == good["revision"]
    assert status["rollout"]["revision"] == good["revision"]
    for cluster, member in members.items():
        assert _config(member, cluster)["EDGELINE_MODEL_SHA256"] == good["digest"]


def _when(timestamp: str | None) -> dt.datetime:
    """An RFC 3339 time from status (with or without fractions of a second); None is the distant past."""
    if not timestamp:
        return dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    return dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def _post(operator, payload, token=ALERTS_TOKEN):
    request = urllib.request.Request(operator.alerts_url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10, context=operator.alerts_ssl()) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _alert(namespace, cluster=None, version="2.0.0", revision=None):
    labels = {"alertname": "EdgelineRuntimeErrorRateHigh", "severity": "critical", "namespace": namespace,
              "edgeline_deployment": "detector", "model_version": version}
    if cluster:
        labels["cluster"] = cluster
    if revision:
        labels["revision"] = revision
    return {"version": "4", "status": "firing", "receiver": "edgeline", "groupLabels": {}, "commonLabels": labels,
            "alerts": [{"status": "firing", "labels": labels, "annotations": {},
                        "startsAt": "2026-11-25T10:00:00Z", "fingerprint": uuid.uuid4().hex[:16]}]}


def test_an_alert_during_the_rollout_stops_it_and_reverts_the_wave_already_done(hub, setup, namespace, operator):
    tag, members = setup
    waves = [{"name": "pilot", "selector": {"matchLabels": {"edgeline.io/line": "line-1"}}, "soakSeconds": 300}]
    hub.apply(_deployment(namespace, tag, "1.0.0"))
    good = _wait(hub, namespace, lambda s: s.get("phase") == "Healthy", "1.0.0 rolled out")["currentRevision"]
    hub.apply(_deployment(namespace, tag, "2.0.0", waves=waves))
    _wait(hub, namespace, lambda s: (s.get("rollout") or {}).get("soakUntil") and s["rollout"]["target"]["version"]
          == "2.0.0", "the pilot soaking on 2.0.0")
    pilot = next(c for c in members if c.endswith("line-1"))
    brno = next(c for c in members if c.endswith("brno"))

    assert _post(operator, _alert(namespace, cluster=pilot)) == 200
    status = _wait(hub, namespace, lambda s: s.get("phase") == "RolledBack", "the rollback during the rollout")
    assert _config(members[pilot], pilot)["EDGELINE_MODEL_SHA256"] == good["digest"]
    assert _config(members[brno], brno)["EDGELINE_MODEL_SHA256"] == good["digest"]   # never saw 2.0.0
    assert status["rollbacks"][0]["latencyMs"] >= 0 and status["rollout"]["reason"] == "Rollback"


def test_alerts_that_do_not_apply_are_ignored_with_a_reason(hub, setup, namespace, operator):
    tag, members = setup
    hub.apply(_deployment(namespace, tag, "1.0.0"))
    _wait(hub, namespace, lambda s: s.get("phase") == "Healthy", "1.0.0 rolled out")
    hub.apply(_deployment(namespace, tag, "2.0.0", guardSeconds=0))
    _wait(hub, namespace, lambda s: s.get("phase") == "Healthy" and s["currentRevision"]["version"] == "2.0.0",
          "2.0.0 rolled out")
    assert _post(operator, _alert(namespace)) == 200          # the guard period (0 s) is over
    events = wait_for(lambda: [e for e in hub.events("detector", namespace) if e["reason"] == "AlertIgnored"],
                      timeout=30, what="an AlertIgnored Event")
    assert "passed its guard period" in events[0]["message"]
    assert _status(hub, namespace)["phase"] == "Healthy"


def test_an_alert_naming_a_foreign_cluster_or_an_undeployed_revision_rolls_nothing_back(hub, setup, namespace,
                                                                                       operator):
    """Issue 15, item 4: an alert routed to this deployment by namespace and name, but naming a
    cluster it does not run on, or a revision Edgeline never deployed there, is refused with a
    reason; the same alert naming what really runs there does roll back (so the refusal is the
    scope check, not the guard period or the matchers)."""
    tag, members = setup
    good, bad = _roll_out_good_then_bad(hub, namespace, tag)
    line = next(iter(members))
    foreign = f"{tag}-not-a-line-of-this-deployment"

    assert _post(operator, _alert(namespace, cluster=foreign)) == 200
    assert _post(operator, _alert(namespace, cluster=line, revision="0123456789ab")) == 200
    assert _post(operator, _alert(namespace, cluster=line, version="9.9.9")) == 200
    refused = wait_for(lambda: (found := [e["message"] for e in hub.events("detector", namespace)
                                          if e["reason"] == "AlertRefused" and e["type"] == "Warning"])
                       and len(found) >= 3 and found, timeout=60, what="three AlertRefused Events")
    assert any("AlertForOtherCluster" in m and repr(foreign) in m for m in refused), refused
    assert any("AlertForOtherRevision" in m and "'0123456789ab'" in m and line in m for m in refused), refused
    assert any("AlertForOtherRevision" in m and "'9.9.9'" in m for m in refused), refused
    status = _status(hub, namespace)
    assert status["phase"] == "Healthy" and status["currentRevision"]["revision"] == bad["revision"]
    assert not status.get("rollbacks") and not status.get("badRevisions")
    for cluster, member in members.items():
        assert _config(member, cluster)["EDGELINE_MODEL_SHA256"] == bad["digest"]
    annotations = hub.get("edgedeployment", "detector", "-n", namespace)["metadata"].get("annotations") or {}
    assert not [a for a in annotations if a.startswith("alerts.operator.edgeline.io/")]   # handled, not pending

    # The same alert naming the cluster and the revision that really run there rolls back.
    assert _post(operator, _alert(namespace, cluster=line, revision=bad["revision"])) == 200
    status = _wait(hub, namespace, lambda s: s.get("phase") == "RolledBack", "the in-scope alert's rollback")
    assert status["currentRevision"]["revision"] == good["revision"]


def test_the_receiver_refuses_bad_calls_and_keeps_running(hub, namespace, operator):
    assert _post(operator, _alert(namespace), token="wrong") == 401
    assert _post(operator, {"alerts": "not a list"}) == 400
    assert _post(operator, _alert("no-such-namespace")) == 404
    assert _post(operator, {"version": "4", "alerts": [{"status": "firing", "labels": {"alertname": "Other"}}]}) == 200
    assert "Traceback" not in operator.log_tail(200)
    assert operator.proc.poll() is None
