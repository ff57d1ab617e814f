"""What a member cluster says about itself: version, distribution, nodes, capacity."""

from __future__ import annotations

import asyncio
import time
import weakref
from dataclasses import dataclass, field

import httpx2 as httpx
from lightkube import ApiError, AsyncClient
from lightkube.resources.core_v1 import Node

from edgeline.clusters.connections import ConnectionProblem, server_version
from edgeline.domain.quantities import parse_quantity
from edgeline.metrics import MEMBER_REQUESTS

GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu", "gpu.intel.com/i915")


@dataclass(frozen=True)
class ClusterFacts:
    kubernetes_version: str
    distribution: str  # k3s | kubernetes
    node_count: int
    ready_nodes: int
    architectures: tuple[str, ...]
    cpu_millicores: int
    memory_bytes: int
    gpus: int
    node_labels: dict[str, tuple[str, ...]] = field(default_factory=dict)


async def probe(client: AsyncClient, timeout_s: float) -> ClusterFacts:
    """Raises ConnectionProblem (reason Unreachable / Unauthorized / ...) when the
    cluster cannot tell."""
    try:
        version, nodes = await asyncio.wait_for(_gather(client), timeout=timeout_s)
    except asyncio.TimeoutError:
        raise ConnectionProblem("Unreachable", f"no answer within {timeout_s:.0f}s") from None
    except ApiError as exc:
        code = exc.status.code
        reason = {401: "Unauthorized", 403: "Forbidden"}.get(code, "ApiError")
        raise ConnectionProblem(reason, f"the cluster refused the probe ({code}): {exc.status.message}") from None
    except (httpx.HTTPError, OSError) as exc:
        raise ConnectionProblem("Unreachable", f"cannot connect: {_short(exc)}") from None
    return summarise(version, nodes)


# The server's version changes only with an upgrade: asked again every VERSION_EVERY_S per
# client, not on every probe (the node LIST, which the probe needs each time for readiness,
# proves the cluster answers). Half the probe's requests: at a thousand clusters, 100 a second
# fewer (docs/decisions.md, perf). A new client (a changed kubeconfig) asks at once.
VERSION_EVERY_S = 300.0
_versions: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


async def _gather(client: AsyncClient):
    known = _versions.get(client)
    if known is None or time.monotonic() - known[0] >= VERSION_EVERY_S:
        MEMBER_REQUESTS.labels(purpose="probe").inc()
        known = _versions[client] = (time.monotonic(), await server_version(client))
    MEMBER_REQUESTS.labels(purpose="probe").inc()
    nodes = [n async for n in client.list(Node)]
    return known[1], nodes


def summarise(version: dict, nodes: list[Node]) -> ClusterFacts:
    git_version = version.get("gitVersion", "unknown")
    cpu = memory = gpus = ready = 0
    arches: set[str] = set()
    for node in nodes:
        status = node.status
        allocatable = (status.allocatable if status else None) or {}
        cpu += int(parse_quantity(allocatable.get("cpu", "0")) * 1000)
        memory += int(parse_quantity(allocatable.get("memory", "0")))
        gpus += sum(int(parse_quantity(allocatable.get(g, "0"))) for g in GPU_RESOURCES)
        if status and status.nodeInfo:
            arches.add(status.nodeInfo.architecture)
        conditions = (status.conditions if status else None) or []
        if any(c.type == "Ready" and c.status == "True" for c in conditions):
            ready += 1
    return ClusterFacts(
        kubernetes_version=git_version,
        distribution="k3s" if "+k3s" in git_version or _all_k3s(nodes) else "kubernetes",
        node_count=len(nodes),
        ready_nodes=ready,
        architectures=tuple(sorted(arches)),
        cpu_millicores=cpu,
        memory_bytes=memory,
        gpus=gpus,
    )


def _all_k3s(nodes: list[Node]) -> bool:
    # K3s reports "+k3s" in its server version; its kubelets always do.
    versions = [n.status.nodeInfo.kubeletVersion for n in nodes if n.status and n.status.nodeInfo]
    return bool(versions) and all("+k3s" in v for v in versions)


def _short(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    return text.splitlines()[0][:200]
