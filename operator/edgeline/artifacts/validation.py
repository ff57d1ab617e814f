"""Fetch, verify and inspect one artifact: the one call the MLModel controller makes.

Each model is validated in a fresh child process (`python -m edgeline.artifacts.validation`)
with an address-space limit (RLIMIT_AS) and a deadline: a model that makes onnx's checker
allocate without end kills that process, not the operator, and is reported as
ValidationResourceExhausted. A bounded few run at once. The child's scratch folder is made
and removed by the parent, so nothing stays on disk even when the child is killed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.parse
import weakref
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from edgeline.artifacts.errors import (
    ArtifactError,
    ExternalDataNotListed,
    StorageFailed,
    ValidationResourceExhausted,
)
from edgeline.artifacts.fetch import FetchResult, Limits, fetch_artifact, verify_digest
from edgeline.artifacts.onnx_inspect import Inspection, TensorSpec, external_data_files, inspect_model
from edgeline.settings import Settings

log = logging.getLogger("edgeline.artifacts")

_semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()
WORKDIR_PREFIX = "validate-"
EXIT_OUT_OF_MEMORY = 86  # the child's exit code after a MemoryError


@dataclass
class ValidationOutcome:
    # Set once the bytes are proven to be the ones the spec names (or no digest was given);
    # None after a DigestMismatch: nothing about other bytes is reported.
    fetch: FetchResult | None = None
    inspection: Inspection | None = None
    error: ArtifactError | None = None
    # External data files fetched beside the model, each verified against spec.artifact.externalData.
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


ONE_FILE_ONLY = ("the model reads external data files, and an oci:// artifact carries the model file alone; "
                 "serve a model with external data over https://")


def validate_artifact(uri: str, expected_sha256: str | None, *, settings: Settings,
                      credentials: dict | None = None, external_data: dict[str, str] | None = None,
                      workdir: Path | None = None, limits: Limits | None = None) -> ValidationOutcome:
    """Blocking, in this process: fetch `uri` (by default under the operator's fetch policy),
    compare its digest, fetch the external data files the model names (relative to `uri`; each
    must be listed in `external_data` with its digest), run the onnx checker and describe the
    model. `external_data=None` fetches them unverified: only for `edgeline model inspect`, where
    a person looks at their own file; the operator's path always passes a mapping."""
    outcome = ValidationOutcome()
    limits = limits or Limits.for_operator(settings)
    own_workdir = workdir is None
    try:
        if own_workdir:
            settings.artifact_dir.mkdir(parents=True, exist_ok=True)
            workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX, dir=settings.artifact_dir))
    except OSError as exc:
        outcome.error = StorageFailed(f"cannot use the scratch folder {settings.artifact_dir}: {exc.strerror}")
        return outcome
    try:
        fetched = fetch_artifact(uri, workdir / "model.onnx", limits=replace(limits, expected_sha256=expected_sha256),
                                 credentials=credentials)
        verify_digest(fetched, expected_sha256)
        outcome.fetch = fetched
        budget = limits.max_bytes - fetched.size_bytes
        listed = external_data or {}
        locations = _safe_locations(external_data_files(fetched.path))
        if locations and uri.startswith("oci://"):
            raise ExternalDataNotListed(ONE_FILE_ONLY)
        for location in locations:
            if external_data is not None and location not in listed:
                raise ExternalDataNotListed(
                    f"the model reads external data file {location!r}, which spec.artifact.externalData does not "
                    "list with its sha256; list every external data file so that its bytes can be verified")
            extra = fetch_artifact(urllib.parse.urljoin(uri, urllib.parse.quote(location)), workdir / location,
                                   limits=replace(limits, max_bytes=max(budget, 0)), credentials=credentials)
            verify_digest(extra, listed.get(location), what=f"external data file {location}")
            budget -= extra.size_bytes
            outcome.external_files.append(extra)
        outcome.inspection = inspect_model(fetched.path)
    except ArtifactError as exc:
        outcome.error = exc
    except OSError as exc:
        outcome.error = StorageFailed(f"reading or writing the artifact in {settings.artifact_dir} failed: "
                                      f"{exc.strerror or exc}")
    finally:
        if own_workdir:
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


# -- the child process ---------------------------------------------------------------------------

def validate_in_child(uri: str, expected_sha256: str | None, *, settings: Settings,
                      credentials: dict | None = None,
                      external_data: dict[str, str] | None = None) -> ValidationOutcome:
    """Blocking: validate_artifact in a fresh process limited to settings.validation_memory_bytes
    of address space and settings.validation_deadline_s of time. Credentials travel on its
    stdin, never in its arguments or environment."""
    try:
        settings.artifact_dir.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX, dir=settings.artifact_dir))
    except OSError as exc:
        return ValidationOutcome(error=StorageFailed(f"cannot use the scratch folder {settings.artifact_dir}: "
                                                     f"{exc.strerror}"))
    request = json.dumps({"uri": uri, "sha256": expected_sha256, "credentials": credentials,
                          "externalData": external_data or {}, "workdir": str(workdir),
                          "settings": settings.model_dump(mode="json")})
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgeline.artifacts.validation",
             "--memory-bytes", str(settings.validation_memory_bytes), "--parent", str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True, env=_child_environment(),
        )
        try:
            out, err = proc.communicate(request, timeout=settings.validation_deadline_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return ValidationOutcome(error=ValidationResourceExhausted(
                f"validating the model took longer than {settings.validation_deadline_s:g}s and was stopped"))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for line in (err or "").splitlines()[-20:]:
        log.info("validation process: %s", line)
    if proc.returncode == 0:
        try:
            return _outcome_from_json(json.loads(out))
        except (ValueError, KeyError, TypeError):
            pass
    if proc.returncode == EXIT_OUT_OF_MEMORY or proc.returncode in (-signal.SIGKILL, -signal.SIGSEGV,
                                                                     -signal.SIGABRT):
        how = ("ran out of memory" if proc.returncode == EXIT_OUT_OF_MEMORY
               else f"was killed by {signal.Signals(-proc.returncode).name}")
        return ValidationOutcome(error=ValidationResourceExhausted(
            f"validating the model {how} (limit {settings.validation_memory_bytes // 2**20} MiB of address space, "
            "EDGELINE_VALIDATION_MEMORY_BYTES); the model is not retried"))
    last = next((line for line in reversed((err or "").splitlines()) if line.strip()), "no output")
    error = ArtifactError(f"the validation process failed ({proc.returncode}): {last[:300]}")
    error.reason = "ValidationCrashed"
    return ValidationOutcome(error=error)


# The child parses untrusted bytes: it gets what Python and TLS need, not the operator's environment
# (KUBECONFIG, tokens); its settings and credentials come on stdin.
_CHILD_ENV = ("PATH", "PYTHONPATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR", "TZ")


def _child_environment() -> dict[str, str]:
    env = {key: os.environ[key] for key in _CHILD_ENV if key in os.environ}
    env.update({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"})
    return env


def _outcome_to_json(outcome: ValidationOutcome) -> dict:
    def result(r: FetchResult) -> dict:
        return {"path": str(r.path), "sizeBytes": r.size_bytes, "sha256": r.sha256, "duration": r.duration}

    error = outcome.error
    return {
        "fetch": result(outcome.fetch) if outcome.fetch else None,
        "inspection": dataclasses.asdict(outcome.inspection) if outcome.inspection else None,
        "externalFiles": [result(r) for r in outcome.external_files],
        "error": {"reason": error.reason, "message": error.message, "transient": error.transient,
                  "status": getattr(error, "status", None)} if error else None,
    }


def _outcome_from_json(data: dict) -> ValidationOutcome:
    def result(d: dict) -> FetchResult:
        return FetchResult(Path(d["path"]), d["sizeBytes"], d["sha256"], d["duration"])

    outcome = ValidationOutcome()
    if data.get("fetch"):
        outcome.fetch = result(data["fetch"])
    outcome.external_files = [result(d) for d in data.get("externalFiles") or []]
    if data.get("inspection"):
        found = dict(data["inspection"])
        found["opset_imports"] = [tuple(o) for o in found["opset_imports"]]
        found["inputs"] = [TensorSpec(**t) for t in found["inputs"]]
        found["outputs"] = [TensorSpec(**t) for t in found["outputs"]]
        outcome.inspection = Inspection(**found)
    if data.get("error"):
        err = data["error"]
        outcome.error = ArtifactError(err["message"], transient=err["transient"])
        outcome.error.reason = err["reason"]
        outcome.error.status = err.get("status")
    return outcome


def main(argv: list[str] | None = None) -> int:
    """The child: one request as JSON on stdin, the outcome as JSON on stdout."""
    import argparse
    import resource

    parser = argparse.ArgumentParser(prog="python -m edgeline.artifacts.validation")
    parser.add_argument("--memory-bytes", type=int, default=0)
    parser.add_argument("--parent", type=int, default=0, help="die with this process (the operator)")
    args = parser.parse_args(argv)
    if args.parent:
        _die_with_parent(args.parent)
    if args.memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (args.memory_bytes, args.memory_bytes))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    try:
        request = json.loads(sys.stdin.read())
        outcome = validate_artifact(request["uri"], request.get("sha256"),
                                    settings=Settings(**request["settings"]),
                                    credentials=request.get("credentials"),
                                    external_data=request.get("externalData") or {},
                                    workdir=Path(request["workdir"]))
        sys.stdout.write(json.dumps(_outcome_to_json(outcome)))
        sys.stdout.flush()
    except MemoryError:
        os._exit(EXIT_OUT_OF_MEMORY)  # no allocation may follow: leave at once
    return 0


def _die_with_parent(parent: int) -> None:
    """An operator killed mid-validation takes its child along (Linux PR_SET_PDEATHSIG), so a
    restarted operator never finds an orphan still downloading."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


# -- the controller's call and the scratch folder ------------------------------------------------

def _semaphore(settings: Settings) -> asyncio.Semaphore:
    # One per event loop (tests run several loops; an asyncio primitive belongs to one loop).
    loop = asyncio.get_running_loop()
    semaphore = _semaphores.get(loop)
    if semaphore is None:
        semaphore = _semaphores[loop] = asyncio.Semaphore(max(1, settings.validation_concurrency))
    return semaphore


async def fetch_and_inspect(uri: str, expected_sha256: str | None, *, settings: Settings,
                            credentials: dict | None = None,
                            external_data: dict[str, str] | None = None) -> ValidationOutcome:
    """validate_in_child from a thread, at most settings.validation_concurrency at once."""
    async with _semaphore(settings):
        return await asyncio.to_thread(validate_in_child, uri, expected_sha256, settings=settings,
                                       credentials=credentials, external_data=external_data)


@dataclass(frozen=True)
class ScratchReport:
    removed: int  # leftovers of validations cut short (a crash, a SIGKILL)
    free_bytes: int
    needed_bytes: int  # validation_concurrency x artifact_max_bytes

    @property
    def sufficient(self) -> bool:
        return self.free_bytes >= self.needed_bytes


def prepare_scratch(settings: Settings) -> ScratchReport:
    """At start: remove what earlier validations left behind (only their own folders, in case the
    scratch folder is shared) and compare the free space with the worst case."""
    folder = settings.artifact_dir
    folder.mkdir(parents=True, exist_ok=True)
    removed = 0
    for entry in folder.iterdir():
        if entry.name.startswith(WORKDIR_PREFIX) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    free = shutil.disk_usage(folder).free
    return ScratchReport(removed, free, max(1, settings.validation_concurrency) * settings.artifact_max_bytes)


if __name__ == "__main__":
    sys.exit(main())
