"""Two operator replicas against one hub (the chart's replicaCount 2): only the holder of the
Lease acts; the other serves the webhook and the alert receiver, and an alert it receives is
acted on by the leader. Killing the leader mid-rollout hands over: the other replica takes
the Lease and the rollout completes, nothing done twice in a way that matters."""

from __future__ import annotations

import json
import urllib.request
import uuid

import pytest

from tests.e2e.conftest import (OPERATOR_NAMESPACE, STATE_DIR, OperatorProcess, apply_sample_models,
                                register_edge_cluster, wait_for)
from tests.helpers.artifact_server import serve
from tests.helpers.manifests import SAMPLE_MODELS, edge_deployment

LEASE = "edgeline-operator-leader"
FOLLOWER = "replica-b"


@pytest.fixture(scope="module")
def model_url():
    with serve(SAMPLE_MODELS) as url:
        yield url


def holder(hub) -> str | None:
    found = hub.kubectl("get", "lease", LEASE, "-n", OPERATOR_NAMESPACE, "-o", "json", check=False)
    return (json.loads(found.stdout).get("spec") or {}).get("holderIdentity") if found.returncode == 0 else None


def leader_gauge(op: OperatorProcess) -> float | None:
    try:
        with urllib.request.urlopen(op.metrics_url, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    return next((float(line.split()[1]) for line in text.splitlines() if line.startswith("edgeline_leader ")), None)


@pytest.fixture
def replicas(hub, operator):
    """The session's operator, leading, and a second replica (identity replica-b) that follows."""
    wait_for(lambda: holder(hub) and leader_gauge(operator) == 1.0, timeout=60,
             what="the session's operator holding the Lease")
    log = STATE_DIR / "operator-replica-b.log"
    log.unlink(missing_ok=True)
    follower = OperatorProcess(hub.kubeconfig, log, extra_env={"EDGELINE_LEADER_IDENTITY": FOLLOWER})
    follower.start()
    wait_for(lambda: leader_gauge(follower) == 0.0, timeout=60, what="the second replica serving its metrics")
    yield operator, follower
    follower.stop()               # releases the Lease if it leads
    # Restarted either way: it leads again, and points the webhook configuration back at its own port
    # (each replica's local URL differs here; in a cluster both sit behind one Service).
    operator.stop()
    operator.start()
    wait_for(lambda: leader_gauge(operator) == 1.0, timeout=60, what="the session's operator leading again")


@pytest.fixture
def fleet(hub, edge_a, namespace):
    tag = "l" + uuid.uuid4().hex[:5]
    names = [f"{tag}-line-1", f"{tag}-line-2"]
    for index, name in enumerate(names, 1):
        register_edge_cluster(hub, name, edge_a, {"edgeline.io/fleet": tag, "edgeline.io/line": f"line-{index}"})
    for name in names:
        hub.kubectl("wait", f"edgecluster/{name}", "--for=condition=Ready", "--timeout=60s")
    yield tag, names
    hub.kubectl("delete", "edgedeployments", "--all", "-n", namespace, "--timeout=90s", check=False)
    for name in names:
        hub.kubectl("delete", "edgecluster", name, "--wait=false", check=False)


def _status(hub, namespace) -> dict:
    return hub.get("edgedeployment", "detector", "-n", namespace).get("status") or {}


def _wait(hub, namespace, check, what, timeout=120) -> dict:
    return wait_for(lambda: (s := _status(hub, namespace)) and check(s) and s, timeout=timeout,
                    what=f"{what} (last: {json.dumps(_status(hub, namespace))[:1200]})")


def test_a_second_replica_serves_but_only_the_leader_acts_also_on_alerts_it_receives(hub, replicas, fleet,
                                                                                     namespace, model_url):
    leader, follower = replicas
    tag, names = fleet
    assert holder(hub) not in (None, FOLLOWER)
    # The follower is alive and says it does not lead (its liveness endpoint, served before kopf runs).
    with urllib.request.urlopen(f"http://127.0.0.1:{follower.health_port}/healthz", timeout=5) as response:
        assert json.loads(response.read()) == {"leader": False}

    apply_sample_models(hub, namespace, model_url)
    rollback = {"mode": "Automatic", "scope": "Deployment", "guardSeconds": 600,
                "alertMatchers": [{"name": "severity", "value": "critical"}]}
    hub.apply(edge_deployment(namespace, {"edgeline.io/fleet": tag}, "1.0.0", rollback=rollback))
    good = _wait(hub, namespace, lambda s: s.get("phase") == "Healthy", "1.0.0 rolled out")["currentRevision"]
    hub.apply(edge_deployment(namespace, {"edgeline.io/fleet": tag}, "2.0.0", rollback=rollback))
    bad = _wait(hub, namespace, lambda s: s.get("phase") == "Healthy" and s["currentRevision"]["version"] == "2.0.0",
                "2.0.0 rolled out")["currentRevision"]

    # The alert reaches the replica that does not lead; the leader rolls back.
    assert follower.post_runtime_alert(namespace, names[0], bad["revision"]) == 200
    status = _wait(hub, namespace, lambda s: s.get("phase") == "RolledBack", "the rollback by the leader")
    assert status["currentRevision"]["revision"] == good["revision"] and len(status["rollbacks"]) == 1
    assert leader_gauge(follower) == 0.0 and holder(hub) != FOLLOWER
    log = follower.log.read_text(errors="replace")
    assert "waiting to lead" in log and "now leads" not in log
    assert "Handler" not in log and "run_rollout" not in log          # kopf never ran in the follower


def test_killing_the_leader_mid_rollout_hands_over_and_the_rollout_completes(hub, edge_a, replicas, fleet,
                                                                             namespace, model_url):
    leader, follower = replicas
    tag, names = fleet
    apply_sample_models(hub, namespace, model_url, versions=("1.0.0",))
    hub.apply(edge_deployment(namespace, {"edgeline.io/fleet": tag}, "1.0.0", rollout={
        "waves": [{"name": "pilot", "selector": {"matchLabels": {"edgeline.io/line": "line-1"}},
                   "soakSeconds": 10}]}))
    _wait(hub, namespace, lambda s: (s.get("rollout") or {}).get("soakUntil"), "the pilot wave soaking")
    before = holder(hub)
    leader.kill()

    wait_for(lambda: holder(hub) == FOLLOWER and leader_gauge(follower) == 1.0, timeout=60,
             what=f"replica-b taking the Lease from {before}")
    status = _wait(hub, namespace, lambda s: s.get("phase") == "Healthy", "the rollout completed by replica-b")
    assert status["ready"] == "2/2"
    assert "now leads" in follower.log.read_text(errors="replace")
    for name in names:
        sets = edge_a.get("replicasets", "-n", f"ns-{name}", "-l", "edgeline.io/deployment=detector")["items"]
        assert len(sets) == 1, "the new leader re-applied the same objects: the Pod template did not change"
    reasons = [e["reason"] for e in hub.events("detector", namespace)]
    assert reasons.count("RolloutComplete") == 1
    lease = hub.get("lease", LEASE, "-n", OPERATOR_NAMESPACE)["spec"]
    assert lease["leaseTransitions"] >= 1
