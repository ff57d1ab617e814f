"""When a pull site's agent asks the hub for a new token of its own identity (docs/security.md,
"A stolen site token"). Pure: the token's own claims (`iat`, `exp`) and the clock decide.

A bound ServiceAccount token is a JWT; its claims are read here without checking the signature:
the agent only learns its own token's lifetime from them, the hub is the one that verifies it."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

DEFAULT_ROTATE_AFTER = 0.8      # a fraction of the token's lifetime
MIN_SECONDS = 600               # TokenRequest's shortest lifetime


@dataclass(frozen=True)
class TokenTimes:
    issued_at: float        # iat, epoch seconds
    expires_at: float       # exp, epoch seconds

    @property
    def lifetime_s(self) -> float:
        return self.expires_at - self.issued_at


def token_times(token: str) -> TokenTimes | None:
    """`iat` and `exp` of a JWT (None: not a JWT, or it lacks them)."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        issued, expires = float(claims["iat"]), float(claims["exp"])
    except (ValueError, KeyError, TypeError):
        return None
    if expires <= issued:
        return None
    return TokenTimes(issued, expires)


def rotation_point(times: TokenTimes, rotate_after: float) -> float:
    """Epoch seconds from which the token is renewed. `rotate_after` below 1 is a fraction of its
    lifetime (0.8: at 80 %); from 1 on it is seconds after it was issued (never past its end)."""
    if rotate_after < 1:
        return times.issued_at + times.lifetime_s * rotate_after
    return min(times.issued_at + rotate_after, times.expires_at)


def rotation_reason(token: str, now: float, rotate_after: float = DEFAULT_ROTATE_AFTER) -> str | None:
    """Why the token must be replaced now (None: not yet, or it cannot be judged)."""
    times = token_times(token)
    if times is None:
        return None     # a static or opaque token: nothing says when it ends; the agent keeps it
    if now >= times.expires_at:
        return "it has expired"
    if now >= rotation_point(times, rotate_after):
        left = times.expires_at - now
        return f"{left:.0f} s of its {times.lifetime_s:.0f} s are left"
    return None


def requested_lifetime(token: str, default_s: int) -> int:
    """The lifetime to ask for: the current token's own (what `cluster join --token-seconds`
    chose), else `default_s`; never under TokenRequest's minimum."""
    times = token_times(token)
    seconds = round(times.lifetime_s) if times else default_s
    return max(MIN_SECONDS, seconds)


def newest(tokens: list[str], now: float) -> str | None:
    """Of the tokens the agent has (the join's, the last one it obtained), the one to use: an
    unexpired JWT that ends last, else the first given."""
    live = [(t, token_times(t)) for t in tokens if t]
    dated = [(times.expires_at, i, t) for i, (t, times) in enumerate(live) if times and times.expires_at > now]
    if dated:
        return max(dated)[2]
    return live[0][0] if live else None
