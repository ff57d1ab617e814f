"""What the hub tells a pull site besides the revision to run (docs/edge-autonomy.md): the metric
checks the site measures (`domain.site_checks`), where its Prometheus is as the EdgeCluster names
it, and the schedule its own rollbacks respect (`domain.site_schedule`).

The hub writes them under their own key of the assignment ConfigMap and rewrites them when they
change; the site reports the digest of the terms it holds, so the hub writes only when the site
holds something else (`stale`). Pure.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from edgeline.domain.site_checks import SiteCheck
from edgeline.domain.site_schedule import SiteSchedule


@dataclass(frozen=True)
class SiteTerms:
    checks: tuple[SiteCheck, ...] = ()
    prometheus_url: str | None = None       # EdgeCluster spec.monitoring.prometheusUrl (the agent's flag wins)
    schedule: SiteSchedule | None = None    # None: the site's rollbacks go through at once

    def dump(self) -> dict:
        return {"checks": [c.dump() for c in self.checks], "prometheusUrl": self.prometheus_url,
                "schedule": self.schedule.dump() if self.schedule else None}

    def to_json(self) -> str:
        return json.dumps(self.dump(), sort_keys=True)

    @classmethod
    def load(cls, data: dict | None) -> SiteTerms:
        data = data or {}
        return cls(tuple(SiteCheck.load(c) for c in data.get("checks") or ()), data.get("prometheusUrl") or None,
                   SiteSchedule.load(data["schedule"]) if data.get("schedule") else None)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


def stale(reported_digest: str | None, wanted: SiteTerms) -> bool:
    """Whether the hub must write the terms again: the site reports holding other ones."""
    return reported_digest != wanted.digest
