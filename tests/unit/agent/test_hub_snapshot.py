"""One list of the site namespace's ConfigMaps gives the agent its assignments and its report."""

import pytest
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap

from edgeline.agent.hub_snapshot import from_configmaps
from edgeline.api.edgedeployment import RevisionRef
from edgeline.clusters import pull

NS = pull.site_namespace("line-9")
ASSIGNMENT = pull.Assignment("line", "detector", "line-detector", "models",
                             RevisionRef(revision="r2", version="2.0.0", digest="sha256:" + "a" * 64))


def cm(name, data, labels=None):
    return ConfigMap(metadata=ObjectMeta(name=name, namespace=NS, labels=labels), data=data)


ASSIGNED = cm(pull.assignment_name("line-detector"), {pull.ASSIGNMENT_KEY: ASSIGNMENT.to_json()},
              {pull.LABEL_ASSIGNMENT: "true"})
REPORT = cm(pull.REPORT, {"line-detector": "{}", "ack.line-detector": '["k1"]'})
ROOT_CA = cm("kube-root-ca.crt", {"ca.crt": "-----BEGIN CERTIFICATE-----"})


@pytest.mark.parametrize("items, assignments, report", [
    ([ROOT_CA, ASSIGNED, REPORT], {"line-detector": ASSIGNMENT.to_json()},
     {"line-detector": "{}", "ack.line-detector": '["k1"]'}),
    # A report with no keys yet (as the operator makes it) is a report, not a missing one.
    ([ROOT_CA, cm(pull.REPORT, None)], {}, {}),
    # No report: the hub has not prepared the site (the agent treats it as the hub out of reach).
    ([ASSIGNED], {"line-detector": ASSIGNMENT.to_json()}, None),
    # A ConfigMap without the assignment label is not an assignment, whatever it holds.
    ([cm("assignment-other", {pull.ASSIGNMENT_KEY: ASSIGNMENT.to_json()}), REPORT], {},
     {"line-detector": "{}", "ack.line-detector": '["k1"]'}),
])
def test_assignments_and_report_come_from_one_list(items, assignments, report):
    snapshot = from_configmaps(items)
    assert snapshot.assignments == assignments
    assert snapshot.report == report
    assert snapshot.unreadable == ()


def test_an_unreadable_assignment_is_named_and_left_out():
    broken = cm("assignment-broken", {pull.ASSIGNMENT_KEY: "{not json"}, {pull.LABEL_ASSIGNMENT: "true"})
    snapshot = from_configmaps([broken, ASSIGNED, REPORT])
    assert snapshot.assignments == {"line-detector": ASSIGNMENT.to_json()}
    assert [name for name, _ in snapshot.unreadable] == ["assignment-broken"]
