"""How long a loop waits after failed ticks: the first retry comes soon (a conflict or a
dropped connection often passes at once), then twice as late each time, never later than a
cap, so that a broken hub or a bug does not turn into a tight loop of API calls and log
lines, and a lasting problem is still retried often enough to notice when it passes."""

from __future__ import annotations


def retry_delay(failures: int, base_s: float, cap_s: float) -> float:
    """Seconds to wait after `failures` failed ticks in a row (0: no failure, no delay)."""
    if failures <= 0:
        return 0.0
    return min(cap_s, base_s * 2 ** min(failures - 1, 62))
