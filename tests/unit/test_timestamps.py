"""RFC 3339 timestamps in the one form status and annotations use."""

import datetime as dt

import pytest

from edgeline import timestamps

UTC = dt.timezone.utc


@pytest.mark.parametrize("t, text", [
    (dt.datetime(2026, 11, 25, 10, 0, 0, 999999, tzinfo=UTC), "2026-11-25T10:00:00Z"),      # whole seconds
    (dt.datetime(2026, 11, 25, 11, 30, tzinfo=dt.timezone(dt.timedelta(hours=1))), "2026-11-25T10:30:00Z"),
])
def test_format_is_utc_whole_seconds_with_z(t, text):
    assert timestamps.format(t) == text


def test_format_micro_is_the_events_api_microtime():
    t = dt.datetime(2026, 11, 25, 11, 0, 1, 234567, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert timestamps.format_micro(t) == "2026-11-25T10:00:01.234567Z"


def test_format_ms_keeps_milliseconds():
    assert timestamps.format_ms(dt.datetime(2026, 11, 25, 10, 0, 1, 234567, tzinfo=UTC)) == "2026-11-25T10:00:01.234Z"


@pytest.mark.parametrize("text, t", [
    ("2026-11-25T10:00:00Z", dt.datetime(2026, 11, 25, 10, tzinfo=UTC)),
    ("2026-11-25T10:00:00.25Z", dt.datetime(2026, 11, 25, 10, 0, 0, 250000, tzinfo=UTC)),
    ("2026-11-25T11:00:00+01:00", dt.datetime(2026, 11, 25, 10, tzinfo=UTC)),
    ("", None),
    (None, None),
])
def test_parse(text, t):
    assert timestamps.parse(text) == t


@pytest.mark.parametrize("text", ["yesterday", "2026-11-25T10:00:00"])
def test_parse_refuses_what_is_no_utc_timestamp(text):
    with pytest.raises(ValueError):
        timestamps.parse(text)


def test_round_trip():
    t = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert timestamps.parse(timestamps.format(t)) == t
