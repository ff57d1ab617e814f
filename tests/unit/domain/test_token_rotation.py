"""When the pull site's agent rotates its hub token: read from the token's own claims."""

from __future__ import annotations

import base64
import json

import pytest

from edgeline.domain.token_rotation import (newest, requested_lifetime, rotation_point, rotation_reason,
                                            token_times)

DAY = 86400.0


def jwt(iat: float | None, exp: float | None, **extra) -> str:
    claims = {k: v for k, v in {"iat": iat, "exp": exp, **extra}.items() if v is not None}
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJSUzI1NiJ9.{body}.c2lnbmF0dXJl"


@pytest.mark.parametrize("token, expected", [
    (jwt(1000, 1000 + 30 * DAY), (1000, 1000 + 30 * DAY)),
    (jwt(1000, 1600, sub="system:serviceaccount:edgeline-site-a:edgeline-agent"), (1000, 1600)),
    (jwt(1000, None), None),                    # no exp: nothing says when it ends
    (jwt(None, 1600), None),
    (jwt(1600, 1000), None),                    # ends before it begins
    ("static-token", None),
    ("a.!!!.c", None),
    ("", None),
])
def test_token_times_come_from_the_claims(token, expected):
    times = token_times(token)
    assert (times and (times.issued_at, times.expires_at)) == (expected or None)


@pytest.mark.parametrize("rotate_after, point", [
    (0.8, 1000 + 480),          # 80 % of a 600 s token
    (0.05, 1000 + 30),
    (30, 1000 + 30),            # seconds after it was issued
    (5000, 1600),               # never past its end
])
def test_the_rotation_point_is_a_fraction_or_seconds(rotate_after, point):
    assert rotation_point(token_times(jwt(1000, 1600)), rotate_after) == pytest.approx(point)


@pytest.mark.parametrize("now, rotate_after, due", [
    (1000 + 10 * DAY, 0.8, None),                       # a third of its life: keep it
    (1000 + 23.9 * DAY, 0.8, None),
    (1000 + 24 * DAY, 0.8, "518400 s of its 2592000 s are left"),    # 80 % of 30 days
    (1000 + 29.99 * DAY, 0.8, "864 s of its 2592000 s are left"),
    (1000 + 31 * DAY, 0.8, "it has expired"),           # the agent was off past its end: still asks
    (1000 + 61, 60, "2591939 s of its 2592000 s are left"),
    (1000 + 59, 60, None),
])
def test_a_30_day_token_is_rotated_past_its_rotation_point(now, rotate_after, due):
    assert rotation_reason(jwt(1000, 1000 + 30 * DAY), now, rotate_after) == due


def test_a_token_without_claims_is_never_rotated():
    assert rotation_reason("static-token", 1e12) is None


@pytest.mark.parametrize("token, lifetime", [
    (jwt(1000, 1000 + 30 * DAY), 30 * 86400),       # what the join chose
    (jwt(1000, 1300), 600),                         # never under TokenRequest's minimum
    ("static-token", 3600),                         # the default
])
def test_a_new_token_lasts_as_long_as_the_one_it_replaces(token, lifetime):
    assert requested_lifetime(token, 3600) == lifetime


def test_the_newest_unexpired_token_is_used_after_a_restart():
    joined, rotated, expired = jwt(1000, 1600), jwt(1500, 2100), jwt(0, 900)
    assert newest([joined, rotated], now=1550) == rotated
    assert newest([rotated, joined], now=1550) == rotated
    assert newest([joined, ""], now=1550) == joined             # nothing stored yet
    assert newest([expired, joined], now=1550) == joined
    assert newest(["static-token", ""], now=1550) == "static-token"
    assert newest([expired], now=1550) == expired               # nothing better: the hub will say 401
    assert newest(["", ""], now=1) is None
