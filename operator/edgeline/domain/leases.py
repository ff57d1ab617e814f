"""Leader election on a coordination.k8s.io Lease, the decisions alone (controllers.leadership
does the reading and writing). As in client-go: a Lease held by someone else counts as
expired only after its leaseDurationSeconds have passed on OUR clock since we last saw the
record change, so clocks that disagree between replicas never hand over early."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from edgeline.timestamps import format_micro


@dataclass(frozen=True)
class LeaseRecord:
    """The parts of a Lease's spec that election reads."""

    holder: str | None = None
    duration_s: int = 15
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0

    @classmethod
    def from_spec(cls, spec: dict | None) -> "LeaseRecord":
        spec = spec or {}
        return cls(spec.get("holderIdentity") or None, int(spec.get("leaseDurationSeconds") or 15),
                   spec.get("acquireTime"), spec.get("renewTime"), int(spec.get("leaseTransitions") or 0))


@dataclass(frozen=True)
class Sighting:
    """A record as we last saw it, and when it last changed (our monotonic clock, seconds)."""

    record: LeaseRecord
    changed_at: float


def observe(previous: Sighting | None, record: LeaseRecord, now: float) -> Sighting:
    """The sighting after reading `record` at `now`: the clock restarts only when the record changed."""
    if previous is not None and previous.record == record:
        return previous
    return Sighting(record, now)


def may_take(sighting: Sighting | None, me: str, now: float) -> bool:
    """Whether `me` may write itself into the Lease now: nobody holds it, we do, or the
    holder has not renewed for longer than its lease duration (as we have watched it)."""
    if sighting is None or not sighting.record.holder or sighting.record.holder == me:
        return True
    return now - sighting.changed_at > sighting.record.duration_s


def claimed(record: LeaseRecord | None, me: str, duration_s: int, wall: dt.datetime) -> dict:
    """The Lease spec that takes or renews the lease for `me` at wall-clock time `wall`."""
    stamp = format_micro(wall)
    if record is not None and record.holder == me:
        return {"holderIdentity": me, "leaseDurationSeconds": duration_s, "acquireTime": record.acquire_time or stamp,
                "renewTime": stamp, "leaseTransitions": record.transitions}
    transitions = (record.transitions + 1) if record is not None and record.holder else \
        (record.transitions if record is not None else 0)
    return {"holderIdentity": me, "leaseDurationSeconds": duration_s, "acquireTime": stamp, "renewTime": stamp,
            "leaseTransitions": transitions}


def released(record: LeaseRecord, wall: dt.datetime) -> dict:
    """What a leader that stops on purpose writes: no holder, so the next one takes over at once."""
    stamp = format_micro(wall)
    return {"holderIdentity": None, "leaseDurationSeconds": 1, "acquireTime": record.acquire_time,
            "renewTime": stamp, "leaseTransitions": record.transitions}
