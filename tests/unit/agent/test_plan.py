"""The agent's pure decisions: what a site runs, and when a site alert reverts it by itself."""

import pytest

from edgeline.agent.plan import Assigned, revert_for, to_run
from edgeline.api.edgedeployment import AlertMatcher, RevisionRef, RollbackPolicy

GOOD = RevisionRef(revision="good", version="1.0", digest="sha256:" + "a" * 64)
BAD = RevisionRef(revision="bad", version="1.1", digest="sha256:" + "b" * 64)
ROUTE = {"edgeline_deployment": "detector", "namespace": "line"}


def assigned(revision=BAD, good=GOOD, policy=None):
    return Assigned("line-detector", "line", "detector", revision, good, policy)


def test_a_site_runs_what_the_hub_assigned():
    assert to_run(assigned(), {}) == BAD


def test_a_revision_the_site_reverted_stays_off_until_the_hub_has_recorded_it():
    assert to_run(assigned(), {"bad": "good"}) == GOOD


def test_a_new_assignment_after_the_revert_is_run():
    newer = RevisionRef(revision="newer", version="1.2")
    assert to_run(assigned(revision=newer), {"bad": "good"}) == newer


@pytest.mark.parametrize("labels, reason", [
    ({}, "names no EdgeDeployment"),
    ({"edgeline_deployment": "other", "namespace": "line"}, "runs nothing on this site"),
    ({**ROUTE, "cluster": "line-8"}, "not this one"),
    ({**ROUTE, "revision": "good"}, "the site runs bad"),
    ({**ROUTE, "model_version": "0.9"}, "the site runs 1.1"),
])
def test_alerts_that_are_not_about_what_runs_here_revert_nothing(labels, reason):
    revert, why = revert_for(labels, "line-7", [assigned()], {"line-detector": BAD})
    assert revert is None and reason in why


def test_a_matching_alert_reverts_the_site_to_its_known_good_revision():
    revert, _ = revert_for({**ROUTE, "cluster": "line-7", "alertname": "Drift"}, "line-7", [assigned()],
                           {"line-detector": BAD})
    assert revert is not None and revert.from_revision == "bad" and revert.to == GOOD


def test_matchers_and_mode_are_the_hubs():
    strict = RollbackPolicy(alert_matchers=[AlertMatcher(name="severity", operator="=", value="critical")])
    assert revert_for({**ROUTE, "severity": "warning"}, "line-7", [assigned(policy=strict)],
                      {"line-detector": BAD})[0] is None
    assert revert_for({**ROUTE, "severity": "critical"}, "line-7", [assigned(policy=strict)],
                      {"line-detector": BAD})[0] is not None
    propose = RollbackPolicy(mode="Propose")
    assert "the hub decides" in revert_for(ROUTE, "line-7", [assigned(policy=propose)], {"line-detector": BAD})[1]


def test_a_second_delivery_after_the_revert_changes_nothing():
    revert, why = revert_for(ROUTE, "line-7", [assigned()], {"line-detector": GOOD})
    assert revert is None and "no other known-good" in why


def test_without_a_known_good_revision_nothing_is_reverted():
    assert revert_for(ROUTE, "line-7", [assigned(good=None)], {"line-detector": BAD})[0] is None


# --- reverts the schedule holds (rollbacks: RespectSchedule) ---------------------------------------

import datetime as dt  # noqa: E402

from edgeline.agent.plan import admit, release  # noqa: E402
from edgeline.domain import windows  # noqa: E402
from edgeline.domain.site_schedule import SiteSchedule, hold, rollback_gate  # noqa: E402

NIGHT = SiteSchedule((windows.Window("0 2 * * *", 60, "UTC"),))
DAY = dt.datetime(2026, 12, 6, 10, 0, tzinfo=dt.timezone.utc)
NIGHT_TIME = dt.datetime(2026, 12, 7, 2, 30, tzinfo=dt.timezone.utc)


def scheduled(schedule=NIGHT, revision=BAD, good=GOOD):
    return Assigned("line-detector", "line", "detector", revision, good, None, schedule)


def held_revert(now=DAY):
    gate = rollback_gate(NIGHT, now)
    return hold("DefectRateHigh", ROUTE, "f1", "2026-12-06T09:59:00Z", now.timestamp() - 1, "bad", "good", gate,
                now.timestamp())


@pytest.mark.parametrize("assignment, now, held, allowed, said", [
    (scheduled(schedule=None), DAY, {}, True, ""),                      # rollbacks: Immediate
    (scheduled(), NIGHT_TIME, {}, True, ""),                             # inside the window
    (scheduled(), DAY, {}, False, "holding the revert of line-detector from bad to good (WaitingForWindow)"),
    (scheduled(), DAY, {"line-detector": held_revert()}, False, "already held"),   # one hold per runtime
])
def test_a_site_revert_waits_for_the_clusters_schedule(assignment, now, held, allowed, said):
    revert, _ = revert_for(ROUTE, "line-7", [assignment], {"line-detector": BAD})
    gate, why = admit(revert, [assignment], held, now)
    assert gate.allowed is allowed and said in why


@pytest.mark.parametrize("assignment, running, now, action, said", [
    (scheduled(), BAD, DAY, "hold", "opens at 2026-12-07T02:00:00Z"),
    (scheduled(), BAD, NIGHT_TIME, "revert", "allows the held revert"),
    # The window opened by an edit of the EdgeCluster: the hub published the new definition.
    (scheduled(schedule=SiteSchedule((windows.Window("0 10 * * *", 60, "UTC"),))), BAD, DAY, "revert", "allows"),
    (scheduled(schedule=None), BAD, DAY, "revert", "allows"),            # switched to Immediate
    (None, BAD, NIGHT_TIME, "drop", "no longer assigned"),
    (scheduled(), GOOD, NIGHT_TIME, "drop", "no longer runs bad"),       # the hub rolled back meanwhile
    (scheduled(good=RevisionRef(revision="other")), BAD, NIGHT_TIME, "drop", "no longer falls back on good"),
])
def test_a_held_revert_is_carried_out_when_the_schedule_allows_and_only_if_it_still_means_the_same(
        assignment, running, now, action, said):
    step = release(held_revert(), assignment, running, now)
    assert step.action == action and said in step.why
    if action == "revert":
        assert step.to == GOOD and step.held.received_at == held_revert().received_at
    if action == "hold":
        assert step.held.reason == windows.WAITING_FOR_WINDOW
