"""Shards of EdgeClusters across operator replicas, the decisions alone (controllers.sharding
reads and writes the Leases; docs/decisions.md, "sharding").

- An EdgeCluster belongs to shard `crc32(name) mod N`: stable across processes, restarts and
  Python versions (Python's own `hash()` of a string is salted per process), and it depends
  on the cluster's name alone, so adding a cluster never moves another one.
- Shard i is held through the Lease `edgeline-shard-<i>` with the leader election's timings.
- Which shards a replica tries to hold (`plan`): its fair share, ceil(N / live replicas). A
  replica is live when it holds an unexpired shard Lease, or asks for one (`wanted-by`). A
  replica below its share takes free or expired shards first; when none are free it asks the
  replica holding the most shards for one, and that replica hands it over on its next renewal.
  So a killed replica's shards are taken once its Leases expire, and a new replica gets its
  share within two retry periods.
- What the holder of the leader Lease (the single writer of deployment-level status) cannot
  do itself, because the cluster is in a shard it does not hold, it hands off in status; the
  cluster's holder applies it and reports what it observes back (`Handoff`, `Report`)."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

from edgeline.domain.rollout import ActOutcome, Apply, Observation, Remove
from edgeline.domain.runtime_health import RuntimeProblem

LEASE_PREFIX = "edgeline-shard-"


def shard_of(name: str, shards: int) -> int:
    """The shard of the EdgeCluster `name` (0 when there is one shard)."""
    if shards <= 1:
        return 0
    return zlib.crc32(name.encode()) % shards


def lease_name(index: int, prefix: str = LEASE_PREFIX) -> str:
    return f"{prefix}{index}"


@dataclass(frozen=True)
class ShardView:
    """One shard Lease as a replica sees it now. `holder` is None when nobody holds it or its
    holder let it expire (on our clock, domain.leases); `wanted_by`, a replica that asked for it
    recently."""

    index: int
    holder: str | None = None
    wanted_by: str | None = None


@dataclass(frozen=True)
class Plan:
    keep: tuple[int, ...] = ()          # renew
    take: tuple[int, ...] = ()          # free or expired: try to take
    release: tuple[int, ...] = ()       # more than our share, and someone asks: hand over
    want: int | None = None             # below our share, nothing free: ask for this one


def fair_share(shards: int, live: int) -> int:
    return math.ceil(shards / max(1, live))


def plan(me: str, views: list[ShardView]) -> Plan:
    """What `me` does with the shard Leases this round (see the module's docstring)."""
    views = sorted(views, key=lambda v: v.index)
    live = {v.holder for v in views if v.holder} | {v.wanted_by for v in views if v.wanted_by} | {me}
    share = fair_share(len(views), len(live))
    mine = [v.index for v in views if v.holder == me]
    if len(mine) > share:
        asked = [v.index for v in views if v.holder == me and v.wanted_by not in (None, me)]
        release = tuple(asked[:len(mine) - share])
        return Plan(keep=tuple(i for i in mine if i not in release), release=release)
    free = [v.index for v in views if v.holder is None]
    take = tuple(free[:share - len(mine)])
    want = None
    if len(mine) + len(take) < share:
        held: dict[str, list[int]] = {}
        for v in views:
            if v.holder and v.holder != me:
                held.setdefault(v.holder, []).append(v.index)
        richest = sorted(held.items(), key=lambda item: (-len(item[1]), item[0]))
        if richest and len(richest[0][1]) > share:
            want = richest[0][1][-1]
    return Plan(keep=tuple(mine), take=take, want=want)


# --- the hand-off between the deployment's writer and the clusters' holders ------------------

@dataclass(frozen=True)
class Split:
    local: list            # actions this replica carries out itself
    handed_off: list       # actions for clusters in shards it does not hold


def split(actions: list[Apply | Remove], holds) -> Split:
    """`holds(cluster) -> bool`: whether this replica holds that cluster's shard now."""
    local = [a for a in actions if holds(a.cluster)]
    return Split(local, [a for a in actions if not holds(a.cluster)])


def reported_observation(cluster: str, report: dict | None, now: float, max_age_s: float,
                         shard: int) -> Observation:
    """A cluster in another replica's shard, as its holder last reported it in status
    (`status.shardReports[shard].clusters[]`, camelCase). A report older than `max_age_s` says
    nothing any more: the cluster counts as unreachable until a live holder reports again."""
    if report is None:
        return Observation(cluster, reachable=False, message=f"waiting for the holder of shard {shard} to report")
    age = now - float(report.get("observedAt") or 0)
    if age > max_age_s:
        return Observation(cluster, reachable=False,
                           message=f"the holder of shard {shard} has not reported for {age:.0f} s")
    problem = report.get("problem")
    return Observation(
        cluster, reachable=bool(report.get("reachable")), exists=bool(report.get("exists")),
        revision=report.get("revision"), ready_replicas=int(report.get("readyReplicas") or 0),
        replicas=int(report.get("replicas") or 0), ready=bool(report.get("ready")), message=report.get("message"),
        problem=RuntimeProblem(problem["reason"], problem.get("message", ""), problem.get("pod", ""),
                               bool(problem.get("fatal")), problem.get("restarts"), problem.get("lastLog"))
        if problem else None)


def reported_outcome(cluster: str, report: dict | None) -> ActOutcome | None:
    """What the holder's last write to the cluster came to, as the next tick's observation."""
    applied = (report or {}).get("applied")
    if not applied:
        return None
    return ActOutcome(cluster, applied.get("revision"), float(applied["at"]), applied.get("error"))


def report_of(observation: Observation, outcome: ActOutcome | None, observed_at: float) -> dict:
    """One cluster's entry in a shard report (the inverse of the two functions above)."""
    entry = {"name": observation.name, "observedAt": round(observed_at, 3), "reachable": observation.reachable,
             "exists": observation.exists, "revision": observation.revision,
             "readyReplicas": observation.ready_replicas, "replicas": observation.replicas,
             "ready": observation.ready, "message": observation.message}
    if observation.problem is not None:
        p = observation.problem
        entry["problem"] = _set({"reason": p.reason, "message": p.message, "pod": p.pod, "fatal": p.fatal,
                                 "restarts": p.restarts, "lastLog": p.last_log})
    if outcome is not None:
        entry["applied"] = _set({"revision": outcome.revision, "at": round(outcome.at, 3), "error": outcome.error})
    return _set(entry)


def _set(values: dict) -> dict:
    return {k: v for k, v in values.items() if v is not None}


def wanted_value(me: str, now: float) -> str:
    """The `edgeline.io/wanted-by` annotation a replica below its share writes on a shard Lease."""
    return f"{me} {now:.0f}"


def wanter(value: str | None, now: float, duration_s: int) -> str | None:
    """Who asked for the shard, if they asked within the last two lease durations (wall clocks:
    a late answer only delays a hand-over, it never makes two holders)."""
    if not value or " " not in value:
        return None
    who, _, at = value.rpartition(" ")
    try:
        asked = float(at)
    except ValueError:
        return None
    return who if who and now - asked <= 2 * duration_s else None
