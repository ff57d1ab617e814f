"""Tenancy: which hub namespaces an EdgeCluster admits, how much Pod Security a step may ask
for there, and how placement and the DataPipeline state machine act on it."""

import datetime as dt

import pytest

from edgeline.api.datapipeline import DataPipelineSpec, DataPipelineStatus
from edgeline.api.edgedeployment import Placement
from edgeline.domain.pipeline import HUB, ClusterView, Inputs, StartJob, decide
from edgeline.domain.placement import ClusterFacts, place
from edgeline.domain.tenancy import (HubNamespace, TenancyFacts, admits, effective_level, level_refusal,
                                     step_refusal)

T0 = dt.datetime(2026, 12, 5, 10, 0, tzinfo=dt.timezone.utc)
TEAM_A = HubNamespace("team-a", {"edgeline.io/tenant": "vision"})
TEAM_B = HubNamespace("team-b", {})


def facts(tenancy: dict | None) -> TenancyFacts:
    return TenancyFacts.from_spec(tenancy)


@pytest.mark.parametrize("tenancy, namespace, open_default, reason", [
    # No section: nobody, unless the operator runs with the upgrade aid.
    (None, TEAM_A, False, "NamespaceNotAllowed"),
    (None, TEAM_A, True, None),
    # Listed by name.
    ({"namespaces": ["team-a"]}, TEAM_A, False, None),
    ({"namespaces": ["team-a"]}, TEAM_B, False, "NamespaceNotAllowed"),
    # By labels; an empty selector admits every namespace (an explicit choice of the owner).
    ({"namespaceSelector": {"matchLabels": {"edgeline.io/tenant": "vision"}}}, TEAM_A, False, None),
    ({"namespaceSelector": {"matchLabels": {"edgeline.io/tenant": "vision"}}}, TEAM_B, False, "NamespaceNotAllowed"),
    ({"namespaceSelector": {}}, TEAM_B, False, None),
    # A section with neither admits nobody, whatever the upgrade aid says.
    ({"podSecurity": "baseline"}, TEAM_A, True, "NamespaceNotAllowed"),
])
def test_which_namespaces_a_cluster_admits(tenancy, namespace, open_default, reason):
    refused = admits("line-1", facts(tenancy), namespace, open_default)
    assert (refused.reason if refused else None) == reason
    if refused:
        assert "line-1" in refused.message and namespace.name in refused.message


def test_the_refusal_tells_the_user_what_to_ask_for():
    refused = admits("line-1", facts({"namespaces": ["team-b"]}), TEAM_A)
    assert refused.message == ("EdgeCluster line-1 does not admit namespace team-a (spec.tenancy lists namespaces "
                               "team-b); ask the cluster's owner to add it")


@pytest.mark.parametrize("allowed, wanted, refused", [
    ("restricted", "restricted", False), ("restricted", "baseline", True), ("restricted", "privileged", True),
    ("baseline", "baseline", False), ("baseline", "privileged", True), ("privileged", "privileged", False),
    (None, "privileged", False),     # the hub: its namespace's own Pod Security labels decide
])
def test_a_step_may_ask_for_at_most_the_clusters_level(allowed, wanted, refused):
    result = level_refusal("line-1", allowed, wanted)
    assert (result is not None) == refused
    if refused:
        assert result.reason == "PodSecurityNotAllowed" and f"asks for Pod Security {wanted}" in result.message


def test_the_default_level_is_restricted_and_admission_comes_first():
    assert effective_level(facts({"namespaces": ["team-a"]})) == "restricted"
    assert step_refusal("line-1", facts({"namespaces": ["team-a"]}), TEAM_A, "privileged").reason == \
        "PodSecurityNotAllowed"
    assert step_refusal("line-1", facts({"namespaces": ["team-a"], "podSecurity": "privileged"}), TEAM_A,
                        "privileged") is None
    assert step_refusal("line-1", facts({"namespaces": ["x"], "podSecurity": "privileged"}), TEAM_A,
                        "restricted").reason == "NamespaceNotAllowed"


def _cluster(name, tenancy):
    return ClusterFacts(name=name, labels={"line": "l1"}, reachable=True, probed=True, tenancy=facts(tenancy))


def test_placement_excludes_clusters_that_do_not_admit_the_namespace():
    placement = Placement.model_validate({"clusterSelector": {"matchLabels": {"line": "l1"}}})
    clusters = [_cluster("mine", {"namespaces": ["team-a"]}), _cluster("theirs", {"namespaces": ["team-b"]}),
                _cluster("unowned", None)]
    result = place(placement, clusters, namespace=TEAM_A)
    assert result.selected == ("mine",)
    assert {(e.name, e.reason) for e in result.excluded} == {("theirs", "NamespaceNotAllowed"),
                                                             ("unowned", "NamespaceNotAllowed")}
    assert place(placement, clusters, namespace=TEAM_A, open_without_section=True).selected == ("mine", "unowned")


def _pipeline(level="restricted"):
    return DataPipelineSpec.model_validate({"steps": [
        {"name": "collect", "cluster": "line-1", "image": "c", "podSecurity": level}]})


@pytest.mark.parametrize("view, level, reason", [
    (ClusterView(False, "no", refusal=admits("line-1", facts({"namespaces": ["x"]}), TEAM_A)), "restricted",
     "NamespaceNotAllowed"),
    (ClusterView(True, pod_security="restricted"), "privileged", "PodSecurityNotAllowed"),
    (ClusterView(True, pod_security="baseline"), "privileged", "PodSecurityNotAllowed"),
    (ClusterView(True, pod_security="privileged"), "privileged", None),
])
def test_a_refused_step_fails_with_the_reason_and_no_job_is_started(view, level, reason):
    decision = decide(Inputs(name="p", namespace="team-a", generation=1, spec=_pipeline(level),
                             status=DataPipelineStatus(), now=T0, clusters={"line-1": view, HUB: ClusterView(True)},
                             run_now="1"))
    [run] = decision.status.runs
    [step] = run.steps
    started = [a for a in decision.actions if isinstance(a, StartJob)]
    if reason is None:
        assert step.phase == "Running" and len(started) == 1
    else:
        assert step.phase == "Failed" and step.reason == reason and not started
        assert any(e[1] == "StepFailed" and reason in e[2] for e in decision.events)
