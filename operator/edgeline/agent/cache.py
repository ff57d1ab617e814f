"""The site's model cache: every artifact the site runs or may fall back on, on a persistent
volume (or hostPath), by digest, each proven against its sha256 before it is kept. The runtime
reads its model from here (file://), so a restart, a reschedule or a rollback needs no WAN.
Kept: what the assignments name now (current and last known-good); the rest is pruned.
Blocking; the agent runs it in a thread."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from edgeline.api.edgedeployment import RevisionRef
from edgeline.artifacts.fetch import Limits, fetch_artifact, sha256_of, verify_digest

MODEL_FILE = "model.onnx"


class CacheMiss(Exception):
    """An artifact is neither cached nor fetchable now (the WAN is down, the URL expired)."""


def folder_of(root: Path, digest: str) -> Path:
    return root / digest.removeprefix("sha256:")


def cached(root: Path, revision: RevisionRef) -> Path | None:
    """The verified model of a revision in the cache, or None."""
    if not revision.digest:
        return None
    target = folder_of(root, revision.digest) / MODEL_FILE
    if target.is_file() and (target.parent / ".verified").is_file():
        return target
    return None


def ensure(root: Path, revision: RevisionRef, limits: Limits | None = None,
           mirrors: tuple[str, ...] = ()) -> Path:
    """The revision's model in the cache, fetched and verified if it is not there yet. oci://
    models are asked of `mirrors` (the site's pull-through registries) first, then of their
    registry: the manifest digest pins the bytes, whichever answers."""
    found = cached(root, revision)
    if found is not None:
        return found
    if not revision.digest or not revision.uri:
        raise CacheMiss(f"revision {revision.revision} names no digest or URI: nothing to cache")
    if revision.external_data:
        raise CacheMiss(f"revision {revision.revision} has external data files, which the site cache does not "
                        "keep yet")
    folder = folder_of(root, revision.digest)
    target = folder / MODEL_FILE
    try:
        limits = replace(limits or Limits(retries=1), registry_mirrors=tuple(mirrors), expected_sha256=revision.digest)
        result = fetch_artifact(revision.uri, target, limits=limits)
        verify_digest(result, revision.digest, what="the model")
    except Exception as exc:  # noqa: BLE001 - every fetch failure means the same here: not cached
        shutil.rmtree(folder, ignore_errors=True)
        raise CacheMiss(f"cannot cache {revision.uri}: {exc}") from None
    if sha256_of(target)[0] != revision.digest:     # checked again from disk before it counts as kept
        target.unlink(missing_ok=True)
        raise CacheMiss(f"{revision.uri}: the cached copy does not match {revision.digest}")
    (folder / ".verified").write_text(revision.digest)
    return target


def prune(root: Path, keep: set[str]) -> list[str]:
    """Removes cached artifacts whose digest is not in `keep`; returns their digests."""
    removed = []
    if not root.is_dir():
        return removed
    wanted = {d.removeprefix("sha256:") for d in keep}
    for folder in root.iterdir():
        if folder.is_dir() and folder.name not in wanted and len(folder.name) == 64:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    return removed
