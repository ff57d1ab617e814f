"""An EdgeDeployment whose loop keeps failing says so, and a repeated Event is counted.

Given the hub refuses the operator's status writes for one deployment (a
ValidatingAdmissionPolicy stands in for any lasting API failure), when the loop ticks, then
the deployment carries Reconciled=False with reason ReconcileFailed and the error, and one
Warning Event ReconcileFailed whose series count rises with each retry instead of a new Event
per retry. When the hub accepts the writes again, the next good tick clears the condition.
"""

from __future__ import annotations

import json

from tests.e2e.conftest import wait_for

LABEL = "edgeline-test/refuse-status"


def _policy(name: str, namespace: str) -> list[dict]:
    return [
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
         "metadata": {"name": name},
         "spec": {"failurePolicy": "Fail",
                  "matchConstraints": {
                      "resourceRules": [{"apiGroups": ["edgeline.io"], "apiVersions": ["v1alpha1"],
                                         "operations": ["UPDATE"], "resources": ["edgedeployments/status"]}],
                      "objectSelector": {"matchLabels": {LABEL: namespace}}},
                  # A tick's status write records the generation it observed; reporting a failure does not.
                  "validations": [{"expression": "!has(object.status) || !has(object.status.observedGeneration)",
                                   "message": "this test refuses the operator's status writes"}]}},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
         "metadata": {"name": name}, "spec": {"policyName": name, "validationActions": ["Deny"]}},
    ]


def _deployment(name: str, namespace: str) -> dict:
    return {"apiVersion": "edgeline.io/v1alpha1", "kind": "EdgeDeployment",
            "metadata": {"name": name, "namespace": namespace, "labels": {LABEL: namespace}},
            "spec": {"modelRef": {"name": "no-such-model"},
                     "placement": {"clusterSelector": {"matchLabels": {"edgeline-test/none": "x"}}},
                     "approval": {"required": False}}}


def _condition(obj: dict, ctype: str) -> dict | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == ctype), None)


def test_a_loop_that_keeps_failing_says_so_counts_its_event_and_recovers(hub, operator, namespace):
    policy = f"edgeline-test-{namespace}"
    hub.apply(_policy(policy, namespace))
    try:
        # Wait until the API server enforces the policy: a status write like a tick's is refused.
        hub.apply(_deployment("probe", namespace))
        wait_for(lambda: hub.kubectl("patch", "edgedeployment", "probe", "-n", namespace, "--subresource=status",
                                     "--type=merge", "-p", json.dumps({"status": {"observedGeneration": 1}}),
                                     check=False).returncode != 0,
                 timeout=30, what="the policy to refuse status writes")

        hub.apply(_deployment("stuck", namespace))
        obj = wait_for(lambda: (o := hub.get("edgedeployment", "stuck", "-n", namespace))
                       and (_condition(o, "Reconciled") or {}).get("reason") == "ReconcileFailed" and o,
                       timeout=60, what="Reconciled=False on the deployment")
        failed = _condition(obj, "Reconciled")
        assert failed["status"] == "False"
        assert failed["message"].startswith("ApiError: 422")
        assert "refuses the operator's status writes" in failed["message"]
        assert "next try in" in failed["message"]

        def counted():
            found = [e for e in hub.get("events.events.k8s.io", "-n", namespace)["items"]
                     if e["regarding"]["name"] == "stuck" and e["reason"] == "ReconcileFailed"]
            return found if found and (found[0].get("series") or {}).get("count", 1) >= 3 else None

        events = wait_for(counted, timeout=60, what="the ReconcileFailed Event counted three times")
        assert len(events) == 1 and events[0]["type"] == "Warning"      # counted, not repeated
        assert failed["message"].startswith(events[0]["note"] + ";")
    finally:
        hub.kubectl("delete", "validatingadmissionpolicybinding", policy, "--ignore-not-found", check=False)
        hub.kubectl("delete", "validatingadmissionpolicy", policy, "--ignore-not-found", check=False)

    recovered = wait_for(lambda: (o := hub.get("edgedeployment", "stuck", "-n", namespace))
                         and (o.get("status") or {}).get("observedGeneration") and o,
                         timeout=90, what="a good tick once the hub accepts status again")
    assert recovered["status"]["phase"] == "Pending"
    assert _condition(recovered, "ModelResolved")["reason"] == "ModelNotFound"
    wait_for(lambda: _condition(hub.get("edgedeployment", "stuck", "-n", namespace), "Reconciled") is None,
             timeout=30, what="the ReconcileFailed condition to be cleared")
