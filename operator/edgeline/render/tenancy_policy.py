"""The ValidatingAdmissionPolicy that refuses, at admission, a DataPipeline step naming an
EdgeCluster that does not admit the pipeline's namespace or allows less Pod Security than the
step asks for (domain.tenancy says the same thing to the controllers, in the same words).

The policy's params are the EdgeClusters themselves (paramKind; the binding selects every one):
the API server evaluates it once per EdgeCluster, and each evaluation looks only at the steps
naming that cluster. Only spec changes are checked, so the operator's own writes (finalizers,
alert annotations) never meet it. Placement of an EdgeDeployment is a label selector that
clusters may join later, so it is checked by the controller only (domain.placement)."""

from __future__ import annotations

NAME = "edgeline-datapipeline-tenancy"
LEVELS = "{'restricted': 0, 'baseline': 1, 'privileged': 2}"


def _selector_matches(selector: str) -> str:
    """CEL: the label selector at `selector` matches the labels of the request's namespace."""
    labels = "namespaceObject.metadata.labels"

    def has_key(key: str) -> str:
        return f"(has({labels}) && {key} in {labels})"
    values = "(has(e.values) ? e.values : [])"
    return (f"((!has({selector}.matchLabels) || {selector}.matchLabels.all(k, {has_key('k')} && "
            f"{labels}[k] == {selector}.matchLabels[k])) && "
            f"(!has({selector}.matchExpressions) || {selector}.matchExpressions.all(e, "
            f"e.operator == 'In' ? ({has_key('e.key')} && {labels}[e.key] in {values}) : "
            f"e.operator == 'NotIn' ? !({has_key('e.key')} && {labels}[e.key] in {values}) : "
            f"e.operator == 'Exists' ? {has_key('e.key')} : !{has_key('e.key')})))")


def policy(open_without_section: bool = False) -> list[dict]:
    """The policy and its binding (operator-managed, like the webhook configuration)."""
    tenancy = "params.spec.tenancy"
    admitted = (f"has({tenancy}) ? ((has({tenancy}.namespaces) && request.namespace in {tenancy}.namespaces) || "
                f"(has({tenancy}.namespaceSelector) && {_selector_matches(tenancy + '.namespaceSelector')}))"
                f" : {'true' if open_without_section else 'false'}")
    return [{
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": NAME, "labels": {"app.kubernetes.io/part-of": "edgeline"}},
        "spec": {
            "failurePolicy": "Fail",
            "paramKind": {"apiVersion": "edgeline.io/v1alpha1", "kind": "EdgeCluster"},
            "matchConstraints": {"resourceRules": [{
                "apiGroups": ["edgeline.io"], "apiVersions": ["v1alpha1"], "operations": ["CREATE", "UPDATE"],
                "resources": ["datapipelines"]}]},
            "matchConditions": [{"name": "spec-changed",
                                 "expression": "oldObject == null || object.spec != oldObject.spec"}],
            "variables": [
                {"name": "steps", "expression": "object.spec.steps.filter(s, has(s.cluster) && "
                                                "s.cluster == params.metadata.name)"},
                {"name": "admitted", "expression": admitted},
                {"name": "allowed", "expression": f"has({tenancy}) && has({tenancy}.podSecurity) ? "
                                                  f"{tenancy}.podSecurity : 'restricted'"},
            ],
            "validations": [
                {"expression": "size(variables.steps) == 0 || variables.admitted", "reason": "Forbidden",
                 "messageExpression": "'EdgeCluster ' + params.metadata.name + ' does not admit namespace ' + "
                                      "request.namespace + ' (spec.tenancy), so step ' + variables.steps[0].name + "
                                      "' may not run there; ask the cluster owner to add the namespace'"},
                {"expression": f"variables.steps.all(s, {LEVELS}[has(s.podSecurity) ? s.podSecurity : "
                               f"'restricted'] <= {LEVELS}[variables.allowed])", "reason": "Forbidden",
                 "messageExpression": f"'step ' + variables.steps.filter(s, {LEVELS}[has(s.podSecurity) ? "
                                      f"s.podSecurity : 'restricted'] > {LEVELS}[variables.allowed])[0].name + "
                                      f"' asks for more Pod Security than EdgeCluster ' + params.metadata.name + "
                                      f"' allows (at most ' + variables.allowed + ', spec.tenancy.podSecurity)'"},
            ],
        },
    }, {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": NAME, "labels": {"app.kubernetes.io/part-of": "edgeline"}},
        "spec": {"policyName": NAME, "validationActions": ["Deny"],
                 "paramRef": {"selector": {}, "parameterNotFoundAction": "Allow"}},
    }]
