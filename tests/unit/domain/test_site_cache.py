"""Which pull sites the hub may publish to, by Pod Security level and cache kind."""

import pytest

from edgeline.domain.site_cache import CLAIM, HOST_PATH, SiteCache, pod_security_refusal

CLAIMED = SiteCache(CLAIM, "models", "node-1")


@pytest.mark.parametrize("level, cache, refused", [
    ("privileged", SiteCache(), False),
    ("baseline", SiteCache(), True),
    ("restricted", SiteCache(), True),
    ("privileged", CLAIMED, False),
    ("baseline", CLAIMED, False),
    ("restricted", CLAIMED, False),
])
def test_only_a_hostpath_cache_needs_privileged(level, cache, refused):
    why = pod_security_refusal("line-7", level, cache)
    assert (why is not None) is refused
    if refused:
        assert f"podSecurity {level}" in why and "hostPath" in why and "--cache-claim" in why


@pytest.mark.parametrize("reported, expected", [
    (None, SiteCache()),                                           # an agent from before the claim
    ({}, SiteCache()),
    ({"kind": "emptyDir"}, SiteCache()),                           # unknown: the old default
    ({"kind": CLAIM}, SiteCache()),                                # a claim with no name cannot be mounted
    ({"kind": HOST_PATH, "claim": "x", "node": "n"}, SiteCache(HOST_PATH, None, "n")),
    ({"kind": CLAIM, "claim": "models", "node": "node-1"}, CLAIMED),
    ({"kind": CLAIM, "claim": "models", "node": None}, SiteCache(CLAIM, "models", None)),
    ("persistentVolumeClaim", SiteCache()),
])
def test_the_reported_cache_is_read_conservatively(reported, expected):
    assert SiteCache.from_dict(reported) == expected


def test_the_cache_fact_round_trips():
    assert SiteCache.from_dict(CLAIMED.to_dict()) == CLAIMED
