"""The rollout state machine against a tiny simulated fleet. Every tick round-trips the
status through JSON, as the operator does through the API server, so that anything kept
only in memory would be lost here too."""

import datetime as dt

from edgeline.api.edgedeployment import EdgeDeploymentSpec, EdgeDeploymentStatus, RevisionRef, Runtime
from edgeline.domain.rollout import Apply, Inputs, Observation, Remove, decide
from edgeline.domain.waves import WavePlan

T0 = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.timezone.utc)
SPEC = EdgeDeploymentSpec.model_validate({
    "modelRef": {"name": "m-1"},
    "placement": {"clusterSelector": {"matchLabels": {"site": "x"}}},
    "approval": {"required": False},
    "rollout": {"waveTimeoutSeconds": 60, "soakSeconds": 0},
    "rollback": {"guardSeconds": 100},
})
REV1 = RevisionRef(revision="aaaa000001", mlmodel="m-1", version="1", digest="sha256:1", runtime=Runtime())
REV2 = RevisionRef(revision="bbbb000002", mlmodel="m-2", version="2", digest="sha256:2", runtime=Runtime())
WAVES = [WavePlan("pilot", ("a",), 0), WavePlan("rest", ("b", "c"), 0)]


class Fleet:
    """What runs where; `broken` clusters never become ready, `down` ones do not answer."""

    def __init__(self, names):
        self.running = {n: None for n in names}
        self.broken, self.down = set(), set()
        self.applied = []

    def observe(self):
        return {n: Observation(n, reachable=False, message="connection refused") if n in self.down else
                Observation(n, reachable=True, exists=rev is not None, revision=rev, replicas=1,
                            ready_replicas=0 if n in self.broken else 1, ready=n not in self.broken)
                for n, rev in self.running.items()}

    def execute(self, actions):
        for action in actions:
            if isinstance(action, Apply):
                self.applied.append((action.cluster, action.revision.revision))
                self.running[action.cluster] = action.revision.revision
            elif isinstance(action, Remove):
                self.running[action.cluster] = None


def tick(fleet, status, now, desired=REV1, approved=True, waves=WAVES, rollback_to=None, paused=False,
         spec=SPEC):
    decision = decide(Inputs(spec=spec, status=status, desired=desired, waves=waves, excluded=[],
                             observations=fleet.observe(), stale_after={}, approved=approved, paused=paused,
                             rollback_to=rollback_to, now=now))
    fleet.execute(decision.actions)
    # What the API server stores and the next tick (or a restarted operator) reads back.
    return EdgeDeploymentStatus.model_validate(decision.status.dump()), decision


def test_waves_go_one_after_the_other_and_the_rollout_completes():
    fleet, status = Fleet("abc"), EdgeDeploymentStatus()
    status, d = tick(fleet, status, T0)
    assert fleet.applied == [("a", REV1.revision)]          # only the pilot wave
    assert status.phase == "Progressing" and status.rollout.wave_name == "pilot"
    status, d = tick(fleet, status, T0 + dt.timedelta(seconds=1))
    assert sorted(fleet.applied[1:]) == [("b", REV1.revision), ("c", REV1.revision)]
    status, d = tick(fleet, status, T0 + dt.timedelta(seconds=2))
    assert status.phase == "Healthy" and status.ready == "3/3"
    assert status.current_revision.revision == REV1.revision
    assert [h.revision.revision for h in status.history] == [REV1.revision]
    assert "RolloutComplete" in [e[1] for e in d.events]
    again, d = tick(fleet, status, T0 + dt.timedelta(seconds=3))
    assert d.actions == [] and again.phase == "Healthy"


def test_a_wave_that_misses_its_deadline_stops_the_rollout_and_names_the_cluster():
    fleet, status = Fleet("abc"), EdgeDeploymentStatus()
    fleet.broken.add("a")
    status, _ = tick(fleet, status, T0)
    status, _ = tick(fleet, status, T0 + dt.timedelta(seconds=30))
    assert status.phase == "Progressing"
    status, d = tick(fleet, status, T0 + dt.timedelta(seconds=61))
    assert status.phase == "Degraded" and status.rollout.failed_clusters == ["a"]
    assert "a: 0/1 replicas ready" in status.rollout.failed_message
    assert {c.name: c.phase for c in status.clusters}["a"] == "Failed"
    assert ("b", REV1.revision) not in fleet.applied           # later waves untouched


def test_max_unavailable_lets_a_wave_pass_without_an_unreachable_cluster_which_converges_later():
    spec = SPEC.model_copy(update={"rollout": SPEC.rollout.model_copy(update={"max_unavailable": 1})})
    fleet, status = Fleet("abc"), EdgeDeploymentStatus()
    fleet.down.add("c")
    for second in range(4):
        status, _ = tick(fleet, status, T0 + dt.timedelta(seconds=second), spec=spec)
    states = {c.name: c for c in status.clusters}
    assert states["c"].phase == "Unreachable" and status.ready == "2/3" and status.phase == "Degraded"
    fleet.down.clear()
    status, _ = tick(fleet, status, T0 + dt.timedelta(seconds=10), spec=spec)
    status, _ = tick(fleet, status, T0 + dt.timedelta(seconds=11), spec=spec)
    assert fleet.running["c"] == REV1.revision and status.phase == "Healthy"


def test_stale_is_set_when_a_cluster_has_not_been_seen_for_its_stale_time():
    fleet, status = Fleet("a"), EdgeDeploymentStatus()
    waves = [WavePlan("all", ("a",), 0)]
    status, _ = tick(fleet, status, T0, waves=waves)
    fleet.down.add("a")
    status, _ = tick(fleet, status, T0 + dt.timedelta(seconds=200), waves=waves)
    assert not status.clusters[0].stale
    status, _ = tick(fleet, status, T0 + dt.timedelta(seconds=400), waves=waves)
    assert status.clusters[0].stale and status.clusters[0].phase == "Unreachable"


def test_a_new_revision_waits_for_approval_and_nothing_changes_on_the_clusters():
    fleet, status = Fleet("abc"), EdgeDeploymentStatus()
    for second in range(3):
        status, _ = tick(fleet, status, T0 + dt.timedelta(seconds=second))
    before = list(fleet.applied)
    status, d = tick(fleet, status, T0 + dt.timedelta(seconds=5), desired=REV2, approved=False)
    assert status.phase == "AwaitingApproval" and fleet.applied == before
    assert status.desired_revision.revision == REV2.revision
    assert status.current_revision.revision == REV1.revision


def test_manual_rollback_returns_to_the_earlier_revision_and_holds_there():
    fleet, status = Fleet("abc"), EdgeDeploymentStatus()
    t = T0
    for desired in (REV1, REV2):
        for _ in range(3):
            t += dt.timedelta(seconds=1)
            status, _ = tick(fleet, status, t, desired=desired)
    assert set(fleet.running.values()) == {REV2.revision}
    for _ in range(3):
        t += dt.timedelta(seconds=1)
        status, _ = tick(fleet, status, t, desired=REV2, rollback_to=REV1.revision)
    assert set(fleet.running.values()) == {REV1.revision}
    assert status.phase == "RolledBack" and status.bad_revisions == [REV2.revision]
    assert status.current_revision.revision == REV1.revision
    t += dt.timedelta(seconds=1)
    status, d = tick(fleet, status, t, desired=REV2, rollback_to=REV1.revision)
    assert d.actions == [] and status.phase == "RolledBack"      # the bad revision does not come back by itself


def test_a_cluster_that_leaves_the_selection_is_cleaned_up_then_forgotten():
    fleet, status = Fleet("abc"), EdgeDeploymentStatus()
    for second in range(3):
        status, _ = tick(fleet, status, T0 + dt.timedelta(seconds=second))
    smaller = [WavePlan("pilot", ("a",), 0), WavePlan("rest", ("b",), 0)]
    status, d = tick(fleet, status, T0 + dt.timedelta(seconds=5), waves=smaller)
    assert Remove("c") in d.actions and {c.name: c.phase for c in status.clusters}["c"] == "Removing"
    status, d = tick(fleet, status, T0 + dt.timedelta(seconds=6), waves=smaller)
    assert [c.name for c in status.clusters] == ["a", "b"] and status.ready == "2/2"


def test_a_revision_that_passes_its_guard_period_becomes_last_known_good():
    fleet, status = Fleet("abc"), EdgeDeploymentStatus()
    for second in range(3):
        status, _ = tick(fleet, status, T0 + dt.timedelta(seconds=second))
    assert status.last_known_good is None
    status, _ = tick(fleet, status, T0 + dt.timedelta(seconds=200))
    assert status.last_known_good.revision == REV1.revision and status.history[0].outcome == "KnownGood"


def test_pause_holds_between_waves():
    fleet, status = Fleet("abc"), EdgeDeploymentStatus()
    status, _ = tick(fleet, status, T0, paused=True)
    status, _ = tick(fleet, status, T0 + dt.timedelta(seconds=1), paused=True)
    assert status.phase == "Paused" and fleet.running["b"] is None
    status, _ = tick(fleet, status, T0 + dt.timedelta(seconds=2))
    assert fleet.running["b"] == REV1.revision


def test_status_patches_clear_fields_that_disappeared():
    from edgeline.clusters.resources import merge_patch
    old = {"rollout": {"revision": "a", "completedAt": "t"}, "phase": "Healthy", "clusters": [1]}
    new = {"rollout": {"revision": "b"}, "phase": "Progressing", "clusters": [1]}
    assert merge_patch(old, new) == {"rollout": {"revision": "b", "completedAt": None}, "phase": "Progressing"}


def test_a_rolled_back_revision_returns_only_when_approved_again_after_the_rollback():
    fleet, status = Fleet("abc"), EdgeDeploymentStatus()
    t = T0
    for desired in (REV1, REV2):
        for _ in range(3):
            t += dt.timedelta(seconds=1)
            status, _ = tick(fleet, status, t, desired=desired)
    for _ in range(3):
        t += dt.timedelta(seconds=1)
        status, _ = tick(fleet, status, t, desired=REV2, rollback_to=REV1.revision)
    assert status.rollbacks[0].mode == "Manual" and status.rollbacks[0].from_revision == REV2.revision
    decision = decide(Inputs(spec=SPEC, status=status, desired=REV2, waves=WAVES, excluded=[],
                             observations=fleet.observe(), stale_after={}, approved=True, paused=False,
                             rollback_to=REV1.revision, now=t, reapproved=True))
    assert [a.cluster for a in decision.actions] == ["a"] and decision.status.phase == "Progressing"


def _deployed_then_v2_in_pilot(fleet):
    status, t = EdgeDeploymentStatus(), T0
    for _ in range(3):
        t += dt.timedelta(seconds=1)
        status, _ = tick(fleet, status, t)
    waves = [WavePlan("pilot", ("a",), 60), WavePlan("rest", ("b", "c"), 0)]
    t += dt.timedelta(seconds=1)
    status, _ = tick(fleet, status, t, desired=REV2, waves=waves)
    assert fleet.running == {"a": REV2.revision, "b": REV1.revision, "c": REV1.revision}
    return status, t, waves


def test_an_alert_during_the_rollout_reverts_at_once_and_stops_it():
    from edgeline.domain.rollout import AutoRollback
    fleet = Fleet("abc")
    status, t, waves = _deployed_then_v2_in_pilot(fleet)
    request = AutoRollback("ErrorRateHigh", REV1, None, "2026-11-25T10:00:05Z")
    decision = decide(Inputs(spec=SPEC, status=status, desired=REV2, waves=waves, excluded=[],
                             observations=fleet.observe(), stale_after={}, approved=True, paused=False,
                             rollback_to=None, now=t + dt.timedelta(seconds=1), auto_rollbacks=[request]))
    fleet.execute(decision.actions)
    assert set(fleet.running.values()) == {REV1.revision}
    status = decision.status
    assert status.bad_revisions == [REV2.revision] and status.rollbacks[0].mode == "Automatic"
    assert status.rollbacks[0].alert == "ErrorRateHigh" and status.phase == "Progressing"   # sent, not yet seen
    status, _ = tick(fleet, EdgeDeploymentStatus.model_validate(status.dump()), t + dt.timedelta(seconds=2),
                     desired=REV2, waves=waves)
    assert status.phase == "RolledBack" and status.rollbacks[0].applied_at


def test_cluster_scope_pins_only_the_cluster_the_alert_names():
    from edgeline.domain.rollout import AutoRollback
    fleet = Fleet("abc")
    status, t, waves = _deployed_then_v2_in_pilot(fleet)
    request = AutoRollback("ErrorRateHigh", REV1, ("a",), "2026-11-25T10:00:05Z")
    status, _ = tick(fleet, status, t + dt.timedelta(seconds=1), desired=REV2, waves=waves)
    decision = decide(Inputs(spec=SPEC, status=status, desired=REV2, waves=waves, excluded=[],
                             observations=fleet.observe(), stale_after={}, approved=True, paused=False,
                             rollback_to=None, now=t + dt.timedelta(seconds=2), auto_rollbacks=[request]))
    fleet.execute(decision.actions)
    assert fleet.running["a"] == REV1.revision and decision.status.pinned[0].cluster == "a"
    status = EdgeDeploymentStatus.model_validate(decision.status.dump())
    for second in range(3, 100, 20):           # long after the pilot's soak: the rollout stays halted
        status, _ = tick(fleet, status, t + dt.timedelta(seconds=second), desired=REV2, waves=waves)
    assert fleet.running == {"a": REV1.revision, "b": REV1.revision, "c": REV1.revision}
    assert status.phase == "RolledBack" and status.ready == "1/3"
    assert {c.name: c.phase for c in status.clusters} == {"a": "Ready", "b": "Pending", "c": "Pending"}


# --- what the controller's actions came to, observed on the next tick ---------------------------

def test_an_apply_that_failed_shows_on_the_cluster_next_tick_and_is_tried_again():
    from edgeline.domain.rollout import ActOutcome
    fleet, status = Fleet("a"), EdgeDeploymentStatus()
    waves = [WavePlan("all", ("a",), 0)]
    decision = decide(Inputs(spec=SPEC, status=status, desired=REV1, waves=waves, excluded=[],
                             observations=fleet.observe(), stale_after={}, approved=True, paused=False,
                             rollback_to=None, now=T0))
    assert decision.actions == [Apply("a", REV1)]          # ...and the apply does not get through
    failed = {"a": ActOutcome("a", REV1.revision, T0.timestamp(), "could not apply: API error 500: etcd")}
    decision = decide(Inputs(spec=SPEC, status=decision.status, desired=REV1, waves=waves, excluded=[],
                             observations=fleet.observe(), stale_after={}, approved=True, paused=False,
                             rollback_to=None, now=T0 + dt.timedelta(seconds=1), outcomes=failed))
    state = decision.status.clusters[0]
    assert state.phase == "Unreachable" and state.message == "could not apply: API error 500: etcd"
    assert decision.actions == [Apply("a", REV1)]


def test_an_automatic_rollback_is_settled_when_the_clusters_run_it_with_the_latency_of_the_apply():
    from edgeline.domain.rollback import Alert
    from edgeline.domain.rollout import ActOutcome
    fleet = Fleet("abc")
    status, t, waves = _deployed_then_v2_in_pilot(fleet)
    received = (t + dt.timedelta(seconds=1)).timestamp() + 0.25
    alert = Alert("ErrorRateHigh", {"alertname": "ErrorRateHigh"}, "fp", "", received)
    spec = SPEC.model_copy(update={"rollback": SPEC.rollback.model_copy(update={"scope": "Deployment"})})
    decision = decide(Inputs(spec=spec, status=status, desired=REV2, waves=waves, excluded=[],
                             observations=fleet.observe(), stale_after={}, approved=True, paused=False,
                             rollback_to=None, now=t + dt.timedelta(seconds=2), alerts=[alert]))
    assert decision.status.rollbacks[0].applied_at is None and not status.rollbacks   # input untouched
    fleet.execute(decision.actions)
    outcomes = {a.cluster: ActOutcome(a.cluster, a.revision.revision, received + 0.75) for a in decision.actions}
    status = EdgeDeploymentStatus.model_validate(decision.status.dump())
    decision = decide(Inputs(spec=spec, status=status, desired=REV2, waves=waves, excluded=[],
                             observations=fleet.observe(), stale_after={}, approved=True, paused=False,
                             rollback_to=None, now=t + dt.timedelta(seconds=3), outcomes=outcomes))
    record = decision.status.rollbacks[0]
    assert record.mode == "Automatic" and record.latency_ms == 750 and record.applied_at
    assert decision.rollbacks_applied == [record] and decision.status.phase == "RolledBack"
    status = EdgeDeploymentStatus.model_validate(decision.status.dump())
    again = decide(Inputs(spec=spec, status=status, desired=REV2, waves=waves, excluded=[],
                          observations=fleet.observe(), stale_after={}, approved=True, paused=False,
                          rollback_to=None, now=t + dt.timedelta(seconds=4)))
    assert again.rollbacks_applied == [] and again.status.rollbacks[0].latency_ms == 750   # settled once


def test_an_alert_in_propose_mode_is_recorded_and_nothing_moves():
    from edgeline.domain.rollback import Alert
    fleet = Fleet("abc")
    status, t, waves = _deployed_then_v2_in_pilot(fleet)
    spec = SPEC.model_copy(update={"rollback": SPEC.rollback.model_copy(update={"mode": "Propose"})})
    alert = Alert("ErrorRateHigh", {"alertname": "ErrorRateHigh"}, "fp", "", t.timestamp())
    decision = decide(Inputs(spec=spec, status=status, desired=REV2, waves=waves, excluded=[],
                             observations=fleet.observe(), stale_after={}, approved=True, paused=False,
                             rollback_to=None, now=t + dt.timedelta(seconds=1), alerts=[alert]))
    assert decision.status.rollbacks[0].mode == "Proposed" and decision.actions == []
    assert "RollbackProposed" in [e[1] for e in decision.events] and status.rollbacks == []


def test_status_phase_and_conditions_agree_on_every_tick():
    from edgeline.domain.deployment_conditions import phase_of
    fleet, status = Fleet("abc"), EdgeDeploymentStatus()
    fleet.broken.add("a")
    for second in (0, 30, 61):
        status, _ = tick(fleet, status, T0 + dt.timedelta(seconds=second))
        assert status.phase == phase_of([c.dump() for c in status.conditions])
    assert status.phase == "Degraded"


def test_the_rollout_remembers_the_generation_it_was_approved_at_and_a_rollback_keeps_it():
    """Authors after that generation are the next revision's (four-eyes, docs/approvals.md)."""
    fleet, status = Fleet("abc"), EdgeDeploymentStatus()

    def at(generation, desired, second, rollback_to=None):
        return decide(Inputs(spec=SPEC, status=status, desired=desired, waves=WAVES, excluded=[],
                             observations=fleet.observe(), stale_after={}, approved=True, paused=False,
                             rollback_to=rollback_to, now=T0 + dt.timedelta(seconds=second), generation=generation))
    for second in range(3):
        decision = at(1, REV1, second)
        fleet.execute(decision.actions)
        status = EdgeDeploymentStatus.model_validate(decision.status.dump())
    assert status.rollout.generation == 1
    for second in range(3, 6):
        decision = at(4, REV2, second)
        fleet.execute(decision.actions)
        status = EdgeDeploymentStatus.model_validate(decision.status.dump())
    assert status.rollout.revision == REV2.revision and status.rollout.generation == 4
    decision = at(4, REV2, 7, rollback_to=REV1.revision)
    assert decision.status.rollout.reason == "Rollback" and decision.status.rollout.generation == 4


def test_the_effective_policy_and_every_author_reach_status():
    from edgeline.api.edgedeployment import Approval
    from edgeline.domain.approval_policy import EffectivePolicy
    policy = EffectivePolicy(Approval(approver_groups=["qa"], min_approvers=2), ("lines",),
                             ("spec.approval.required: false is ignored: ApprovalPolicy lines requires approval",))
    decision = decide(Inputs(spec=SPEC, status=EdgeDeploymentStatus(), desired=REV1, waves=WAVES, excluded=[],
                             observations=Fleet("abc").observe(), stale_after={}, approved=False, paused=False,
                             rollback_to=None, now=T0, policy=policy, authors=["alice", "ci"], author="ci"))
    assert decision.status.phase == "AwaitingApproval" and decision.status.approval == "Pending 0/2"
    assert decision.status.approval_policy.sources == ["lines"] and decision.status.approval_policy.min_approvers == 2
    assert decision.status.approval_policy.ignored == list(policy.ignored)
    assert decision.status.pending_approval.authors == ["alice", "ci"]
    assert decision.status.pending_approval.requested_by == "ci"


def test_a_wider_placement_waiting_for_approval_puts_nothing_on_the_new_clusters():
    """Widening the placement is a new revision; until it is approved the current revision
    stays on the clusters it was approved for, however many ticks pass."""
    fleet, status, t = Fleet("abcd"), EdgeDeploymentStatus(), T0
    for _ in range(4):
        t += dt.timedelta(seconds=1)
        status, _ = tick(fleet, status, t)
    assert status.phase == "Healthy" and status.rollout.clusters == ["a", "b", "c"]
    wider = [WavePlan("pilot", ("a",), 0), WavePlan("rest", ("b", "c", "d"), 0)]
    widened = REV1.model_copy(update={"revision": "cccc000003"})
    for _ in range(5):
        t += dt.timedelta(seconds=1)
        status, decision = tick(fleet, status, t, desired=widened, approved=False, waves=wider)
        assert decision.actions == [] and fleet.running["d"] is None
    assert status.phase == "AwaitingApproval" and status.rollout.clusters == ["a", "b", "c"]
    assert "d" in [c.name for c in status.clusters]          # shown as selected, not given anything
    for _ in range(4):
        t += dt.timedelta(seconds=1)
        status, _ = tick(fleet, status, t, desired=widened, approved=True, waves=wider)
    assert fleet.running == {c: widened.revision for c in "abcd"} and status.rollout.clusters == list("abcd")
