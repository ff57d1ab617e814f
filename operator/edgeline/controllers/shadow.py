"""Reads how a candidate in shadow compares with the served revision (domain.shadow.queries)
from the Prometheus-compatible API each cluster names, the same one the metric checks use."""

from __future__ import annotations

import datetime as dt

import aiohttp

from edgeline.analysis.prometheus import Endpoint, QueryFailed, instant_query
from edgeline.api.edgedeployment import EdgeDeploymentStatus
from edgeline.api.shadow import ShadowComparison
from edgeline.controllers.analysis import _token
from edgeline.controllers.indexes import ClusterEntry
from edgeline.domain import shadow
from edgeline.settings import get_settings
from edgeline.timestamps import parse

MIN_INTERVAL_S = 10     # figures are totals since the candidate started: a fresher read adds little


async def comparisons(status: EdgeDeploymentStatus, namespace: str, deployment: str,
                      known: dict[str, ClusterEntry], now: dt.datetime) -> list[ShadowComparison]:
    """The comparison on every cluster of the shadow run recorded in status (none before the
    first tick that attached it), at most every MIN_INTERVAL_S per cluster."""
    pending = status.pending_approval.shadow if status.pending_approval else None
    current = status.current_revision
    if pending is None or not pending.version or current is None or not current.version:
        return []
    last = {c.cluster: parse(c.measured_at) for c in pending.comparisons if c.measured_at}
    due = [c for c in pending.clusters
           if last.get(c) is None or (now - last[c]).total_seconds() >= MIN_INTERVAL_S]
    if not due:
        return []
    settings = get_settings()
    token = _token(settings.prometheus_bearer_token_file)
    out = []
    async with aiohttp.ClientSession() as session:
        for cluster in due:
            entry = known.get(cluster)
            url = (entry.prometheus_url if entry else None) or settings.prometheus_url
            if not url:
                out.append(ShadowComparison(cluster=cluster, measured_at=shadow.iso(now), message=(
                    f"no Prometheus is configured for cluster {cluster} (EdgeCluster "
                    "spec.monitoring.prometheusUrl or EDGELINE_PROMETHEUS_URL): no comparison")))
                continue
            endpoint = Endpoint(url, token, settings.prometheus_ca_file)
            answers: dict[str, tuple[float, ...] | str] = {}
            for key, promql in shadow.queries(namespace, deployment, cluster, pending.version,
                                              current.version).items():
                try:
                    answers[key] = await instant_query(session, endpoint, promql, settings.prometheus_timeout_s)
                except QueryFailed as exc:
                    answers[key] = str(exc)
                    break       # the same Prometheus would fail the next ones too
            out.append(shadow.comparison(cluster, answers, now))
    return out


_exported: dict[tuple[str, str], set[tuple[str, str]]] = {}     # only what /metrics shows, never state


def export_pending_metrics(namespace: str, deployment: str, status: EdgeDeploymentStatus) -> None:
    """edgeline_pending_model_metric for the version awaiting approval, so that the dashboard shows
    MLModel spec.metrics beside the shadow comparison; removed once nothing waits."""
    from edgeline.metrics import PENDING_MODEL_METRIC

    pending = status.pending_approval
    version = pending.revision.version or "" if pending else ""
    now = {(version, k) for k in (pending.metrics or {})} if pending else set()
    for label in _exported.get((namespace, deployment), set()) - now:
        PENDING_MODEL_METRIC.remove(namespace, deployment, *label)
    for label in now:
        PENDING_MODEL_METRIC.labels(namespace, deployment, *label).set(pending.metrics[label[1]])
    _exported[(namespace, deployment)] = now
