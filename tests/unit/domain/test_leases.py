"""Leader election decisions: who may take the Lease, and when a silent holder counts as gone."""

import datetime as dt

import pytest

from edgeline.domain.leases import LeaseRecord, Sighting, claimed, may_take, observe, released

WALL = dt.datetime(2026, 12, 5, 23, 0, tzinfo=dt.timezone.utc)
HELD = LeaseRecord(holder="a", duration_s=15, acquire_time="2026-12-05T22:00:00.000000Z",
                   renew_time="2026-12-05T22:59:58.000000Z", transitions=3)


@pytest.mark.parametrize("sighting, me, now, allowed", [
    (None, "b", 0.0, True),                                            # no Lease yet
    (Sighting(LeaseRecord(holder=None), 0.0), "b", 0.0, True),         # released
    (Sighting(HELD, 100.0), "a", 100.0, True),                         # our own: renew
    (Sighting(HELD, 100.0), "b", 114.0, False),                        # renewed 14 s ago (by our clock)
    (Sighting(HELD, 100.0), "b", 115.5, True),                         # silent for longer than its duration
])
def test_who_may_take_the_lease(sighting, me, now, allowed):
    assert may_take(sighting, me, now) is allowed


def test_the_clock_restarts_only_when_the_record_changes():
    first = observe(None, HELD, 100.0)
    assert observe(first, HELD, 200.0) is first          # unchanged: still silent since 100
    renewed = LeaseRecord(**{**HELD.__dict__, "renew_time": "2026-12-05T23:00:01.000000Z"})
    assert observe(first, renewed, 200.0).changed_at == 200.0
    # Clocks that disagree do not matter: the holder's renewTime is never compared with ours.
    assert not may_take(observe(first, renewed, 200.0), "b", 210.0)


def test_taking_over_counts_a_transition_and_renewing_keeps_the_acquire_time():
    taken = claimed(HELD, "b", 15, WALL)
    assert taken["holderIdentity"] == "b" and taken["leaseTransitions"] == 4
    assert taken["acquireTime"] == taken["renewTime"] == "2026-12-05T23:00:00.000000Z"
    renewed = claimed(HELD, "a", 15, WALL)
    assert renewed["acquireTime"] == HELD.acquire_time and renewed["leaseTransitions"] == 3
    assert claimed(None, "a", 15, WALL)["leaseTransitions"] == 0


def test_a_released_lease_names_nobody_so_the_next_replica_takes_it_at_once():
    spec = released(HELD, WALL)
    assert spec["holderIdentity"] is None and spec["leaseDurationSeconds"] == 1
    assert may_take(Sighting(LeaseRecord.from_spec(spec), 0.0), "b", 0.0)
