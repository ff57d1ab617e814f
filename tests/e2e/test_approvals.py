"""No model change reaches a line without a recorded approval from someone allowed to give it.

The platform team sets the floor with an ApprovalPolicy; people approve with Approval objects
(`edgeline approve`), checked by the API server's admission policies. Everything is driven
through kubectl and the CLI as the hub's test users (bearer tokens): editor (group
factory:editors), approver-a and approver-b (factory:approvers), outsider.
tests/e2e/test_adversarial_approvals.py tries to get around it.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.e2e.conftest import (APPROVALS_LABEL, ROOT, apply_sample_models, register_edge_cluster, runtime_configmaps,
                                wait_for)
from tests.helpers.artifact_server import serve
from tests.helpers.manifests import SAMPLE_DIGESTS as DIGESTS
from tests.helpers.manifests import SAMPLE_MODELS as MODELS
from tests.helpers.manifests import edge_deployment, mlmodel

APPROVERS = "factory:approvers"


@pytest.fixture(scope="module")
def people(hub, crds_installed):
    """The platform team's mapping: groups to Edgeline's roles (docs/approvals.md)."""
    hub.kubectl("apply", "-f", str(ROOT / "manifests" / "rbac" / "user-roles.yaml"))
    hub.apply([{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": f"factory-{role}"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": f"edgeline-{role}"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}]}
               for role, group in (("editor", "factory:editors"), ("approver", APPROVERS))])


@pytest.fixture
def governed(hub, namespace):
    """The test namespace under a platform ApprovalPolicy of its own: two approvers from
    factory:approvers, never one who changed it. Returns the policy's name."""
    hub.kubectl("label", "namespace", namespace, f"{APPROVALS_LABEL}=governed")
    name = f"policy-{namespace}"
    hub.apply({"apiVersion": "edgeline.io/v1alpha1", "kind": "ApprovalPolicy", "metadata": {"name": name},
               "spec": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                        "required": True, "approverGroups": [APPROVERS], "minApprovers": 2,
                        "allowSelfApproval": False}})
    yield name
    hub.kubectl("delete", "approvalpolicy", name, "--ignore-not-found", check=False)


@pytest.fixture
def line(hub, edge_a, operator, namespace, people, governed):
    """One edge cluster, two validated model versions, all in a fresh governed namespace."""
    name = f"line-{uuid.uuid4().hex[:5]}"
    register_edge_cluster(hub, name, edge_a, {"edgeline.io/line": name})
    with serve(MODELS) as url:
        apply_sample_models(hub, namespace, url)
        hub.kubectl("wait", f"edgecluster/{name}", "--for=condition=Ready", "--timeout=60s")
        yield name
    hub.kubectl("delete", "edgedeployments", "--all", "-n", namespace, "--timeout=60s", check=False)
    hub.kubectl("delete", "edgecluster", name, "--wait=false", check=False)


def deployment(namespace, line, version="1.0.0", selector=None, **approval):
    """The editor's manifest: it names the approver group (the policy adds the rest)."""
    return edge_deployment(namespace, selector or {"edgeline.io/line": line}, version,
                           approval={"required": True, "approverGroups": [APPROVERS], **approval})


def status_of(hub, namespace):
    return hub.get("edgedeployment", "detector", "-n", namespace).get("status") or {}


def acted_on_spec(hub, namespace) -> dict:
    """The status once the operator has acted on the current spec (observedGeneration caught up)."""
    def caught_up():
        obj = hub.get("edgedeployment", "detector", "-n", namespace)
        status = obj.get("status") or {}
        return status if status.get("observedGeneration") == obj["metadata"]["generation"] else None
    return wait_for(caught_up, timeout=60, what="observedGeneration to catch up with the spec")


def pending(hub, namespace, not_revision=None):
    def waiting():
        status = status_of(hub, namespace)
        rev = ((status.get("pendingApproval") or {}).get("revision") or {}).get("revision")
        return status if status.get("phase") == "AwaitingApproval" and rev and rev != not_revision else None
    return wait_for(waiting, timeout=60, what=lambda: f"AwaitingApproval (last: {json.dumps(status_of(hub, namespace))[:800]})")


def approve(hub, namespace, user, revision=None) -> subprocess.CompletedProcess:
    """`edgeline approve` as `user` (their bearer-token kubeconfig)."""
    args = ["--revision", revision] if revision else []
    return subprocess.run([str(Path(sys.executable).parent / "edgeline"), "approve", "detector", "-n", namespace,
                           *args, "--kubeconfig", str(hub._user_config(user))],
                          capture_output=True, text=True, timeout=60)


def approvers_shown(hub, namespace, users: set[str]) -> dict:
    """The status once the operator shows approvals by exactly `users` for the pending revision."""
    def seen():
        status = status_of(hub, namespace)
        shown = {a["user"] for a in (status.get("pendingApproval") or {}).get("approvals", [])}
        return status if shown == users else None
    return wait_for(seen, timeout=30, what=f"the operator to show the approvals of {users}")


def on_edge(edge, line) -> list[dict]:
    return runtime_configmaps(edge, f"ns-{line}")


def test_the_approval_matrix(hub, edge_a, namespace, line, governed):
    # The editor makes the change: it waits, and nothing reaches the line.
    hub.apply(deployment(namespace, line), user="editor")
    status = pending(hub, namespace)
    revision = status["pendingApproval"]["revision"]["revision"]
    assert status["pendingApproval"]["requestedBy"] == "editor"
    assert status["pendingApproval"]["authors"] == ["editor"]
    assert status["pendingApproval"]["revision"]["version"] == "1.0.0"
    assert status["approval"] == "Pending 0/2"
    # Where the rules come from: the platform's policy, not the editor's manifest.
    assert status["approvalPolicy"]["sources"] == [governed]
    assert status["approvalPolicy"]["minApprovers"] == 2 and status["approvalPolicy"]["approverGroups"] == [APPROVERS]
    # The operator has acted on this spec (and decided to hold it): nothing reached the line.
    assert acted_on_spec(hub, namespace)["phase"] == "AwaitingApproval"
    assert on_edge(edge_a, line) == []

    # The editor may not approve; the outsider may not even read the object.
    denied = approve(hub, namespace, "editor", revision)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower() and "approvals" in denied.stderr
    outsider = approve(hub, namespace, "outsider", revision)
    assert outsider.returncode != 0 and "forbidden" in outsider.stderr.lower()

    # An approval of another revision approves nothing, and says so.
    stale = approve(hub, namespace, "approver-a", "0123456789")
    assert stale.returncode != 0 and f"is not the revision waiting for approval ({revision})" in stale.stderr

    # Four eyes: one approver is not enough, a second distinct one is.
    first = approve(hub, namespace, "approver-a")
    assert first.returncode == 0, first.stderr
    assert f"revision {revision} as approver-a: defect-detector 1.0.0" in first.stdout
    assert "requested by editor" in first.stdout and f"2 approver(s) from {APPROVERS} (ApprovalPolicy {governed})" \
        in first.stdout
    wait_for(lambda: status_of(hub, namespace).get("approval") == "Pending 1/2", timeout=30, what="Pending 1/2")
    again = approve(hub, namespace, "approver-a", revision)
    assert again.returncode == 0, again.stderr          # a second Approval by the same person ...
    wait_for(lambda: len(hub.get("approvals", "-n", namespace)["items"]) == 2, timeout=10, what="two Approvals")
    status = approvers_shown(hub, namespace, {"approver-a"})
    assert status["phase"] == "AwaitingApproval" and status["approval"] == "Pending 1/2"   # ... counts once
    assert on_edge(edge_a, line) == []
    second = approve(hub, namespace, "approver-b", revision)
    assert second.returncode == 0, second.stderr
    status = wait_for(lambda: (s := status_of(hub, namespace)).get("phase") == "Healthy" and s, timeout=90,
                      what="the approved rollout")
    assert {a["user"] for a in status["history"][0]["approvals"]} == {"approver-a", "approver-b"}
    assert {tuple(a["groups"]) for a in status["history"][0]["approvals"]} == {(APPROVERS,)}
    assert on_edge(edge_a, line)[0]["data"]["EDGELINE_MODEL_SHA256"] == DIGESTS["1.0.0"]

    # A new model is a new revision: the old approvals do not carry over.
    hub.apply(deployment(namespace, line, version="2.0.0"), user="editor")
    status = pending(hub, namespace, not_revision=revision)
    assert status["pendingApproval"]["authors"] == ["editor"]        # only changes since the approved revision
    status = acted_on_spec(hub, namespace)
    assert status["phase"] == "AwaitingApproval" and status["approval"] == "Pending 0/2"
    assert status["currentRevision"]["revision"] == revision
    assert on_edge(edge_a, line)[0]["data"]["EDGELINE_MODEL_SHA256"] == DIGESTS["1.0.0"]


def test_an_expired_approval_no_longer_counts(hub, edge_a, namespace, line):
    # The deployment tightens the policy's day of validity to 10 s.
    hub.apply(deployment(namespace, line, validForSeconds=10), user="editor")
    status = pending(hub, namespace)
    assert status["approvalPolicy"]["validForSeconds"] == 10
    assert approve(hub, namespace, "approver-a").returncode == 0
    # The operator counts approver-a's approval ...
    wait_for(lambda: status_of(hub, namespace).get("approval") == "Pending 1/2", timeout=30, what="Pending 1/2")
    # ... and, with nobody touching the object, stops counting it once its 10 s are over.
    wait_for(lambda: status_of(hub, namespace).get("approval") == "Pending 0/2", timeout=40,
             what="the operator to let approver-a's approval expire (Pending 0/2)")
    [given] = [a["metadata"]["creationTimestamp"] for a in hub.get("approvals", "-n", namespace)["items"]]
    expired = dt.datetime.now(dt.timezone.utc) - dt.datetime.fromisoformat(given.replace("Z", "+00:00"))
    assert expired.total_seconds() >= 10, f"counted as expired {expired} after it was given"
    assert "the approval by approver-a expired (10 s)" in status_of(hub, namespace)["pendingApproval"]["refused"]
    # A second approver now makes 1 of 2, not 2 of 2: the expired approval is no second pair of eyes.
    assert approve(hub, namespace, "approver-b").returncode == 0
    status = approvers_shown(hub, namespace, {"approver-a", "approver-b"})
    assert status["phase"] == "AwaitingApproval" and status["approval"] == "Pending 1/2"
    assert on_edge(edge_a, line) == []


def test_approvals_need_no_operator_endpoint_and_count_once_it_is_back(hub, edge_a, namespace, line, operator):
    hub.apply(deployment(namespace, line), user="editor")
    revision = pending(hub, namespace)["pendingApproval"]["revision"]["revision"]
    operator.stop()
    try:
        # The API server checks approvals and records authors on its own: both work while the
        # operator is down, and nothing rolls out meanwhile.
        for user in ("approver-a", "approver-b"):
            given = approve(hub, namespace, user, revision)
            assert given.returncode == 0, given.stderr
        changed = hub.kubectl("annotate", "edgedeployment", "detector", "-n", namespace, "note=operator-down",
                              user="editor", check=False)
        assert changed.returncode == 0, changed.stderr
        assert on_edge(edge_a, line) == []
    finally:
        operator.start()
    status = wait_for(lambda: (s := status_of(hub, namespace)).get("phase") == "Healthy" and s, timeout=90,
                      what="the rollout once the operator is back")
    assert status["currentRevision"]["revision"] == revision


def test_a_deployment_that_follows_the_newest_model_waits_for_approval_of_each_new_version(hub, edge_a, namespace,
                                                                                           line, governed):
    hub.kubectl("patch", "approvalpolicy", governed, "--type=merge", "-p", '{"spec": {"minApprovers": 1}}')
    spec = deployment(namespace, line)
    # minStage staging: this line takes staging candidates (test_stages covers production lines).
    spec["spec"]["modelRef"] = {"model": "defect-detector", "follow": "LatestReady", "minStage": "staging"}
    hub.apply(spec, user="editor")
    first = pending(hub, namespace)["pendingApproval"]["revision"]
    assert first["version"] == "2.0.0"                      # the newest Ready version
    assert approve(hub, namespace, "approver-a", first["revision"]).returncode == 0
    wait_for(lambda: status_of(hub, namespace).get("phase") == "Healthy", timeout=90, what="2.0.0 rolled out")

    # A retrained candidate (what a DataPipeline run produces) becomes Ready: it waits for approval.
    with serve(MODELS) as url:
        # Retrained: version 3.0.0, with the bytes of the 1.0.0 sample.
        hub.apply(mlmodel(namespace, "3.0.0", f"{url}/defect-detector-1.0.0.onnx", DIGESTS["1.0.0"], stage="staging"))
        hub.kubectl("wait", "mlmodel/detector-3.0.0", "-n", namespace, "--for=condition=Ready", "--timeout=60s")
    status = pending(hub, namespace, not_revision=first["revision"])
    assert status["pendingApproval"]["revision"]["version"] == "3.0.0"
    assert status["currentRevision"]["version"] == "2.0.0"
    assert on_edge(edge_a, line)[0]["data"]["EDGELINE_MODEL_SHA256"] == DIGESTS["2.0.0"]
