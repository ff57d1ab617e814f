"""Fetch, verify and inspect one artifact, off the event loop, a bounded few at a time."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgeline.artifacts.fetch import ArtifactError, FetchResult, Limits, fetch_artifact, verify
from edgeline.artifacts.onnx_inspect import Inspection, inspect_model
from edgeline.settings import Settings

_semaphores: dict[int, asyncio.Semaphore] = {}


@dataclass
class ValidationOutcome:
    fetch: FetchResult | None = None
    inspection: Inspection | None = None
    error: ArtifactError | None = None


def limits_from(settings: Settings) -> Limits:
    return Limits(settings.artifact_max_bytes, settings.artifact_connect_timeout_s,
                  settings.artifact_read_timeout_s, settings.artifact_retries, settings.artifact_max_redirects)


def validate_artifact(uri: str, expected_sha256: str | None, settings: Settings,
                      credentials: dict | None = None) -> ValidationOutcome:
    outcome = ValidationOutcome()
    settings.artifact_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(dir=settings.artifact_dir))
    try:
        outcome.fetch = fetch_artifact(uri, workdir / "model.onnx", limits_from(settings), credentials)
        verify(outcome.fetch, expected_sha256)
        outcome.inspection = inspect_model(outcome.fetch.path)
    except ArtifactError as exc:
        outcome.error = exc
        if exc.reason == "DigestMismatch":
            outcome.fetch = None  # those bytes were not the model: report nothing about them
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # nothing is kept on disk
    return outcome


async def fetch_and_inspect(uri: str, expected_sha256: str | None, *, settings: Settings,
                            credentials: dict | None = None) -> ValidationOutcome:
    loop_id = id(asyncio.get_running_loop())
    semaphore = _semaphores.setdefault(loop_id, asyncio.Semaphore(settings.validation_concurrency))
    async with semaphore:
        return await asyncio.to_thread(validate_artifact, uri, expected_sha256, settings, credentials)
