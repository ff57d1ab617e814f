"""A pull site in a network namespace of its own, so a test can cut its WAN with the kernel.

The site's agent runs inside `edl<slot>-site` (ip netns), joined to the host by a veth pair:

    host side  edl<slot>-sh  198.19.250.(4*slot+1)/30
    site side  edl<slot>-sn  198.19.250.(4*slot+2)/30, default route via the host side

198.19.250.0/24 lies outside every range of devenv/network.py (the slots' Service ranges end
at 198.19.239.0/24, kwok's fake Pod ranges are 198.19.240-242.0/24), inside the benchmarking
range 198.18.0.0/15. The agent reaches the API servers at the host's `pod_visible_host`
(they listen on every address, their certificates name it).

`cut()` puts a drop rule on what enters the host from the site, except the ports given as the
site's LAN (its own API server; the answers of its alert receiver): the hub, the artifact
servers, everything else of the WAN is gone, while the line keeps its own cluster. `restore()`
removes the rule. Root is needed (ip, iptables), as for the rest of the environment.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from edgeline.devenv.network import MAX_SLOTS, NetworkError

THIRD_OCTET = 250


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(argv), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise NetworkError(f"`{' '.join(argv)}` failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


@dataclass(frozen=True)
class SiteNetwork:
    slot: int

    def __post_init__(self):
        if not 0 <= self.slot < MAX_SLOTS:
            raise NetworkError(f"slot {self.slot} is outside 0..{MAX_SLOTS - 1}")

    @property
    def namespace(self) -> str:
        return f"edl{self.slot}-site"

    @property
    def host_link(self) -> str:
        return f"edl{self.slot}-sh"

    @property
    def site_link(self) -> str:
        return f"edl{self.slot}-sn"

    @property
    def host_address(self) -> str:
        return f"198.19.{THIRD_OCTET}.{4 * self.slot + 1}"

    @property
    def site_address(self) -> str:
        return f"198.19.{THIRD_OCTET}.{4 * self.slot + 2}"

    @property
    def chain(self) -> str:
        return f"EDGELINE-WAN-{self.slot}"

    def exists(self) -> bool:
        return _run("ip", "netns", "pids", self.namespace, check=False).returncode == 0

    def create(self) -> None:
        self.delete()
        _run("ip", "netns", "add", self.namespace)
        _run("ip", "link", "add", self.host_link, "type", "veth", "peer", "name", self.site_link)
        _run("ip", "link", "set", self.site_link, "netns", self.namespace)
        _run("ip", "addr", "add", f"{self.host_address}/30", "dev", self.host_link)
        _run("ip", "link", "set", self.host_link, "up")
        inside = ("ip", "netns", "exec", self.namespace)
        _run(*inside, "ip", "addr", "add", f"{self.site_address}/30", "dev", self.site_link)
        _run(*inside, "ip", "link", "set", self.site_link, "up")
        _run(*inside, "ip", "link", "set", "lo", "up")
        _run(*inside, "ip", "route", "add", "default", "via", self.host_address)

    def delete(self) -> None:
        self.restore()
        _run("ip", "link", "delete", self.host_link, check=False)
        _run("ip", "netns", "delete", self.namespace, check=False)

    def command(self, argv: list[str]) -> list[str]:
        """`argv` run inside the site's namespace."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    def cut(self, lan_ports: list[int], served_ports: list[int] = ()) -> None:
        """Drops everything the site sends to the host but its LAN: connections to `lan_ports`
        on the host, and the answers from `served_ports` (servers inside the site)."""
        self.restore()
        _run("iptables", "-w", "-N", self.chain)
        for port in lan_ports:
            _run("iptables", "-w", "-A", self.chain, "-p", "tcp", "--dport", str(port), "-j", "ACCEPT")
        for port in served_ports:
            _run("iptables", "-w", "-A", self.chain, "-p", "tcp", "--sport", str(port), "-j", "ACCEPT")
        _run("iptables", "-w", "-A", self.chain, "-m", "comment", "--comment", "edgeline dev: the site's WAN is cut",
             "-j", "DROP")
        _run("iptables", "-w", "-I", "INPUT", "-i", self.host_link, "-j", self.chain)

    def is_cut(self) -> bool:
        return _run("iptables", "-w", "-C", "INPUT", "-i", self.host_link, "-j", self.chain,
                    check=False).returncode == 0

    def restore(self) -> None:
        while _run("iptables", "-w", "-D", "INPUT", "-i", self.host_link, "-j", self.chain,
                   check=False).returncode == 0:
            pass
        _run("iptables", "-w", "-F", self.chain, check=False)
        _run("iptables", "-w", "-X", self.chain, check=False)
