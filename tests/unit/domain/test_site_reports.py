"""Reports of pull sites: round trip, Lease freshness, and site rollbacks as the hub records them."""

import datetime as dt

from edgeline.domain.rollback import received
from edgeline.domain.site_reports import (KEEP_ROLLBACKS, SiteRollback, WorkloadReport, add_rollback, lease_fresh,
                                          unheard_message, unrecorded_alerts)

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


def test_site_rollbacks_reach_the_decision_as_alerts_with_their_original_time():
    report = WorkloadReport(revision="good", rollbacks=(rollback(),))
    [alert] = unrecorded_alerts("line-7", report, set())
    assert alert.received_at == rollback().received_at
    assert alert.labels["cluster"] == "line-7" and alert.labels["revision"] == "bad"


def test_a_rollback_already_recorded_is_not_fed_again():
    report = WorkloadReport(revision="good", rollbacks=(rollback(),))
    assert unrecorded_alerts("line-7", report, {received(rollback().received_at)}) == []
    assert unrecorded_alerts("line-7", None, set()) == []
