"""Metric checks on a pull site (domain.site_checks): the site measures the queries the hub
publishes, the hub turns the site's newest result into the Measurement a push cluster's query
gives, and the rollout (decide()) pauses, passes or rolls back the wave exactly as for push."""

import datetime as dt
import math

import pytest

from edgeline.api.edgedeployment import EdgeDeploymentStatus
from edgeline.domain import analysis, site_checks
from edgeline.domain.analysis import Query, resolve
from edgeline.domain.rollout import Inputs, decide
from edgeline.domain.site_checks import (FAIL, NO_DATA, PASS, SiteCheck, SiteCheckResult, due_on_site, evaluate,
                                         for_site, latest, measurement_from_site)
from tests.unit.domain.test_analysis import CTX, ERRORS, SPEC, Prometheus, _check, _run
from tests.unit.domain.test_rollout import REV1, REV2, T0, WAVES, Fleet

CHECK = SiteCheck("errors", 'err{cluster="a"}', "result < 0.05", 9)
NOW = T0.timestamp()


def result(at=NOW, values=(0.01,), promql=CHECK.promql, name="errors", error=None):
    return evaluate(SiteCheck(name, promql, CHECK.condition, CHECK.interval_s), values, error, at)


# --- the site's side ------------------------------------------------------------------------------

@pytest.mark.parametrize("values, error, verdict, why", [
    ((0.01,), None, PASS, None),
    ((0.01, 0.2), None, FAIL, None),               # every series must hold, as on the hub
    ((), None, NO_DATA, "the query returned no data"),
    ((math.nan,), None, NO_DATA, "the query returned NaN"),
    ((), "http://prom:9090/api/v1/query: ConnectError: refused", NO_DATA, "ConnectError"),
])
def test_the_site_reads_an_answer_with_the_hubs_condition_parser(values, error, verdict, why):
    got = evaluate(CHECK, values, error, NOW)
    assert got.verdict == verdict and got.at == NOW and got.promql == CHECK.promql
    assert (why is None and got.error is None) or why in got.error


def test_a_result_survives_the_report_nan_included():
    for original in (result(values=(0.5, math.nan)), result(values=(), error="refused")):
        back = SiteCheckResult.load(original.dump())
        assert back.verdict == original.verdict and back.error == original.error and back.at == original.at
        assert [math.isnan(v) for v in back.values] == [math.isnan(v) for v in original.values]


@pytest.mark.parametrize("last, seconds_later, due", [
    (None, 0, True),                                  # never measured
    (result(), 2, False),                             # a third of the 9 s interval has not passed
    (result(), 3, True),
    (result(promql="err{cluster=\"old\"}"), 0, True),  # the hub published another query: measure it now
])
def test_the_site_measures_about_three_times_per_interval(last, seconds_later, due):
    assert due_on_site(CHECK, last, NOW + seconds_later) is due


def test_the_site_keeps_the_newest_result_of_each_check_it_measures_now():
    older, newer, withdrawn = result(at=NOW), result(at=NOW + 3), result(name="gone")
    assert latest((newer, older, withdrawn), (CHECK,)) == (newer,)


# --- the hub's side -------------------------------------------------------------------------------

QUERY = Query("errors", "a", CHECK.promql)
AT = dt.datetime.fromtimestamp(NOW, dt.timezone.utc)


@pytest.mark.parametrize("results, since, now_s, values, error", [
    ((result(),), None, 5, (0.01,), None),
    ((result(at=NOW - 3), result()), None, 5, (0.01,), None),            # the newest counts
    ((result(values=(0.4,)),), None, 5, (0.4,), None),                    # a failing value is a value
    ((result(values=(), error="refused"),), None, 5, (), "refused"),       # the site's error is missing data
    ((), None, 5, (), "the site reported no result for this check"),
    (None, None, 5, (), "the site reported no result for this check"),   # no report at all
    ((result(promql="err{cluster=\"old\"}"),), None, 5, (), "has not measured this query yet"),
    ((result(),), None, 10, (), "older than the check's interval (9s)"),
    ((result(),), AT, 5, (), "no result newer than the previous measurement"),   # never counted twice
])
def test_a_due_query_on_a_pull_cluster_is_the_sites_fresh_result_or_missing_data(results, since, now_s, values,
                                                                                  error):
    now = AT + dt.timedelta(seconds=now_s)
    got = measurement_from_site(QUERY, results, CHECK.interval_s, since, now)
    assert got.values == values and (got.check, got.cluster) == ("errors", "a")
    assert (error is None and got.error is None) or error in got.error
    if error is None:
        assert got.at == AT           # dated when the site measured, so the next one must be newer


def test_a_check_that_cannot_be_measured_is_missing_data_as_on_the_hub():
    got = measurement_from_site(Query("errors", "a", None, "CheckTemplateMissing: gone"), (), 9, None, AT)
    assert got.error == "CheckTemplateMissing: gone"


def test_the_site_gets_its_waves_checks_rendered_for_the_revision_being_rolled_out():
    checks = resolve([ERRORS, _check(name="latency", query="lat", condition="result < 1", waves=["rest"]),
                      _check(name="broken", templateRef="gone")], {})
    status = EdgeDeploymentStatus.model_validate({"rollout": {"revision": REV2.revision, "reason": "Update",
                                                              "target": REV2.dump()}})
    assert for_site(checks, "a", WAVES, status, CTX) == (
        SiteCheck("errors", 'err{cluster="a",version="2"}', "result < 0.05", 10),)
    assert [c.name for c in for_site(checks, "b", WAVES, status, CTX)] == ["latency"]
    assert for_site(checks, "z", WAVES, status, CTX) == ()                  # in no wave
    done = status.model_copy(update={"rollout": status.rollout.model_copy(update={"completed_at": "x"})})
    assert for_site(checks, "a", WAVES, done, CTX) == ()                    # nothing to measure after the rollout
    assert for_site(checks, "a", WAVES, EdgeDeploymentStatus(), CTX) == ()


# --- the rollout, with cluster "a" a pull site measuring its own checks ---------------------------

class Site:
    """A pull site's agent: measures the published checks on its own schedule, from its own
    Prometheus (a Prometheus double answering per cluster), and reports its newest results."""

    def __init__(self, prom: Prometheus, cluster: str = "a", silent: bool = False):
        self.prom, self.cluster, self.silent = prom, cluster, silent
        self.results: tuple[SiteCheckResult, ...] = ()

    def cycle(self, checks, status, now):
        published = for_site(checks, self.cluster, WAVES, status, CTX)
        self.results = latest(self.results, published)
        if self.silent:
            return
        for check in published:
            last = next((r for r in self.results if r.promql == check.promql), None)
            if due_on_site(check, last, now.timestamp()):
                answer = self.prom.answers.get(self.cluster, (0.0,))
                got = evaluate(check, (), answer, now.timestamp()) if isinstance(answer, str) \
                    else evaluate(check, tuple(answer), None, now.timestamp())
                self.results = latest((*self.results, got), published)


def _tick_with_site(fleet, prom, site, status, now, desired, checks):
    site.cycle(checks, status, now)
    due = analysis.due(checks, status, WAVES, CTX, now)
    pulled = [q for q in due if q.cluster == site.cluster]
    measured = prom.measure([q for q in due if q not in pulled], now) + \
        site_checks.measurements_from_sites(pulled, {site.cluster: site.results}, checks, status, now)
    decision = decide(Inputs(spec=SPEC, status=status, desired=desired, waves=WAVES, excluded=[],
                             observations=fleet.observe(), stale_after={}, approved=True, paused=False,
                             rollback_to=None, now=now, checks=checks, measurements=measured, context=CTX))
    fleet.execute(decision.actions)
    return EdgeDeploymentStatus.model_validate(decision.status.dump()), decision


def _run_with_site(fleet, prom, site, status, start, desired, checks, seconds, until=None):
    events = []
    for s in range(seconds):
        status, d = _tick_with_site(fleet, prom, site, status, start + dt.timedelta(seconds=s), desired, checks)
        events += d.events
        if until and until(status):
            break
    return status, events


def _v1(checks):
    fleet, prom = Fleet("abc"), Prometheus()
    status, _ = _run(fleet, prom, EdgeDeploymentStatus(), T0, REV1, checks, 120, until=lambda s: s.phase == "Healthy")
    return fleet, prom, status


def test_a_pull_sites_passing_check_holds_the_pilot_like_a_push_clusters_then_the_rollout_goes_on():
    checks = resolve([ERRORS], {})
    fleet, prom, status = _v1(checks)
    site = Site(prom)
    start = T0 + dt.timedelta(minutes=10)
    status, _ = _run_with_site(fleet, prom, site, status, start, REV2, checks, 25)
    assert fleet.running == {"a": REV2.revision, "b": REV1.revision, "c": REV1.revision}   # paused on the checks
    assert status.analysis.phase == "Running" and status.analysis.checks[0].successes == 2
    assert not prom.asked[3:]                       # the hub never queried the pull site's Prometheus
    status, events = _run_with_site(fleet, prom, site, status, start + dt.timedelta(seconds=25), REV2, checks, 60,
                                    until=lambda s: s.phase == "Healthy")
    assert status.phase == "Healthy" and status.analysis.phase == "Passed"
    assert ("Normal", "CheckPassed") in {(t, r) for t, r, _ in events}


@pytest.mark.parametrize("answer, silent, reason, message", [
    ((0.4,), False, "CheckFailed", "0.4 does not satisfy result < 0.05"),
    ((), False, "CheckMissingData", "the query returned no data"),
    ("http://prom.site:9090/api/v1/query: ConnectError: refused", False, "CheckMissingData", "ConnectError"),
    ((0.0,), True, "CheckMissingData", "the site reported no result"),      # the site stopped reporting
])
def test_a_pull_sites_failing_or_silent_check_rolls_the_pilot_back_as_for_push(answer, silent, reason, message):
    checks = resolve([ERRORS], {})
    fleet, prom, status = _v1(checks)
    prom.answers["a"] = answer
    status, events = _run_with_site(fleet, prom, Site(prom, silent=silent), status, T0 + dt.timedelta(minutes=10),
                                    REV2, checks, 60, until=lambda s: s.phase == "RolledBack")
    assert status.phase == "RolledBack" and status.bad_revisions == [REV2.revision]
    assert fleet.running == {"a": REV1.revision, "b": REV1.revision, "c": REV1.revision}
    failed = status.analysis.checks[0]
    assert (failed.phase, failed.reason) == ("Failed", reason) and message in failed.message
    assert status.rollbacks[0].alert == "check errors on a"


def test_old_results_do_not_stand_in_for_new_ones_when_the_site_stops_measuring():
    checks = resolve([ERRORS], {})
    fleet, prom, status = _v1(checks)
    site = Site(prom)
    start = T0 + dt.timedelta(minutes=10)
    status, _ = _run_with_site(fleet, prom, site, status, start, REV2, checks, 2)     # the pilot is ready
    began = status.analysis.started_at
    site.silent = True          # from now on the site only has results from before (or at) the start
    status, _ = _run_with_site(fleet, prom, site, status, start + dt.timedelta(seconds=2), REV2, checks, 30,
                               until=lambda s: s.phase == "RolledBack")
    assert status.phase == "RolledBack" and began
    assert status.analysis.checks[0].reason == "CheckMissingData"
