"""What the local environment looks like: one cloud hub and two K3s edge sites.

The fake nodes are described like the hardware Edgeline meets in a factory: the hub
is a cloud cluster with general-purpose and GPU machines; edge-a is an x86 line
computer plus an industrial PC with an NVIDIA GPU; edge-b is a site of arm64 gateways.
kwok keeps these nodes Ready and moves their Pods through their phases. The hub and
edge-a also have one real node each (a kubelet and containerd, devenv/nodes.py), tainted
so that only Pods which ask for a real container land there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

K3S_SUFFIX = "+k3s1"


@dataclass(frozen=True)
class FakeNode:
    name: str
    arch: str
    cpu: str
    memory: str
    instance_type: str
    gpus: int = 0
    labels: dict[str, str] = field(default_factory=dict)

    def manifest(self, kubernetes_version: str, k3s: bool) -> dict:
        labels = {
            "kubernetes.io/arch": self.arch,
            "kubernetes.io/os": "linux",
            "kubernetes.io/hostname": self.name,
            "node.kubernetes.io/instance-type": self.instance_type,
            "type": "kwok",
            **self.labels,
        }
        capacity = {"cpu": self.cpu, "memory": self.memory, "pods": "110"}
        taints = []
        if self.gpus:
            capacity["nvidia.com/gpu"] = str(self.gpus)
            # GPU nodes are tainted on real clusters so that only GPU workloads land there.
            taints.append({"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"})
        kubelet = kubernetes_version + (K3S_SUFFIX if k3s else "")
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": labels,
                # kwok manages nodes that carry this annotation.
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            },
            "spec": {"taints": taints} if taints else {},
            "status": {
                "capacity": capacity,
                "allocatable": capacity,
                "nodeInfo": {
                    "architecture": self.arch,
                    "operatingSystem": "linux",
                    "kubeletVersion": kubelet,
                    "kubeProxyVersion": kubelet,
                    "containerRuntimeVersion": "containerd://2.1.4-k3s1" if k3s else "containerd://2.1.4",
                    "osImage": "Ubuntu 24.04 LTS" if not k3s else "K3s on Debian GNU/Linux 12",
                    "kernelVersion": "6.8.0",
                },
            },
        }


@dataclass(frozen=True)
class RealNode:
    """A node with a real kubelet and containerd (see devenv/nodes.py)."""

    name: str
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    tier: str  # cloud | edge
    k3s: bool
    nodes: tuple[FakeNode, ...]
    real_node: RealNode | None = None


def _k3s_labels(name: str) -> dict[str, str]:
    # Labels a K3s server node carries.
    return {
        "node-role.kubernetes.io/control-plane": "true",
        "k3s.io/hostname": name,
        "edgeline.io/site-hardware": "k3s",
    }


HUB = ClusterSpec(
    name="hub",
    tier="cloud",
    k3s=False,
    nodes=(
        FakeNode("hub-general-1", "amd64", "8", "32Gi", "n2-standard-8",
                 labels={"topology.kubernetes.io/region": "eu-central-1"}),
        FakeNode("hub-general-2", "amd64", "8", "32Gi", "n2-standard-8",
                 labels={"topology.kubernetes.io/region": "eu-central-1"}),
        FakeNode("hub-gpu-1", "amd64", "16", "64Gi", "g2-standard-16", gpus=1,
                 labels={"topology.kubernetes.io/region": "eu-central-1"}),
    ),
    # Runs the operator image installed by `helm install`.
    real_node=RealNode("hub-real-1", labels={"topology.kubernetes.io/region": "eu-central-1",
                                             "node.kubernetes.io/instance-type": "local"}),
)

EDGE_A = ClusterSpec(
    name="edge-a",
    tier="edge",
    k3s=True,
    nodes=(
        FakeNode("edge-a-ipc-1", "amd64", "4", "8Gi", "k3s", labels=_k3s_labels("edge-a-ipc-1")),
        FakeNode("edge-a-gpu-1", "amd64", "8", "16Gi", "k3s", gpus=1, labels=_k3s_labels("edge-a-gpu-1")),
    ),
    # Runs the edge runtime image: the line computer that serves the model for real.
    real_node=RealNode("edge-a-real-1", labels={**_k3s_labels("edge-a-real-1"),
                                                "node.kubernetes.io/instance-type": "k3s"}),
)

EDGE_B = ClusterSpec(
    name="edge-b",
    tier="edge",
    k3s=True,
    nodes=(
        FakeNode("edge-b-arm-1", "arm64", "4", "4Gi", "k3s", labels=_k3s_labels("edge-b-arm-1")),
        FakeNode("edge-b-arm-2", "arm64", "4", "4Gi", "k3s", labels=_k3s_labels("edge-b-arm-2")),
    ),
)

CLUSTERS: tuple[ClusterSpec, ...] = (HUB, EDGE_A, EDGE_B)


@dataclass(frozen=True)
class TestUser:
    name: str
    groups: tuple[str, ...]


# Users the hub's API server authenticates by static token, so that tests can act as
# people with different rights (approvals are tested with them).
HUB_USERS: tuple[TestUser, ...] = (
    TestUser("editor", ("factory:editors",)),
    TestUser("approver-a", ("factory:approvers",)),
    TestUser("approver-b", ("factory:approvers",)),
    TestUser("outsider", ()),
)
