"""When a site's agent issues its alert receiver's certificate (and its site CA) again. Pure:
what the stored pair says of itself (names, ends) and the clock decide, the same rules as the
hub's receiver (controllers/certificates.py): a third of its life left, names missing."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

CA_VALIDITY = dt.timedelta(days=3650)
SERVING_VALIDITY = dt.timedelta(days=90)
CLOCK_SLACK = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class StoredPair:
    """What the site's TLS Secret records next to its PEM files (written with them)."""
    has_ca: bool
    has_serving: bool
    names: tuple[str, ...] = ()
    ca_not_after: dt.datetime | None = None
    not_after: dt.datetime | None = None


@dataclass(frozen=True)
class Renewal:
    new_ca: bool            # a new site CA too (Alertmanager's ca_file must follow)
    reason: str


def renewal(stored: StoredPair, names: tuple[str, ...], now: dt.datetime,
            validity: dt.timedelta = SERVING_VALIDITY, ca_validity: dt.timedelta = CA_VALIDITY) -> Renewal | None:
    """What to issue now (None: the stored pair is good)."""
    if not stored.has_ca or stored.ca_not_after is None:
        return Renewal(True, "no site CA yet")
    if stored.ca_not_after - now < ca_validity / 3:
        return Renewal(True, f"the site CA expires at {stored.ca_not_after.isoformat()}")
    if not stored.has_serving or stored.not_after is None:
        return Renewal(False, "no certificate yet")
    missing = set(names) - set(stored.names)
    if missing:
        return Renewal(False, f"its names lack {', '.join(sorted(missing))}")
    if stored.not_after - now < validity / 3:
        return Renewal(False, f"it expires at {stored.not_after.isoformat()}")
    if stored.not_after - now > validity + CLOCK_SLACK:
        # The validity was shortened (--tls-validity): the next renewal must not wait for the old one.
        return Renewal(False, f"it lasts until {stored.not_after.isoformat()}, longer than the validity asked for")
    return None
