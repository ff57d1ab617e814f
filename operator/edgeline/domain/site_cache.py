"""Where a pull site keeps its models (docs/edge-autonomy.md, "What a site keeps"), and what
that means for the Pod Security level of the namespace its runtimes run in.

A cache on the node's disk (hostPath) is mounted by the runtime Pods as a hostPath volume,
which Pod Security admits only at `privileged`. A cache on a PersistentVolumeClaim is mounted
as a claim, which every level admits, `restricted` included. The agent reports which one it
has in its site facts; an agent that reports none predates the claim and has a hostPath."""

from __future__ import annotations

from dataclasses import dataclass

HOST_PATH = "hostPath"
CLAIM = "persistentVolumeClaim"
KINDS = (HOST_PATH, CLAIM)


@dataclass(frozen=True)
class SiteCache:
    kind: str = HOST_PATH
    claim: str | None = None        # the claim's name (in the runtimes' namespace), kind CLAIM only
    node: str | None = None         # the node the agent (and so the cache) is on, when it knows

    def to_dict(self) -> dict:
        return {"kind": self.kind, "claim": self.claim, "node": self.node}

    @classmethod
    def from_dict(cls, data: object) -> SiteCache:
        """From the reported facts; anything unreadable counts as the hostPath it used to be."""
        if not isinstance(data, dict) or data.get("kind") not in KINDS:
            return cls()
        claim = data.get("claim") if data["kind"] == CLAIM else None
        if data["kind"] == CLAIM and not claim:
            return cls()
        node = data.get("node")
        return cls(kind=data["kind"], claim=str(claim) if claim else None, node=str(node) if node else None)


def pod_security_refusal(cluster: str, level: str, cache: SiteCache) -> str | None:
    """Why the hub must not publish an assignment to this site (None: Pod Security on the site
    admits the runtime Pods it would render). `level`: the EdgeCluster tenancy's effective level."""
    if cache.kind == CLAIM or level == "privileged":
        return None
    return (f"a pull site's runtime reads its model from the node's cache (a hostPath volume), which Pod "
            f"Security admits only at privileged; EdgeCluster {cluster} has spec.tenancy.podSecurity {level} "
            f"(a cache on a PersistentVolumeClaim, `edgeline cluster join --cache-claim`, is admitted at every level)")
