"""The EdgeDeployment loop's side of pull clusters (clusters.pull): observe through the site's
report and Lease, apply by publishing an assignment, remove by withdrawing it, and turn the
rollbacks a site did by itself into inputs of the rollout decision.

The loop calls these instead of the push calls when a cluster's connection.mode is pull; the
decision gets the same Observation and ActOutcome either way."""

from __future__ import annotations

import logging
import time

from pydantic import ValidationError

from edgeline.api.edgecluster import Maintenance
from edgeline.api.edgedeployment import EdgeDeployment, EdgeDeploymentStatus, RevisionRef, VariantRef
from edgeline.clusters import pull
from edgeline.clusters.connections import hub_client
from edgeline.clusters.workloads import RuntimeOwner
from edgeline.controllers.indexes import ClusterEntry
from edgeline.domain import site_checks, site_schedule
from edgeline.domain.analysis import Context, ResolvedCheck
from edgeline.domain.rollback import known_good
from edgeline.domain.rollout import ActOutcome, Apply, Observation
from edgeline.domain.site_cache import SiteCache, pod_security_refusal
from edgeline.domain.site_reports import SiteRevert, WorkloadReport
from edgeline.domain.site_terms import SiteTerms, stale
from edgeline.domain.tenancy import effective_level
from edgeline.domain.variants import Runs, pick
from edgeline.domain.waves import WavePlan
from edgeline.render.runtime import object_name


POD_SECURITY_TOO_STRICT = "PodSecurityTooStrict"
log = logging.getLogger(__name__)


def is_pull(entry: ClusterEntry | None) -> bool:
    return entry is not None and entry.mode == "pull"


async def observe(entry: ClusterEntry, cluster: str, owner: RuntimeOwner,
                  reports: dict[str, WorkloadReport]) -> Observation:
    observation, report = await pull.observe(hub_client(), cluster, object_name(owner.namespace, owner.name),
                                             entry.stale_after, owner_uid=owner.uid)
    if report is not None:
        reports[cluster] = report
    return observation


async def apply(entry: ClusterEntry, action: Apply, owner: RuntimeOwner, ed: EdgeDeployment,
                status: EdgeDeploymentStatus | None, reports: dict[str, WorkloadReport],
                terms: SiteTerms | None = None) -> ActOutcome:
    cluster, revision = action.cluster, action.revision
    level = effective_level(entry.facts.tenancy)
    # Below privileged only a cache on a claim will do: ask the site's report which one it has.
    refusal = pod_security_refusal(cluster, level, await site_cache(cluster) if level != "privileged" else SiteCache())
    if refusal is not None:
        # Said here, not found as Pods that Pod Security refuses on the site.
        return ActOutcome(cluster, revision.revision, time.time(), f"{POD_SECURITY_TOO_STRICT}: {refusal}")
    # What the site falls back on by itself: the hub's own choice for a rollback of this revision,
    # in the variant this cluster gets (picked as the rollout picks it).
    fallback = known_good(status, revision.revision) if status is not None else None
    assignment = pull.Assignment(
        deployment_namespace=owner.namespace, deployment=owner.name,
        object_name=object_name(owner.namespace, owner.name), target_namespace=entry.namespace, revision=revision,
        last_known_good=fallback, requirements=ed.spec.placement.requirements, rollback=ed.spec.rollback,
        owner_uid=owner.uid, variant=action.variant, last_known_good_variant=variant_for(fallback, entry),
        pod_security=level, terms=terms)
    try:
        await pull.publish(hub_client(), cluster, assignment)
    except pull.PullProblem as exc:
        return ActOutcome(cluster, revision.revision, time.time(), str(exc))
    return ActOutcome(cluster, revision.revision, pull.reached_at(reports.get(cluster), revision.revision))


async def remove(cluster: str, owner: RuntimeOwner) -> ActOutcome:
    try:
        await pull.withdraw(hub_client(), cluster, object_name(owner.namespace, owner.name), owner.uid)
    except pull.PullProblem as exc:
        return ActOutcome(cluster, None, time.time(), str(exc))
    return ActOutcome(cluster, None, time.time())


async def site_cache(cluster: str) -> SiteCache:
    """The cache the site reported; a hostPath (the strict answer) when the report cannot be read."""
    try:
        return await pull.site_cache(hub_client(), cluster)
    except pull.PullProblem:
        return SiteCache()


def terms_for(entry: ClusterEntry, cluster: str, checks: list[ResolvedCheck], waves: list[WavePlan],
              status: EdgeDeploymentStatus, context: Context) -> SiteTerms:
    """What the site needs besides the revision: the checks of its wave (domain.site_checks),
    where its Prometheus is, and the schedule its own rollbacks respect (domain.site_schedule)."""
    schedule = None
    if entry.maintenance:
        try:
            schedule = site_schedule.of(Maintenance.model_validate(entry.maintenance))
        except ValidationError as exc:
            # The CRD schema refuses such a spec; an old stored one: the hub's own gate holds (WindowInvalid).
            log.warning("EdgeCluster %s: spec.maintenance cannot be read for its site: %s", cluster, exc)
    return SiteTerms(site_checks.for_site(checks, cluster, waves, status, context), entry.prometheus_url, schedule)


async def refresh_terms(reports: dict[str, WorkloadReport], terms: dict[str, SiteTerms], namespace: str,
                        name: str) -> None:
    """Rewrites the terms of every site that reports holding other ones (an EdgeCluster's
    maintenance or the checks changed, or the rollout moved to another wave or revision)."""
    for cluster, report in sorted(reports.items()):
        wanted = terms.get(cluster)
        if wanted is None or report.assigned is None or not stale(report.terms, wanted):
            continue
        try:
            await pull.publish_terms(hub_client(), cluster, object_name(namespace, name), wanted)
        except pull.PullProblem as exc:
            log.warning("EdgeCluster %s: %s", cluster, exc)       # tried again next tick


def variant_for(revision: RevisionRef | None, entry: ClusterEntry) -> VariantRef | None:
    """The variant of `revision` this cluster runs, picked as the rollout picks it (domain.variants)."""
    if revision is None or not revision.variants:
        return None
    return pick(revision.variants, entry.facts, Runs.of(revision.runtime)).variant


def site_rollbacks(reports: dict[str, WorkloadReport]) -> list[SiteRevert]:
    """Rollbacks the sites did on their own and still report (the decision skips recorded ones)."""
    return [SiteRevert(cluster, r) for cluster, report in sorted(reports.items()) for r in report.rollbacks]


async def acknowledge(reports: dict[str, WorkloadReport], namespace: str, name: str) -> None:
    """After status holds what the sites' rollbacks led to: they need not be reported again."""
    for cluster, report in reports.items():
        if report.rollbacks:
            await pull.acknowledge(hub_client(), cluster, object_name(namespace, name),
                                   [r.key for r in report.rollbacks])
