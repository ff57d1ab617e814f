"""What a pull site (docs/edge-autonomy.md) tells the hub, and what the hub makes of it.

A pull site's agent writes one report per EdgeDeployment it runs (in the report ConfigMap of
its hub namespace) and renews a Lease. The hub never calls the site: it judges the site by
the Lease (heard from within staleAfterSeconds, or not) and reads the workload's state from
the report. Rollbacks the site did on its own travel in the report until the hub recorded
them; the rollout decision takes each one as the rollback the hub would have done on that alert,
dated when the site received it, so that the revision is marked bad exactly as if the hub had
reverted it (`site_verdicts`).

Pure: no clients, only data in and data out.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field

from edgeline.api.edgedeployment import EdgeDeploymentStatus, RevisionRef, RollbackPolicy, RollbackRecord
from edgeline.domain.rollback import AutoRollback, received
from edgeline.domain.site_alerts import SiteAlertRevert
from edgeline.domain.site_checks import SiteCheckResult
from edgeline.domain.site_schedule import HeldRollback

KEEP_ROLLBACKS = 20          # per deployment in a report; the hub keeps as many records in status


@dataclass(frozen=True)
class SiteRollback(SiteAlertRevert):
    """A revert the agent did by itself on a matching alert."""

    reverted_at: float          # epoch seconds, when the site's runtime was switched back

    @property
    def key(self) -> str:
        """One per delivery of one alert (Alertmanager delivers at least once)."""
        return f"{self.fingerprint}@{self.starts_at}"


@dataclass(frozen=True)
class WorkloadReport:
    """One EdgeDeployment's runtime on the site, as its agent last saw it."""

    revision: str | None = None
    exists: bool = False
    ready: bool = False
    ready_replicas: int = 0
    replicas: int = 0
    message: str | None = None
    since: float | None = None          # epoch seconds: when the site switched to `revision`
    observed_at: float = 0.0
    assigned: str | None = None         # the assignment's revision the agent last saw
    owner_uid: str | None = None        # the EdgeDeployment uid of the assignment it runs
    rollbacks: tuple[SiteRollback, ...] = field(default=())
    checks: tuple[SiteCheckResult, ...] = field(default=())   # the site's newest metric check results
    held: tuple[HeldRollback, ...] = field(default=())        # site rollbacks its schedule holds
    terms: str | None = None            # digest of the terms (checks, schedule) the site holds

    def to_json(self) -> str:
        data = asdict(self)
        data["checks"] = [c.dump() for c in self.checks]
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> WorkloadReport:
        data = json.loads(text)
        rollbacks = tuple(SiteRollback(**r) for r in data.pop("rollbacks", []) or [])
        checks = tuple(SiteCheckResult.load(c) for c in data.pop("checks", []) or [])
        held = tuple(HeldRollback.load(h) for h in data.pop("held", []) or [])
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known, rollbacks=rollbacks, checks=checks, held=held)


def lease_fresh(renew_time: dt.datetime | None, now: dt.datetime, stale_after: dt.timedelta) -> bool:
    """Whether the site was heard from recently enough for its reports to count as current."""
    return renew_time is not None and now - renew_time < stale_after


def unheard_message(renew_time: dt.datetime | None, now: dt.datetime) -> str:
    if renew_time is None:
        return "the site's agent has not renewed its Lease on the hub yet (not joined, or never connected)"
    return f"the site's agent last renewed its Lease {int((now - renew_time).total_seconds())}s ago"


def add_rollback(rollbacks: tuple[SiteRollback, ...], new: SiteRollback) -> tuple[SiteRollback, ...]:
    """The site's records with `new` appended once (a duplicate delivery adds nothing), newest kept."""
    if any(r.key == new.key for r in rollbacks):
        return rollbacks
    return (*rollbacks, new)[-KEEP_ROLLBACKS:]


@dataclass(frozen=True)
class SiteRevert:
    """One rollback a pull site did by itself, as the rollout decision receives it."""

    cluster: str
    rollback: SiteRollback


@dataclass
class SiteVerdicts:
    automatic: list[AutoRollback] = field(default_factory=list)     # the hub follows, as on its own alert
    records: list[RollbackRecord] = field(default_factory=list)     # the hub had moved on: recorded only
    bad: list[str] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)


def recorded(status: EdgeDeploymentStatus, revert: SiteRevert) -> bool:
    at = received(revert.rollback.received_at)
    return any(r.received_at == at and r.alert == revert.rollback.alert for r in status.rollbacks)


def site_verdicts(reverts: list[SiteRevert], status: EdgeDeploymentStatus, policy: RollbackPolicy
                  ) -> SiteVerdicts:
    """What the hub makes of rollbacks its pull sites did while it could not be asked (oldest
    first): when the hub still rolls out the reverted revision, the same rollback it would have
    done on that alert (scope and all), dated when the site received the alert; when it has moved
    on since (a newer change, a rollback of its own), the record alone, and the revision marked bad.
    A rollback status already records is not taken again."""
    out = SiteVerdicts()
    progress = status.rollout
    for revert in sorted(reverts, key=lambda r: r.rollback.received_at):
        if recorded(status, revert):
            continue
        site = revert.rollback
        out.events.append(("Warning", "SiteRolledBack",
                           f"{site.alert}: cluster {revert.cluster} rolled back by itself from {site.from_revision} "
                           f"to {site.to_revision} at {received(site.reverted_at)}"))
        if progress is not None and progress.revision == site.from_revision and progress.reason != "Rollback":
            target = _revision(status, site.to_revision)
            clusters = (revert.cluster,) if policy.scope == "Cluster" else None
            out.automatic.append(AutoRollback(site.alert, target, clusters, received(site.received_at)))
            continue
        if site.from_revision not in status.bad_revisions and site.from_revision not in out.bad:
            out.bad.append(site.from_revision)
        out.records.append(RollbackRecord(
            alert=site.alert, from_revision=site.from_revision, to_revision=site.to_revision,
            clusters=[revert.cluster], received_at=received(site.received_at),
            applied_at=received(site.reverted_at), latency_ms=int((site.reverted_at - site.received_at) * 1000),
            mode="Automatic"))
    return out


def _revision(status: EdgeDeploymentStatus, revision: str) -> RevisionRef:
    refs = [status.current_revision, status.last_known_good, status.desired_revision,
            *(h.revision for h in status.history), *(p.revision for p in status.pinned)]
    return next((r for r in refs if r is not None and r.revision == revision), RevisionRef(revision=revision))
