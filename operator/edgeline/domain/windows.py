"""When a wave may change a cluster: its maintenance windows (narrowed by the deployment's)
and the line's consent (docs/line-schedules.md). Pure functions of the declared schedule, the
line's signal and the time; `domain.rollout.decide` asks `gate()` before every apply.

A window is a cron expression read in an IANA time zone (domain.cron decides daylight saving
time: a start the clock skips runs at the end of the gap, a start that happens twice runs at
its first occurrence) and a duration in real elapsed minutes, so a window of 60 minutes that
spans a clock change still lasts 60 minutes. A window may cross midnight. Several windows
form a union; the deployment's windows intersect the cluster's (they can only narrow), and a
side that declares none is always open.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

from edgeline.domain import cron

# Opening times are searched this many steps ahead; a union of windows that never overlaps
# the deployment's within them is reported as never opening.
SEARCH_STEPS = 500

Policy = Literal["Skip", "Fail", "Proceed"]
WAITING_FOR_WINDOW = "WaitingForWindow"
WAITING_FOR_LINE_IDLE = "WaitingForLineIdle"
LINE_IDLE_TIMEOUT = "LineIdleTimeout"
WINDOW_INVALID = "WindowInvalid"


@dataclass(frozen=True)
class Window:
    schedule: str                   # cron: when the window opens
    minutes: int                    # how long it stays open
    time_zone: str = "UTC"


@dataclass(frozen=True)
class Openness:
    """Whether the windows are open at an instant; when they close, or when they open next."""

    open: bool
    closes_at: dt.datetime | None = None      # when open: the end of the current opening
    opens_at: dt.datetime | None = None       # when closed: the next opening (None: never)
    error: str | None = None                  # a window that cannot be read


@dataclass(frozen=True)
class LineConsent:
    """The cluster asks for the line's consent: a Lease its MES/PLC bridge holds while idle."""

    timeout_seconds: int = 900
    on_timeout: Policy = "Skip"


@dataclass(frozen=True)
class LineFacts:
    """What the rollout knows about one cluster's schedule and line, this tick."""

    windows: tuple[Window, ...] = ()
    consent: LineConsent | None = None
    idle: bool = False                          # the bridge holds the line-idle Lease now
    idle_since: dt.datetime | None = None       # since when it holds it
    rollbacks_wait: bool = False                # rollbacks respect windows and consent too
    error: str | None = None                    # spec.maintenance could not be read: hold, and say why


@dataclass(frozen=True)
class Gate:
    """May the rollout change the cluster now? If not, what it waits for and until when."""

    allowed: bool
    reason: str | None = None           # WaitingForWindow, WaitingForLineIdle, LineIdleTimeout, WindowInvalid
    message: str | None = None
    since: dt.datetime | None = None    # waiting since
    until: dt.datetime | None = None    # next window start, or when the wait for the line times out
    policy: Policy | None = None        # with LineIdleTimeout: what happens to the cluster
    notes: list[str] = field(default_factory=list)


def _occurrence(window: Window, at: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
    """The opening of one window that contains `at` (the earliest such start), or None."""
    length = dt.timedelta(minutes=window.minutes)
    start = cron.next_after(window.schedule, window.time_zone, at - length)
    if start > at:
        return None
    end = start + length
    # Later starts before this end extend the opening (overlapping occurrences).
    follow = cron.next_after(window.schedule, window.time_zone, start)
    for _ in range(SEARCH_STEPS):
        if follow > end:
            break
        end = max(end, follow + length)
        follow = cron.next_after(window.schedule, window.time_zone, follow)
    return start, end


def _union(windows: tuple[Window, ...], at: dt.datetime) -> Openness:
    """A union of windows at `at`; no windows: always open."""
    if not windows:
        return Openness(True)
    closes: list[dt.datetime] = []
    for window in windows:
        found = _occurrence(window, at)
        if found is not None:
            closes.append(found[1])
    if closes:
        end = max(closes)
        # Another window that starts before this one ends keeps the union open.
        for _ in range(SEARCH_STEPS):
            later = [o[1] for w in windows if (o := _occurrence(w, end)) is not None and o[1] > end]
            if not later:
                break
            end = max(later)
        return Openness(True, closes_at=end)
    return Openness(False, opens_at=min(cron.next_after(w.schedule, w.time_zone, at) for w in windows))


def openness(cluster: tuple[Window, ...], deployment: tuple[Window, ...], now: dt.datetime) -> Openness:
    """The cluster's windows narrowed by the deployment's, at `now`."""
    try:
        at = now
        for _ in range(SEARCH_STEPS):
            sides = [_union(cluster, at), _union(deployment, at)]
            closed = [s for s in sides if not s.open]
            if not closed:
                ends = [s.closes_at for s in sides if s.closes_at is not None]
                if at == now:
                    return Openness(True, closes_at=min(ends) if ends else None)
                return Openness(False, opens_at=at)
            # Both must be open: nothing opens before the latest of the closed sides' next starts.
            at = max(s.opens_at for s in closed)
        return Openness(False, opens_at=None)
    except cron.CronError as exc:
        return Openness(False, error=str(exc))


def gate(facts: LineFacts | None, deployment: tuple[Window, ...], now: dt.datetime, rollback: bool,
         waiting_since: dt.datetime | None, waiting_reason: str | None) -> Gate:
    """Whether a change may reach the cluster now. `waiting_since`/`waiting_reason` are what
    status recorded on the previous tick, so the wait for the line survives a restart."""
    facts = facts or LineFacts()
    if rollback and not facts.rollbacks_wait:
        return Gate(True)        # a revert goes through at once
    if facts.error:
        return Gate(False, WINDOW_INVALID, f"the cluster's maintenance spec cannot be read: {facts.error}")
    window = openness(facts.windows, () if rollback else deployment, now)
    if window.error:
        return Gate(False, WINDOW_INVALID, f"a maintenance window cannot be read: {window.error}")
    if not window.open:
        if window.opens_at is None:
            return Gate(False, WAITING_FOR_WINDOW, "the cluster's and the deployment's windows never overlap")
        return Gate(False, WAITING_FOR_WINDOW, f"waits for its maintenance window, which opens at "
                                               f"{_shown(window.opens_at)}", until=window.opens_at)
    if facts.consent is None or facts.idle:
        return Gate(True)
    since = waiting_since if waiting_reason in (WAITING_FOR_LINE_IDLE, LINE_IDLE_TIMEOUT) and waiting_since \
        else now
    deadline = since + dt.timedelta(seconds=facts.consent.timeout_seconds)
    if now < deadline and waiting_reason != LINE_IDLE_TIMEOUT:
        return Gate(False, WAITING_FOR_LINE_IDLE, f"waits for the line to signal idle (since {_shown(since)}; "
                                                  f"gives up at {_shown(deadline)})", since=since, until=deadline)
    policy = facts.consent.on_timeout
    if policy == "Proceed":
        return Gate(True, notes=[f"the line did not signal idle within {facts.consent.timeout_seconds}s; "
                                 "proceeding as the cluster's policy says"])
    what = "skipped for this revision" if policy == "Skip" else "the wave fails"
    return Gate(False, LINE_IDLE_TIMEOUT, f"the line did not signal idle within {facts.consent.timeout_seconds}s "
                                          f"(waiting since {_shown(since)}): {what}", since=since, policy=policy)


def _shown(at: dt.datetime) -> str:
    return at.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def windows_of(declared) -> tuple[Window, ...]:
    """Windows from the API's MaintenanceWindow objects (EdgeCluster or EdgeDeployment)."""
    return tuple(Window(w.schedule, w.duration_minutes, w.time_zone) for w in declared or ())


def line_idle(holder: str | None, acquired: dt.datetime | None, renewed: dt.datetime | None,
              duration_seconds: int | None, now: dt.datetime) -> tuple[bool, dt.datetime | None]:
    """Whether the line-idle Lease says the line is idle now, and since when. The bridge holds
    it (holderIdentity) and renews it while the line is idle; a bridge that stops renewing (it
    crashed, the link broke) lets it expire, and the line counts as busy: no consent by silence."""
    if not holder or renewed is None or not duration_seconds:
        return False, None
    if now >= renewed + dt.timedelta(seconds=duration_seconds):
        return False, None
    return True, acquired or renewed
