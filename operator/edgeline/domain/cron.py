"""Five-field cron expressions read in an IANA time zone (docs/pipelines.md).

    next_after("0 2 * * 0", "Europe/Berlin", now)  ->  the next Sunday 02:00 in Berlin, as UTC

Fields: minute hour day-of-month month day-of-week, each `*` (or `?`), a number, a range
`a-b`, a step `*/n`, `a-b/n` or `a/n`, or a comma-separated list of those; months and
weekdays also by name (jan..dec, sun..sat), weekday 7 is Sunday as well. As in Vixie
cron, when both day-of-month and day-of-week are restricted, a day matching either one
counts. @yearly (@annually), @monthly, @weekly, @daily (@midnight) and @hourly are
shorthands.

Daylight saving time, decided once here:
- a wall-clock time the clock skips (02:30 on the night clocks go forward) runs at the
  first instant after the gap, once, however many scheduled times fell into the gap;
- a wall-clock time that happens twice (02:30 on the night clocks go back) runs once, at
  its first occurrence.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

SHORTHANDS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
MONTHS = {name: i + 1 for i, name in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}
WEEKDAYS = {name: i for i, name in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
# (name, lowest, highest, names)
FIELDS = (("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day-of-month", 1, 31, {}), ("month", 1, 12, MONTHS),
          ("day-of-week", 0, 7, WEEKDAYS))
# Far enough for "0 0 29 2 *" (a leap day) to come round; an expression that never
# matches (31 February) is reported instead of searched for ever.
HORIZON_YEARS = 9


class CronError(ValueError):
    """The expression or the time zone cannot be used; the message says which part."""


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]          # 0 = Sunday
    days_restricted: bool
    weekdays_restricted: bool

    def day_matches(self, day: dt.date) -> bool:
        if day.month not in self.months:
            return False
        in_month = day.day in self.days
        in_week = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_month or in_week
        return in_month and in_week


def parse(expr: str) -> Cron:
    text = expr.strip().lower()
    if text.startswith("@"):
        if text not in SHORTHANDS:
            raise CronError(f"unknown shorthand {expr!r}; use one of {', '.join(sorted(SHORTHANDS))}")
        text = SHORTHANDS[text]
    parts = text.split()
    if len(parts) != 5:
        raise CronError(f"{expr!r} has {len(parts)} fields; cron needs five: minute hour day-of-month month "
                        "day-of-week")
    values = [_field(part, *spec) for part, spec in zip(parts, FIELDS)]
    weekdays = frozenset(d % 7 for d in values[4])   # 7 is Sunday too
    return Cron(minutes=values[0], hours=values[1], days=values[2], months=values[3], weekdays=weekdays,
                days_restricted=parts[2] not in ("*", "?"), weekdays_restricted=parts[4] not in ("*", "?"))


def _field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    out: set[int] = set()
    for item in text.split(","):
        if not item:
            raise CronError(f"{name} field {text!r} has an empty list item")
        body, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{name} field {text!r}: the step after / must be a positive number")
            step = int(step_text)
        if body in ("*", "?"):
            first, last = low, high
        elif "-" in body:
            a, _, b = body.partition("-")
            first, last = _value(a, name, low, high, names), _value(b, name, low, high, names)
            if first > last:
                raise CronError(f"{name} field {text!r}: range {body} runs backwards")
        else:
            first = _value(body, name, low, high, names)
            last = high if step_text else first     # "5/15" means from 5 on, every 15
        out.update(range(first, last + 1, step))
    return frozenset(out)


def _value(text: str, name: str, low: int, high: int, names: dict[str, int]) -> int:
    if text in names:
        return names[text]
    if not text.isdigit():
        known = f" or a name ({', '.join(names)})" if names else ""
        raise CronError(f"{name} value {text!r} is not a number{known}")
    number = int(text)
    if not low <= number <= high:
        raise CronError(f"{name} value {number} is outside {low}-{high}")
    return number


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin or UTC") from None


def next_after(expr: str | Cron, tz: str | ZoneInfo, after: dt.datetime) -> dt.datetime:
    """The first instant strictly after `after` (an aware datetime) that the expression
    names in time zone `tz`, as an aware UTC datetime."""
    cron = parse(expr) if isinstance(expr, str) else expr
    zone_info = zone(tz) if isinstance(tz, str) else tz
    if after.tzinfo is None:
        raise ValueError("after must be timezone-aware")
    # Wall-clock candidates in increasing order map to non-decreasing instants (see
    # _instant), so the first candidate later than `after` is the answer. A candidate
    # before the local time of `after` can still be later as an instant when the clock
    # went back, so the search starts a few hours early.
    local = after.astimezone(zone_info).replace(tzinfo=None, second=0, microsecond=0, fold=0)
    candidate = local - dt.timedelta(hours=3)
    end = local + dt.timedelta(days=366 * HORIZON_YEARS)
    while candidate <= end:
        if not cron.day_matches(candidate.date()):
            candidate = dt.datetime.combine(candidate.date() + dt.timedelta(days=1), dt.time())
            continue
        if candidate.hour not in cron.hours:
            candidate = candidate.replace(minute=0) + dt.timedelta(hours=1)
            continue
        if candidate.minute not in cron.minutes:
            candidate += dt.timedelta(minutes=1)
            continue
        instant = _instant(candidate, zone_info)
        if instant > after:
            return instant
        candidate += dt.timedelta(minutes=1)
    raise CronError(f"{expr if isinstance(expr, str) else 'the expression'} names no time in the next "
                    f"{HORIZON_YEARS} years")


def _instant(wall: dt.datetime, zone_info: ZoneInfo) -> dt.datetime:
    """The UTC instant of a wall-clock time: the first occurrence of a repeated time, the
    end of the gap for a skipped one."""
    aware = wall.replace(tzinfo=zone_info, fold=0)
    utc = aware.astimezone(dt.timezone.utc)
    if utc.astimezone(zone_info).replace(tzinfo=None) == wall:
        return utc
    probe = wall.replace(second=0, microsecond=0)
    for _ in range(24 * 60):       # gaps are an hour, rarely two; never a day
        probe += dt.timedelta(minutes=1)
        utc = probe.replace(tzinfo=zone_info, fold=0).astimezone(dt.timezone.utc)
        if utc.astimezone(zone_info).replace(tzinfo=None) == probe:
            return utc
    raise CronError(f"cannot place {wall.isoformat()} in {zone_info.key}")
