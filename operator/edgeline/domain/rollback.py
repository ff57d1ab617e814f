"""Automatic rollback: which alerts concern an EdgeDeployment, whether one triggers a
rollback now, and to which revision (docs/rollback.md).

Last known-good is the newest revision that ran through its guard period without a
triggering alert. When none has yet (e.g. the first revision's guard is still running), the
revision deployed before the bad one is used.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from edgeline.api.edgedeployment import EdgeDeploymentStatus, RevisionRef, RollbackPolicy, RollbackRecord
from edgeline.domain.names import some
from edgeline.timestamps import format_ms, parse

LABEL_DEPLOYMENT = "edgeline_deployment"
LABEL_NAMESPACE = "namespace"
LABEL_CLUSTER = "cluster"
LABEL_VERSION = "model_version"
LABEL_REVISION = "revision"


@dataclass(frozen=True)
class Alert:
    name: str
    labels: dict[str, str]
    fingerprint: str
    starts_at: str
    received_at: float          # epoch seconds, when the receiver got it


@dataclass(frozen=True)
class RollbackDecision:
    action: str                  # "revert", "propose", "ignore" or "refuse" (the alert is not about this deployment)
    reason: str
    message: str
    target: RevisionRef | None = None
    clusters: tuple[str, ...] | None = None     # None: every cluster


@dataclass(frozen=True)
class AutoRollback:
    """A rollback an alert asked for (`decide_rollback` said it should happen now)."""

    alert: str
    target: RevisionRef
    clusters: tuple[str, ...] | None      # None: the whole deployment
    received_at: str


@dataclass
class AlertVerdicts:
    """What this tick's alerts ask of the rollout."""

    automatic: list[AutoRollback] = field(default_factory=list)
    proposals: list[RollbackRecord] = field(default_factory=list)     # newest first, for status.rollbacks
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)


def target_of(labels: dict[str, str]) -> tuple[str, str] | None:
    """(namespace, EdgeDeployment) an alert is about, from its labels."""
    deployment, namespace = labels.get(LABEL_DEPLOYMENT), labels.get(LABEL_NAMESPACE)
    return (namespace, deployment) if deployment and namespace else None


def matches(policy: RollbackPolicy, labels: dict[str, str]) -> bool:
    for matcher in policy.alert_matchers:
        value = labels.get(matcher.name, "")
        if matcher.operator == "=" and value != matcher.value:
            return False
        if matcher.operator == "!=" and value == matcher.value:
            return False
        if matcher.operator in ("=~", "!~"):
            hit = re.fullmatch(matcher.value, value) is not None
            if hit != (matcher.operator == "=~"):
                return False
    return True


def known_good(status: EdgeDeploymentStatus, bad: str) -> RevisionRef | None:
    if status.last_known_good and status.last_known_good.revision != bad \
            and status.last_known_good.revision not in status.bad_revisions:
        return status.last_known_good
    for entry in status.history:
        rev = entry.revision.revision
        if rev != bad and rev not in status.bad_revisions and entry.outcome != "RolledBack":
            return entry.revision
    return None


def _revisions(status: EdgeDeploymentStatus) -> dict[str, RevisionRef]:
    """Every revision the status describes, by hash."""
    refs = [status.current_revision, status.last_known_good, status.rollout and status.rollout.target,
            *(entry.revision for entry in status.history), *(pin.revision for pin in status.pinned)]
    return {ref.revision: ref for ref in refs if ref is not None}


def deployed_on(status: EdgeDeploymentStatus, cluster: str | None) -> list[RevisionRef]:
    """The revisions Edgeline has put (or is putting) on a cluster: the one applied there, the
    one it is pinned to, and the rollout's target (current or pending). With cluster None:
    those of every cluster of the deployment."""
    known = _revisions(status)
    hashes = [c.revision for c in status.clusters if c.revision and (cluster is None or c.name == cluster)]
    hashes += [p.revision.revision for p in status.pinned if cluster is None or p.cluster == cluster]
    if status.rollout and status.rollout.target:
        hashes.append(status.rollout.target.revision)
    out: list[RevisionRef] = []
    for rev in dict.fromkeys(hashes):
        out.append(known.get(rev) or RevisionRef(revision=rev))
    return out


def scope_refusal(status: EdgeDeploymentStatus, alert: Alert) -> RollbackDecision | None:
    """Refuses an alert that cannot be about this deployment: it names a cluster the deployment
    is not on, or a revision / model version Edgeline never deployed on the cluster it names
    (on any of its clusters when it names none). An alert naming neither is deployment-wide and
    passes (docs/security.md, section 3)."""
    cluster = alert.labels.get(LABEL_CLUSTER)
    where = f"on cluster {cluster}" if cluster else "on any of its clusters"
    if cluster is not None:
        clusters = {c.name for c in status.clusters} | {p.cluster for p in status.pinned}
        if cluster not in clusters:
            return RollbackDecision("refuse", "AlertForOtherCluster",
                                    f"{alert.name} names cluster {cluster!r}, which this deployment does not run on "
                                    f"(its clusters: {some(sorted(clusters))})")
    deployed = deployed_on(status, cluster)
    revision = alert.labels.get(LABEL_REVISION)
    if revision is not None and revision not in {ref.revision for ref in deployed}:
        return RollbackDecision("refuse", "AlertForOtherRevision",
                                f"{alert.name} names revision {revision!r}, which Edgeline has not deployed {where}")
    version = alert.labels.get(LABEL_VERSION)
    if version is not None and version not in {ref.version for ref in deployed}:
        return RollbackDecision("refuse", "AlertForOtherRevision",
                                f"{alert.name} names model version {version!r}, which Edgeline has not deployed "
                                f"{where}")
    return None


def decide_rollback(policy: RollbackPolicy, status: EdgeDeploymentStatus, alert: Alert,
                    now: dt.datetime) -> RollbackDecision:
    if policy.mode == "Disabled":
        return RollbackDecision("ignore", "RollbackDisabled", "spec.rollback.mode is Disabled")
    refusal = scope_refusal(status, alert)
    if refusal is not None:
        return refusal
    if not matches(policy, alert.labels):
        return RollbackDecision("ignore", "AlertNotMatched", f"{alert.name} does not match spec.rollback.alertMatchers")
    progress = status.rollout
    if progress is None or progress.target is None or progress.reason == "Rollback":
        return RollbackDecision("ignore", "NothingToRollBack", "no rollout of a new revision to roll back")
    bad = progress.target
    version = alert.labels.get(LABEL_VERSION)
    if version and bad.version and version != bad.version:
        return RollbackDecision("ignore", "AlertForOtherVersion",
                                f"{alert.name} is about version {version}; the deployment rolls out {bad.version}")
    guard = parse(progress.guard_until)
    if progress.completed_at and guard and now >= guard:
        return RollbackDecision("ignore", "GuardPeriodOver",
                                f"revision {bad.revision} passed its guard period at {progress.guard_until}")
    target = known_good(status, bad.revision)
    if target is None:
        return RollbackDecision("ignore", "NoKnownGoodRevision",
                                f"{alert.name} fired but no earlier revision is known to be good")
    cluster = alert.labels.get(LABEL_CLUSTER)
    clusters = (cluster,) if policy.scope == "Cluster" and cluster else None
    where = f"on {cluster}" if clusters else "everywhere"
    if policy.mode == "Propose":
        return RollbackDecision("propose", "RollbackProposed",
                                f"{alert.name}: proposing to roll back {where} from {bad.revision} to "
                                f"{target.revision} (annotate edgeline.io/rollback-to={target.revision} to apply)",
                                target, clusters)
    return RollbackDecision("revert", "AlertFired",
                            f"{alert.name}: rolling back {where} from {bad.revision} ({bad.version}) to "
                            f"{target.revision} ({target.version})", target, clusters)


def received(epoch: float) -> str:
    """When the receiver got an alert, to the millisecond (rollback latency counts from it)."""
    return format_ms(dt.datetime.fromtimestamp(epoch, dt.timezone.utc))


def alert_verdicts(policy: RollbackPolicy, status: EdgeDeploymentStatus, alerts: list[Alert],
                   now: dt.datetime) -> AlertVerdicts:
    """Every alert received since the last tick (oldest first) against the recorded status:
    automatic rollbacks for the rollout to carry out, proposals to record, notes to post."""
    verdicts = AlertVerdicts()
    for alert in alerts:
        verdict = decide_rollback(policy, status, alert, now)
        if verdict.action == "revert":
            verdicts.automatic.append(AutoRollback(alert.name, verdict.target, verdict.clusters,
                                                   received(alert.received_at)))
        elif verdict.action == "propose":
            verdicts.proposals.insert(0, RollbackRecord(
                alert=alert.name, from_revision=status.rollout.revision, to_revision=verdict.target.revision,
                clusters=list(verdict.clusters or []), received_at=received(alert.received_at), mode="Proposed"))
            verdicts.events.append(("Warning", verdict.reason, verdict.message))
        elif verdict.action == "refuse":
            verdicts.events.append(("Warning", "AlertRefused", f"{verdict.reason}: {verdict.message}; nothing is "
                                                               "rolled back"))
        else:
            verdicts.events.append(("Normal", "AlertIgnored", f"{alert.name}: {verdict.message}"))
    return verdicts
