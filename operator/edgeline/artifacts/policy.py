"""Where the operator may fetch artifacts from: the answer to server-side request forgery.

An MLModel's author chooses a URI and the operator fetches it with its own network position
and its own file system. Without limits that lets any namespace editor read files the
operator can read (its ServiceAccount token) and reach addresses only the operator can reach
(cloud metadata on 169.254.169.254, cluster-internal Services). So:

- file:// is off unless the operator is started with folders it may read (`file_roots`); a path
  is checked after resolving symlinks, before anything about the file is looked at.
- http(s):// may reach public addresses only. Loopback, link-local, private, CGNAT, multicast,
  unspecified, reserved and the cluster's service range are refused unless a CIDR or a host
  name is allow-listed. The check runs on every address the name resolves to, on every
  redirect hop, and the connection is then made to the address that was checked.

Pure logic: no sockets here except `resolve()` (getaddrinfo).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgeline.artifacts.errors import (
    AddressNotAllowed,
    CredentialsRefused,
    CredentialsUnavailable,
    FetchFailed,
    PathNotAllowed,
    SchemeDisabled,
)

if TYPE_CHECKING:
    from edgeline.settings import Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# What each refused range is, for the message (a literal IP's category is no secret: the user typed it).
REFUSED_RANGES: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "unspecified"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("10.0.0.0/8", "private"),
    ("172.16.0.0/12", "private"),
    ("192.168.0.0/16", "private"),
    ("100.64.0.0/10", "shared address space (CGNAT)"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("198.18.0.0/15", "benchmarking"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("fe80::/10", "link-local"),
    ("fc00::/7", "private (unique local)"),
    ("ff00::/8", "multicast"),
    ("100::/64", "discard-only"),
)
_REFUSED = tuple((ipaddress.ip_network(cidr), what) for cidr, what in REFUSED_RANGES)
# Names that only mean something inside the cluster or on the operator's own host.
REFUSED_NAME_SUFFIXES = (".localhost", ".local", ".internal", ".svc", ".cluster.local", ".svc.cluster.local")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True)
class FetchPolicy:
    file_roots: tuple[Path, ...] = ()
    allowed_networks: tuple[Network, ...] = ()
    allowed_hosts: frozenset[str] = frozenset()
    blocked_networks: tuple[Network, ...] = ()  # the cluster's service range (and anything else to refuse)

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchPolicy:
        return cls(
            file_roots=tuple(Path(os.path.realpath(p)) for p in _items(settings.artifact_file_roots)),
            allowed_networks=tuple(ipaddress.ip_network(c, strict=False)
                                   for c in _items(settings.artifact_allowed_cidrs)),
            allowed_hosts=frozenset(h.lower().rstrip(".") for h in _items(settings.artifact_allowed_hosts)),
            blocked_networks=tuple(ipaddress.ip_network(c, strict=False)
                                   for c in _items(settings.cluster_service_cidrs)),
        )

    # -- file:// -------------------------------------------------------------------------------

    def check_file(self, path: Path) -> Path:
        """The resolved path, if it lies in an allowed folder. Raises before anything about the
        file (existence, type, size) is looked at, so a refusal tells nothing about it."""
        if not self.file_roots:
            raise SchemeDisabled("file:// artifacts are disabled on this Edgeline operator; serve the model "
                                 "over https://, or ask the platform team to allow a folder "
                                 "(EDGELINE_ARTIFACT_FILE_ROOTS)")
        resolved = Path(os.path.realpath(path))
        if not any(resolved == root or root in resolved.parents for root in self.file_roots):
            raise PathNotAllowed(f"{path} is outside the folders this Edgeline operator may read "
                                 "(EDGELINE_ARTIFACT_FILE_ROOTS)")
        return resolved

    # -- http(s):// -----------------------------------------------------------------------------

    def host_is_allowed(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.allowed_hosts

    def check_name(self, host: str) -> None:
        """Names that can only mean the operator's host or the cluster's inside, refused before DNS."""
        name = host.lower().rstrip(".")
        if self.host_is_allowed(name) or _literal(name) is not None:
            return
        if name == "localhost" or name.endswith(REFUSED_NAME_SUFFIXES) or "." not in name:
            raise AddressNotAllowed(f"host {host} is a local or cluster-internal name; Edgeline fetches "
                                    "artifacts from public hosts only unless the operator allows this host "
                                    "(EDGELINE_ARTIFACT_ALLOWED_HOSTS)")

    def refusal(self, address: Address) -> str | None:
        """Why `address` may not be reached (a range's description), or None when it may."""
        address = _unwrap(address)
        if any(address in net for net in self.allowed_networks if net.version == address.version):
            return None
        if any(address in net for net in self.blocked_networks if net.version == address.version):
            return "the cluster's service range"
        for net, what in _REFUSED:
            if net.version == address.version and address in net:
                return what
        if address.version == 6 and (address.is_reserved or address.is_site_local):
            return "reserved"
        return None

    def check_addresses(self, host: str, addresses: list[Address]) -> None:
        if self.host_is_allowed(host):
            return
        for address in addresses:
            what = self.refusal(address)
            if what is None:
                continue
            if _literal(host) is not None:  # the user typed the address: naming its kind reveals nothing
                raise AddressNotAllowed(f"{host} is a {what} address; Edgeline fetches artifacts from public "
                                        "addresses only unless the operator allows it "
                                        "(EDGELINE_ARTIFACT_ALLOWED_CIDRS)")
            raise AddressNotAllowed(f"host {host} resolves to an address Edgeline does not fetch from "
                                    "(loopback, link-local, private or cluster-internal); allow it on the "
                                    "operator (EDGELINE_ARTIFACT_ALLOWED_CIDRS or _HOSTS) if it is meant")

    def resolve(self, host: str, port: int) -> list[Address]:
        """Every address `host` stands for, each checked; the caller connects to one of these."""
        self.check_name(host)
        literal = _literal(host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except (socket.gaierror, UnicodeError, OSError):
                raise FetchFailed(unreachable(host)) from None
            addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos))
            if not addresses:
                raise FetchFailed(unreachable(host))
        self.check_addresses(host, addresses)
        return addresses


# Only Secrets so labelled lend their data to a fetch; ServiceAccount tokens never do.
CREDENTIALS_LABEL = "edgeline.io/credentials"
SERVICE_ACCOUNT_TOKEN = "kubernetes.io/service-account-token"


def check_credentials(uri: str, namespace: str, name: str, secret_type: str | None,
                      labels: dict[str, str] | None) -> None:
    """May the Secret `namespace/name` (from the MLModel's own namespace) lend credentials to a
    fetch of `uri`? Only over https, only a Secret labelled edgeline.io/credentials: "true", never a
    ServiceAccount token (that would hand the API server's trust to whoever runs the artifact
    server). With `labels` None the Secret is not read yet and only the URI is judged.
    Not labelled is CredentialsUnavailable (transient: labelling it fixes it); the rest is permanent."""
    scheme = uri.split(":", 1)[0].lower()
    # oci:// registries are spoken to over https; the oci client refuses credentials over plain http.
    if scheme not in ("https", "oci"):
        raise CredentialsRefused(f"spec.artifact.credentialsSecretRef is only used with https:// and oci:// URIs; "
                                 f"Edgeline does not send credentials over {scheme}://")
    if labels is None:
        return
    if secret_type == SERVICE_ACCOUNT_TOKEN:
        raise CredentialsRefused(f"Secret {namespace}/{name} is a ServiceAccount token; Edgeline never "
                                 "sends ServiceAccount tokens to artifact servers")
    if labels.get(CREDENTIALS_LABEL) != "true":
        raise CredentialsUnavailable(f"Secret {namespace}/{name} is not labelled {CREDENTIALS_LABEL}: \"true\"; "
                                     "label it to let Edgeline use it for artifact downloads")


def unreachable(host: str) -> str:
    """One message for every failure below HTTP (name resolution, connect, timeout, TLS): telling
    them apart would let a user map which hosts and ports exist. Details go to the operator log."""
    return f"the artifact could not be fetched from {host} (name resolution, connection or TLS failed)"


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def _unwrap(address: Address) -> Address:
    """An IPv4 address hidden in IPv6 (::ffff:a.b.c.d, NAT64 64:ff9b::a.b.c.d) is judged as IPv4."""
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def _items(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").replace("\n", ",").split(",") if item.strip()]
