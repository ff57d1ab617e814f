"""Metric checks for the EdgeDeployment loop (docs/analysis.md): the MetricCheckTemplates of
each namespace (a kopf index), and one call that sends the queries `domain.analysis.due`
names to each cluster's Prometheus and returns what they came to."""

from __future__ import annotations

from pathlib import Path

import kopf

from edgeline import GROUP, VERSION
from edgeline.analysis.prometheus import Endpoint, measure
from edgeline.api.analysis import MetricCheckTemplateSpec
from edgeline.api.edgedeployment import EdgeDeploymentSpec, EdgeDeploymentStatus
from edgeline.controllers.indexes import ClusterEntry
from edgeline.controllers.loop import first
from edgeline.domain import analysis, site_checks
from edgeline.domain.waves import WavePlan
from edgeline.settings import get_settings


@kopf.index(GROUP, VERSION, "metricchecktemplates")
def check_template_index(namespace: str, name: str, spec: kopf.Spec, **_) -> dict:
    try:
        return {(namespace, name): MetricCheckTemplateSpec.model_validate(dict(spec))}
    except ValueError:
        return {}       # admission refuses such specs; an old stored one is as good as missing


def checks_of(spec: EdgeDeploymentSpec, namespace: str, index: kopf.Index | None) -> list[analysis.ResolvedCheck]:
    refs = {c.template_ref for c in spec.analysis.checks if c.template_ref}
    templates = {}
    for ref in refs:
        found = first(index, (namespace, ref)) if index is not None else None
        if found is not None:
            templates[ref] = found
    return analysis.resolve(spec.analysis.checks, templates)


def _token(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text().strip() or None
    except OSError:
        return None     # the query then fails with 401/403, which the check reports


async def measurements(checks: list[analysis.ResolvedCheck], status: EdgeDeploymentStatus, waves: list[WavePlan],
                       context: analysis.Context, known: dict[str, ClusterEntry], now,
                       site_reports: dict | None = None) -> list[analysis.Measurement]:
    """`site_reports`: the pull clusters' reports (clusters.pull) by cluster; a pull cluster's
    query is not sent from the hub: its site measured it (domain.site_checks)."""
    queries = analysis.due(checks, status, waves, context, now)
    if not queries:
        return []
    pulled = [q for q in queries if (e := known.get(q.cluster)) is not None and e.mode == "pull"]
    queries = [q for q in queries if q not in pulled]
    from_sites = site_checks.measurements_from_sites(
        pulled, {c: r.checks for c, r in (site_reports or {}).items()}, checks, status, now)
    if not queries:
        return from_sites
    settings = get_settings()
    token = _token(settings.prometheus_bearer_token_file)

    def endpoint_for(cluster: str) -> Endpoint | None:
        entry = known.get(cluster)
        url = (entry.prometheus_url if entry else None) or settings.prometheus_url
        return Endpoint(url, token, settings.prometheus_ca_file) if url else None

    return from_sites + await measure(queries, endpoint_for, settings.prometheus_timeout_s)
