"""Serving certificates of the operator's TLS endpoints (the admission webhook, the alert
receiver), kept valid while the operator runs.

By default the operator is its own small CA: the CA (10 years) lives in Secret edgeline-ca,
each endpoint's certificate (90 days) in its own Secret, reissued when a third of its life is
left, when its names change or when it was issued by another CA. Every replica checks its
Secret every `tls_check_interval_s` and loads what it finds into the running server's SSL
context (new connections get the new certificate; nothing restarts). Two replicas renewing at
once: the first write wins (resourceVersion), the other loads the winner's pair.

With cert-manager (chart: certManager.enabled, EDGELINE_TLS_SOURCE=secret) the operator never
writes these Secrets: it reads what cert-manager keeps renewed and reloads it the same way."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import os
import ssl
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from cryptography import x509
from lightkube import ApiError
from lightkube.resources.core_v1 import Secret

from edgeline.clusters.connections import hub_client
from edgeline.clusters.resources import create_secret_once, read_secret
from edgeline.pki import CertificateAuthority
from edgeline.settings import get_settings

log = logging.getLogger(__name__)
CA_SECRET = "edgeline-ca"
CA_VALIDITY = dt.timedelta(days=3650)
SERVING_VALIDITY = dt.timedelta(days=90)
KEYS = ("ca.crt", "tls.crt", "tls.key")


def renewal_reason(data: dict[str, bytes] | None, names: tuple[str, ...], ca_pem: bytes | None, now: dt.datetime,
                   validity: dt.timedelta = SERVING_VALIDITY) -> str | None:
    """Why the serving pair in `data` must be issued again (None: it is good). `ca_pem`: the CA
    that should have issued it (None: whoever did, e.g. cert-manager)."""
    if not data or not all(data.get(k) for k in KEYS):
        return "no certificate yet"
    try:
        cert = x509.load_pem_x509_certificate(data["tls.crt"])
    except ValueError:
        return "the certificate cannot be read"
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        have = {str(v) for v in sans.get_values_for_type(x509.DNSName)} | \
            {str(v) for v in sans.get_values_for_type(x509.IPAddress)}
    except x509.ExtensionNotFound:
        have = set()
    if not set(names) <= have:
        return f"its names ({', '.join(sorted(have)) or 'none'}) lack {', '.join(sorted(set(names) - have))}"
    if ca_pem is not None and data["ca.crt"] != ca_pem:
        return "it was issued by another CA"
    left = cert.not_valid_after_utc - now
    if left < validity / 3:
        return f"it expires at {cert.not_valid_after_utc.isoformat()}"
    return None


def expires(data: dict[str, bytes]) -> dt.datetime:
    return x509.load_pem_x509_certificate(data["tls.crt"]).not_valid_after_utc


async def _ca() -> CertificateAuthority:
    found = await read_secret(CA_SECRET)
    if found and found.get("ca.crt") and found.get("ca.key"):
        return CertificateAuthority.load(found["ca.crt"], found["ca.key"])
    ca = CertificateAuthority.create("edgeline-operator-ca", validity=CA_VALIDITY)
    stored = await create_secret_once(CA_SECRET, {"ca.crt": ca.cert_pem, "ca.key": ca.key_pem})
    return CertificateAuthority.load(stored["ca.crt"], stored["ca.key"])


async def serving_pair(secret: str, names: tuple[str, ...], now: dt.datetime | None = None) -> dict[str, bytes]:
    """The Secret's ca.crt/tls.crt/tls.key, renewed first when needed (never with TLS source `secret`)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    if get_settings().tls_source == "secret":
        found = await read_secret(secret)
        if not found or not all(found.get(k) for k in KEYS):
            raise RuntimeError(f"Secret {secret} has no ca.crt, tls.crt and tls.key yet (cert-manager issues it)")
        return found
    ca = await _ca()
    found = await read_secret(secret)
    reason = renewal_reason(found, names, ca.cert_pem, now)
    if reason is None:
        return found
    cert, key = ca.issue(names[0], server_names=names, validity=SERVING_VALIDITY)
    data = {"ca.crt": ca.cert_pem, "tls.crt": cert, "tls.key": key, "names": ",".join(names).encode()}
    log.info("issuing the certificate in Secret %s: %s", secret, reason)
    if found is None:
        return await create_secret_once(secret, data)
    try:
        await hub_client().patch(Secret, secret, {"metadata": {"resourceVersion": await _version(secret)},
                                                  "data": {k: base64.b64encode(v).decode() for k, v in data.items()}},
                                 namespace=get_settings().namespace)
    except ApiError as exc:
        if exc.status.code != 409:
            raise
        return await read_secret(secret) or data     # another replica renewed first: theirs counts
    return data


async def _version(secret: str) -> str:
    return (await hub_client().get(Secret, secret, namespace=get_settings().namespace)).metadata.resourceVersion


class ServingContext:
    """An SSL context for a server whose certificate can be replaced while it serves."""

    def __init__(self) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.data: dict[str, bytes] = {}
        self._folder = Path(tempfile.mkdtemp(prefix="edgeline-tls-"))
        os.chmod(self._folder, 0o700)

    def load(self, data: dict[str, bytes]) -> None:
        cert, key = self._folder / "tls.crt", self._folder / "tls.key"
        cert.write_bytes(data["tls.crt"])
        key.write_bytes(data["tls.key"])
        key.chmod(0o600)
        self.context.load_cert_chain(cert, key)
        self.data = dict(data)


async def serving_context(secret: str, names: tuple[str, ...]) -> ServingContext:
    serving = ServingContext()
    serving.load(await serving_pair(secret, names))
    return serving


async def keep_fresh(secret: str, names: tuple[str, ...], serving: ServingContext,
                     on_new_ca: Callable[[bytes], Awaitable[None]] | None = None) -> None:
    """Runs until cancelled: renews the pair when due and loads whatever the Secret holds now."""
    while True:
        await asyncio.sleep(get_settings().tls_check_interval_s)
        try:
            data = await serving_pair(secret, names)
        except (ApiError, RuntimeError, OSError) as exc:
            log.warning("could not check the certificate in Secret %s: %s", secret, exc)
            continue
        if data.get("tls.crt") == serving.data.get("tls.crt"):
            continue
        old_ca = serving.data.get("ca.crt")
        serving.load(data)
        log.info("serving the certificate from Secret %s, valid until %s", secret, expires(data).isoformat())
        if on_new_ca is not None and data.get("ca.crt") != old_ca:
            await on_new_ca(data["ca.crt"])
