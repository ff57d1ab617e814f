"""The leader's side of the shard hand-off: what goes into status.handoff, and how the holders'
reports read back as observations (each write's outcome only once)."""

import time

import pytest

from edgeline.api.edgedeployment import EdgeDeploymentStatus, RevisionRef
from edgeline.controllers import shard_work, sharding
from edgeline.domain.rollout import Apply, Remove

REV = RevisionRef(revision="r2", mlmodel="detector-2.0.0", model="detector", version="2.0.0",
                  digest="sha256:" + "1" * 64, uri="http://127.0.0.1/2.onnx")


class TwoShards:
    """Stands in for controllers.sharding.Shards: clusters named b-* are in shard 1, the rest in 0."""

    def shard(self, cluster: str) -> int:
        return 1 if cluster.startswith("b-") else 0


@pytest.fixture
def sharded(monkeypatch):
    monkeypatch.setattr(sharding, "_shards", TwoShards())
    yield
    shard_work.forget("ns", "detector")


def test_one_shard_hands_nothing_off_and_writes_no_hand_off_field():
    assert sharding.active() is None and sharding.holds("anything")
    status = EdgeDeploymentStatus(phase="Healthy")
    assert shard_work.handoff([Apply("b-1", REV)]) is None
    assert "handoff" not in shard_work.status_with_handoff(status, None)


def test_the_hand_off_names_each_cluster_and_the_whole_revision(sharded):
    entries = shard_work.handoff([Remove("b-2"), Apply("b-1", REV)])
    assert entries == [{"cluster": "b-1", "action": "Apply", "revision": REV.dump()},
                       {"cluster": "b-2", "action": "Remove"}]
    dumped = shard_work.status_with_handoff(EdgeDeploymentStatus(phase="Progressing"), entries)
    assert EdgeDeploymentStatus.model_validate(dumped).handoff[0].revision == REV      # the CRD's model accepts it
    assert "handoff" not in shard_work.status_with_handoff(EdgeDeploymentStatus.model_validate(dumped), None)


def test_a_candidate_in_shadow_travels_with_the_hand_off(sharded):
    # Without it the shard's holder would apply the served revision alone, detach the candidate,
    # and the leader would ask for it again every tick.
    candidate = REV.model_copy(update={"revision": "r3", "version": "3.0.0"})
    entries = shard_work.handoff([Apply("b-1", REV, shadow=candidate)])
    assert entries[0]["shadow"] == candidate.dump()
    dumped = shard_work.status_with_handoff(EdgeDeploymentStatus(phase="AwaitingApproval"), entries)
    assert EdgeDeploymentStatus.model_validate(dumped).handoff[0].shadow == candidate


def test_reports_read_back_per_shard_and_a_writes_outcome_counts_once(sharded):
    now = time.time()
    status = {"shardReports": {"1": {"holder": "replica-b", "clusters": [
        {"name": "b-1", "observedAt": now, "reachable": True, "exists": True, "revision": "r2", "ready": True,
         "readyReplicas": 1, "replicas": 1, "applied": {"revision": "r2", "at": now - 1}}]}}}
    seen, outcomes = shard_work.remote_observations(status, {"b-1", "b-9"}, "ns", "detector")
    assert seen["b-1"].ready and seen["b-1"].revision == "r2"
    assert not seen["b-9"].reachable and "shard 1" in seen["b-9"].message
    assert set(outcomes) == {"b-1"}
    # The next tick reads the same report: the write is not an outcome again.
    assert shard_work.remote_observations(status, {"b-1"}, "ns", "detector")[1] == {}
