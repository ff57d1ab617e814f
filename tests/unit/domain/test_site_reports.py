"""Reports of pull sites: round trip, Lease freshness, and site rollbacks as the hub records them."""

import datetime as dt

import pytest

from edgeline.api.edgedeployment import (EdgeDeploymentStatus, HistoryEntry, RevisionRef, RollbackPolicy,
                                         RollbackRecord, RolloutProgress)
from edgeline.domain.rollback import received
from edgeline.domain.site_reports import (KEEP_ROLLBACKS, SiteRevert, SiteRollback, WorkloadReport, add_rollback,
                                          lease_fresh, site_verdicts, unheard_message)

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)


def rollback(n=0, fingerprint="f1"):
    return SiteRollback(alert="Drift", labels={"edgeline_deployment": "d", "namespace": "n"},
                        fingerprint=fingerprint, starts_at=f"2026-12-01T11:0{n}:00Z", received_at=1_764_590_000.0 + n,
                        from_revision="bad", to_revision="good", reverted_at=1_764_590_000.5 + n)


def test_a_report_survives_the_round_trip_through_the_configmap():
    report = WorkloadReport(revision="good", exists=True, ready=True, ready_replicas=1, replicas=1, since=5.0,
                            rollbacks=(rollback(),))
    assert WorkloadReport.from_json(report.to_json()) == report


def test_unknown_fields_from_a_newer_agent_are_ignored():
    assert WorkloadReport.from_json('{"revision": "r", "future": 1}').revision == "r"


def test_a_lease_counts_only_within_stale_after():
    limit = dt.timedelta(seconds=30)
    assert lease_fresh(NOW - dt.timedelta(seconds=29), NOW, limit)
    assert not lease_fresh(NOW - dt.timedelta(seconds=30), NOW, limit)
    assert not lease_fresh(None, NOW, limit)
    assert "not renewed" in unheard_message(None, NOW)
    assert "45s ago" in unheard_message(NOW - dt.timedelta(seconds=45), NOW)


def test_the_same_delivery_is_recorded_once_and_only_the_newest_are_kept():
    once = add_rollback((), rollback())
    assert add_rollback(once, rollback()) == once
    many = ()
    for n in range(KEEP_ROLLBACKS + 5):
        many = add_rollback(many, rollback(n % 10, fingerprint=f"f{n}"))
    assert len(many) == KEEP_ROLLBACKS and many[-1].fingerprint == f"f{KEEP_ROLLBACKS + 4}"


GOOD = RevisionRef(revision="good", version="1.0")
BAD = RevisionRef(revision="bad", version="1.1")


def _status(target=BAD, reason="Update", rollbacks=()):
    return EdgeDeploymentStatus(rollout=RolloutProgress(revision=target.revision, target=target, reason=reason),
                                last_known_good=GOOD, history=[HistoryEntry(revision=GOOD, outcome="KnownGood")],
                                rollbacks=list(rollbacks))


@pytest.mark.parametrize("scope, clusters", [("Cluster", ("line-7",)), ("Deployment", None)])
def test_while_the_hub_still_rolls_out_the_bad_revision_it_follows_the_site_as_on_its_own_alert(scope, clusters):
    verdicts = site_verdicts([SiteRevert("line-7", rollback())], _status(), RollbackPolicy(scope=scope))
    [auto] = verdicts.automatic
    assert auto.target == GOOD and auto.clusters == clusters
    assert auto.received_at == received(rollback().received_at)          # the site's time, not the hub's
    assert verdicts.records == [] and verdicts.events[0][1] == "SiteRolledBack"


def test_when_the_hub_has_moved_on_the_rollback_is_recorded_and_the_revision_marked_bad():
    newer = RevisionRef(revision="newer", version="1.2")
    verdicts = site_verdicts([SiteRevert("line-7", rollback())], _status(target=newer), RollbackPolicy())
    assert verdicts.automatic == [] and verdicts.bad == ["bad"]
    [record] = verdicts.records
    assert record.clusters == ["line-7"] and record.latency_ms == 500 and record.mode == "Automatic"
    assert record.received_at == received(rollback().received_at)


def test_a_rollback_already_in_status_is_not_taken_twice():
    done = RollbackRecord(alert="Drift", from_revision="bad", to_revision="good",
                          received_at=received(rollback().received_at))
    verdicts = site_verdicts([SiteRevert("line-7", rollback())], _status(rollbacks=[done]), RollbackPolicy())
    assert verdicts.automatic == [] and verdicts.records == [] and verdicts.events == []
