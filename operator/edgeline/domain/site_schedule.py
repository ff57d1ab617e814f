"""A pull site's own rollbacks under `spec.maintenance.rollbacks: RespectSchedule`
(docs/edge-autonomy.md, "Rollbacks that respect the schedule").

The hub publishes the EdgeCluster's maintenance definition with each assignment (`of`): the
windows and the line-consent rule, not a yes/no computed on the hub, because the WAN may be down
when the site needs the answer. The site asks the same `domain.windows.gate` the hub asks before
a rollback (`rollback_gate`); while it says no, the revert is held (`HeldRollback`, kept in the
site's state file and shown in its report with the reason) and tried again every cycle.

The line-idle signal (the Lease the line's MES/PLC bridge renews) lives on the hub, which the
site may not reach: the site never assumes the line is idle, so under line consent a held revert
waits for `lineConsent.timeoutSeconds` and then follows `onTimeout` (Proceed: revert; Skip or
Fail: stays held, and says so).

Pure: no clients, only data in and data out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

from edgeline.domain import windows
from edgeline.domain.site_alerts import SiteAlertRevert


@dataclass(frozen=True)
class SiteSchedule:
    """What the site needs to decide when its own rollbacks may happen."""

    windows: tuple[windows.Window, ...] = ()
    consent: windows.LineConsent | None = None

    def dump(self) -> dict:
        return {"windows": [{"schedule": w.schedule, "minutes": w.minutes, "timeZone": w.time_zone}
                            for w in self.windows],
                "lineConsent": {"timeoutSeconds": self.consent.timeout_seconds, "onTimeout": self.consent.on_timeout}
                if self.consent else None}

    @classmethod
    def load(cls, data: dict) -> SiteSchedule:
        consent = data.get("lineConsent")
        return cls(tuple(windows.Window(w["schedule"], int(w["minutes"]), w.get("timeZone") or "UTC")
                         for w in data.get("windows") or ()),
                   windows.LineConsent(int(consent["timeoutSeconds"]), consent["onTimeout"]) if consent else None)


def of(maintenance) -> SiteSchedule | None:
    """From the EdgeCluster's `spec.maintenance` (api.edgecluster.Maintenance): None when the
    site's rollbacks go through at once (no maintenance, or `rollbacks: Immediate`)."""
    if maintenance is None or maintenance.rollbacks != "RespectSchedule":
        return None
    consent = maintenance.line_consent
    return SiteSchedule(windows.windows_of(maintenance.windows),
                        windows.LineConsent(consent.timeout_seconds, consent.on_timeout) if consent else None)


def rollback_gate(schedule: SiteSchedule | None, now: dt.datetime, waiting_since: dt.datetime | None = None,
                  waiting_reason: str | None = None) -> windows.Gate:
    """Whether the site may revert now: the hub's gate for a rollback on that cluster, with the
    line counted as busy (the site cannot see its signal)."""
    if schedule is None:
        return windows.Gate(True)
    facts = windows.LineFacts(windows=schedule.windows, consent=schedule.consent, idle=False, rollbacks_wait=True)
    return windows.gate(facts, (), now, rollback=True, waiting_since=waiting_since, waiting_reason=waiting_reason)


@dataclass(frozen=True)
class HeldRollback(SiteAlertRevert):
    """A site rollback the schedule holds: the alert that asked for it and why it waits."""

    since: float                # epoch seconds, when the hold began
    reason: str                 # WaitingForWindow, WaitingForLineIdle, LineIdleTimeout, WindowInvalid
    message: str
    until: float | None = None  # when the window opens (or the wait for the line gives up), if known

    def dump(self) -> dict:
        return asdict(self)

    @classmethod
    def load(cls, data: dict) -> HeldRollback:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def regated(self, gate: windows.Gate) -> HeldRollback:
        """The same hold with the gate's latest reason and message."""
        return HeldRollback(self.alert, self.labels, self.fingerprint, self.starts_at, self.received_at,
                            self.from_revision, self.to_revision,
                            gate.since.timestamp() if gate.since else self.since, gate.reason or self.reason,
                            gate.message or self.message, gate.until.timestamp() if gate.until else None)


def hold(alert: str, labels: dict[str, str], fingerprint: str, starts_at: str, received_at: float,
         from_revision: str, to_revision: str, gate: windows.Gate, now: float) -> HeldRollback:
    return HeldRollback(alert, dict(labels), fingerprint, starts_at, received_at, from_revision, to_revision,
                        gate.since.timestamp() if gate.since else now, gate.reason or windows.WAITING_FOR_WINDOW,
                        gate.message or "waits for the cluster's schedule",
                        gate.until.timestamp() if gate.until else None)
