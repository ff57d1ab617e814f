"""A line is changed only inside its maintenance window and, where it asks for it, only once the
line itself says it is idle (docs/line-schedules.md). Given a hub and an edge cluster whose
EdgeCluster declares a window that opens during the test (or asks for the line's consent), when
an EdgeDeployment is applied, then status says what the cluster waits for and until when,
nothing reaches the cluster before that, and the rollout goes on by itself once the window
opens (or the line's bridge signals idle). Only the bridge's identity may give that signal."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.conftest import OPERATOR_NAMESPACE, ROOT, apply_sample_models, wait_for
from tests.helpers.artifact_server import serve
from tests.helpers.manifests import SAMPLE_MODELS, edge_cluster, edge_deployment, kubeconfig_secret

BERLIN = ZoneInfo("Europe/Berlin")
# The site's MES/PLC bridge: a ServiceAccount (the admin impersonates it, so the API server
# authorizes the request as that identity).
BRIDGE_SA = "plc-bridge-line-1"
BRIDGE = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{BRIDGE_SA}"


@pytest.fixture(scope="module")
def model_url():
    with serve(SAMPLE_MODELS) as url:
        yield url


@pytest.fixture
def line(hub, edge_a, operator, namespace, model_url):
    """make(maintenance) -> the name of an EdgeCluster on edge-a with that spec.maintenance."""
    made = []

    def make(maintenance: dict) -> str:
        name = "win" + uuid.uuid4().hex[:6]
        hub.apply(kubeconfig_secret(f"{name}-kubeconfig", OPERATOR_NAMESPACE, edge_a.kubeconfig.read_text()))
        cluster = edge_cluster(name, {"edgeline.io/line": name}, f"{name}-kubeconfig")
        cluster["spec"]["maintenance"] = maintenance
        hub.apply(cluster)
        hub.kubectl("wait", f"edgecluster/{name}", "--for=condition=Ready", "--timeout=60s", timeout=90)
        made.append(name)
        return name

    apply_sample_models(hub, namespace, model_url, versions=("1.0.0",))
    yield make
    hub.kubectl("delete", "edgedeployments", "--all", "-n", namespace, "--timeout=60s", check=False, timeout=90)
    for name in made:
        hub.kubectl("delete", "edgecluster", name, "--wait=false", check=False)


def _status(hub, namespace) -> dict:
    return hub.get("edgedeployment", "detector", "-n", namespace).get("status") or {}


def _cluster(hub, namespace, name) -> dict:
    return {c["name"]: c for c in _status(hub, namespace).get("clusters", [])}.get(name, {})


def _wait_cluster(hub, namespace, name, check, what, timeout=120) -> dict:
    return wait_for(lambda: (c := _cluster(hub, namespace, name)) and check(c) and c, timeout=timeout,
                    what=lambda: f"{what} (last: {json.dumps(_status(hub, namespace))[:1500]})")


def _wait_healthy(hub, namespace, timeout=120) -> dict:
    return wait_for(lambda: (s := _status(hub, namespace)).get("phase") == "Healthy" and s, timeout=timeout,
                    what=lambda: f"the deployment Healthy (last: {json.dumps(_status(hub, namespace))[:1500]})")


def _runtime(edge, name) -> list[dict]:
    return edge.get("deployments", "-n", f"ns-{name}", "-l", "edgeline.io/deployment=detector")["items"]


def _iso(at: dt.datetime) -> str:
    return at.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_change_waits_for_the_window_and_goes_through_when_it_opens(hub, edge_a, namespace, line):
    # Given a window that opens at a minute boundary during the test (at least 90 s away, so
    # that the waiting is seen on a loaded machine), declared in Berlin time as a site would.
    now = dt.datetime.now(dt.timezone.utc)
    opens = (now + dt.timedelta(minutes=1)).replace(second=0, microsecond=0)
    while (opens - now).total_seconds() < 90:
        opens += dt.timedelta(minutes=1)
    local = opens.astimezone(BERLIN)
    name = line({"windows": [{"schedule": f"{local.minute} {local.hour} * * *", "durationMinutes": 10,
                              "timeZone": "Europe/Berlin"}]})

    # When the deployment is applied outside the window
    hub.apply(edge_deployment(namespace, {"edgeline.io/line": name}))

    # Then the cluster waits, and status says until when
    waiting = _wait_cluster(hub, namespace, name, lambda c: c.get("waitingFor") == "WaitingForWindow",
                            "the cluster waiting for its window",
                            timeout=(opens - dt.datetime.now(dt.timezone.utc)).total_seconds() - 5)
    assert waiting["phase"] == "Pending" and waiting["waitingUntil"] == _iso(opens)
    assert f"opens at {_iso(opens)}" in waiting["message"]
    assert _runtime(edge_a, name) == [], "the runtime reached the line before its window opened"
    shown = subprocess.run([sys.executable, "-m", "edgeline", "status", "detector", "-n", namespace,
                            "--kubeconfig", str(hub.kubeconfig)], capture_output=True, text=True, cwd=ROOT,
                           timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert f"WaitingForWindow: waits for its maintenance window, which opens at {_iso(opens)}" in shown.stdout

    # And once the window opens, the rollout goes on by itself
    status = _wait_healthy(hub, namespace, timeout=int((opens - dt.datetime.now(dt.timezone.utc)).total_seconds())
                           + 120)
    state = {c["name"]: c for c in status["clusters"]}[name]
    assert state.get("waitingFor") is None and state["phase"] == "Ready"
    created = dt.datetime.strptime(_runtime(edge_a, name)[0]["metadata"]["creationTimestamp"],
                                   "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    assert created >= opens, f"the runtime was created at {created}, before the window opened at {opens}"


def _lease(name: str) -> str:
    return f"edgeline-line-idle-{name}"


def _signal_idle(hub, name: str, *, user: str | None = None, impersonate: str | None = None):
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    patch = {"spec": {"holderIdentity": impersonate or user, "leaseDurationSeconds": 300, "acquireTime": now,
                      "renewTime": now}}
    args = ["patch", "lease", _lease(name), "-n", OPERATOR_NAMESPACE, "--type", "merge", "-p", json.dumps(patch)]
    if impersonate:
        args.append(f"--as={impersonate}")
    return hub.kubectl(*args, user=user, check=False)


def test_a_change_waits_for_the_line_to_signal_idle_and_only_its_bridge_may_signal(hub, edge_a, namespace, line):
    # Given a line that asks for its consent, its Lease (made by the platform team) and a Role
    # that lets only the line's bridge write that one Lease
    name = line({"lineConsent": {"timeoutSeconds": 600, "onTimeout": "Fail"}})
    hub.apply([
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": BRIDGE_SA, "namespace": OPERATOR_NAMESPACE}},
        {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
         "metadata": {"name": _lease(name), "namespace": OPERATOR_NAMESPACE}, "spec": {}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": f"line-bridge-{name}", "namespace": OPERATOR_NAMESPACE},
         "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [_lease(name)],
                    "verbs": ["get", "update", "patch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": f"line-bridge-{name}", "namespace": OPERATOR_NAMESPACE},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": f"line-bridge-{name}"},
         "subjects": [{"kind": "ServiceAccount", "name": BRIDGE_SA, "namespace": OPERATOR_NAMESPACE}]},
    ])
    try:
        # When the deployment is applied while the line is busy
        hub.apply(edge_deployment(namespace, {"edgeline.io/line": name}))

        # Then the cluster waits for the line, since a time it states
        waiting = _wait_cluster(hub, namespace, name, lambda c: c.get("waitingFor") == "WaitingForLineIdle",
                                "the cluster waiting for the line")
        since = dt.datetime.strptime(waiting["waitingSince"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
        until = dt.datetime.strptime(waiting["waitingUntil"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
        assert (until - since).total_seconds() == 600
        assert _runtime(edge_a, name) == [], "the runtime reached the line before it signalled idle"

        # Nobody but the bridge can say the line is idle
        forged = _signal_idle(hub, name, user="outsider")
        assert forged.returncode != 0 and "forbidden" in forged.stderr.lower(), forged.stderr
        assert _cluster(hub, namespace, name).get("waitingFor") == "WaitingForLineIdle"

        # When the bridge signals idle, the change goes through
        given = _signal_idle(hub, name, impersonate=BRIDGE)
        assert given.returncode == 0, given.stderr
        status = _wait_healthy(hub, namespace)
        state = {c["name"]: c for c in status["clusters"]}[name]
        assert state.get("waitingFor") is None and state["phase"] == "Ready"
        assert _runtime(edge_a, name), "no runtime on the line after it signalled idle"
    finally:
        for kind in ("rolebinding", "role", "lease"):
            hub.kubectl("delete", kind, _lease(name) if kind == "lease" else f"line-bridge-{name}",
                        "-n", OPERATOR_NAMESPACE, check=False)
