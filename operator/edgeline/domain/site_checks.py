"""Metric checks on a pull site (docs/edge-autonomy.md, "Metric checks on a pull site").

A pull site's Prometheus is usually out of the hub's reach, so the site measures its own checks:
the hub publishes, with the site's assignment, each check that applies to the site's wave, with its
query already rendered for the revision being rolled out (`for_site`); the agent sends each query
to the site's Prometheus about three times per interval (`due_on_site`) and reports what came back
(`evaluate`: the values, the site's own verdict, when). The hub turns the freshest result into the
same `Measurement` a push cluster's query gives (`measurement_from_site`), so `domain.analysis`
judges it and `decide()` pauses, fails or rolls back the wave exactly as for a push cluster.

Absence is never trusted: no result, a result for another query, one taken before the previous
measurement or older than the check's interval is missing data, which the check treats as it
treats missing data on the hub (`missingData`: Fail by default, or Inconclusive).

Pure: no clients, only data in and data out.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from edgeline.api.edgedeployment import EdgeDeploymentStatus
from edgeline.domain.analysis import (Context, ConditionError, Measurement, Query, ResolvedCheck, parse_condition,
                                      render_query)
from edgeline.domain.waves import WavePlan
from edgeline.timestamps import parse

# The site measures a check this many times per interval, so that the hub, reading the report a
# cycle or two later, finds a result younger than one interval when its measurement is due.
MEASURES_PER_INTERVAL = 3

PASS, FAIL, NO_DATA = "Pass", "Fail", "NoData"


@dataclass(frozen=True)
class SiteCheck:
    """One check as the hub publishes it to a site: ready to send, nothing left to resolve."""

    name: str
    promql: str
    condition: str
    interval_s: int

    def dump(self) -> dict:
        return {"name": self.name, "promql": self.promql, "condition": self.condition,
                "intervalSeconds": self.interval_s}

    @classmethod
    def load(cls, data: dict) -> SiteCheck:
        return cls(str(data["name"]), str(data["promql"]), str(data["condition"]), int(data["intervalSeconds"]))


@dataclass(frozen=True)
class SiteCheckResult:
    """One measurement the site took, as its report carries it."""

    name: str
    promql: str                     # the query it sent (a result for another query is not this check's)
    at: float                       # epoch seconds, the site's clock, when Prometheus answered
    verdict: str                    # Pass, Fail or NoData: the site's own reading (the hub judges again)
    values: tuple[float, ...] = ()
    error: str | None = None

    def dump(self) -> dict:
        return {"name": self.name, "promql": self.promql, "at": self.at, "verdict": self.verdict,
                # JSON has no NaN: a NaN value is sent as null and read back as NaN.
                "values": [None if math.isnan(v) else v for v in self.values], "error": self.error}

    @classmethod
    def load(cls, data: dict) -> SiteCheckResult:
        return cls(str(data["name"]), str(data["promql"]), float(data["at"]), str(data.get("verdict") or NO_DATA),
                   tuple(math.nan if v is None else float(v) for v in data.get("values") or ()), data.get("error"))


def wave_of(cluster: str, waves: list[WavePlan]) -> WavePlan | None:
    return next((w for w in waves if cluster in w.clusters), None)


def for_site(checks: list[ResolvedCheck], cluster: str, waves: list[WavePlan], status: EdgeDeploymentStatus,
             context: Context) -> tuple[SiteCheck, ...]:
    """The checks the site measures: those of its wave, rendered for the revision the rollout
    moves to (what the hub's own query would be, `domain.analysis.due`). None outside an update
    in progress (a site measures nothing once the rollout is done), and none that cannot be measured as written (the hub fails those itself, as for push)."""
    progress = status.rollout
    wave = wave_of(cluster, waves)
    if progress is None or progress.reason != "Update" or progress.completed_at or progress.target is None \
            or wave is None:
        return ()
    target = progress.target
    values = {"cluster": cluster, "deployment": context.deployment, "namespace": context.namespace,
              "revision": target.revision, "version": target.version or ""}
    return tuple(SiteCheck(c.name, render_query(c.query, values), c.condition, c.interval_s)
                 for c in checks if c.applies_to(wave.name) and c.error is None)


def due_on_site(check: SiteCheck, last: SiteCheckResult | None, now: float) -> bool:
    """Whether the site measures `check` now."""
    if last is None or last.promql != check.promql:
        return True
    return now - last.at >= check.interval_s / MEASURES_PER_INTERVAL


def evaluate(check: SiteCheck, values: tuple[float, ...], error: str | None, at: float) -> SiteCheckResult:
    """The site's reading of one answer, with the condition parser the hub uses."""
    if error or not values or any(math.isnan(v) for v in values):
        why = error or ("the query returned no data" if not values else "the query returned NaN")
        return SiteCheckResult(check.name, check.promql, at, NO_DATA, values, why)
    try:
        condition = parse_condition(check.condition)
    except ConditionError as exc:
        return SiteCheckResult(check.name, check.promql, at, NO_DATA, values, str(exc))
    verdict = PASS if all(condition.holds(v) for v in values) else FAIL
    return SiteCheckResult(check.name, check.promql, at, verdict, values)


def latest(results: tuple[SiteCheckResult, ...], checks: tuple[SiteCheck, ...]) -> tuple[SiteCheckResult, ...]:
    """What the site keeps and reports: the newest result of each check it measures now."""
    wanted = {(c.name, c.promql) for c in checks}
    newest: dict[tuple[str, str], SiteCheckResult] = {}
    for result in results:
        key = (result.name, result.promql)
        if key in wanted and (key not in newest or result.at > newest[key].at):
            newest[key] = result
    return tuple(sorted(newest.values(), key=lambda r: r.name))


def _seconds(at: float) -> dt.datetime:
    # Whole seconds, as status records them: a result is never counted twice because of rounding.
    return dt.datetime.fromtimestamp(int(at), dt.timezone.utc)


def previous_measurement(status: EdgeDeploymentStatus, check: str, cluster: str) -> dt.datetime | None:
    """When the check was last measured on the cluster (or when its wave's checks began)."""
    analysis = status.analysis
    if analysis is None:
        return None
    found = next((r for r in analysis.checks if r.name == check and r.cluster == cluster), None)
    return parse(found.last_measured_at if found and found.last_measured_at else analysis.started_at)


def measurement_from_site(query: Query, results: tuple[SiteCheckResult, ...] | None, interval_s: int,
                          since: dt.datetime | None, now: dt.datetime) -> Measurement:
    """The Measurement a due query on a pull cluster comes to: the site's newest result for that
    very query, if it was taken after `since` (the previous measurement) and is at most one
    interval old; anything else is missing data."""
    if query.promql is None:
        return Measurement(query.check, query.cluster, now, error=query.error or "nothing to query")
    mine = [r for r in results or () if r.name == query.check and r.promql == query.promql]
    if not mine:
        other = any(r.name == query.check for r in results or ())
        return Measurement(query.check, query.cluster, now, error=(
            "the site has not measured this query yet (it measures the checks of its assignment)" if other
            else "the site reported no result for this check"))
    newest = max(mine, key=lambda r: r.at)
    at = _seconds(newest.at)
    age = (now - at).total_seconds()
    if age > interval_s:
        return Measurement(query.check, query.cluster, now, error=(
            f"the site's newest result is {int(age)}s old, older than the check's interval ({interval_s}s)"))
    if since is not None and at <= since:
        return Measurement(query.check, query.cluster, now, error=(
            "the site reported no result newer than the previous measurement"))
    return Measurement(query.check, query.cluster, at, values=newest.values, error=newest.error)


def measurements_from_sites(queries: list[Query], results: dict[str, tuple[SiteCheckResult, ...]],
                            checks: list[ResolvedCheck], status: EdgeDeploymentStatus,
                            now: dt.datetime) -> list[Measurement]:
    """`measurement_from_site` for every due query (each on a pull cluster)."""
    intervals = {c.name: c.interval_s for c in checks}
    return [measurement_from_site(q, results.get(q.cluster), intervals.get(q.check, 0),
                                  previous_measurement(status, q.check, q.cluster), now) for q in queries]
