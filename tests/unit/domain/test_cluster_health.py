import datetime as dt

import pytest

from edgeline.domain.cluster_health import assess

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.timezone.utc)
STALE_AFTER = dt.timedelta(seconds=300)


def _assess(**kw):
    base = dict(probe_ok=True, problem_reason=None, problem_message=None, ready_nodes=2, node_count=2,
                previous_heartbeat=None, now=NOW, stale_after=STALE_AFTER)
    return assess(**{**base, **kw})


def test_a_cluster_that_answers_is_reachable_fresh_and_ready():
    health = _assess()
    assert (health.reachable, health.stale, health.last_heartbeat) == (True, False, NOW)
    assert health.ready_condition.status == "True"


@pytest.mark.parametrize("ready, total, reason", [(0, 3, "NoReadyNodes"), (0, 0, "NoNodes")])
def test_a_cluster_without_ready_nodes_is_reachable_but_not_ready(ready, total, reason):
    health = _assess(ready_nodes=ready, node_count=total)
    assert health.reachable and health.ready_condition.reason == reason


def test_a_silent_cluster_is_unreachable_at_once_but_stale_only_after_the_grace_time():
    seen = NOW - dt.timedelta(seconds=60)
    health = _assess(probe_ok=False, problem_reason="Unreachable", problem_message="timeout", previous_heartbeat=seen)
    assert not health.reachable and not health.stale
    assert health.last_heartbeat == seen  # never moves forward without an answer
    assert health.ready_condition.status == "False"

    later = _assess(probe_ok=False, problem_reason="Unreachable", problem_message="timeout",
                    previous_heartbeat=seen, now=seen + STALE_AFTER)
    assert later.stale and later.stale_condition.reason == "HeartbeatTooOld"


def test_a_cluster_never_seen_is_stale_with_its_reason():
    health = _assess(probe_ok=False, problem_reason="KubeconfigSecretNotFound", problem_message="no secret")
    assert health.stale and health.stale_condition.reason == "NeverSeen"
    assert health.reachable_condition.reason == "KubeconfigSecretNotFound"
