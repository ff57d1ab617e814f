"""The site's hub token, rotated by the agent (docs/security.md, "A stolen site token").

`edgeline cluster join` hands the site a bound token of its hub ServiceAccount (30 days by
default). Past a point of its lifetime (domain/token_rotation.py, `--token-rotate-after`) the
agent asks the hub for a new one of the same lifetime (TokenRequest on its own ServiceAccount:
the only `create` its hub Role has, limited by resourceNames), keeps it restart-safe in its
state folder (`hub-token`, mode 0600, written atomically) and in the site Secret that holds the
hub kubeconfig, and uses it for every later hub call. A restarted agent takes whichever of the
join's token and the stored one ends last."""

from __future__ import annotations

import asyncio
import base64
import copy
import logging
import os
import time
from pathlib import Path
from typing import Callable

import httpx2 as httpx
import yaml
from lightkube import ApiError, AsyncClient
from lightkube.resources.core_v1 import Secret
from lightkube.types import PatchType

from edgeline.agent.bootstrap import AGENT, AGENT_NAMESPACE, HUB_KUBECONFIG_KEY
from edgeline.clusters import pull
from edgeline.domain.token_rotation import DEFAULT_ROTATE_AFTER, newest, requested_lifetime, rotation_reason

log = logging.getLogger("edgeline.agent.tokens")
TOKEN_FILE = "hub-token"
DEFAULT_LIFETIME_S = 30 * 86400


def kubeconfig_token(config: dict) -> str:
    users = config.get("users") or []
    return ((users[0].get("user") or {}).get("token") or "") if users else ""


def with_token(config: dict, token: str) -> dict:
    """The kubeconfig with its (single) user's token replaced."""
    out = copy.deepcopy(config)
    out["users"][0].setdefault("user", {})["token"] = token
    return out


def write_private(path: Path, text: str) -> None:
    """Atomically, readable by the agent only."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


class HubCredentials:
    """The hub kubeconfig the agent uses now: the join's, with the newest token it holds."""

    def __init__(self, kubeconfig: Path, state_dir: Path, now: float | None = None):
        self.joined = yaml.safe_load(kubeconfig.read_text())
        self.token_file = state_dir / TOKEN_FILE
        stored = self.token_file.read_text().strip() if self.token_file.exists() else ""
        self.token = newest([kubeconfig_token(self.joined), stored], now or time.time()) or ""
        self.rotations = 0

    @property
    def config(self) -> dict:
        return with_token(self.joined, self.token)

    def keep(self, token: str) -> None:
        write_private(self.token_file, token + "\n")
        self.token = token
        self.rotations += 1


class TokenRotation:
    """Checks the token every `every_s` and rotates it when due; `swap(config)` hands the agent a
    hub client on the new token."""

    def __init__(self, credentials: HubCredentials, cluster: str, site: AsyncClient,
                 hub: Callable[[], AsyncClient], swap: Callable[[dict], None],
                 rotate_after: float = DEFAULT_ROTATE_AFTER, timeout_s: float = 5.0,
                 namespace: str = AGENT_NAMESPACE):
        self.credentials, self.cluster, self.site, self.hub, self.swap = credentials, cluster, site, hub, swap
        self.namespace = namespace          # where the Secret with the hub kubeconfig is
        self.rotate_after, self.timeout_s = rotate_after, timeout_s
        self.secret_behind = False      # the Secret still holds an older token: written again next check

    async def rotate_if_due(self, now: float | None = None) -> bool:
        token = self.credentials.token
        reason = rotation_reason(token, now or time.time(), self.rotate_after)
        if reason is None:
            return False
        seconds = requested_lifetime(token, DEFAULT_LIFETIME_S)
        new = await asyncio.wait_for(pull.agent_token(self.hub(), self.cluster, seconds), self.timeout_s)
        # Restart-safe before it is used: the state folder first (the site's own disk), then the Secret.
        self.credentials.keep(new)
        self.swap(self.credentials.config)
        log.info("rotated the site's hub token (%s); the new one lasts %d s", reason, seconds)
        self.secret_behind = True
        await self._to_secret()
        return True

    async def _to_secret(self) -> None:
        text = yaml.safe_dump(self.credentials.config)
        try:
            await asyncio.wait_for(self.site.patch(
                Secret, AGENT, {"data": {HUB_KUBECONFIG_KEY: base64.b64encode(text.encode()).decode()}},
                namespace=self.namespace, patch_type=PatchType.MERGE), self.timeout_s)
            self.secret_behind = False
        except (ApiError, httpx.HTTPError, OSError, asyncio.TimeoutError) as exc:
            log.warning("the new hub token is in the state folder but not in Secret %s/%s: %s",
                        self.namespace, AGENT, exc)

    async def run(self, stop: asyncio.Event, every_s: float) -> None:
        while not stop.is_set():
            try:
                if self.secret_behind:
                    await self._to_secret()
                await self.rotate_if_due()
            except (ApiError, httpx.HTTPError, OSError, asyncio.TimeoutError) as exc:
                # The WAN may be down: the current token is still valid, try again next time.
                log.warning("could not rotate the site's hub token yet: %s", exc)
            try:
                await asyncio.wait_for(stop.wait(), every_s)
            except asyncio.TimeoutError:
                pass
