"""Lists of names in messages that people read (conditions, Events): a few names and a count,
never all of them. A condition message holds at most 4096 characters, and a revert of a
thousand clusters named each one (docs/decisions.md, perf)."""

from __future__ import annotations

from collections.abc import Iterable

SHOWN = 5


def some(names: Iterable[str], shown: int = SHOWN, none: str = "none") -> str:
    """'a, b, c' or 'a, b, c, d, e and 995 more'; `none` when there are none."""
    names = list(names)
    if not names:
        return none
    head = ", ".join(names[:shown])
    return head if len(names) <= shown else f"{head} and {len(names) - shown} more"
