"""A pull site that rolled back by itself while the hub could not reach it: the rollout decision
takes the site's rollback as its own, exactly once, with the site's times."""

import datetime as dt

from edgeline.api.edgedeployment import EdgeDeploymentStatus
from edgeline.domain.rollout import Inputs, decide
from edgeline.domain.site_reports import SiteRevert, SiteRollback
from tests.unit.domain.test_rollout import REV1, REV2, SPEC, T0, WAVES, Fleet, tick


def _site_rollback(received_at):
    return SiteRollback(alert="DefectRateHigh", labels={"severity": "critical"}, fingerprint="fp",
                        starts_at="2026-11-25T10:01:00Z", received_at=received_at, from_revision=REV2.revision,
                        to_revision=REV1.revision, reverted_at=received_at + 0.4)


def _with_site(fleet, status, now, reverts):
    decision = decide(Inputs(spec=SPEC, status=status, desired=REV2, waves=WAVES, excluded=[],
                             observations=fleet.observe(), stale_after={}, approved=True, paused=False,
                             rollback_to=None, now=now, site_rollbacks=reverts))
    fleet.execute(decision.actions)
    return EdgeDeploymentStatus.model_validate(decision.status.dump()), decision


def test_the_hub_follows_a_site_rollback_during_the_guard_period_and_records_it_once():
    fleet, status = Fleet("abc"), EdgeDeploymentStatus()
    for s in range(3):
        status, _ = tick(fleet, status, T0 + dt.timedelta(seconds=s))
    for s in range(3, 6):
        status, _ = tick(fleet, status, T0 + dt.timedelta(seconds=s), desired=REV2)
    assert status.current_revision.revision == REV2.revision
    fleet.running["b"] = REV1.revision          # site b reverted itself while the hub could not see it
    received_at = (T0 + dt.timedelta(seconds=4)).timestamp()
    reverts = [SiteRevert("b", _site_rollback(received_at))]
    status, decision = _with_site(fleet, status, T0 + dt.timedelta(seconds=30), reverts)
    assert REV2.revision in status.bad_revisions
    [record] = [r for r in status.rollbacks if r.alert == "DefectRateHigh"]
    assert record.received_at == "2026-11-25T10:00:04.000Z" and record.clusters == ["b"]
    assert [p.cluster for p in status.pinned] == ["b"]      # scope Cluster (the default): only that site
    assert "SiteRolledBack" in [e[1] for e in decision.events]
    # The site keeps reporting it until the hub's acknowledgement arrives: nothing is taken twice.
    status, decision = _with_site(fleet, status, T0 + dt.timedelta(seconds=31), reverts)
    assert len([r for r in status.rollbacks if r.alert == "DefectRateHigh"]) == 1
    assert "SiteRolledBack" not in [e[1] for e in decision.events]
