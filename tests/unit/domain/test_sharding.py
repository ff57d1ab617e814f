"""Shards of EdgeClusters: which shard a cluster is in, which shard Leases a replica holds, and
the hand-off between the deployment's writer and the clusters' holders."""

import zlib

import pytest

from edgeline.api.edgedeployment import RevisionRef
from edgeline.domain.rollout import ActOutcome, Apply, Observation, Remove
from edgeline.domain.runtime_health import RuntimeProblem
from edgeline.domain.sharding import (Plan, ShardView, fair_share, lease_name, plan, report_of, reported_observation,
                                      reported_outcome, shard_of, split, wanted_value, wanter)


@pytest.mark.parametrize("name, shards, expected", [
    ("line-1", 1, 0),
    ("line-1", 2, zlib.crc32(b"line-1") % 2),
    ("line-2", 2, zlib.crc32(b"line-2") % 2),
    ("munich-press-7", 5, zlib.crc32(b"munich-press-7") % 5),
])
def test_a_cluster_is_in_the_shard_of_its_names_crc32(name, shards, expected):
    assert shard_of(name, shards) == expected


def test_the_shard_of_a_cluster_is_stable_and_spreads_the_fleet():
    names = [f"site-{i}" for i in range(1000)]
    first = [shard_of(n, 4) for n in names]
    assert first == [shard_of(n, 4) for n in names]          # the same in every process (no salted hash())
    counts = [first.count(i) for i in range(4)]
    assert min(counts) > 200 and max(counts) < 300            # roughly even: 250 each
    assert lease_name(3) == "edgeline-shard-3"


@pytest.mark.parametrize("shards, live, share", [(2, 1, 2), (2, 2, 1), (2, 3, 1), (5, 2, 3), (4, 0, 4)])
def test_fair_share(shards, live, share):
    assert fair_share(shards, live) == share


def views(*holders, wanted=None):
    wanted = wanted or {}
    return [ShardView(i, h, wanted.get(i)) for i, h in enumerate(holders)]


@pytest.mark.parametrize("me, shards, expected", [
    # alone at start: everything is free, our share is everything
    ("a", views(None, None), Plan(take=(0, 1))),
    # renew our own
    ("a", views("a", "a"), Plan(keep=(0, 1))),
    # b joins while a holds both: nothing is free, b asks the replica holding the most
    ("b", views("a", "a"), Plan(want=1)),
    # a sees b's request: it hands over shard 1 and keeps shard 0
    ("a", views("a", "a", wanted={1: "b"}), Plan(keep=(0,), release=(1,))),
    # a released it: b takes it; a (at its share) does not take it back
    ("b", views("a", None), Plan(take=(1,))),
    ("a", views("a", None, wanted={1: "b"}), Plan(keep=(0,))),
    # balanced: both keep theirs
    ("a", views("a", "b"), Plan(keep=(0,))),
    ("b", views("a", "b"), Plan(keep=(1,))),
    # b was killed: its Lease expired (seen as held by nobody), a takes it over
    ("a", views("a", None), Plan(keep=(0,), take=(1,))),
    # a third replica with nothing to ask for (nobody holds more than the share of 1)
    ("c", views("a", "b"), Plan()),
    # 4 shards, 2 replicas: share 2 each; c (third) asks the richest replica (a, 3 shards)
    ("c", views("a", "a", "a", "b"), Plan(want=2)),
    # our own old request stays on a Lease we hold now: it is not someone else's
    ("b", views("a", "b", wanted={1: "b"}), Plan(keep=(1,))),
])
def test_which_shards_a_replica_holds(me, shards, expected):
    assert plan(me, shards) == expected


def test_a_killed_replicas_shards_go_to_the_survivor_and_back_when_a_new_one_asks():
    # a holds 0, b held 1 and was killed; on a's clock b's Lease expired
    assert plan("a", views("a", None)) == Plan(keep=(0,), take=(1,))
    # b restarted as b2: it asks a (now holding both) for one, a hands it over, b2 takes it
    assert plan("b2", views("a", "a")) == Plan(want=1)
    assert plan("a", views("a", "a", wanted={1: "b2"})).release == (1,)
    assert plan("b2", views("a", None, wanted={1: "b2"})).take == (1,)


@pytest.mark.parametrize("value, now, who", [
    (None, 100.0, None),
    ("b 95", 100.0, "b"),
    ("b 69", 100.0, None),              # older than two lease durations (2 x 15 s)
    ("replica-b_1f2e 100", 100.0, "replica-b_1f2e"),
    ("garbage", 100.0, None),
    ("b soon", 100.0, None),
])
def test_a_request_for_a_shard_counts_while_it_is_recent(value, now, who):
    assert wanter(value, now, 15) == who


def test_the_request_is_read_as_written():
    assert wanter(wanted_value("replica-b", 1000.4), 1001.0, 15) == "replica-b"


REV = RevisionRef(revision="r1", mlmodel="m", model="m", version="1.0.0", digest="sha256:" + "0" * 64, uri="x")


def test_actions_are_split_by_who_holds_the_cluster():
    actions = [Apply("a-1", REV), Apply("b-1", REV), Remove("b-2"), Remove("a-2")]
    out = split(actions, lambda c: c.startswith("a-"))
    assert out.local == [Apply("a-1", REV), Remove("a-2")]
    assert out.handed_off == [Apply("b-1", REV), Remove("b-2")]


def test_a_report_reads_back_as_the_observation_and_outcome_it_was_made_from():
    problem = RuntimeProblem("CrashLoopBackOff", "back-off", "rt-1", False, 3, "boom")
    seen = Observation("b-1", reachable=True, exists=True, revision="r1", ready_replicas=0, replicas=1,
                       ready=False, message="starting", problem=problem)
    outcome = ActOutcome("b-1", "r1", 990.0)
    report = report_of(seen, outcome, 1000.0)
    assert "error" not in report["applied"]                # nothing unset is written
    assert reported_observation("b-1", report, 1005.0, 30, 1) == seen
    assert reported_outcome("b-1", report) == outcome
    assert reported_outcome("b-1", report_of(seen, None, 1000.0)) is None


@pytest.mark.parametrize("report, now, reachable, message", [
    (None, 1000.0, False, "waiting for the holder of shard 1 to report"),
    ({"name": "b-1", "observedAt": 900.0, "reachable": True}, 1000.0, False,
     "the holder of shard 1 has not reported for 100 s"),
    ({"name": "b-1", "observedAt": 990.0, "reachable": True}, 1000.0, True, None),
    ({"name": "b-1", "observedAt": 990.0, "reachable": False, "message": "connection refused"}, 1000.0, False,
     "connection refused"),
])
def test_a_missing_or_old_report_counts_as_unreachable(report, now, reachable, message):
    seen = reported_observation("b-1", report, now, 30, 1)
    assert (seen.reachable, seen.message) == (reachable, message)
