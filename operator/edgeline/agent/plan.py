"""The agent's decisions, pure: which revision a site runs for an assignment, whether a site
alert reverts a runtime to its last known-good revision without asking the hub, and when a revert
the cluster's schedule holds (`rollbacks: RespectSchedule`, domain.site_schedule) is carried out."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from edgeline.api.edgedeployment import RevisionRef, RollbackPolicy
from edgeline.domain import windows
from edgeline.domain.rollback import LABEL_CLUSTER, LABEL_REVISION, LABEL_VERSION, matches, target_of
from edgeline.domain.site_schedule import HeldRollback, SiteSchedule, rollback_gate


@dataclass(frozen=True)
class Assigned:
    """What the agent knows of one assignment (clusters.pull.Assignment, without the transport)."""

    object_name: str
    deployment_namespace: str
    deployment: str
    revision: RevisionRef
    last_known_good: RevisionRef | None
    rollback: RollbackPolicy | None
    schedule: SiteSchedule | None = None     # None: the site's rollbacks go through at once


def to_run(assigned: Assigned, reverted_here: dict[str, str]) -> RevisionRef:
    """The revision the site runs: the assigned one, unless the site itself rolled that one back
    and the hub has not acknowledged it yet (`reverted_here`: bad revision -> restored revision);
    then the known-good one it restored, so a hub that is out of date (or out of reach) cannot
    put the bad model back."""
    bad = assigned.revision.revision
    if bad in reverted_here and assigned.last_known_good is not None \
            and assigned.last_known_good.revision == reverted_here[bad]:
        return assigned.last_known_good
    return assigned.revision


@dataclass(frozen=True)
class SiteRevert:
    object_name: str
    from_revision: str
    to: RevisionRef


def revert_for(labels: dict[str, str], cluster: str, assignments: list[Assigned],
               running: dict[str, RevisionRef]) -> tuple[SiteRevert | None, str]:
    """Whether a firing site alert reverts a runtime here, and why (or why not). Same routing and
    matchers as the hub (domain.rollback); the site reverts only itself and only to the known-good
    revision it keeps."""
    target = target_of(labels)
    if target is None:
        return None, "the alert names no EdgeDeployment (edgeline_deployment and namespace labels)"
    found = next((a for a in assignments if (a.deployment_namespace, a.deployment) == target), None)
    if found is None:
        return None, f"EdgeDeployment {target[0]}/{target[1]} runs nothing on this site"
    if labels.get(LABEL_CLUSTER) not in (None, cluster):
        return None, f"the alert is about cluster {labels[LABEL_CLUSTER]!r}, not this one"
    policy = found.rollback or RollbackPolicy()
    if policy.mode != "Automatic":
        return None, f"spec.rollback.mode is {policy.mode}: the hub decides"
    if not matches(policy, labels):
        return None, "the alert does not match spec.rollback.alertMatchers"
    current = running.get(found.object_name)
    if current is None:
        return None, "the runtime is not running here yet"
    good = found.last_known_good
    if good is None or good.revision == current.revision:
        return None, "no other known-good revision to go back to"
    if labels.get(LABEL_REVISION) not in (None, current.revision):
        return None, f"the alert is about revision {labels[LABEL_REVISION]!r}, the site runs {current.revision}"
    if labels.get(LABEL_VERSION) not in (None, current.version):
        return None, f"the alert is about model version {labels[LABEL_VERSION]!r}, the site runs {current.version}"
    return SiteRevert(found.object_name, current.revision, good), \
        f"reverting {found.object_name} from {current.revision} to {good.revision}"


# --- reverts the schedule holds (spec.maintenance.rollbacks: RespectSchedule) -------------------------

def _utc(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc)


def admit(revert: SiteRevert, assignments: list[Assigned], held: dict[str, HeldRollback],
          now: dt.datetime) -> tuple[windows.Gate, str]:
    """Whether a revert `revert_for` found may happen now, and why not: the cluster's schedule
    (the gate the hub asks before its own rollbacks there), and one held revert per runtime."""
    waiting = held.get(revert.object_name)
    if waiting is not None:
        return windows.Gate(False, waiting.reason, waiting.message), \
            f"a revert of {revert.object_name} is already held (since {_utc(waiting.since):%Y-%m-%dT%H:%M:%SZ}): " \
            f"{waiting.message}"
    found = next((a for a in assignments if a.object_name == revert.object_name), None)
    gate = rollback_gate(found.schedule if found else None, now)
    if gate.allowed:
        return gate, ""
    return gate, f"holding the revert of {revert.object_name} from {revert.from_revision} to " \
                 f"{revert.to.revision} ({gate.reason}): {gate.message}"


@dataclass(frozen=True)
class Release:
    """What becomes of a held revert this cycle: "revert" now, "hold" on, or "drop" it (moot)."""

    action: str
    held: HeldRollback | None
    why: str
    to: RevisionRef | None = None


def release(held: HeldRollback, assigned: Assigned | None, running: RevisionRef | None,
            now: dt.datetime) -> Release:
    """A held revert goes ahead once the schedule allows it, if it still means the same thing:
    the site still runs the revision the alert was about, and the assignment still names the same
    known-good revision (the hub may have rolled back, or moved on, meanwhile)."""
    if assigned is None:
        return Release("drop", None, f"the held revert from {held.from_revision}: the runtime is no longer assigned")
    if running is None or running.revision != held.from_revision:
        return Release("drop", None, f"the held revert of {assigned.object_name}: the site no longer runs "
                                     f"{held.from_revision}")
    good = assigned.last_known_good
    if good is None or good.revision != held.to_revision:
        return Release("drop", None, f"the held revert of {assigned.object_name}: the hub's assignment no longer "
                                     f"falls back on {held.to_revision}")
    gate = rollback_gate(assigned.schedule, now, _utc(held.since), held.reason)
    if gate.allowed:
        return Release("revert", held, f"the schedule allows the held revert of {assigned.object_name} from "
                                       f"{held.from_revision} to {held.to_revision} now", good)
    return Release("hold", held.regated(gate), gate.message or "")
