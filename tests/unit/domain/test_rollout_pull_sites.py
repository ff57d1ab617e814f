"""A wave that holds a pull site whose agent went quiet (its Lease on the hub expired) behaves
as a wave with an unreachable push cluster: decide() waits for it, fails the wave at its
deadline when maxUnavailable does not cover it, passes without it when it does, and a revision
approved while the site was offline reaches it in its wave order when its agent returns.

The site's Observation is built the way clusters.pull.observe builds it (lease_fresh,
unheard_message); the fleet otherwise follows the actions, as in test_rollout."""

import datetime as dt

from edgeline.api.edgedeployment import EdgeDeploymentStatus
from edgeline.domain.rollout import Observation
from edgeline.domain.site_reports import lease_fresh, unheard_message
from edgeline.domain.waves import WavePlan
from tests.unit.domain.test_rollout import REV1, REV2, SPEC, T0, Fleet, tick

STALE_AFTER = 30
WAVES = [WavePlan("pilot", ("a",), 0), WavePlan("line", ("b", "p"), 0), WavePlan("rest", ("c",), 0)]


class MixedFleet(Fleet):
    """Push clusters a, b, c and the pull site p, heard from through its Lease renewals."""

    def __init__(self):
        super().__init__(["a", "b", "p", "c"])
        self.renewed: dt.datetime | None = T0
        self.now = T0

    def observe(self):
        found = super().observe()
        if not lease_fresh(self.renewed, self.now, dt.timedelta(seconds=STALE_AFTER)):
            found["p"] = Observation("p", reachable=False, message=unheard_message(self.renewed, self.now))
        return found

    def execute(self, actions):
        # An Apply to p only publishes the assignment; the site runs it once its agent reads it.
        super().execute(actions)


def _tick(fleet, status, second, spec=SPEC, desired=REV1, heard=True):
    fleet.now = T0 + dt.timedelta(seconds=second)
    if heard:
        fleet.renewed = fleet.now
    return tick(fleet, status, fleet.now, desired=desired, waves=WAVES, spec=spec)


def _spec(max_unavailable):
    return SPEC.model_copy(update={"rollout": SPEC.rollout.model_copy(update={"max_unavailable": max_unavailable})})


def _applied_to(fleet, cluster):
    # decide() may repeat an Apply in one decision when a wave with no soak passes in the same tick
    # (the fleet only changes after it); applying is idempotent, so repeats are folded here.
    return list(dict.fromkeys(rev for name, rev in fleet.applied if name == cluster))


def test_a_wave_holding_an_offline_pull_site_waits_then_fails_at_its_deadline_without_max_unavailable():
    fleet, status = MixedFleet(), EdgeDeploymentStatus()
    fleet.renewed = T0 - dt.timedelta(seconds=STALE_AFTER + 10)   # the agent went quiet before the rollout
    status, _ = _tick(fleet, status, 0, heard=False)
    status, _ = _tick(fleet, status, 1, heard=False)
    assert status.rollout.wave_name == "line" and status.phase == "Progressing"
    assert _applied_to(fleet, "p") == [] and _applied_to(fleet, "b") == [REV1.revision]
    assert status.rollout.failed_message is None                 # waiting, not failed, within the deadline
    status, _ = _tick(fleet, status, 30, heard=False)
    assert status.phase == "Progressing" and _applied_to(fleet, "c") == []
    status, d = _tick(fleet, status, 62, heard=False)
    assert status.phase == "Degraded" and status.rollout.failed_clusters == ["p"]
    assert "p: the site's agent last renewed its Lease" in status.rollout.failed_message
    assert "WaveFailed" in [e[1] for e in d.events]
    assert {c.name: c.phase for c in status.clusters}["p"] == "Unreachable"
    assert _applied_to(fleet, "c") == []                          # the next wave is not started


def test_max_unavailable_lets_the_wave_pass_without_the_offline_pull_site_which_converges_when_it_returns():
    spec, fleet, status = _spec(1), MixedFleet(), EdgeDeploymentStatus()
    fleet.renewed = None                                           # joined, but its agent never connected yet
    for second in range(4):
        status, _ = _tick(fleet, status, second, spec=spec, heard=False)
    assert _applied_to(fleet, "c") == [REV1.revision] and _applied_to(fleet, "p") == []
    states = {c.name: c for c in status.clusters}
    assert states["p"].phase == "Unreachable" and "has not renewed its Lease" in states["p"].message
    assert status.ready == "3/4" and status.phase == "Degraded"
    status, _ = _tick(fleet, status, 10, spec=spec)               # the agent renews its Lease again
    status, _ = _tick(fleet, status, 11, spec=spec)
    assert _applied_to(fleet, "p") == [REV1.revision] and status.phase == "Healthy" and status.ready == "4/4"


def test_a_revision_approved_while_the_site_is_offline_reaches_it_in_wave_order_when_it_returns():
    fleet, status = MixedFleet(), EdgeDeploymentStatus()
    for second in range(4):
        status, _ = _tick(fleet, status, second)
    assert status.phase == "Healthy" and fleet.running["p"] == REV1.revision
    for second in (10, 20, 36):                                     # the WAN is cut at 4 s: no more renewals
        status, _ = _tick(fleet, status, second, heard=False)
    assert {c.name: c.phase for c in status.clusters}["p"] == "Unreachable"
    for second in range(40, 95, 5):                                 # REV2 approved during the cut
        status, _ = _tick(fleet, status, second, desired=REV2, heard=False)
    assert fleet.running["a"] == fleet.running["b"] == REV2.revision
    assert fleet.running["p"] == fleet.running["c"] == REV1.revision   # p offline holds its wave; c waits
    assert status.rollout.wave_name == "line" and status.phase == "Progressing"
    assert status.rollout.failed_message is None
    before = len(fleet.applied)
    for second in (96, 97, 98):                                     # link restored before the wave's deadline
        status, _ = _tick(fleet, status, second, desired=REV2)
    assert list(dict.fromkeys(name for name, _ in fleet.applied[before:])) == ["p", "c"]
    assert status.phase == "Healthy" and status.current_revision.revision == REV2.revision
