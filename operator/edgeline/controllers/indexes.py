"""What the hub knows about EdgeClusters and MLModels, kept current by kopf's watches: a
cache the EdgeDeployment and DataPipeline loops read, never the state. Typed entries, and the
one way from an entry to a client for that cluster."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import kopf
from lightkube import AsyncClient

from edgeline import GROUP, VERSION
from edgeline.clusters.connections import ConnectionProblem, MemberClusters, SecretRef
from edgeline.controllers.loop import first
from edgeline.domain.authors import CREATED_BY
from edgeline.domain.model_choice import ModelSummary
from edgeline.domain.placement import ClusterFacts
from edgeline.domain.stages import PROMOTED_BY, effective_stage
from edgeline.domain.tenancy import HubNamespace, TenancyFacts
from edgeline.domain.used_by import entry, uses
from edgeline.domain.variants import variants_of
from edgeline.settings import get_settings


class KubeconfigRef(NamedTuple):
    name: str | None        # Secret in the operator's namespace
    key: str


@dataclass(frozen=True)
class ClusterEntry:
    facts: ClusterFacts
    secret: KubeconfigRef
    namespace: str          # where Edgeline's objects go on that cluster
    stale_after: int        # seconds without a sighting before its state counts as stale
    maintenance: dict | None = None     # spec.maintenance: windows and line consent (domain.windows)
    prometheus_url: str | None = None    # spec.monitoring.prometheusUrl: where its metric checks query
    mode: str = "push"      # push: the hub calls the cluster; pull: its agent dials out (clusters.pull)


@kopf.index(GROUP, VERSION, "edgeclusters")
def cluster_index(name: str, meta: kopf.Meta, spec: kopf.Spec, status: kopf.Status, **_) -> dict[str, ClusterEntry]:
    allocatable = status.get("allocatable") or {}
    secret = (spec.get("connection") or {}).get("kubeconfigSecretRef") or {}
    return {name: ClusterEntry(
        facts=ClusterFacts(
            name=name, labels=dict(meta.get("labels") or {}), tier=spec.get("tier", "edge"),
            architectures=tuple(status.get("architectures") or ()), gpus=int(allocatable.get("gpu") or 0),
            memory=allocatable.get("memory"), reachable=bool(status.get("reachable")),
            stale=bool(status.get("stale")), probed=bool(status.get("kubernetesVersion")),
            tenancy=TenancyFacts.from_spec(_plain(spec.get("tenancy")))),
        secret=KubeconfigRef(secret.get("name"), secret.get("key", "kubeconfig")),
        namespace=spec.get("targetNamespace", "edgeline-workloads"),
        stale_after=int(spec.get("staleAfterSeconds", 300)),
        mode=(spec.get("connection") or {}).get("mode", "push"),
        maintenance=dict(spec.get("maintenance") or {}) or None,
        prometheus_url=(spec.get("monitoring") or {}).get("prometheusUrl"))}


@kopf.index(GROUP, VERSION, "mlmodels")
def model_index(namespace: str, name: str, meta: kopf.Meta, spec: kopf.Spec, status: kopf.Status, **_):
    artifact = status.get("artifact") or {}
    return {namespace: ModelSummary(
        name=name, model=spec.get("model", ""), version=spec.get("version", ""), phase=status.get("phase"),
        digest=artifact.get("digest"), uri=(spec.get("artifact") or {}).get("uri", ""),
        created=meta.get("creationTimestamp", ""),
        external_data=tuple((f["path"], f["sha256"]) for f in (spec.get("artifact") or {}).get("externalData") or []),
        stage=effective_stage(spec.get("stage"), dict(meta.get("annotations") or {})).stage,
        variants=variants_of(dict(spec), dict(status)), has_variants=bool(spec.get("variants")),
        variants_digest=status.get("variantsDigest"),
        metrics=tuple(sorted((str(k), float(v)) for k, v in (spec.get("metrics") or {}).items())),
        made_by=tuple(str(made) for key in (CREATED_BY, PROMOTED_BY)
                      if (made := (meta.get("annotations") or {}).get(key))),
        reference_profile=_profile(spec.get("referenceProfile")))}


def _profile(ref) -> tuple[str, str] | None:
    return (str(ref["uri"]), str(ref["sha256"])) if ref and ref.get("uri") and ref.get("sha256") else None


@kopf.index(GROUP, VERSION, "edgedeployments")
def usage_index(namespace: str, name: str, status: kopf.Status, **_) -> dict[tuple[str, str], str]:
    """(namespace, MLModel name) -> "namespace/deployment (roles)" for every model a deployment uses."""
    return {(namespace, mlmodel): entry(namespace, name, roles) for mlmodel, roles in uses(status).items()}


@kopf.index(GROUP, VERSION, "mlmodels")
def recorded_users_index(namespace: str, name: str, status: kopf.Status, **_) -> dict[tuple[str, str], tuple]:
    """(namespace, MLModel name) -> the usedBy its status holds now."""
    return {(namespace, name): tuple(status.get("usedBy") or ())}


@kopf.index("", "v1", "namespaces")
def namespace_index(name: str, meta: kopf.Meta, **_) -> dict[str, dict[str, str]]:
    """Hub namespace -> its labels, for the EdgeClusters' namespaceSelectors (domain.tenancy)."""
    return {name: dict(meta.get("labels") or {})}


def hub_namespace(index: kopf.Index, name: str) -> HubNamespace:
    return HubNamespace(name, first(index, name) or {})


def _plain(value):
    """kopf's views of a body as plain dicts and lists (for the pydantic models)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    return [_plain(v) for v in value]


def known_clusters(index: kopf.Index) -> dict[str, ClusterEntry]:
    return {key: entry for key in index if (entry := first(index, key)) is not None}


async def client_for(members: MemberClusters, cluster: str, entry: ClusterEntry) -> AsyncClient:
    """The cluster's shared client. Deployments and pipelines never read the kubeconfig Secret
    for a client that exists: the cluster's probe reads it again (at most every 30 s) and
    replaces the client when it changed, so a rotated Secret reaches them through the probe. A
    read here put a hub GET per cluster in front of a revert whenever the last read was older
    than 30 s (a quarter of the time), which was the long tail of the revert at 100 clusters."""
    if entry.mode == "pull":
        # The hub holds no credentials for a pull site: only its agent acts there (clusters.pull).
        raise ConnectionProblem("PullCluster", f"EdgeCluster {cluster} is a pull site: the hub cannot call it")
    ref = SecretRef(get_settings().namespace, entry.secret.name, entry.secret.key)
    return await members.client_for(cluster, ref, entry.namespace, max_age_s=math.inf)
