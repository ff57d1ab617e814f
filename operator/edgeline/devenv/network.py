"""Addresses of the local environment's Pods and Services, and the host's share of them.

Everything lives in the benchmarking range 198.18.0.0/15 (never 10/8, 172.16/12 or
192.168/16, which this kind of workplace flags). Several environments may run on one
host (the test session's, `make demo`'s, a test's own): each takes a *slot*, and the slot
decides every address, so that no two environments share a bridge or a range:

    Pod subnet of cluster i (real node):  198.18.(4*slot + i + 1).0/24, gateway .1 on the host
    Service range of cluster i:           198.19.(4*slot + i).0/24, the `kubernetes` Service at .1

with i = 0 for the hub, 1 for edge-a, 2 for edge-b. A slot is claimed by creating its hub
bridge (`edl<slot>-hub`): creating a link is atomic, so two environments starting at the
same time cannot take the same slot.

There is no kube-proxy (see docs/decisions.md): the one Service a Pod needs, the
`kubernetes` Service that in-cluster configuration points at, gets a DNAT rule in a chain
of the slot's own (`EDGELINE-<slot>`, hooked into nat PREROUTING).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

MAX_SLOTS = 60


class NetworkError(RuntimeError):
    pass


@dataclass(frozen=True)
class ClusterAddresses:
    slot: int
    index: int
    cluster: str

    @property
    def pod_subnet(self) -> str:
        return f"198.18.{4 * self.slot + self.index + 1}.0/24"

    @property
    def gateway(self) -> str:
        return f"198.18.{4 * self.slot + self.index + 1}.1"

    @property
    def service_range(self) -> str:
        return f"198.19.{4 * self.slot + self.index}.0/24"

    @property
    def service_ip(self) -> str:
        return f"198.19.{4 * self.slot + self.index}.1"

    @property
    def fake_pod_range(self) -> str:
        # kwok hands its fake Pods addresses from here (its default is 10.0.0.0/24, a flagged range).
        # Nothing routes to them, so environments may share them; they stay clear of every slot's ranges.
        return f"198.19.{240 + self.index}.0/24"

    @property
    def fake_node_ip(self) -> str:
        return f"198.19.{240 + self.index}.254"

    @property
    def bridge(self) -> str:
        return bridge_name(self.slot, self.cluster)


def bridge_name(slot: int, cluster: str) -> str:
    name = f"edl{slot}-{cluster}"
    if len(name) > 15:
        raise NetworkError(f"bridge name {name!r} is longer than the 15 characters Linux allows")
    return name


def chain_name(slot: int) -> str:
    return f"EDGELINE-{slot}"


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(argv), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise NetworkError(f"`{' '.join(argv)}` failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def link_exists(name: str) -> bool:
    return _run("ip", "link", "show", "dev", name, check=False).returncode == 0


def claim_slot(first_cluster: str, preferred: int | None = None) -> int:
    """Takes a free slot by creating its bridge for `first_cluster`: `preferred` (the slot of
    the environment's last run, whose addresses its etcd data still holds) when free, else the first."""
    order = list(range(MAX_SLOTS))
    if preferred is not None and 0 <= preferred < MAX_SLOTS:
        order.remove(preferred)
        order.insert(0, preferred)
    for slot in order:
        proc = _run("ip", "link", "add", "name", bridge_name(slot, first_cluster), "type", "bridge", check=False)
        if proc.returncode == 0:
            return slot
        if "exists" not in proc.stderr.lower():
            raise NetworkError(f"cannot create a bridge: {proc.stderr.strip()}")
    raise NetworkError(f"all {MAX_SLOTS} network slots are taken (bridges edl*-{first_cluster}): "
                       "stop other environments with `edgeline dev down`")


def create_bridge(addresses: ClusterAddresses) -> None:
    """The node's CNI bridge with the gateway address on the host (the CNI bridge plugin
    finds it and attaches Pods to it)."""
    if not link_exists(addresses.bridge):
        _run("ip", "link", "add", "name", addresses.bridge, "type", "bridge")
    prefix = addresses.pod_subnet.split("/")[1]
    _run("ip", "addr", "replace", f"{addresses.gateway}/{prefix}", "dev", addresses.bridge)
    _run("ip", "link", "set", addresses.bridge, "up")


def delete_bridge(name: str) -> None:
    if link_exists(name):
        _run("ip", "link", "delete", name, check=False)


def install_service_rules(slot: int, rules: list[tuple[str, str, str, int]]) -> None:
    """DNAT for the `kubernetes` Service: (Pod subnet, service ip, host address, API server port).
    Only the node's own Pods match, so that environments in other slots never collide."""
    chain = chain_name(slot)
    remove_service_rules(slot)
    _run("iptables", "-w", "-t", "nat", "-N", chain)
    for pod_subnet, service_ip, host, port in rules:
        _run("iptables", "-w", "-t", "nat", "-A", chain, "-s", pod_subnet, "-d", f"{service_ip}/32",
             "-p", "tcp", "--dport", "443",
             "-m", "comment", "--comment", "edgeline dev: kubernetes Service",
             "-j", "DNAT", "--to-destination", f"{host}:{port}")
    _run("iptables", "-w", "-t", "nat", "-A", "PREROUTING", "-j", chain)


def remove_service_rules(slot: int) -> None:
    chain = chain_name(slot)
    while _run("iptables", "-w", "-t", "nat", "-D", "PREROUTING", "-j", chain, check=False).returncode == 0:
        pass
    _run("iptables", "-w", "-t", "nat", "-F", chain, check=False)
    _run("iptables", "-w", "-t", "nat", "-X", chain, check=False)


def service_rules_present(slot: int) -> bool:
    return _run("iptables", "-w", "-t", "nat", "-S", chain_name(slot), check=False).returncode == 0
