"""What a pull site (docs/edge-autonomy.md) tells the hub, and what the hub makes of it.

A pull site's agent writes one report per EdgeDeployment it runs (in the report ConfigMap of
its hub namespace) and renews a Lease. The hub never calls the site: it judges the site by
the Lease (heard from within staleAfterSeconds, or not) and reads the workload's state from
the report. Rollbacks the site did on its own travel in the report until the hub recorded
them; the hub feeds each one to the rollout decision as the alert that caused it, with its
original time, so that the revision is marked bad exactly as if the hub had reverted it.

Pure: no clients, only data in and data out.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field

from edgeline.domain.rollback import LABEL_CLUSTER, LABEL_REVISION, Alert, received

KEEP_ROLLBACKS = 20          # per deployment in a report; the hub keeps as many records in status


@dataclass(frozen=True)
class SiteRollback:
    """A revert the agent did by itself on a matching alert."""

    alert: str
    labels: dict[str, str]
    fingerprint: str
    starts_at: str
    received_at: float          # epoch seconds, when the site's receiver got the alert
    from_revision: str
    to_revision: str
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
    rollbacks: tuple[SiteRollback, ...] = field(default=())

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> WorkloadReport:
        data = json.loads(text)
        rollbacks = tuple(SiteRollback(**r) for r in data.pop("rollbacks", []) or [])
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known, rollbacks=rollbacks)


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


def unrecorded_alerts(cluster: str, report: WorkloadReport | None, recorded_received_at: set[str]
                      ) -> list[Alert]:
    """The site's own rollbacks the hub has not recorded yet, as the alerts that caused them
    (received at the site's time; labelled with the cluster and the reverted revision, so the
    decision scopes them to that cluster and refuses one about a revision no longer deployed)."""
    if report is None:
        return []
    alerts = []
    for rollback in report.rollbacks:
        if received(rollback.received_at) in recorded_received_at:
            continue
        labels = {**rollback.labels, LABEL_CLUSTER: cluster, LABEL_REVISION: rollback.from_revision}
        alerts.append(Alert(name=rollback.alert, labels=labels, fingerprint=rollback.fingerprint,
                            starts_at=rollback.starts_at, received_at=rollback.received_at))
    return alerts
