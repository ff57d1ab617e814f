"""No model change reaches a line without a recorded approval from someone allowed to give it.

Everything is driven through kubectl as the hub's test users (bearer tokens):
editor (group factory:editors), approver-a and approver-b (factory:approvers), outsider.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest

from tests.e2e.conftest import ROOT, apply_sample_models, register_edge_cluster, runtime_configmaps, wait_for
from tests.helpers.artifact_server import serve
from tests.helpers.manifests import SAMPLE_DIGESTS as DIGESTS
from tests.helpers.manifests import SAMPLE_MODELS as MODELS
from tests.helpers.manifests import edge_deployment, mlmodel


@pytest.fixture(scope="module")
def people(hub, crds_installed):
    """The platform team's mapping: groups to Edgeline's roles (docs/approvals.md)."""
    hub.kubectl("apply", "-f", str(ROOT / "manifests" / "rbac" / "user-roles.yaml"))
    hub.apply([{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": f"factory-{role}"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": f"edgeline-{role}"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}]}
               for role, group in (("editor", "factory:editors"), ("approver", "factory:approvers"))])


@pytest.fixture
def line(hub, edge_a, operator, namespace, people):
    """One edge cluster, two validated model versions, all in a fresh namespace."""
    name = f"line-{uuid.uuid4().hex[:5]}"
    register_edge_cluster(hub, name, edge_a, {"edgeline.io/line": name})
    with serve(MODELS) as url:
        apply_sample_models(hub, namespace, url)
        hub.kubectl("wait", f"edgecluster/{name}", "--for=condition=Ready", "--timeout=60s")
        yield name
    hub.kubectl("delete", "edgedeployments", "--all", "-n", namespace, "--timeout=60s", check=False)
    hub.kubectl("delete", "edgecluster", name, "--wait=false", check=False)


def _deployment(namespace, line, version="1.0.0", **approval):
    return edge_deployment(namespace, {"edgeline.io/line": line}, version,
                           approval={"required": True, "approverGroups": ["factory:approvers"], "minApprovers": 2,
                                     "allowSelfApproval": False, **approval})


def _status(hub, namespace):
    return hub.get("edgedeployment", "detector", "-n", namespace).get("status") or {}


def _acted_on_spec(hub, namespace) -> dict:
    """The status once the operator has acted on the current spec (observedGeneration caught up)."""
    def caught_up():
        obj = hub.get("edgedeployment", "detector", "-n", namespace)
        status = obj.get("status") or {}
        return status if status.get("observedGeneration") == obj["metadata"]["generation"] else None
    return wait_for(caught_up, timeout=60, what="observedGeneration to catch up with the spec")


def _recorded(hub, namespace, user: str) -> tuple[str, str]:
    """`user`'s approval record in the object's annotation (written by the webhook), as (user, at)."""
    obj = hub.get("edgedeployment", "detector", "-n", namespace)
    records = json.loads(obj["metadata"].get("annotations", {}).get("edgeline.io/approvals", "[]"))
    [record] = [(r["user"], r["at"]) for r in records if r["user"] == user]
    return record


def _status_shows(hub, namespace, record: tuple[str, str]) -> dict:
    """The status once the operator has read this approval record (a change of annotations bumps
    no generation: the record copied into status is the sign that the operator saw it)."""
    def seen():
        status = _status(hub, namespace)
        shown = {(a["user"], a["at"]) for a in (status.get("pendingApproval") or {}).get("approvals", [])}
        return status if record in shown else None
    return wait_for(seen, timeout=30, what=f"the operator to show the approval {record}")


def _pending(hub, namespace, not_revision=None):
    def waiting():
        status = _status(hub, namespace)
        rev = ((status.get("pendingApproval") or {}).get("revision") or {}).get("revision")
        return status if status.get("phase") == "AwaitingApproval" and rev and rev != not_revision else None
    return wait_for(waiting, timeout=60, what=f"AwaitingApproval (last: {json.dumps(_status(hub, namespace))[:800]})")


def _approve(hub, namespace, user, revision):
    return hub.kubectl("annotate", "edgedeployment", "detector", "-n", namespace, "--overwrite",
                       f"edgeline.io/approve={revision}", user=user, check=False)


def _on_edge(edge, line) -> list[dict]:
    return runtime_configmaps(edge, f"ns-{line}")


def test_the_approval_matrix(hub, edge_a, namespace, line):
    # The editor makes the change: it waits, and nothing reaches the line.
    hub.apply(_deployment(namespace, line), user="editor")
    status = _pending(hub, namespace)
    revision = status["pendingApproval"]["revision"]["revision"]
    assert status["pendingApproval"]["requestedBy"] == "editor"
    assert status["pendingApproval"]["revision"]["version"] == "1.0.0"
    assert status["approval"] == "Pending 0/2"
    # The operator has acted on this spec (and decided to hold it): nothing reached the line.
    assert _acted_on_spec(hub, namespace)["phase"] == "AwaitingApproval"
    assert _on_edge(edge_a, line) == []

    # The editor may not approve; the outsider may not even touch the object.
    denied = _approve(hub, namespace, "editor", revision)
    assert denied.returncode != 0 and "editor is not in an approver group" in denied.stderr
    outsider = _approve(hub, namespace, "outsider", revision)
    assert outsider.returncode != 0 and "forbidden" in outsider.stderr.lower()

    # An approval of another revision approves nothing, and says so.
    stale = _approve(hub, namespace, "approver-a", "0123456789")
    assert stale.returncode != 0 and f"is not the revision waiting for approval ({revision})" in stale.stderr

    # Four eyes: one approver is not enough, a second distinct one is.
    first = _approve(hub, namespace, "approver-a", revision)
    assert first.returncode == 0, first.stderr
    assert "1 of 2 needed" in first.stderr           # kubectl shows the webhook's warning
    wait_for(lambda: _status(hub, namespace).get("approval") == "Pending 1/2", timeout=30, what="Pending 1/2")
    again = _approve(hub, namespace, "approver-a", revision)
    assert again.returncode == 0 and "1 of 2 needed" in again.stderr   # the same person twice still counts once
    status = _status_shows(hub, namespace, _recorded(hub, namespace, "approver-a"))   # the newer record
    assert status["phase"] == "AwaitingApproval" and status["approval"] == "Pending 1/2"
    assert _on_edge(edge_a, line) == []
    second = _approve(hub, namespace, "approver-b", revision)
    assert second.returncode == 0 and "2 of 2 needed" in second.stderr
    status = wait_for(lambda: (s := _status(hub, namespace)).get("phase") == "Healthy" and s, timeout=90,
                      what="the approved rollout")
    assert {a["user"] for a in status["history"][0]["approvals"]} == {"approver-a", "approver-b"}
    assert _on_edge(edge_a, line)[0]["data"]["EDGELINE_MODEL_SHA256"] == DIGESTS["1.0.0"]

    # approver-a changes the model: approver-a may not approve their own change.
    hub.apply(_deployment(namespace, line, version="2.0.0"), user="approver-a")
    status = _pending(hub, namespace, not_revision=revision)
    new_revision = status["pendingApproval"]["revision"]["revision"]
    assert status["pendingApproval"]["requestedBy"] == "approver-a"
    own = _approve(hub, namespace, "approver-a", new_revision)
    assert own.returncode != 0 and "forbids approving one's own change" in own.stderr
    # The old approvals do not carry over to the new revision: once the operator has acted on the
    # new spec, the line keeps 1.0.0.
    status = _acted_on_spec(hub, namespace)
    assert status["phase"] == "AwaitingApproval" and status["approval"] == "Pending 0/2"
    assert status["currentRevision"]["revision"] == revision
    assert _on_edge(edge_a, line)[0]["data"]["EDGELINE_MODEL_SHA256"] == DIGESTS["1.0.0"]


def test_approval_records_cannot_be_forged(hub, namespace, line):
    hub.apply(_deployment(namespace, line), user="editor")
    revision = _pending(hub, namespace)["pendingApproval"]["revision"]["revision"]
    fake = json.dumps([{"revision": revision, "user": "approver-a", "groups": ["factory:approvers"],
                        "at": "2026-11-25T10:00:00Z", "sig": "0" * 64}])
    for user in ("editor", "approver-a", None):          # None: the cluster admin
        forged = hub.kubectl("annotate", "edgedeployment", "detector", "-n", namespace, "--overwrite",
                             f"edgeline.io/approvals={fake}", user=user, check=False)
        assert forged.returncode != 0 and "written by Edgeline's admission webhook only" in forged.stderr
    status_write = hub.kubectl("patch", "edgedeployment", "detector", "-n", namespace, "--subresource=status",
                               "--type=merge", "-p", json.dumps({"status": {"approval": "Approved"}}),
                               user="editor", check=False)
    assert status_write.returncode != 0 and "forbidden" in status_write.stderr.lower()
    assert _status(hub, namespace)["phase"] == "AwaitingApproval"


def test_an_expired_approval_no_longer_counts(hub, edge_a, namespace, line):
    hub.apply(_deployment(namespace, line, validForSeconds=10), user="editor")
    revision = _pending(hub, namespace)["pendingApproval"]["revision"]["revision"]
    assert _approve(hub, namespace, "approver-a", revision).returncode == 0
    # The operator counts approver-a's approval ...
    wait_for(lambda: _status(hub, namespace).get("approval") == "Pending 1/2", timeout=30, what="Pending 1/2")
    # ... and, with nobody touching the object, stops counting it once its 10 s are over.
    wait_for(lambda: _status(hub, namespace).get("approval") == "Pending 0/2", timeout=40,
             what="the operator to let approver-a's approval expire (Pending 0/2)")
    _, given = _recorded(hub, namespace, "approver-a")
    expired = dt.datetime.now(dt.timezone.utc) - dt.datetime.fromisoformat(given.replace("Z", "+00:00"))
    assert expired.total_seconds() >= 10, f"counted as expired {expired} after it was given"
    # A second approver now makes 1 of 2, not 2 of 2: the expired approval is no second pair of eyes.
    assert _approve(hub, namespace, "approver-b", revision).returncode == 0
    status = _status_shows(hub, namespace, _recorded(hub, namespace, "approver-b"))
    assert status["phase"] == "AwaitingApproval" and status["approval"] == "Pending 1/2"
    assert _on_edge(edge_a, line) == []


def test_edgeline_approve_does_the_same_and_a_dead_webhook_fails_closed(hub, edge_a, namespace, line, operator):
    import subprocess
    import sys
    from pathlib import Path

    hub.apply(_deployment(namespace, line), user="editor")
    revision = _pending(hub, namespace)["pendingApproval"]["revision"]["revision"]
    assert _approve(hub, namespace, "approver-a", revision).returncode == 0
    cli = subprocess.run([str(Path(sys.executable).parent / "edgeline"), "approve", "detector", "-n", namespace,
                          "--kubeconfig", str(hub._user_config("approver-b"))], capture_output=True, text=True,
                         timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert f"revision {revision}: defect-detector 1.0.0" in cli.stdout and "requested by editor" in cli.stdout
    wait_for(lambda: _status(hub, namespace).get("phase") == "Healthy", timeout=90, what="the approved rollout")

    operator.stop()
    try:
        # With the webhook gone, editors still work; approvals cannot be given at all.
        changed = hub.apply(_deployment(namespace, line, version="2.0.0"), user="editor", check=False)
        assert changed.returncode == 0, changed.stderr
        refused = _approve(hub, namespace, "approver-a", revision)
        assert refused.returncode != 0 and "approvals.edgeline.io" in refused.stderr
    finally:
        operator.start()


def test_a_deployment_that_follows_the_newest_model_waits_for_approval_of_each_new_version(hub, edge_a, namespace,
                                                                                           line):
    spec = _deployment(namespace, line, minApprovers=1)
    # minStage staging: this line takes staging candidates (test_stages covers production lines).
    spec["spec"]["modelRef"] = {"model": "defect-detector", "follow": "LatestReady", "minStage": "staging"}
    hub.apply(spec, user="editor")
    first = _pending(hub, namespace)["pendingApproval"]["revision"]
    assert first["version"] == "2.0.0"                      # the newest Ready version
    assert _approve(hub, namespace, "approver-a", first["revision"]).returncode == 0
    wait_for(lambda: _status(hub, namespace).get("phase") == "Healthy", timeout=90, what="2.0.0 rolled out")

    # A retrained candidate (what a DataPipeline run produces) becomes Ready: it waits for approval.
    with serve(MODELS) as url:
        # Retrained: version 3.0.0, with the bytes of the 1.0.0 sample.
        hub.apply(mlmodel(namespace, "3.0.0", f"{url}/defect-detector-1.0.0.onnx", DIGESTS["1.0.0"], stage="staging"))
        hub.kubectl("wait", "mlmodel/detector-3.0.0", "-n", namespace, "--for=condition=Ready", "--timeout=60s")
    status = _pending(hub, namespace, not_revision=first["revision"])
    assert status["pendingApproval"]["revision"]["version"] == "3.0.0"
    assert status["currentRevision"]["version"] == "2.0.0"
    assert _on_edge(edge_a, line)[0]["data"]["EDGELINE_MODEL_SHA256"] == DIGESTS["2.0.0"]
