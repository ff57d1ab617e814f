"""An EdgeDeployment's conditions from what the rollout decided, and its phase from those
conditions (one function each way, so `kubectl get` and the conditions never disagree).

  ModelResolved  the modelRef names a Ready MLModel
  Approved       the revision to roll out is approved (or needs no approval)
  Progressing    True while a revision moves out (WaveProgressing) or back (RollingBack, until
                 the restored revision runs where it was sent); False says why not: NoRevision,
                 WaveFailed, Paused, RolledBack or RolloutComplete
  Available      at least one cluster serves (False: WaveFailed, NoClusterReady)
  Ready          the revision runs and is ready on every selected cluster
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from edgeline.api.conditions import get_condition, set_condition
from edgeline.api.edgedeployment import EdgeDeploymentStatus
from edgeline.domain.approval_status import REVERTED
from edgeline.domain.names import some
from edgeline.timestamps import parse

# Progressing=False reason -> phase; RolloutComplete is Healthy or Degraded by the Ready condition.
_STOPPED = {"NoRevision": "Pending", "WaveFailed": "Degraded", "Paused": "Paused", "RolledBack": "RolledBack"}


@dataclass(frozen=True)
class Verdict:
    ok: bool | None             # None: Unknown
    reason: str
    message: str


@dataclass(frozen=True)
class Facts:
    """What the conditions are made from, besides the status the rollout decided."""

    model: Verdict                  # ModelResolved, from domain.model_choice
    held_reason: str | None         # why the desired revision is held back (AwaitingApproval, RolledBack)
    paused: bool
    now: dt.datetime
    generation: int | None


def progressing(status: EdgeDeploymentStatus, paused: bool, now: dt.datetime) -> Verdict:
    progress = status.rollout
    if progress is None or progress.revision is None:
        return Verdict(False, "NoRevision", "no revision has been rolled out yet")
    restored = {p.revision.revision for p in status.pinned} | ({progress.revision} if progress.reason == "Rollback"
                                                                 else set())
    unsettled = [r for r in status.rollbacks if r.mode in REVERTED and not r.applied_at and r.to_revision in restored]
    if unsettled:
        # RolledBack only once the restored revision runs where it was sent (then the revert has a latency).
        return Verdict(True, "RollingBack", f"reverting {some(unsettled[0].clusters, none='every cluster')} to "
                                            f"revision {unsettled[0].to_revision}")
    if status.pinned:
        where = some(p.cluster for p in status.pinned)
        return Verdict(False, "RolledBack", f"{where} rolled back to {status.pinned[0].revision.revision}; the "
                                            f"rollout of {progress.revision} is halted until a new revision")
    if progress.failed_message:
        return Verdict(False, "WaveFailed", progress.failed_message)
    if progress.completed_at is None:
        if paused and progress.soak_until and now >= parse(progress.soak_until):
            return Verdict(False, "Paused", f"paused after wave {progress.wave_name} (edgeline.io/pause)")
        return Verdict(True, "RollingBack" if progress.reason == "Rollback" else "WaveProgressing",
                       f"wave {progress.wave_name} of revision {progress.revision}")
    if progress.reason == "Rollback":
        return Verdict(False, "RolledBack", f"revision {progress.revision} was restored")
    return Verdict(False, "RolloutComplete", f"revision {progress.revision} reached every selected cluster")


def approved(status: EdgeDeploymentStatus, held_reason: str | None) -> Verdict:
    desired = status.desired_revision
    if desired is None:
        return Verdict(None, "NoDesiredRevision", "nothing to approve until the model is resolved")
    if held_reason == "AwaitingApproval":
        return Verdict(False, "AwaitingApproval", f"revision {desired.revision} waits for approval")
    if held_reason == "RolledBack" and status.approval != "NotRequired":
        return Verdict(False, "ReapprovalRequired", f"revision {desired.revision} was rolled back; it returns only "
                                                    "with an approval given after the rollback")
    if status.approval == "NotRequired":
        return Verdict(True, "NotRequired", "the approval policy does not require approval")
    return Verdict(True, "Approved", "the revision being rolled out is approved")


def available(status: EdgeDeploymentStatus) -> Verdict:
    progress = status.rollout
    if progress and progress.failed_message:
        return Verdict(False, "WaveFailed", progress.failed_message)
    return Verdict((status.ready_clusters or 0) > 0 or status.total_clusters == 0,
                   "ClustersReady" if status.ready_clusters else "NoClusterReady", f"{status.ready} clusters ready")


def ready(status: EdgeDeploymentStatus, facts: Facts, moving: Verdict) -> Verdict:
    progress = status.rollout
    done = not moving.ok and moving.reason in ("RolloutComplete", "RolledBack")
    # A deployment that waits for approval of its next revision is not Ready yet.
    ok = done and status.ready_clusters == status.total_clusters and facts.held_reason != "AwaitingApproval"
    if progress and progress.revision:
        message = f"{status.ready} clusters run revision {progress.revision}"
    else:
        message = facts.model.message
    if facts.held_reason:
        message = f"{facts.held_reason}: {message}"
    if ok:
        reason = "AllClustersReady"
    elif facts.held_reason == "AwaitingApproval":
        reason = "AwaitingApproval"
    elif not facts.model.ok and not (progress and progress.revision):
        reason = facts.model.reason
    elif done:
        reason = "ClustersNotReady"
    else:
        reason = moving.reason
    return Verdict(ok, reason, message)


def conditions(previous: list[dict], status: EdgeDeploymentStatus, facts: Facts) -> list[dict]:
    """The conditions after this tick; the ones not named here (another writer's) are kept."""
    result = previous

    def put(ctype: str, verdict: Verdict) -> None:
        nonlocal result
        status = "Unknown" if verdict.ok is None else "True" if verdict.ok else "False"
        result = set_condition(result, ctype, status, verdict.reason, verdict.message,
                               generation=facts.generation, now=facts.now)

    moving = progressing(status, facts.paused, facts.now)
    put("ModelResolved", facts.model)
    put("Approved", approved(status, facts.held_reason))
    put("Progressing", moving)
    put("Available", available(status))
    put("Ready", ready(status, facts, moving))
    return result


def phase_of(conditions: list[dict]) -> str:
    """The one place a phase comes from."""
    approval = get_condition(conditions, "Approved")
    if approval is not None and approval["status"] == "False" and approval["reason"] == "AwaitingApproval":
        return "AwaitingApproval"
    moving = get_condition(conditions, "Progressing")
    if moving is None:
        return "Pending"
    if moving["status"] == "True":
        return "Progressing"
    if moving["reason"] in _STOPPED:
        return _STOPPED[moving["reason"]]
    done = get_condition(conditions, "Ready")
    return "Healthy" if done is not None and done["status"] == "True" else "Degraded"
