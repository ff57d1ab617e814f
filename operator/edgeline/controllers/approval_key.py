"""The key that signs approval records (docs/approvals.md): the admission webhook signs with
it, the EdgeDeployment loop verifies with it. It lives in a Secret in the operator's
namespace, created on first start; this module holds the one loaded copy, so neither
controller imports the other."""

from __future__ import annotations

import secrets

from edgeline.clusters.resources import create_secret_once, read_secret

SECRET = "edgeline-approval-key"
_key: bytes | None = None


async def load() -> bytes:
    """Reads the key from its Secret, creating it once; later calls of `current` see it."""
    global _key
    existing = await read_secret(SECRET)
    if existing and existing.get("key"):
        _key = existing["key"]
    else:
        _key = (await create_secret_once(SECRET, {"key": secrets.token_bytes(32)}))["key"]
    return _key


def current() -> bytes | None:
    """The key, or None while it is not loaded (the webhook is disabled or not started yet):
    then no approval record can be verified, so none counts."""
    return _key


def required() -> bytes:
    if _key is None:
        raise RuntimeError("the approval signing key is not loaded yet")
    return _key
