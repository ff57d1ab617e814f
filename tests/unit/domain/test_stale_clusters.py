"""A cluster whose EdgeCluster is Stale keeps what it runs but starts no new revision until it
is fresh again; it is reported with the reason ClusterStale and counts as unavailable."""

import datetime as dt

import pytest

from edgeline.api.edgedeployment import EdgeDeploymentSpec, EdgeDeploymentStatus, Placement, RevisionRef, Runtime
from edgeline.domain.placement import ClusterFacts, place
from edgeline.domain.rollout import Apply, Inputs, Observation, decide
from edgeline.domain.waves import WavePlan

T0 = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.timezone.utc)
REV1 = RevisionRef(revision="aaaa000001", mlmodel="m-1", version="1", digest="sha256:1", runtime=Runtime())
REV2 = RevisionRef(revision="bbbb000002", mlmodel="m-2", version="2", digest="sha256:2", runtime=Runtime())
STALE = "the EdgeCluster is Stale"


def _spec(max_unavailable=0):
    return EdgeDeploymentSpec.model_validate({
        "modelRef": {"name": "m-1"}, "placement": {"clusterSelector": {"matchLabels": {"site": "x"}}},
        "approval": {"required": False},
        "rollout": {"waveTimeoutSeconds": 60, "soakSeconds": 0, "maxUnavailable": max_unavailable},
        "rollback": {"guardSeconds": 100}})


@pytest.mark.parametrize("facts, selected, stale, excluded", [
    (ClusterFacts("a", {"site": "x"}, probed=True, reachable=True), ("a",), (), ()),
    (ClusterFacts("a", {"site": "x"}, probed=True, stale=True), ("a",), ("a",), ()),
    (ClusterFacts("a", {"site": "y"}, probed=True, stale=True), (), (), ()),        # not selected: not reported
    (ClusterFacts("a", {"site": "x"}, tier="hub", stale=True), (), (), ("TierNotAllowed",)),
])
def test_placement_keeps_a_stale_cluster_selected_and_names_it(facts, selected, stale, excluded):
    placement = Placement.model_validate({"clusterSelector": {"matchLabels": {"site": "x"}},
                                          "requirements": {"tiers": ["edge"]}})
    result = place(placement, [facts])
    assert result.selected == selected
    assert tuple(e.name for e in result.stale) == stale
    assert all(e.reason == "ClusterStale" and e.message for e in result.stale)
    assert tuple(e.reason for e in result.excluded) == excluded


def _obs(running, down=()):
    return {n: Observation(n, reachable=False, message="connection refused") if n in down else
            Observation(n, reachable=True, exists=rev is not None, revision=rev, replicas=1, ready_replicas=1,
                        ready=True) for n, rev in running.items()}


def _tick(status, running, stale, now, desired=REV1, waves=(WavePlan("all", ("a", "b"), 0),), max_unavailable=0,
          down=(), rollback_to=None):
    return decide(Inputs(spec=_spec(max_unavailable), status=status, desired=desired, waves=list(waves),
                         excluded=[], observations=_obs(running, down), stale_after={}, approved=True, paused=False,
                         rollback_to=rollback_to, now=now, stale={n: STALE for n in stale}))


@pytest.mark.parametrize("case, running, stale, down, max_unavailable, applied, phases, complete", [
    ("fresh fleet: both get the revision", {"a": None, "b": None}, (), (), 0, {"a", "b"},
     {"a": "Progressing", "b": "Progressing"}, False),
    ("stale but answering: no new revision, waits", {"a": None, "b": None}, ("b",), (), 0, {"a"},
     {"a": "Progressing", "b": "Pending"}, False),
    ("stale and frozen: stays Unreachable, says why", {"a": None, "b": None}, ("b",), ("b",), 0, {"a"},
     {"a": "Progressing", "b": "Unreachable"}, False),
    ("stale cluster already runs the goal: Ready, nothing to do", {"a": REV1.revision, "b": REV1.revision},
     ("b",), (), 0, set(), {"a": "Ready", "b": "Ready"}, True),
    ("stale counts as unavailable: maxUnavailable 1 lets the rest complete", {"a": REV1.revision, "b": None},
     ("b",), (), 1, set(), {"a": "Ready", "b": "Pending"}, True),
    ("stale counts as unavailable: maxUnavailable 0 holds the wave", {"a": REV1.revision, "b": None},
     ("b",), (), 0, set(), {"a": "Ready", "b": "Pending"}, False),
])
def test_a_stale_cluster_starts_no_new_revision(case, running, stale, down, max_unavailable, applied, phases,
                                                 complete):
    d = _tick(EdgeDeploymentStatus(), running, stale, T0, max_unavailable=max_unavailable, down=down)
    assert {a.cluster for a in d.actions if isinstance(a, Apply)} == applied, case
    assert {c.name: c.phase for c in d.status.clusters} == phases, case
    for c in d.status.clusters:
        assert (c.message or "").startswith("ClusterStale: ") == (c.name in stale and c.phase != "Ready"), case
    assert (d.status.current_revision is not None) == complete, case


def test_a_stale_cluster_is_picked_up_when_fresh_and_a_held_wave_fails_with_the_reason():
    running = {"a": None, "b": None}
    d = _tick(EdgeDeploymentStatus(), running, ("b",), T0)
    running["a"] = REV1.revision
    status = EdgeDeploymentStatus.model_validate(d.status.dump())
    d = _tick(status, running, ("b",), T0 + dt.timedelta(seconds=61))
    assert d.actions == [] and d.status.rollout.failed_clusters == ["b"]
    assert "b: ClusterStale: " in d.status.rollout.failed_message
    status = EdgeDeploymentStatus.model_validate(d.status.dump())
    d = _tick(status, running, (), T0 + dt.timedelta(seconds=70))          # fresh again
    assert [(a.cluster, a.revision.revision) for a in d.actions] == [("b", REV1.revision)]


def test_a_rollback_still_reaches_a_stale_cluster_that_answers():
    running = {"a": REV2.revision, "b": REV2.revision}
    status = EdgeDeploymentStatus.model_validate(
        _tick(EdgeDeploymentStatus(), {"a": REV1.revision, "b": REV1.revision}, (), T0).status.dump())
    status = EdgeDeploymentStatus.model_validate(
        _tick(status, running, (), T0 + dt.timedelta(seconds=1), desired=REV2).status.dump())
    assert status.current_revision.revision == REV2.revision
    d = _tick(status, running, ("b",), T0 + dt.timedelta(seconds=2), desired=REV2, rollback_to=REV1.revision)
    assert {(a.cluster, a.revision.revision) for a in d.actions} == {("a", REV1.revision), ("b", REV1.revision)}
