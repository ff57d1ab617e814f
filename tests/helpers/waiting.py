"""Waiting on a positive sign with a deadline, never on sleep alone."""

from __future__ import annotations

import time

import pytest


def wait_for(check, timeout: float = 60.0, interval: float = 0.25, what: str = "condition"):
    """Polls `check` until it returns something truthy; fails with `what` after the deadline."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last seen: {last!r})")
