"""Which EdgeClusters run an EdgeDeployment: the label selector picks candidates, the
requirements (tier, architecture, GPU, memory) keep those that can run it. Clusters that
match the labels but not the requirements are excluded with a reason people can act on.
A selected cluster whose EdgeCluster is Stale stays selected (what it runs is kept) and is
also listed in `stale`: the rollout starts no new revision there until it is fresh again."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeline.api.edgedeployment import Placement, Runtime, VariantRef
from edgeline.domain.quantities import parse_quantity
from edgeline.domain.selectors import matches
from edgeline.domain.tenancy import HubNamespace, TenancyFacts, admits
from edgeline.domain.variants import Runs, pick


@dataclass(frozen=True)
class ClusterFacts:
    """What the hub knows about one EdgeCluster (its labels, spec and probed status)."""

    name: str
    labels: dict[str, str] = field(default_factory=dict)
    tier: str = "edge"
    architectures: tuple[str, ...] = ()
    gpus: int = 0
    memory: str | None = None
    reachable: bool = False
    stale: bool = False
    probed: bool = False
    tenancy: TenancyFacts = TenancyFacts()


STALE_MESSAGE = ("the EdgeCluster is Stale (no recent heartbeat), so what it runs is unknown; a new revision "
                 "starts there once it is fresh again")


@dataclass(frozen=True)
class Exclusion:
    name: str
    reason: str
    message: str


@dataclass(frozen=True)
class PlacementResult:
    selected: tuple[str, ...]
    excluded: tuple[Exclusion, ...]
    stale: tuple[Exclusion, ...] = ()      # selected, but the EdgeCluster is Stale (reason ClusterStale)


def place(placement: Placement, clusters: list[ClusterFacts], variants: tuple[VariantRef, ...] = (),
          runtime: Runtime | None = None, namespace: HubNamespace | None = None,
          open_without_section: bool = False) -> PlacementResult:
    """`variants`: the model's (domain.variants.variants_of); a cluster none of them fits (GPU,
    architecture, onnxruntime version and opsets of `runtime`, memory) is excluded. `namespace`:
    the deployment's hub namespace; a cluster whose spec.tenancy does not admit it is excluded
    (reason NamespaceNotAllowed) whatever its labels and hardware."""
    selected, excluded, stale = [], [], []
    for cluster in sorted(clusters, key=lambda c: c.name):
        if not matches(placement.cluster_selector, cluster.labels):
            continue
        refused = admits(cluster.name, cluster.tenancy, namespace, open_without_section) if namespace else None
        problem = (refused.reason, refused.message) if refused else (
            _unmet_requirement(placement, cluster) or _no_variant(variants, cluster, runtime))
        if problem:
            excluded.append(Exclusion(cluster.name, *problem))
        else:
            selected.append(cluster.name)
            if cluster.stale:
                stale.append(Exclusion(cluster.name, "ClusterStale", STALE_MESSAGE))
    return PlacementResult(tuple(selected), tuple(excluded), tuple(stale))


def _no_variant(variants: tuple[VariantRef, ...], cluster: ClusterFacts,
                runtime: Runtime | None) -> tuple[str, str] | None:
    if not variants:
        return None
    chosen = pick(variants, cluster, Runs.of(runtime))
    return None if chosen.variant is not None else (chosen.reason, chosen.message)


def _unmet_requirement(placement: Placement, cluster: ClusterFacts) -> tuple[str, str] | None:
    req = placement.requirements
    if req is None:
        return None
    if req.tiers and cluster.tier not in req.tiers:
        return "TierNotAllowed", f"tier {cluster.tier} is not one of {', '.join(req.tiers)}"
    needs_facts = bool(req.architectures or req.gpu or req.min_memory)
    if needs_facts and not cluster.probed:
        return "NotProbedYet", "the cluster has not been reached yet, so its hardware is unknown"
    if req.architectures and not set(req.architectures) & set(cluster.architectures):
        have = ", ".join(cluster.architectures) or "none"
        return "ArchitectureMismatch", f"nodes are {have}; the deployment needs {', '.join(req.architectures)}"
    if req.gpu and cluster.gpus < 1:
        return "NoGPU", "the deployment needs a GPU and the cluster has no allocatable GPU"
    if req.min_memory:
        have = parse_quantity(cluster.memory) if cluster.memory else 0
        if have < parse_quantity(req.min_memory):
            return "NotEnoughMemory", f"allocatable memory {cluster.memory or 0} is below {req.min_memory}"
    return None
