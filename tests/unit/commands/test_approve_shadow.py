"""Approvers see the shadow run beside the metrics: agreement, latency, drift per cluster."""

from edgeline.commands.approve import evidence_lines, shadow_lines

SHADOW = {"revision": "r2", "version": "2.0.0", "currentVersion": "1.0.0", "clusters": ["line-1", "line-2"],
          "since": "2026-11-25T10:00:00Z",
          "comparisons": [{"cluster": "line-1", "requests": 400, "agreement": 0.9725, "failed": 0, "dropped": 2,
                           "candidateP50Ms": 1.2, "candidateP95Ms": 2.5, "currentP50Ms": 1.1, "currentP95Ms": 2.0,
                           "candidateDrift": {"input": 0.21}, "currentDrift": {"input": 1.8}}]}


def test_candidate_against_current_per_cluster():
    lines = shadow_lines(SHADOW)
    assert lines[0].startswith("shadow      2.0.0 beside 1.0.0 on line-1, line-2 since 2026-11-25T10:00:00Z")
    assert "  line-1: agreement 97.2% of 400 requests (0 failed, 2 dropped)" in lines
    assert "    latency p50/p95  candidate 1.2/2.5 ms, current 1.1/2 ms" in lines
    assert "    drift            candidate input 0.21; current input 1.8" in lines
    assert "  line-2: not measured yet" in lines


def test_the_shadow_follows_the_metrics_and_is_absent_without_one():
    lines = evidence_lines({"metrics": {"accuracy": 0.97}, "revision": {}, "shadow": SHADOW})
    assert lines[1] == "metrics     accuracy 0.97" and lines[2].startswith("shadow      2.0.0")
    assert shadow_lines(None) == []


def test_the_status_tree_shows_the_shadow_run_under_its_own_branch():
    import datetime as dt

    from edgeline.commands.status import format_tree, status_summary

    obj = {"metadata": {"name": "detector", "namespace": "factory"}, "spec": {},
           "status": {"phase": "AwaitingApproval", "desiredRevision": {"revision": "r2"},
                      "pendingApproval": {"revision": {"revision": "r2"}, "shadow": SHADOW}}}
    tree = format_tree(status_summary(obj, dt.datetime(2026, 11, 25, tzinfo=dt.timezone.utc)))
    assert "shadow: 2.0.0 beside 1.0.0 on line-1, line-2" in tree
    assert "line-1: agreement 97.2% of 400 requests (0 failed, 2 dropped)" in tree
