"""A pull site's own rollbacks under `rollbacks: RespectSchedule` (domain.site_schedule): the
window definition the hub publishes, evaluated on the site with the hub's gate."""

import datetime as dt

import pytest

from edgeline.api.edgecluster import Maintenance
from edgeline.domain import site_schedule, windows
from edgeline.domain.site_schedule import HeldRollback, SiteSchedule, rollback_gate

# Open every day 02:00-03:00 UTC.
NIGHT = windows.Window("0 2 * * *", 60, "UTC")
DAY = dt.datetime(2026, 12, 6, 10, 0, tzinfo=dt.timezone.utc)
IN_WINDOW = dt.datetime(2026, 12, 7, 2, 30, tzinfo=dt.timezone.utc)


def maintenance(**fields):
    return Maintenance.model_validate({"windows": [{"schedule": "0 2 * * *", "durationMinutes": 60}], **fields})


@pytest.mark.parametrize("spec, expected", [
    (None, None),
    (maintenance(), None),                                          # rollbacks: Immediate (the default)
    (maintenance(rollbacks="Immediate"), None),
    (maintenance(rollbacks="RespectSchedule"), SiteSchedule((NIGHT,))),
    (maintenance(rollbacks="RespectSchedule", lineConsent={"timeoutSeconds": 60, "onTimeout": "Proceed"}),
     SiteSchedule((NIGHT,), windows.LineConsent(60, "Proceed"))),
])
def test_the_site_gets_a_schedule_only_when_its_rollbacks_respect_it(spec, expected):
    assert site_schedule.of(spec) == expected


def test_the_schedule_survives_the_assignment():
    schedule = SiteSchedule((NIGHT, windows.Window("30 22 * * 1-5", 90, "Europe/Berlin")),
                            windows.LineConsent(120, "Fail"))
    assert SiteSchedule.load(schedule.dump()) == schedule


@pytest.mark.parametrize("schedule, now, since, reason, allowed, why", [
    (None, DAY, None, None, True, None),                                        # Immediate
    (SiteSchedule((NIGHT,)), DAY, None, None, False, windows.WAITING_FOR_WINDOW),
    (SiteSchedule((NIGHT,)), IN_WINDOW, None, None, True, None),
    (SiteSchedule(()), DAY, None, None, True, None),                           # no windows: always open
    (SiteSchedule((windows.Window("not cron", 5),)), DAY, None, None, False, windows.WINDOW_INVALID),
    # Line consent: the site never sees the line-idle signal, so it waits for the timeout...
    (SiteSchedule((NIGHT,), windows.LineConsent(60, "Proceed")), IN_WINDOW, None, None, False,
     windows.WAITING_FOR_LINE_IDLE),
    # ...and then follows onTimeout.
    (SiteSchedule((NIGHT,), windows.LineConsent(60, "Proceed")), IN_WINDOW,
     IN_WINDOW - dt.timedelta(seconds=61), windows.WAITING_FOR_LINE_IDLE, True, None),
    (SiteSchedule((NIGHT,), windows.LineConsent(60, "Skip")), IN_WINDOW,
     IN_WINDOW - dt.timedelta(seconds=61), windows.WAITING_FOR_LINE_IDLE, False, windows.LINE_IDLE_TIMEOUT),
])
def test_the_site_asks_the_hubs_gate_with_the_line_counted_busy(schedule, now, since, reason, allowed, why):
    gate = rollback_gate(schedule, now, since, reason)
    assert gate.allowed is allowed and gate.reason == why


def test_outside_the_window_the_gate_says_when_it_opens():
    gate = rollback_gate(SiteSchedule((NIGHT,)), DAY)
    assert gate.until == dt.datetime(2026, 12, 7, 2, 0, tzinfo=dt.timezone.utc)
    assert "2026-12-07T02:00:00Z" in gate.message


def test_a_hold_keeps_the_alert_and_takes_the_gates_latest_word():
    gate = rollback_gate(SiteSchedule((NIGHT,)), DAY)
    held = site_schedule.hold("DefectRateHigh", {"severity": "critical"}, "f1", "2026-12-06T09:59:00Z",
                              DAY.timestamp() - 1, "bad", "good", gate, DAY.timestamp())
    assert (held.reason, held.since, held.until) == (windows.WAITING_FOR_WINDOW, DAY.timestamp(),
                                                      gate.until.timestamp())
    assert HeldRollback.load(held.dump()) == held
    waiting = rollback_gate(SiteSchedule((NIGHT,), windows.LineConsent(60, "Proceed")), IN_WINDOW,
                            dt.datetime.fromtimestamp(held.since, dt.timezone.utc), held.reason)
    later = held.regated(waiting)
    assert later.reason == windows.WAITING_FOR_LINE_IDLE and later.since == IN_WINDOW.timestamp()
    assert (later.alert, later.received_at, later.from_revision) == (held.alert, held.received_at, "bad")
