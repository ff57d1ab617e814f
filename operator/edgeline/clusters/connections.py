"""The one door to member clusters: cached clients built from kubeconfig Secrets.

Every call to an edge or cloud member cluster goes through a client from here, with
timeouts, so that one dead site never stalls the others. A client is rebuilt when
its Secret changes (its resourceVersion is part of the cache key).

Clients are lightkube's AsyncClient: async (no thread per cluster), server-side apply
as a first-class call, and about 0.16 MB per cluster (docs/decisions.md).
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import os
import time
from dataclasses import dataclass

import httpx2 as httpx
import yaml
from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.config import client_adapter
from lightkube.core.exceptions import ConfigError
from lightkube.resources.core_v1 import Secret

from edgeline import FIELD_MANAGER
from edgeline.clusters.member_cache import APPLIED, MemberViews

# A cached client is trusted this long before its Secret is read again: every deployment
# asks for every cluster's client every tick, and one GET of the Secret per ask was the
# largest share of the hub requests at a thousand clusters (docs/decisions.md, scale).
SECRET_RECHECK_S = 30.0
KEEPALIVE_S = 300.0
# HTTP/2 needs the h2 package; without it the clients speak HTTP/1.1 as before.
HTTP2 = importlib.util.find_spec("h2") is not None


class ConnectionProblem(Exception):
    """Why a member cluster cannot be reached from here; `reason` is CamelCase."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class SecretRef:
    namespace: str
    name: str
    key: str = "kubeconfig"


_hub: AsyncClient | None = None
_lightkube_verify = client_adapter.verify_cluster


_contexts: dict[tuple, object] = {}
_CONTEXTS_MAX = 4096


def _shared_verify(cluster, user, abs_file, trust_env: bool = True):
    """One TLS context per distinct CA and client certificate, not one per client: a context
    that loads the system's CA bundle costs about 0.8 MB, which a thousand clusters repeat
    (docs/decisions.md, scale). Files count with their modification time."""
    try:
        mtimes = tuple(os.stat(abs_file(p)).st_mtime_ns if p else None
                       for p in (cluster.certificate_auth, user.client_cert, user.client_key))
    except OSError:
        return _lightkube_verify(cluster, user, abs_file, trust_env=trust_env)
    key = (cluster.certificate_auth, cluster.certificate_auth_data, cluster.insecure, user.client_cert,
           user.client_cert_data, user.client_key, user.client_key_data, trust_env, mtimes)
    context = _contexts.get(key)
    if context is None:
        if len(_contexts) >= _CONTEXTS_MAX:
            _contexts.clear()           # rotated certificates leave old keys behind; start over
        context = _contexts[key] = _lightkube_verify(cluster, user, abs_file, trust_env=trust_env)
    return context


# lightkube builds a client's TLS context in this function (lightkube.config.client_adapter).
client_adapter.verify_cluster = _shared_verify


def hub_client() -> AsyncClient:
    """The operator's own cluster (in-cluster config, else $KUBECONFIG)."""
    global _hub
    if _hub is None:
        _hub = AsyncClient(timeout=httpx.Timeout(15.0), field_manager=FIELD_MANAGER)
    return _hub


def _timeouts(seconds: float) -> httpx.Timeout:
    return httpx.Timeout(seconds, connect=min(seconds, 5.0))


class MemberClusters:
    """Clients per EdgeCluster, built from the kubeconfig in its Secret."""

    def __init__(self, request_timeout_s: float = 10.0, http2: bool = HTTP2):
        self._timeout = request_timeout_s
        self._http2 = http2
        self._clients: dict[str, tuple[str, AsyncClient]] = {}
        self._checked: dict[str, tuple[float, SecretRef, str | None]] = {}
        self._lock = asyncio.Lock()
        # The watched view of Edgeline's objects per cluster, over the same client (member_cache).
        self.views = MemberViews()

    async def client_for(self, cluster: str, ref: SecretRef, namespace: str | None = None,
                         max_age_s: float = SECRET_RECHECK_S) -> AsyncClient:
        """The cluster's client; its Secret is read again when the last read is older than
        `max_age_s` (the probe passes 0: it notices a changed Secret within one interval)."""
        checked = self._checked.get(cluster)
        cached = self._clients.get(cluster)
        if cached and checked and checked[1:] == (ref, namespace) and time.monotonic() - checked[0] < max_age_s:
            return cached[1]
        client = await self._client_from_secret(cluster, ref, namespace)
        self._checked[cluster] = (time.monotonic(), ref, namespace)
        return client

    async def _client_from_secret(self, cluster: str, ref: SecretRef, namespace: str | None) -> AsyncClient:
        secret = await self._read_secret(ref)
        version = f"{secret.metadata.resourceVersion}/{ref.key}/{namespace}"
        async with self._lock:
            cached = self._clients.get(cluster)
            if cached and cached[0] == version:
                return cached[1]
            client = self._build(ref, secret, namespace)
            self._clients[cluster] = (version, client)
        if cached:
            APPLIED.forget_client(cached[1])
            await _close(cached[1])
        return client

    async def forget(self, cluster: str) -> None:
        await self.views.forget(cluster)
        async with self._lock:
            cached = self._clients.pop(cluster, None)
            self._checked.pop(cluster, None)
        if cached:
            APPLIED.forget_client(cached[1])
            await _close(cached[1])

    async def _read_secret(self, ref: SecretRef) -> Secret:
        try:
            return await hub_client().get(Secret, ref.name, namespace=ref.namespace)
        except ApiError as exc:
            if exc.status.code == 404:
                raise ConnectionProblem(
                    "KubeconfigSecretNotFound",
                    f"Secret {ref.namespace}/{ref.name} with the cluster's kubeconfig does not exist",
                ) from None
            raise ConnectionProblem(
                "KubeconfigSecretUnreadable",
                f"cannot read Secret {ref.namespace}/{ref.name}: {exc.status.message}",
            ) from None

    def _build(self, ref: SecretRef, secret: Secret, namespace: str | None) -> AsyncClient:
        data = (secret.data or {}).get(ref.key)
        if not data:
            raise ConnectionProblem(
                "KubeconfigKeyMissing", f"Secret {ref.namespace}/{ref.name} has no key {ref.key!r}"
            )
        try:
            config = yaml.safe_load(base64.b64decode(data))
            kubeconfig = KubeConfig.from_dict(config)
            single = kubeconfig.get()
            # Connections stay open between ticks (httpx closes idle ones after 5 s by default): a
            # revert to a thousand clusters must not start with a thousand TCP and TLS handshakes.
            transport = httpx.AsyncHTTPTransport(
                verify=_shared_verify(single.cluster, single.user, single.abs_file, trust_env=False),
                http2=self._http2, limits=httpx.Limits(max_connections=100, max_keepalive_connections=10,
                                                       keepalive_expiry=KEEPALIVE_S))
            return AsyncClient(
                kubeconfig,
                namespace=namespace,
                timeout=_timeouts(self._timeout),
                field_manager=FIELD_MANAGER,
                trust_env=False,
                # One TCP connection per cluster carries the watch, the probe and the applies
                # where the server speaks HTTP/2 (kube-apiserver over TLS does; else HTTP/1.1).
                http2=self._http2,
                transport=transport,
            )
        except (ValueError, TypeError, KeyError, yaml.YAMLError, ConfigError) as exc:
            raise ConnectionProblem(
                "KubeconfigInvalid",
                f"the kubeconfig in Secret {ref.namespace}/{ref.name} key {ref.key!r} is not usable: {exc}",
            ) from None


async def _close(client: AsyncClient) -> None:
    try:
        await client.close()
    except (RuntimeError, httpx.HTTPError):
        pass


async def server_version(client: AsyncClient) -> dict:
    """GET /version. lightkube has no call for it, so this uses its HTTP session;
    covered by the EdgeCluster e2e tests should lightkube change underneath."""
    response = await client._client._client.get("/version")  # noqa: SLF001
    response.raise_for_status()
    return response.json()
