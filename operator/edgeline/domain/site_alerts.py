"""The alert that asked a pull site to revert, as the site keeps it: the revert done
(domain.site_reports.SiteRollback) and the revert its schedule holds (domain.site_schedule.HeldRollback)
carry the same facts about it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SiteAlertRevert:
    alert: str
    labels: dict[str, str]
    fingerprint: str
    starts_at: str
    received_at: float          # epoch seconds, when the site's receiver got the alert
    from_revision: str
    to_revision: str
