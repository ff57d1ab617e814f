"""Trying to get a model onto a line without the approval the platform team asks for
(docs/security.md, "Approvals"). Each attempt is made the way a hostile user would: as the
namespace editor, as an approver acting for themselves, through a second identity, as an
outsider, as the cluster admin, and as a Pod that reaches the operator's ports. Each is
refused with a clear message, and nothing reaches the line.

Identities are the hub's test users (bearer tokens) and, for a second identity, a
ServiceAccount impersonated with the admin kubeconfig (`--as`), with the chart's RBAC roles.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
import uuid

import pytest

from tests.e2e.conftest import register_edge_cluster, wait_for
from tests.e2e.test_approvals import (APPROVERS, acted_on_spec, approve, deployment, governed, line,  # noqa: F401
                                      on_edge, pending, people, status_of)


def _rolled_out(manifest: dict, rollout: dict) -> dict:
    manifest["spec"]["rollout"] = rollout
    return manifest


def _refused(proc, *words: str) -> str:
    assert proc.returncode != 0, f"was not refused: {proc.stdout}"
    for word in words:
        assert word in proc.stderr, f"{word!r} not in: {proc.stderr}"
    return proc.stderr


def _approval(namespace: str, obj: dict, revision: str, approver: str, groups=(APPROVERS,), uid: str | None = None):
    return {"apiVersion": "edgeline.io/v1alpha1", "kind": "Approval",
            "metadata": {"generateName": "forged-", "namespace": namespace},
            "spec": {"deployment": {"name": "detector", "uid": uid or obj["metadata"]["uid"]}, "revision": revision,
                     "approver": approver, "groups": list(groups)}}


def _create(hub, manifest: dict, user: str | None = None, *impersonate: str):
    return hub.kubectl(*impersonate, "create", "-f", "-", input=json.dumps(manifest), user=user, check=False)


def _bind(hub, namespace: str, role: str, subject: dict, name: str | None = None) -> None:
    hub.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": name or f"{role}-{subject['name'].split(':')[-1]}", "namespace": namespace},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
               "subjects": [subject]})


def _still_nothing_on_the_line(hub, edge_a, namespace, line) -> dict:  # noqa: F811
    status = acted_on_spec(hub, namespace)
    assert status["phase"] == "AwaitingApproval", json.dumps(status)[:800]
    assert on_edge(edge_a, line) == []
    return status


# --- the editor ----------------------------------------------------------------------------------

def test_an_editor_cannot_loosen_the_platform_s_policy(hub, edge_a, namespace, line, governed):  # noqa: F811
    loose = deployment(namespace, line, required=False, allowSelfApproval=True, minApprovers=1,
                       approverGroups=["factory:editors"], validForSeconds=2592000)
    hub.apply(loose, user="editor")
    status = pending(hub, namespace)
    assert status["approvalPolicy"]["required"] is True and status["approvalPolicy"]["sources"] == [governed]
    assert status["approvalPolicy"]["minApprovers"] == 2 and status["approvalPolicy"]["allowSelfApproval"] is False
    # The editors' group is no approver group, whatever the manifest says; the reasons are in status.
    assert status["approvalPolicy"]["approverGroups"] == []
    ignored = "\n".join(status["approvalPolicy"]["ignored"])
    assert f"spec.approval.required: false is ignored: ApprovalPolicy {governed} requires approval" in ignored
    assert "spec.approval.approverGroups factory:editors are not approver groups" in ignored
    _still_nothing_on_the_line(hub, edge_a, namespace, line)
    # The editor cannot write the policy itself, nor a policy of their own.
    patched = hub.kubectl("patch", "approvalpolicy", governed, "--type=merge", "-p", '{"spec": {"required": false}}',
                          user="editor", check=False)
    _refused(patched, "forbidden", "approvalpolicies")
    own = _create(hub, {"apiVersion": "edgeline.io/v1alpha1", "kind": "ApprovalPolicy",
                        "metadata": {"name": f"mine-{namespace}"}, "spec": {"required": False}}, "editor")
    _refused(own, "forbidden")
    # Nor label the namespace out of the policy's reach.
    relabel = hub.kubectl("label", "namespace", namespace, "--overwrite", "edgeline-test/approvals-", user="editor",
                          check=False)
    _refused(relabel, "forbidden")


def test_widening_placement_or_cutting_the_rollout_after_approval_needs_a_new_approval(
        hub, edge_a, namespace, line, governed):  # noqa: F811
    hub.kubectl("patch", "approvalpolicy", governed, "--type=merge", "-p", '{"spec": {"minApprovers": 1}}')
    # A second line on which nothing was approved.
    other = f"line-{uuid.uuid4().hex[:5]}"
    register_edge_cluster(hub, other, edge_a, {"edgeline.io/line": other})
    try:
        hub.kubectl("wait", f"edgecluster/{other}", "--for=condition=Ready", "--timeout=60s")
        careful = {"waves": [{"name": "pilot", "percentage": 50}, {"name": "all", "percentage": 100}],
                   "soakSeconds": 1, "waveTimeoutSeconds": 300}
        hub.apply(_rolled_out(deployment(namespace, line), careful), user="editor")
        approved = pending(hub, namespace)["pendingApproval"]["revision"]["revision"]
        assert approve(hub, namespace, "approver-a").returncode == 0
        wait_for(lambda: status_of(hub, namespace).get("phase") == "Healthy", timeout=90, what="the approved rollout")

        # The editor widens the placement to every line.
        wide = _rolled_out(deployment(namespace, line), careful)
        wide["spec"]["placement"]["clusterSelector"] = {"matchExpressions": [{"key": "edgeline.io/line",
                                                                               "operator": "Exists"}]}
        hub.apply(wide, user="editor")
        status = pending(hub, namespace, not_revision=approved)
        widened = status["pendingApproval"]["revision"]["revision"]
        assert status["currentRevision"]["revision"] == approved
        acted_on_spec(hub, namespace)
        assert on_edge(edge_a, other) == [], "the model reached a line nobody approved it for"
        assert on_edge(edge_a, line)       # the approved line keeps what it runs

        # Back to the approved placement, but without waves and soak: also a new revision.
        hub.apply(_rolled_out(deployment(namespace, line), {"waves": [], "soakSeconds": 0}), user="editor")
        status = wait_for(lambda: (s := acted_on_spec(hub, namespace))["pendingApproval"]["revision"]["revision"]
                          not in (approved, widened) and s, timeout=60, what="the cut rollout pending")
        assert status["phase"] == "AwaitingApproval" and status["currentRevision"]["revision"] == approved
    finally:
        hub.kubectl("delete", "edgecluster", other, "--wait=false", check=False)


def test_nobody_rewrites_who_changed_the_spec_or_uses_the_old_approval_annotations(hub, edge_a, namespace, line):  # noqa: F811
    hub.apply(deployment(namespace, line), user="editor")
    revision = pending(hub, namespace)["pendingApproval"]["revision"]["revision"]
    for user in ("editor", None):          # None: the cluster admin
        rewritten = hub.kubectl("annotate", "edgedeployment", "detector", "-n", namespace, "--overwrite",
                                "edgeline.io/authors=1 approver-z", user=user, check=False)
        _refused(rewritten, "edgeline.io/authors records who changed the spec", "only the API server writes it")
    # The approve annotation of earlier releases is refused with a pointer to what replaced it; the
    # signed records annotation is just an annotation now, which the operator never reads.
    old = hub.kubectl("annotate", "edgedeployment", "detector", "-n", namespace, f"edgeline.io/approve={revision}",
                      user="editor", check=False)
    _refused(old, "approvals are Approval objects", "edgeline approve")
    fake = json.dumps([{"revision": revision, "user": "approver-b", "groups": [APPROVERS],
                        "at": "2026-11-25T10:00:00Z", "sig": "0" * 64}])
    hub.kubectl("annotate", "edgedeployment", "detector", "-n", namespace, f"edgeline.io/approvals={fake}",
                user="editor")
    status_write = hub.kubectl("patch", "edgedeployment", "detector", "-n", namespace, "--subresource=status",
                               "--type=merge", "-p", json.dumps({"status": {"approval": "Approved"}}),
                               user="editor", check=False)
    _refused(status_write, "forbidden")
    # One honest approval: once the operator shows it, it has seen the fake record too, and counts
    # one approver, not two.
    assert approve(hub, namespace, "approver-a").returncode == 0
    status = wait_for(lambda: (s := status_of(hub, namespace)).get("pendingApproval", {}).get("approvals") and s,
                      timeout=30, what="approver-a's approval shown")
    assert [a["user"] for a in status["pendingApproval"]["approvals"]] == ["approver-a"]
    assert status["approval"] == "Pending 1/2"
    assert status_of(hub, namespace)["pendingApproval"]["authors"] == ["editor"]
    _still_nothing_on_the_line(hub, edge_a, namespace, line)


# --- approvers acting for themselves or for others -------------------------------------------------

def test_an_approval_in_someone_else_s_name_with_borrowed_groups_or_for_another_object_is_refused(
        hub, edge_a, namespace, line):  # noqa: F811
    hub.apply(deployment(namespace, line), user="editor")
    revision = pending(hub, namespace)["pendingApproval"]["revision"]["revision"]
    obj = hub.get("edgedeployment", "detector", "-n", namespace)
    # approver-a in approver-b's name (the second pair of eyes), and even the cluster admin.
    for user in ("approver-a", None):
        forged = _create(hub, _approval(namespace, obj, revision, "approver-b"), user)
        _refused(forged, "an Approval is given in one's own name: spec.approver must be", "not approver-b")
    # A group the approver is not in.
    borrowed = _create(hub, _approval(namespace, obj, revision, "approver-a", groups=(APPROVERS, "plant:managers")),
                       "approver-a")
    _refused(borrowed, "spec.groups may only name groups the API server authenticated approver-a with")
    # An approval for an earlier object of the same name.
    elsewhere = _create(hub, _approval(namespace, obj, revision, "approver-a", uid=str(uuid.uuid4())), "approver-a")
    _refused(elsewhere, "is not the uid of edgedeployment detector", "an approval binds to one object")
    # An approval changed after the fact (to another revision) is refused by the schema.
    honest = _create(hub, _approval(namespace, obj, revision, "approver-a"), "approver-a")
    assert honest.returncode == 0, honest.stderr
    name = honest.stdout.split()[0]
    edited = hub.kubectl("patch", name, "-n", namespace, "--type=merge", "-p", '{"spec": {"revision": "0123456789"}}',
                         check=False)
    _refused(edited, "an Approval cannot be changed")
    assert not [a for a in hub.get("approvals", "-n", namespace)["items"] if a["spec"]["approver"] != "approver-a"]
    status = wait_for(lambda: (s := status_of(hub, namespace)).get("approval") == "Pending 1/2" and s, timeout=30,
                      what="approver-a's one honest approval counted")
    assert on_edge(edge_a, line) == [] and status["phase"] == "AwaitingApproval"


def test_an_approver_cannot_approve_their_own_change_nor_hide_it_behind_a_second_identity(
        hub, edge_a, namespace, line, governed):  # noqa: F811
    hub.kubectl("patch", "approvalpolicy", governed, "--type=merge", "-p", '{"spec": {"minApprovers": 1}}')
    # approver-a may also edit in this namespace; a CI ServiceAccount may edit too.
    _bind(hub, namespace, "edgeline-editor", {"kind": "User", "name": "approver-a",
                                              "apiGroup": "rbac.authorization.k8s.io"})
    hub.kubectl("create", "serviceaccount", "ci", "-n", namespace)
    _bind(hub, namespace, "edgeline-editor", {"kind": "ServiceAccount", "name": "ci", "namespace": namespace})
    ci = f"system:serviceaccount:{namespace}:ci"

    # approver-a changes the model, then approves it.
    hub.apply(deployment(namespace, line, version="2.0.0"), user="approver-a")
    revision = pending(hub, namespace)["pendingApproval"]["revision"]["revision"]
    own = approve(hub, namespace, "approver-a", revision)
    _refused(own, "approver-a changed this deployment since its last approved revision",
             f"ApprovalPolicy {governed} forbids approving one's own change")

    # The CI account makes the last change (more replicas): the last writer is now someone else, but
    # approver-a's model change is still in what would be approved.
    changed = deployment(namespace, line, version="2.0.0")
    changed["spec"]["runtime"]["replicas"] = 2
    applied = hub.kubectl("--as", ci, "apply", "-f", "-", input=json.dumps(changed), check=False)
    assert applied.returncode == 0, applied.stderr
    status = pending(hub, namespace, not_revision=revision)
    assert status["pendingApproval"]["requestedBy"] == ci
    assert status["pendingApproval"]["authors"] == ["approver-a", ci]
    own = approve(hub, namespace, "approver-a")
    _refused(own, f"(changed by: approver-a, {ci})", "forbids approving one's own change")
    # The CI account cannot approve at all (no verb approve, no Approval create).
    _refused(hub.kubectl("--as", ci, "create", "-f", "-", check=False, input=json.dumps(_approval(
        namespace, hub.get("edgedeployment", "detector", "-n", namespace),
        status["pendingApproval"]["revision"]["revision"], ci))), "forbidden")
    _still_nothing_on_the_line(hub, edge_a, namespace, line)

    # Someone who changed nothing may approve it.
    other = approve(hub, namespace, "approver-b")
    assert other.returncode == 0, other.stderr
    wait_for(lambda: status_of(hub, namespace).get("phase") == "Healthy", timeout=90, what="approver-b's approval")


# --- outsiders and the cluster admin ----------------------------------------------------------------

def test_who_lacks_the_approve_verb_or_an_approver_group_cannot_approve(hub, edge_a, namespace, line):  # noqa: F811
    hub.apply(deployment(namespace, line), user="editor")
    revision = pending(hub, namespace)["pendingApproval"]["revision"]["revision"]
    obj = hub.get("edgedeployment", "detector", "-n", namespace)
    # The outsider holds no role: RBAC refuses.
    _refused(_create(hub, _approval(namespace, obj, revision, "outsider", groups=()), "outsider"), "forbidden")
    # Given create on Approvals (a careless Role) but not the verb approve: the admission policy refuses.
    hub.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": "approvals-writer", "namespace": namespace},
               "rules": [{"apiGroups": ["edgeline.io"], "resources": ["approvals", "edgedeployments"],
                          "verbs": ["get", "create"]}]})
    hub.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "approvals-writer", "namespace": namespace},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "approvals-writer"},
               "subjects": [{"kind": "User", "name": "outsider", "apiGroup": "rbac.authorization.k8s.io"}]})
    careless = _create(hub, _approval(namespace, obj, revision, "outsider", groups=()), "outsider")
    _refused(careless, f"outsider may not approve edgedeployment {namespace}/detector",
             "RBAC grants them no verb approve")
    # The cluster admin may do anything RBAC allows, but is in no approver group.
    admin = hub.kubectl("auth", "whoami", "-o", "json")
    user = json.loads(admin.stdout)["status"]["userInfo"]
    as_admin = _create(hub, _approval(namespace, obj, revision, user["username"], groups=user.get("groups", [])))
    _refused(as_admin, f"{user['username']} is not approving as a member of an approver group of edgedeployment "
                       f"detector ({APPROVERS}")
    _still_nothing_on_the_line(hub, edge_a, namespace, line)


# --- a Pod that reaches the operator's ports --------------------------------------------------------

@pytest.mark.parametrize("port", ["alerts", "metrics"])
def test_a_pod_posting_an_admission_review_to_the_operator_mints_nothing(hub, edge_a, namespace, line, operator,
                                                                          port):  # noqa: F811
    hub.apply(deployment(namespace, line), user="editor")
    status = pending(hub, namespace)
    revision = status["pendingApproval"]["revision"]["revision"]
    obj = hub.get("edgedeployment", "detector", "-n", namespace)
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": str(uuid.uuid4()), "operation": "UPDATE", "namespace": namespace, "name": "detector",
        "userInfo": {"username": "approver-a", "groups": [APPROVERS]},
        "object": {**obj, "metadata": {**obj["metadata"], "annotations": {"edgeline.io/approve": revision}}},
        "oldObject": obj}}
    # The alert receiver speaks HTTPS (its CA is the operator's); metrics are plain HTTP.
    base = {"alerts": f"https://127.0.0.1:{operator.alerts_port}", "metrics": f"http://127.0.0.1:{operator.metrics_port}"}
    context = operator.alerts_ssl() if port == "alerts" else ssl.create_default_context()
    answers = []
    for path in ("/approvals", "/authors", "/alerts", "/"):
        request = urllib.request.Request(base[port] + path, data=json.dumps(review).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10, context=context) as response:
                answers.append((path, response.status, response.read()[:200]))
        except urllib.error.HTTPError as exc:
            answers.append((path, exc.code, b""))
    # Nothing answers as an admission webhook: no AdmissionReview comes back, only refusals.
    assert all(code >= 400 for _, code, _ in answers), answers
    assert not [a for a in answers if b"AdmissionReview" in a[2]], answers
    # No webhook configuration sends the API server's requests to Edgeline at all.
    for kind in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"):
        assert not [w for w in hub.get(kind)["items"] if "edgeline" in json.dumps(w)], kind
    assert hub.get("approvals", "-n", namespace)["items"] == []
    _still_nothing_on_the_line(hub, edge_a, namespace, line)
