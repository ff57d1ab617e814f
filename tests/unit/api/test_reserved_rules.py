"""The reserved-name rules reach the generated CRDs where a user writes (spec) and nowhere the
operator writes (status), so that revisions kept in status are never re-checked. The rules'
effect is shown on a real API server by tests/e2e/invalid/55-58."""

from edgeline.api.crdgen import crd
from edgeline.api.datapipeline import DataPipeline
from edgeline.api.edgedeployment import EdgeDeployment
from edgeline.api.reserved import env_rule, keys_rule


def _schema(kind) -> dict:
    return crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]


def _rules_anywhere(node) -> list:
    found = []
    if isinstance(node, dict):
        found += node.get("x-kubernetes-validations", [])
        for value in node.values():
            found += _rules_anywhere(value)
    elif isinstance(node, list):
        for value in node:
            found += _rules_anywhere(value)
    return found


def test_the_env_rule_binds_each_runtime_variable_in_spec_and_nothing_in_status():
    schema = _schema(EdgeDeployment)
    item = schema["spec"]["properties"]["runtime"]["properties"]["env"]["items"]
    assert env_rule() in item["x-kubernetes-validations"]
    assert env_rule() not in _rules_anywhere(schema["status"])


def test_the_key_rules_bind_step_pod_annotations_and_candidate_labels():
    spec = _schema(DataPipeline)["spec"]["properties"]
    step = spec["steps"]["items"]["properties"]
    assert keys_rule("podAnnotations") in step["podAnnotations"]["x-kubernetes-validations"]
    assert keys_rule("labels") in spec["produces"]["properties"]["labels"]["x-kubernetes-validations"]
