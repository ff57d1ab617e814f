"""Waiting on a positive sign with a deadline, never on sleep alone."""

from __future__ import annotations

import time

import pytest


def wait_for(check, timeout: float = 60.0, interval: float = 0.25, what="condition"):
    """Polls `check` until it returns something truthy; fails with `what` after the deadline
    (a callable `what` is asked then, so that it can describe the state at the deadline)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what() if callable(what) else what} "
                f"(last seen: {last!r})")
