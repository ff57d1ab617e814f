"""Shadow runs: which clusters run the candidate, when it is attached and detached (through
decide(), against a simulated fleet whose status round-trips through JSON), and what the
Prometheus answers make of the comparison."""

import datetime as dt

import pytest

from edgeline.api.edgedeployment import EdgeDeploymentSpec, EdgeDeploymentStatus, RevisionRef, Runtime
from edgeline.api.shadow import Shadow, ShadowComparison
from edgeline.domain import shadow
from edgeline.domain.rollout import Apply, Inputs, Observation, decide
from edgeline.domain.waves import WavePlan

T0 = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.timezone.utc)
BASE = {"modelRef": {"name": "m-1"}, "placement": {"clusterSelector": {"matchLabels": {"site": "x"}}},
        "approval": {"required": True}, "rollout": {"waveTimeoutSeconds": 60, "soakSeconds": 0}}
SPEC = EdgeDeploymentSpec.model_validate({**BASE, "shadow": {"clusters": ["a"]}})
REV1 = RevisionRef(revision="aaaa000001", mlmodel="m-1", version="1", digest="sha256:1", uri="http://m/1",
                   runtime=Runtime())
REV2 = RevisionRef(revision="bbbb000002", mlmodel="m-2", version="2", digest="sha256:2", uri="http://m/2",
                   runtime=Runtime())
WAVES = [WavePlan("all", ("a", "b"), 0)]


class Fleet:
    def __init__(self):
        self.running = {"a": None, "b": None}
        self.shadows = {"a": None, "b": None}
        self.applied = []

    def observe(self):
        return {n: Observation(n, reachable=True, exists=rev is not None, revision=rev, replicas=1, ready_replicas=1,
                               ready=True, shadow=self.shadows[n]) for n, rev in self.running.items()}

    def execute(self, actions):
        for a in actions:
            assert isinstance(a, Apply)
            self.applied.append((a.cluster, a.revision.revision, a.shadow.revision if a.shadow else None))
            self.running[a.cluster] = a.revision.revision
            self.shadows[a.cluster] = a.shadow.revision if a.shadow else None


def tick(fleet, status, now, desired, approved, spec=SPEC, comparisons=()):
    decision = decide(Inputs(spec=spec, status=status, desired=desired, waves=WAVES, excluded=[],
                             observations=fleet.observe(), stale_after={}, approved=approved, paused=False,
                             rollback_to=None, now=now,
                             shadow_clusters=shadow.clusters_of(spec.shadow, ["a", "b"], {}),
                             shadow_comparisons=list(comparisons)))
    fleet.execute(decision.actions)
    return EdgeDeploymentStatus.model_validate(decision.status.dump()), decision


def served(fleet):
    status = EdgeDeploymentStatus()
    for second in range(3):
        status, _ = tick(fleet, status, T0 + dt.timedelta(seconds=second), REV1, True)
    assert status.phase == "Healthy"
    return status


def test_a_candidate_awaiting_approval_runs_in_shadow_on_the_chosen_clusters_only_and_leaves_when_approved():
    fleet = Fleet()
    status = served(fleet)
    assert fleet.shadows == {"a": None, "b": None}          # nothing to shadow while nothing waits

    status, d = tick(fleet, status, T0 + dt.timedelta(seconds=10), REV2, False)
    assert status.phase == "AwaitingApproval"
    # The served revision stays; the candidate is attached beside it on a only.
    assert fleet.running == {"a": REV1.revision, "b": REV1.revision}
    assert fleet.shadows == {"a": REV2.revision, "b": None}
    assert ("Normal", "ShadowStarted") in [(t, r) for t, r, _ in d.events]
    assert status.pending_approval.shadow.revision == REV2.revision
    assert status.pending_approval.shadow.clusters == ["a"] and status.pending_approval.shadow.current_version == "1"

    # Idempotent: the next tick changes nothing, and keeps `since`
    since = status.pending_approval.shadow.since
    status, d = tick(fleet, status, T0 + dt.timedelta(seconds=20), REV2, False)
    assert d.actions == [] and status.pending_approval.shadow.since == since

    # Approved: the candidate rolls out for real, without a shadow
    status, d = tick(fleet, status, T0 + dt.timedelta(seconds=30), REV2, True)
    assert fleet.running["a"] == REV2.revision and fleet.shadows["a"] is None
    assert status.pending_approval is None


def test_a_withdrawn_candidate_is_detached_again():
    fleet = Fleet()
    status = served(fleet)
    status, _ = tick(fleet, status, T0 + dt.timedelta(seconds=10), REV2, False)
    assert fleet.shadows["a"] == REV2.revision
    status, d = tick(fleet, status, T0 + dt.timedelta(seconds=20), REV1, True)
    assert fleet.shadows["a"] is None and fleet.running["a"] == REV1.revision
    assert ("Normal", "ShadowStopped") in [(t, r) for t, r, _ in d.events]


def test_without_spec_shadow_nothing_runs_in_shadow():
    fleet = Fleet()
    spec = EdgeDeploymentSpec.model_validate(BASE)
    status = EdgeDeploymentStatus()
    for second in range(3):
        status, _ = tick(fleet, status, T0 + dt.timedelta(seconds=second), REV1, True, spec=spec)
    status, d = tick(fleet, status, T0 + dt.timedelta(seconds=10), REV2, False, spec=spec)
    assert d.actions == [] and status.pending_approval.shadow is None


def test_comparisons_read_this_tick_land_in_pending_approval():
    fleet = Fleet()
    status = served(fleet)
    status, _ = tick(fleet, status, T0 + dt.timedelta(seconds=10), REV2, False)
    figure = ShadowComparison(cluster="a", requests=10, agreement=0.9)
    status, _ = tick(fleet, status, T0 + dt.timedelta(seconds=20), REV2, False, comparisons=[figure])
    assert status.pending_approval.shadow.comparisons == [figure]
    # A tick without a fresh read keeps the last one
    status, _ = tick(fleet, status, T0 + dt.timedelta(seconds=21), REV2, False)
    assert status.pending_approval.shadow.comparisons == [figure]


@pytest.mark.parametrize("named, selector, labels, expected", [
    (["a"], None, {}, ["a"]),
    (["z"], None, {}, []),                                                  # not of this deployment
    ([], {"matchLabels": {"line": "pilot"}}, {"b": {"line": "pilot"}}, ["b"]),
    (["a"], {"matchLabels": {"line": "pilot"}}, {"b": {"line": "pilot"}}, ["a", "b"]),
])
def test_clusters_by_name_or_selector_among_the_selected(named, selector, labels, expected):
    spec = Shadow.model_validate({"clusters": named, **({"clusterSelector": selector} if selector else {})})
    assert shadow.clusters_of(spec, ["a", "b"], labels) == expected


def test_queries_name_the_candidate_by_shadow_version_and_escape_values():
    q = shadow.queries("factory", "detector", "line-1", "2.0.0", "1.0.0")
    assert 'shadow_version="2.0.0"' in q["requests.agree"] and 'outcome="agree"' in q["requests.agree"]
    assert 'role="live"' in q["latency.live.0.5"] and q["latency.live.0.5"].startswith("histogram_quantile(0.5,")
    assert 'version="1.0.0"' in q["drift.live.input"] and "edgeline_runtime_drift_score{" in q["drift.live.input"]
    assert 'cluster="a\\"b"' in shadow.queries("n", "d", 'a"b', "2", "1")["state"]


@pytest.mark.parametrize("answers, expected", [
    ({"requests.agree": (90.0,), "requests.disagree": (10.0,), "requests.failed": (0.0,), "requests.dropped": (3.0,),
      "latency.shadow.0.5": (0.002,), "latency.shadow.0.95": (0.004,), "latency.live.0.5": (0.001,),
      "latency.live.0.95": (0.0015,), "drift.shadow.input": (0.2,), "drift.live.input": (1.7,), "state": (1.0,)},
     {"requests": 100, "agreement": 0.9, "dropped": 3, "candidate_p50_ms": 2.0, "current_p95_ms": 1.5,
      "candidate_drift": {"input": 0.2}, "current_drift": {"input": 1.7}, "state": "Ready", "message": None}),
    ({"state": (2.0,), "requests.agree": (0.0,), "requests.disagree": (0.0,)},
     {"state": "Failed", "agreement": None, "message": "the candidate failed to load in the runtime (its log says "
                                                        "why: shadow_failed)"}),
    ({"requests.agree": (), "state": ()}, {"state": None, "requests": None}),
    ({"requests.agree": "http://p:9090/api/v1/query did not answer within 5s"},
     {"message": "http://p:9090/api/v1/query did not answer within 5s"}),
    ({"latency.shadow.0.5": (float("nan"),), "state": (1.0,)}, {"candidate_p50_ms": None}),
])
def test_comparison_of_the_answers(answers, expected):
    got = shadow.comparison("a", answers, T0)
    for key, value in expected.items():
        assert getattr(got, key) == value, (key, got)
