"""When the site's agent issues its receiver certificate or its site CA again."""

from __future__ import annotations

import datetime as dt

import pytest

from edgeline.domain.serving_renewal import StoredPair, renewal

NOW = dt.datetime(2026, 12, 6, tzinfo=dt.timezone.utc)
DAY = dt.timedelta(days=1)
NAMES = ("edgeline-agent.edgeline-agent.svc", "198.18.7.2")
GOOD = StoredPair(True, True, NAMES, NOW + 3000 * DAY, NOW + 80 * DAY)


@pytest.mark.parametrize("stored, names, expected", [
    (StoredPair(False, False), NAMES, (True, "no site CA yet")),
    (GOOD, NAMES, None),
    (GOOD, NAMES[:1], None),                                    # fewer names wanted: still good
    (StoredPair(True, False, (), NOW + 3000 * DAY), NAMES, (False, "no certificate yet")),
    (StoredPair(True, True, NAMES[:1], NOW + 3000 * DAY, NOW + 80 * DAY), NAMES,
     (False, "its names lack 198.18.7.2")),
    (StoredPair(True, True, NAMES, NOW + 3000 * DAY, NOW + 31 * DAY), NAMES, None),         # over a third left
    (StoredPair(True, True, NAMES, NOW + 3000 * DAY, NOW + 29 * DAY), NAMES,
     (False, f"it expires at {(NOW + 29 * DAY).isoformat()}")),
    (StoredPair(True, True, NAMES, NOW + 3000 * DAY, NOW - DAY), NAMES,
     (False, f"it expires at {(NOW - DAY).isoformat()}")),                                 # already expired
    (StoredPair(True, True, NAMES, NOW + 1000 * DAY, NOW + 80 * DAY), NAMES,
     (True, f"the site CA expires at {(NOW + 1000 * DAY).isoformat()}")),                  # a new CA too
    (StoredPair(True, True, NAMES, None, NOW + 80 * DAY), NAMES, (True, "no site CA yet")),  # unreadable record
])
def test_what_is_issued_again(stored, names, expected):
    due = renewal(stored, names, NOW)
    assert (due and (due.new_ca, due.reason)) == (expected or None)


def test_a_short_validity_renews_with_a_third_left():
    validity = dt.timedelta(seconds=45)
    fresh = StoredPair(True, True, NAMES, NOW + 3000 * DAY, NOW + dt.timedelta(seconds=16))
    due = StoredPair(True, True, NAMES, NOW + 3000 * DAY, NOW + dt.timedelta(seconds=14))
    assert renewal(fresh, NAMES, NOW, validity) is None
    assert renewal(due, NAMES, NOW, validity) is not None
    # A 90-day certificate from before the validity was shortened is issued again at once.
    assert "longer than the validity" in renewal(GOOD, NAMES, NOW, validity).reason
    assert renewal(GOOD, NAMES, NOW, dt.timedelta(days=80) - dt.timedelta(seconds=59)) is None
