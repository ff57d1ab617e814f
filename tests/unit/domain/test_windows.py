"""Maintenance windows and the line's consent as pure decisions: tables of instants in real
zones, daylight saving time included, and what a cluster waits for and until when."""

import datetime as dt

import pytest

from edgeline.domain import windows
from edgeline.domain.windows import Gate, LineConsent, LineFacts, Window, gate, line_idle, openness

UTC = dt.timezone.utc


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC) if "+" not in text else dt.datetime.fromisoformat(text)


# Shift changes Monday to Friday in Berlin: 05:45, 13:45 and 21:45 for 30 minutes.
SHIFTS = (Window("45 5,13,21 * * 1-5", 30, "Europe/Berlin"),)
NIGHT = (Window("0 22 * * *", 480, "Europe/Berlin"),)          # 22:00 to 06:00, across midnight


@pytest.mark.parametrize("windows_, now, open_, edge", [
    # Winter (CET = UTC+1): 05:45 Berlin is 04:45 UTC.
    (SHIFTS, "2026-12-07T04:50:00", True, "2026-12-07T05:15:00"),             # Monday, inside
    (SHIFTS, "2026-12-07T05:15:00", False, "2026-12-07T12:45:00"),            # the end is exclusive
    (SHIFTS, "2026-12-07T04:44:59", False, "2026-12-07T04:45:00"),            # a second before it opens
    (SHIFTS, "2026-12-05T12:00:00", False, "2026-12-07T04:45:00"),            # Saturday: next is Monday
    # Summer (CEST = UTC+2): the same wall-clock time is an hour earlier in UTC.
    (SHIFTS, "2026-07-06T03:50:00", True, "2026-07-06T04:15:00"),
    # Across midnight: open at 01:00 Berlin, closes at 06:00 Berlin.
    (NIGHT, "2026-12-08T00:00:00", True, "2026-12-08T05:00:00"),
    (NIGHT, "2026-12-08T06:00:00", False, "2026-12-08T21:00:00"),
    # Spring forward (2026-03-29, 02:00 -> 03:00 in Berlin): 02:30 does not exist and opens at
    # 03:00 CEST (01:00 UTC); the window lasts 60 real minutes.
    ((Window("30 2 * * *", 60, "Europe/Berlin"),), "2026-03-29T00:30:00", False, "2026-03-29T01:00:00"),
    ((Window("30 2 * * *", 60, "Europe/Berlin"),), "2026-03-29T01:59:00", True, "2026-03-29T02:00:00"),
    # Fall back (2026-10-25, 03:00 -> 02:00): 02:30 happens twice and opens once, at the first
    # (00:30 UTC); 60 minutes later it is closed, although the wall clock shows 02:30 again.
    ((Window("30 2 * * *", 60, "Europe/Berlin"),), "2026-10-25T00:00:00", False, "2026-10-25T00:30:00"),
    ((Window("30 2 * * *", 60, "Europe/Berlin"),), "2026-10-25T01:30:00", False, "2026-10-26T01:30:00"),
    # A two-hour window over the fall-back night lasts two real hours (01:00 CEST + 120 min).
    ((Window("0 1 * * *", 120, "Europe/Berlin"),), "2026-10-24T23:59:00", True, "2026-10-25T01:00:00"),
    # Two windows whose occurrences touch form one opening.
    ((Window("0 8 * * *", 60, "UTC"), Window("0 9 * * *", 60, "UTC")), "2026-12-07T08:30:00", True,
     "2026-12-07T10:00:00"),
])
def test_when_the_cluster_windows_are_open_and_when_they_close_or_open(windows_, now, open_, edge):
    state = openness(windows_, (), at(now))
    assert state.open is open_
    assert (state.closes_at if open_ else state.opens_at) == at(edge)


@pytest.mark.parametrize("deployment, now, open_, edge", [
    # The deployment allows only Wednesdays: Monday's shift change does not count.
    ((Window("0 0 * * 3", 1440, "Europe/Berlin"),), "2026-12-07T04:50:00", False, "2026-12-09T04:45:00"),
    ((Window("0 0 * * 3", 1440, "Europe/Berlin"),), "2026-12-09T04:50:00", True, "2026-12-09T05:15:00"),
    # Only the first 10 minutes of each shift change: narrower, closes earlier.
    ((Window("45 5,13,21 * * *", 10, "Europe/Berlin"),), "2026-12-07T04:50:00", True, "2026-12-07T04:55:00"),
    ((Window("45 5,13,21 * * *", 10, "Europe/Berlin"),), "2026-12-07T04:56:00", False, "2026-12-07T12:45:00"),
    # A deployment window outside every cluster window never widens it.
    ((Window("0 12 * * *", 30, "UTC"),), "2026-12-07T12:10:00", False, None),
])
def test_deployment_windows_only_narrow_the_clusters(deployment, now, open_, edge):
    state = openness(SHIFTS, deployment, at(now))
    assert state.open is open_
    if edge is not None:
        assert (state.closes_at if open_ else state.opens_at) == at(edge)


def test_a_deployment_window_alone_applies_to_a_cluster_without_windows():
    state = openness((), (Window("0 3 * * *", 60, "UTC"),), at("2026-12-07T12:00:00"))
    assert not state.open and state.opens_at == at("2026-12-08T03:00:00")
    assert openness((), (), at("2026-12-07T12:00:00")).open


def test_a_window_that_cannot_be_read_is_reported_not_guessed():
    state = openness((Window("61 * * * *", 10, "UTC"),), (), at("2026-12-07T12:00:00"))
    assert not state.open and "minute value 61" in state.error
    assert "unknown time zone" in openness((Window("0 1 * * *", 10, "Mars/Olympus"),), (), at("2026-12-07T12:00:00"))\
        .error


NOW = at("2026-12-07T04:50:00")             # inside Monday's first shift change
CONSENT = LineConsent(timeout_seconds=600, on_timeout="Skip")


@pytest.mark.parametrize("facts, now, rollback, since, reason, expected", [
    # No schedule at all: any time.
    (None, NOW, False, None, None, Gate(True)),
    # Outside the window: waits, and says until when.
    (LineFacts(SHIFTS), at("2026-12-07T06:00:00"), False, None, None,
     Gate(False, windows.WAITING_FOR_WINDOW, until=at("2026-12-07T12:45:00"))),
    # A rollback goes through at once, outside the window and without the line ...
    (LineFacts(SHIFTS, CONSENT), at("2026-12-07T06:00:00"), True, None, None, Gate(True)),
    # ... unless the cluster's policy says rollbacks respect the schedule.
    (LineFacts(SHIFTS, CONSENT, rollbacks_wait=True), at("2026-12-07T06:00:00"), True, None, None,
     Gate(False, windows.WAITING_FOR_WINDOW, until=at("2026-12-07T12:45:00"))),
    # Inside the window, the line busy: waits for idle since now, gives up after the timeout.
    (LineFacts(SHIFTS, CONSENT), NOW, False, None, None,
     Gate(False, windows.WAITING_FOR_LINE_IDLE, since=NOW, until=NOW + dt.timedelta(seconds=600))),
    # The wait recorded last tick carries on (restart-safe).
    (LineFacts(SHIFTS, CONSENT), NOW, False, NOW - dt.timedelta(seconds=100), windows.WAITING_FOR_LINE_IDLE,
     Gate(False, windows.WAITING_FOR_LINE_IDLE, since=NOW - dt.timedelta(seconds=100),
          until=NOW + dt.timedelta(seconds=500))),
    # A wait recorded for the window does not count as waiting for the line.
    (LineFacts(SHIFTS, CONSENT), NOW, False, NOW - dt.timedelta(seconds=1000), windows.WAITING_FOR_WINDOW,
     Gate(False, windows.WAITING_FOR_LINE_IDLE, since=NOW, until=NOW + dt.timedelta(seconds=600))),
    # The line signals idle: go.
    (LineFacts(SHIFTS, CONSENT, idle=True), NOW, False, NOW - dt.timedelta(seconds=100),
     windows.WAITING_FOR_LINE_IDLE, Gate(True)),
    # Timed out: the policy decides.
    (LineFacts(SHIFTS, CONSENT), NOW, False, NOW - dt.timedelta(seconds=600), windows.WAITING_FOR_LINE_IDLE,
     Gate(False, windows.LINE_IDLE_TIMEOUT, since=NOW - dt.timedelta(seconds=600), policy="Skip")),
    (LineFacts(SHIFTS, LineConsent(600, "Fail")), NOW, False, NOW - dt.timedelta(seconds=700),
     windows.LINE_IDLE_TIMEOUT, Gate(False, windows.LINE_IDLE_TIMEOUT, since=NOW - dt.timedelta(seconds=700),
                                     policy="Fail")),
    (LineFacts(SHIFTS, LineConsent(600, "Proceed")), NOW, False, NOW - dt.timedelta(seconds=700),
     windows.WAITING_FOR_LINE_IDLE, Gate(True)),
    # Consent without windows: the line alone decides.
    (LineFacts((), CONSENT), NOW, False, None, None,
     Gate(False, windows.WAITING_FOR_LINE_IDLE, since=NOW, until=NOW + dt.timedelta(seconds=600))),
])
def test_the_gate_says_what_the_cluster_waits_for_and_until_when(facts, now, rollback, since, reason, expected):
    verdict = gate(facts, (), now, rollback, since, reason)
    assert (verdict.allowed, verdict.reason, verdict.since, verdict.until, verdict.policy) == \
        (expected.allowed, expected.reason, expected.since, expected.until, expected.policy)
    if not verdict.allowed:
        assert verdict.message


def test_a_window_message_names_the_next_opening():
    verdict = gate(LineFacts(SHIFTS), (), at("2026-12-07T06:00:00"), False, None, None)
    assert verdict.message == "waits for its maintenance window, which opens at 2026-12-07T12:45:00Z"


@pytest.mark.parametrize("holder, acquired, renewed, duration, now, expected", [
    ("plc-bridge", at("2026-12-07T04:40:00"), at("2026-12-07T04:49:50"), 30, NOW, (True, at("2026-12-07T04:40:00"))),
    # The bridge stopped renewing: the lease expired, the line counts as busy.
    ("plc-bridge", at("2026-12-07T04:40:00"), at("2026-12-07T04:49:00"), 30, NOW, (False, None)),
    # Released (no holder) or never renewed.
    (None, None, at("2026-12-07T04:49:50"), 30, NOW, (False, None)),
    ("plc-bridge", None, None, 30, NOW, (False, None)),
    ("plc-bridge", None, at("2026-12-07T04:49:50"), 30, NOW, (True, at("2026-12-07T04:49:50"))),
])
def test_the_line_idle_lease_counts_only_while_held_and_renewed(holder, acquired, renewed, duration, now, expected):
    assert line_idle(holder, acquired, renewed, duration, now) == expected


def test_a_maintenance_spec_that_cannot_be_read_holds_changes_but_not_rollbacks():
    facts = LineFacts(error="Input should be 'Skip', 'Fail' or 'Proceed'")
    held = gate(facts, (), NOW, False, None, None)
    assert (held.allowed, held.reason) == (False, windows.WINDOW_INVALID) and "Skip" in held.message
    assert gate(facts, (), NOW, True, None, None).allowed
