"""Fetch, verify and inspect one artifact: the one call the MLModel controller makes.

Blocking work (download, sha256, onnx checker) runs in threads, a bounded few at a time,
so several large models validated at once cannot exhaust the operator's memory or block
the event loop. Nothing stays on disk afterwards.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import urllib.parse
import weakref
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from edgeline.artifacts.errors import ArtifactError, StorageFailed
from edgeline.artifacts.fetch import FetchResult, Limits, fetch_artifact, verify_digest
from edgeline.artifacts.onnx_inspect import Inspection, external_data_files, inspect_model
from edgeline.settings import Settings

_semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


@dataclass
class ValidationOutcome:
    # Set once the bytes are proven to be the ones the spec names (or no digest was given);
    # None after a DigestMismatch: nothing about other bytes is reported.
    fetch: FetchResult | None = None
    inspection: Inspection | None = None
    error: ArtifactError | None = None
    # External data files fetched beside the model. The spec's digest covers the .onnx file only.
    external_files: list[FetchResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def reason(self) -> str | None:
        return self.error.reason if self.error else None

    @property
    def message(self) -> str | None:
        return self.error.message if self.error else None

    @property
    def transient(self) -> bool:
        return bool(self.error and self.error.transient)


def validate_artifact(uri: str, expected_sha256: str | None, *, settings: Settings,
                      credentials: dict | None = None) -> ValidationOutcome:
    """Blocking: fetch `uri`, compare its digest, fetch external data files the model names
    (relative to `uri`), run the onnx checker and describe the model. Errors land in the outcome."""
    outcome = ValidationOutcome()
    limits = Limits.from_settings(settings)
    try:
        settings.artifact_dir.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix="validate-", dir=settings.artifact_dir))
    except OSError as exc:
        outcome.error = StorageFailed(f"cannot use the scratch folder {settings.artifact_dir}: {exc.strerror}")
        return outcome
    try:
        fetched = fetch_artifact(uri, workdir / "model.onnx", limits=limits, credentials=credentials)
        verify_digest(fetched, expected_sha256)
        outcome.fetch = fetched
        budget = limits.max_bytes - fetched.size_bytes
        for location in _safe_locations(external_data_files(fetched.path)):
            extra = fetch_artifact(urllib.parse.urljoin(uri, urllib.parse.quote(location)), workdir / location,
                                   limits=replace(limits, max_bytes=max(budget, 0)), credentials=credentials)
            budget -= extra.size_bytes
            outcome.external_files.append(extra)
        outcome.inspection = inspect_model(fetched.path)
    except ArtifactError as exc:
        outcome.error = exc
    except OSError as exc:
        outcome.error = StorageFailed(f"reading or writing the artifact in {settings.artifact_dir} failed: "
                                      f"{exc.strerror or exc}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # nothing is kept on disk
    return outcome


def _safe_locations(locations: list[str]) -> list[str]:
    """Locations inside the model's folder. Others are not fetched; the checker names them."""
    safe = []
    for location in locations:
        parts = PurePosixPath(location).parts
        if location and not PurePosixPath(location).is_absolute() and ".." not in parts and "\\" not in location:
            safe.append(location)
    return safe


def _semaphore(settings: Settings) -> asyncio.Semaphore:
    # One per event loop (tests run several loops; an asyncio primitive belongs to one loop).
    loop = asyncio.get_running_loop()
    semaphore = _semaphores.get(loop)
    if semaphore is None:
        semaphore = _semaphores[loop] = asyncio.Semaphore(max(1, settings.validation_concurrency))
    return semaphore


async def fetch_and_inspect(uri: str, expected_sha256: str | None, *, settings: Settings,
                            credentials: dict | None = None) -> ValidationOutcome:
    """validate_artifact in a thread, at most settings.validation_concurrency at once."""
    async with _semaphore(settings):
        return await asyncio.to_thread(validate_artifact, uri, expected_sha256,
                                       settings=settings, credentials=credentials)
