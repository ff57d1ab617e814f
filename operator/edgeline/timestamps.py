"""Timestamps as Kubernetes writes them: RFC 3339 in UTC, whole seconds, a `Z` suffix
(e.g. 2026-11-25T10:00:00Z). Status fields, conditions and annotations use this one form;
`parse` also reads the fractional seconds that some writers (and kubectl) add."""

from __future__ import annotations

import datetime as dt

_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format(t: dt.datetime) -> str:  # noqa: A001 - the module is the namespace: timestamps.format
    """`t` (aware; a naive one is taken as local time) as RFC 3339 UTC, whole seconds."""
    return t.astimezone(dt.timezone.utc).strftime(_FORMAT)


def format_ms(t: dt.datetime) -> str:
    """Like `format`, with milliseconds: for records whose order within a second matters."""
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def format_micro(t: dt.datetime) -> str:
    """With microseconds: the MicroTime form the events.k8s.io API asks for (eventTime, lastObservedTime)."""
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse(text: str | None) -> dt.datetime | None:
    """An RFC 3339 UTC timestamp (with or without fractional seconds) as an aware datetime;
    None for None or an empty string. Anything else raises ValueError."""
    if not text:
        return None
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone")
    return parsed.astimezone(dt.timezone.utc)
