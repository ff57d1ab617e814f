"""Cron expressions in a time zone: fields, names, shorthands and the DST rules of
edgeline.domain.cron (a skipped time runs at the end of the gap, a repeated one once)."""

import datetime as dt

import pytest

from edgeline.domain.cron import CronError, next_after, parse

UTC = dt.timezone.utc


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(UTC)


def runs(expr, tz, start, n):
    out, t = [], at(start)
    for _ in range(n):
        t = next_after(expr, tz, t)
        out.append(t.strftime("%Y-%m-%dT%H:%M%z"))
    return out


@pytest.mark.parametrize("expr, start, expected", [
    ("* * * * *", "2026-11-25T10:00:00+00:00", "2026-11-25T10:01:00+00:00"),      # strictly after
    ("* * * * *", "2026-11-25T10:00:30+00:00", "2026-11-25T10:01:00+00:00"),
    ("*/15 * * * *", "2026-11-25T10:01:00+00:00", "2026-11-25T10:15:00+00:00"),
    ("5/20 * * * *", "2026-11-25T10:26:00+00:00", "2026-11-25T10:45:00+00:00"),
    ("0 9-17/4 * * *", "2026-11-25T13:00:00+00:00", "2026-11-25T17:00:00+00:00"),
    ("0 2 * * 0", "2026-11-25T10:00:00+00:00", "2026-11-29T02:00:00+00:00"),       # a Sunday
    ("0 2 * * 7", "2026-11-25T10:00:00+00:00", "2026-11-29T02:00:00+00:00"),       # 7 is Sunday too
    ("0 2 * * SUN", "2026-11-25T10:00:00+00:00", "2026-11-29T02:00:00+00:00"),
    ("30 6 * * mon-fri", "2026-11-27T07:00:00+00:00", "2026-11-30T06:30:00+00:00"),  # Fri -> Mon
    ("0 0 1 jan,jul *", "2026-11-25T10:00:00+00:00", "2027-01-01T00:00:00+00:00"),
    ("0 0 13 * 5", "2026-11-25T10:00:00+00:00", "2026-11-27T00:00:00+00:00"),      # 13th OR Friday
    ("0 0 */10 * *", "2026-11-25T10:00:00+00:00", "2026-12-01T00:00:00+00:00"),
    ("0 0 29 2 *", "2026-11-25T10:00:00+00:00", "2028-02-29T00:00:00+00:00"),      # next leap day
    ("0 0 31 * *", "2026-11-25T10:00:00+00:00", "2026-12-31T00:00:00+00:00"),      # skips 30-day months
    ("@hourly", "2026-11-25T10:00:00+00:00", "2026-11-25T11:00:00+00:00"),
    ("@daily", "2026-11-25T10:00:00+00:00", "2026-11-26T00:00:00+00:00"),
    ("@weekly", "2026-11-25T10:00:00+00:00", "2026-11-29T00:00:00+00:00"),
    ("@monthly", "2026-11-25T10:00:00+00:00", "2026-12-01T00:00:00+00:00"),
    ("@yearly", "2026-11-25T10:00:00+00:00", "2027-01-01T00:00:00+00:00"),
    ("@annually", "2026-11-25T10:00:00+00:00", "2027-01-01T00:00:00+00:00"),
])
def test_next_after_in_utc(expr, start, expected):
    assert next_after(expr, "UTC", at(start)) == at(expected)


def test_the_time_zone_decides_the_wall_clock():
    # 02:00 in Berlin in winter is 01:00 UTC; in summer 00:00 UTC.
    assert next_after("0 2 * * *", "Europe/Berlin", at("2026-11-25T10:00:00+00:00")) == at("2026-11-26T01:00:00+00:00")
    assert next_after("0 2 * * *", "Europe/Berlin", at("2026-07-01T10:00:00+00:00")) == at("2026-07-02T00:00:00+00:00")
    # Day boundaries follow the zone too: Monday 00:30 in Tokyo is Sunday 15:30 UTC.
    assert next_after("30 0 * * mon", "Asia/Tokyo", at("2026-11-25T00:00:00+00:00")) == at("2026-11-29T15:30:00+00:00")


def test_a_time_the_clock_skips_runs_once_at_the_end_of_the_gap():
    # Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
    assert runs("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00+00:00", 3) == [
        "2026-03-29T01:00+0000", "2026-03-30T00:30+0000", "2026-03-31T00:30+0000"]
    # Every minute: the gap collapses into one run at 03:00 CEST, then it goes on.
    assert runs("* * * * *", "Europe/Berlin", "2026-03-29T00:58:00+00:00", 3) == [
        "2026-03-29T00:59+0000", "2026-03-29T01:00+0000", "2026-03-29T01:01+0000"]
    # A time right after the gap is not run twice.
    assert runs("0 2,3 * * *", "Europe/Berlin", "2026-03-29T00:00:00+00:00", 2) == [
        "2026-03-29T01:00+0000", "2026-03-30T00:00+0000"]


def test_a_time_that_happens_twice_runs_once_at_its_first_occurrence():
    # Berlin, 2026-10-25: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
    assert runs("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00+00:00", 2) == [
        "2026-10-25T00:30+0000", "2026-10-26T01:30+0000"]
    # Hourly runs keep coming through the repeated hour without a duplicate at 02:00 local.
    assert runs("0 * * * *", "Europe/Berlin", "2026-10-24T22:30:00+00:00", 4) == [
        "2026-10-24T23:00+0000", "2026-10-25T00:00+0000", "2026-10-25T02:00+0000", "2026-10-25T03:00+0000"]


def test_starting_inside_the_repeated_hour_finds_the_next_run_not_an_earlier_one():
    # 01:10 UTC is 02:10 CET, the second pass through 02:xx.
    assert next_after("*/30 * * * *", "Europe/Berlin", at("2026-10-25T01:10:00+00:00")) == at("2026-10-25T02:00:00+00:00")


def test_names_are_case_insensitive_and_question_mark_means_any():
    assert parse("0 0 ? JAN Mon") == parse("0 0 * 1 1")


@pytest.mark.parametrize("expr, words", [
    ("* * * *", "has 4 fields"),
    ("60 * * * *", "minute value 60 is outside 0-59"),
    ("* 24 * * *", "hour value 24"),
    ("* * 0 * *", "day-of-month value 0"),
    ("* * * 13 *", "month value 13"),
    ("* * * * 8", "day-of-week value 8"),
    ("*/0 * * * *", "step after / must be a positive number"),
    ("5-1 * * * *", "runs backwards"),
    ("* * * foo *", "month value 'foo' is not a number or a name"),
    ("1,,2 * * * *", "empty list item"),
    ("@often", "unknown shorthand"),
])
def test_bad_expressions_say_what_is_wrong(expr, words):
    with pytest.raises(CronError, match=words):
        parse(expr)


def test_an_expression_that_never_matches_is_an_error_not_a_hang():
    with pytest.raises(CronError, match="names no time"):
        next_after("0 0 31 2 *", "UTC", at("2026-01-01T00:00:00+00:00"))


def test_an_unknown_time_zone_is_an_error():
    with pytest.raises(CronError, match="unknown time zone"):
        next_after("* * * * *", "Mars/Olympus", at("2026-01-01T00:00:00+00:00"))
