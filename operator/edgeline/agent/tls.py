"""The site alert receiver's TLS (docs/edge-autonomy.md, docs/decisions.md "site-tls").

The agent is the site's own small CA: at first start it makes a site CA and a serving
certificate for its Service's DNS names (and the names and addresses given by
--alerts-tls-names), keeps both in the site Secret `edgeline-agent-tls` and publishes the CA
certificate in the ConfigMap `edgeline-agent-ca` (key `ca.crt`), where the site's Alertmanager
config points `tls_config.ca_file`. `edgeline cluster join` prints both objects empty, so the
agent needs no `create`, only get/update/patch by resourceNames. The serving certificate is
issued again when a third of its life is left (domain/serving_renewal.py) and loaded into the
running server's SSL context: new connections get the new certificate, nothing restarts. The CA
key never leaves the site."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import os
import ssl
import sys
import tempfile
from pathlib import Path

import httpx2 as httpx
from lightkube import ApiError, AsyncClient
from lightkube.resources.core_v1 import ConfigMap, Secret
from lightkube.types import PatchType

from edgeline.agent.bootstrap import AGENT, AGENT_NAMESPACE, CA_CONFIGMAP, TLS_SECRET
from edgeline.domain.serving_renewal import CA_VALIDITY, SERVING_VALIDITY, StoredPair, renewal

log = logging.getLogger("edgeline.agent.tls")
ISSUE_TIMEOUT_S = 60.0


def service_names(extra: tuple[str, ...] = (), namespace: str = AGENT_NAMESPACE) -> tuple[str, ...]:
    """The names the site's Alertmanager may use for the agent's Service, then the extra ones."""
    names = [f"{AGENT}.{namespace}.svc", f"{AGENT}.{namespace}.svc.cluster.local", f"{AGENT}.{namespace}", AGENT]
    return tuple(dict.fromkeys([*names, *(n.strip() for n in extra if n.strip())]))


def _time(text: str | None) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def stored_pair(data: dict[str, str]) -> StoredPair:
    """What the Secret's keys say of the pair they hold."""
    return StoredPair(has_ca=bool(data.get("ca.crt") and data.get("ca.key")),
                      has_serving=bool(data.get("tls.crt") and data.get("tls.key")),
                      names=tuple(n for n in data.get("names", "").split(",") if n),
                      ca_not_after=_time(data.get("ca.notAfter")), not_after=_time(data.get("tls.notAfter")))


class IssueFailed(Exception):
    pass


async def issue(request: dict) -> dict[str, str]:
    """Runs agent/issue.py in a child process (why: its docstring)."""
    child = await asyncio.create_subprocess_exec(sys.executable, "-m", "edgeline.agent.issue",
                                                 stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                 stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(child.communicate(json.dumps(request).encode()), ISSUE_TIMEOUT_S)
    if child.returncode != 0:
        raise IssueFailed(err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"])
    return json.loads(out)


class SiteTls:
    """The receiver's SSL context, kept in step with the site Secret."""

    def __init__(self, site: AsyncClient, names: tuple[str, ...], validity: dt.timedelta = SERVING_VALIDITY,
                 ca_validity: dt.timedelta = CA_VALIDITY, namespace: str = AGENT_NAMESPACE):
        self.site, self.names, self.validity, self.ca_validity = site, names, validity, ca_validity
        self.namespace = namespace          # the agent's own (edgeline-agent, or the runtimes' with a claim)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.data: dict[str, str] = {}
        self.renewals = 0

    async def _read(self) -> dict[str, str]:
        found = await self.site.get(Secret, TLS_SECRET, namespace=self.namespace)
        return {k: base64.b64decode(v).decode() for k, v in (found.data or {}).items()}

    async def refresh(self, now: dt.datetime | None = None) -> bool:
        """Issues what is due, loads what the Secret holds; True when a new certificate is served."""
        now = now or dt.datetime.now(dt.timezone.utc)
        data = await self._read()
        due = renewal(stored_pair(data), self.names, now, self.validity, self.ca_validity)
        if due is not None:
            log.info("issuing the alert receiver's certificate%s: %s", " and a new site CA" if due.new_ca else "",
                     due.reason)
            data = await issue({"new_ca": due.new_ca, "ca.crt": data.get("ca.crt"), "ca.key": data.get("ca.key"),
                                "names": list(self.names), "validity_s": self.validity.total_seconds(),
                                "ca_validity_s": self.ca_validity.total_seconds()})
            # The CA certificate first: a client that reads it finds the CA of what is served next.
            await self.site.patch(ConfigMap, CA_CONFIGMAP, {"data": {"ca.crt": data["ca.crt"]}},
                                  namespace=self.namespace, patch_type=PatchType.MERGE)
            await self.site.patch(Secret, TLS_SECRET, {"data": {
                k: base64.b64encode(v.encode()).decode() for k, v in data.items()}},
                namespace=self.namespace, patch_type=PatchType.MERGE)
            self.renewals += 1
        if data.get("tls.crt") == self.data.get("tls.crt"):
            return False
        self._load(data)
        log.info("serving the site alert receiver's certificate, valid until %s", data.get("tls.notAfter"))
        return True

    def _load(self, data: dict[str, str]) -> None:
        # load_cert_chain reads files only: a private folder on the agent's tmpfs, removed at once.
        folder = Path(tempfile.mkdtemp(prefix="edgeline-tls-"))
        try:
            cert, key = folder / "tls.crt", folder / "tls.key"
            cert.write_text(data["tls.crt"])
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(data["tls.key"])
            self.context.load_cert_chain(cert, key)
        finally:
            for leftover in folder.iterdir():
                leftover.unlink()
            folder.rmdir()
        self.data = dict(data)

    async def keep_fresh(self, stop: asyncio.Event, every_s: float) -> None:
        """Until stop: renews before expiry and loads what the Secret holds, while serving."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), every_s)
                return
            except asyncio.TimeoutError:
                pass
            try:
                await self.refresh()
            except (ApiError, httpx.HTTPError, OSError, IssueFailed, asyncio.TimeoutError, ValueError) as exc:
                log.warning("could not check the alert receiver's certificate: %s", exc)
