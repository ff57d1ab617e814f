"""MLModel status.usedBy from the EdgeDeployments' status: who uses a model, and as what."""

import pytest

from edgeline.domain.used_by import entry, uses, writes

R1 = {"revision": "aaaa000001", "mlmodel": "det-1"}
R2 = {"revision": "bbbb000002", "mlmodel": "det-2"}
R3 = {"revision": "cccc000003", "mlmodel": "det-3"}


@pytest.mark.parametrize("case, status, expected", [
    ("nothing resolved yet", {}, {}),
    ("none status", None, {}),
    ("steady: current and desired are the same model", {"currentRevision": R1, "desiredRevision": R1,
     "rollout": {"target": R1, "completedAt": "t"}}, {"det-1": ("current",)}),
    ("an update in flight", {"currentRevision": R1, "desiredRevision": R2, "rollout": {"target": R2}},
     {"det-1": ("current",), "det-2": ("pending",)}),
    ("awaiting approval: desired is pending, the rollout still targets current",
     {"currentRevision": R1, "desiredRevision": R2, "rollout": {"target": R1, "completedAt": "t"}},
     {"det-1": ("current",), "det-2": ("pending",)}),
    ("first rollout, nothing current yet", {"desiredRevision": R1, "rollout": {"target": R1}},
     {"det-1": ("pending",)}),
    ("known-good is the current one", {"currentRevision": R2, "lastKnownGood": R2},
     {"det-2": ("current", "last-known-good")}),
    ("a rollback towards the known-good in flight",
     {"currentRevision": R2, "desiredRevision": R2, "lastKnownGood": R1, "rollout": {"target": R1}},
     {"det-2": ("current",), "det-1": ("pending", "last-known-good")}),
    ("a per-cluster pin", {"currentRevision": R2, "pinned": [{"cluster": "a", "revision": R3}]},
     {"det-2": ("current",), "det-3": ("pinned",)}),
    ("a revision without an MLModel name is ignored", {"currentRevision": {"revision": "x"}}, {}),
])
def test_roles_come_from_the_deployment_status(case, status, expected):
    assert uses(status) == expected, case


def test_an_entry_names_the_deployment_and_its_roles():
    assert entry("factory", "line-1", ("current", "last-known-good")) == "factory/line-1 (current, last-known-good)"


@pytest.mark.parametrize("case, wanted, recorded, expected", [
    ("in step: nothing to write", {"m": ["ns/a (current)"]}, {"m": ("ns/a (current)",)}, {}),
    ("order does not matter", {"m": ["ns/b (current)", "ns/a (pending)"]},
     {"m": ("ns/a (pending)", "ns/b (current)")}, {}),
    ("a new user", {"m": ["ns/a (current)"]}, {"m": ()}, {"m": ["ns/a (current)"]}),
    ("a role changed", {"m": ["ns/a (current)"]}, {"m": ("ns/a (pending)",)}, {"m": ["ns/a (current)"]}),
    ("the deployment moved away or was deleted", {}, {"m": ("ns/a (current)",)}, {"m": []}),
    ("an unused model stays unwritten", {}, {"m": ()}, {}),
])
def test_only_models_whose_usedby_differs_are_written(case, wanted, recorded, expected):
    assert writes(wanted, recorded) == expected, case
