"""Fetch, verify, load: the model's bytes are proven to carry the expected sha256 before
onnxruntime ever reads them. Blocking; the server runs it in a thread.

Errors are ArtifactErrors (reason, message, transient) like the operator's own, so a
DigestMismatch reads the same in the runtime's log as in the MLModel's status.
"""

from __future__ import annotations

import dataclasses
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from edgeline.artifacts.errors import ArtifactError, ExternalDataNotListed, StorageFailed
from edgeline.artifacts.fetch import FetchResult, Limits, fetch_artifact, sha256_of, verify_digest
from edgeline.artifacts.onnx_wire import external_locations
from edgeline.runtime.tensors import TensorSpec, metadata_shape, oip_datatype


class LoadFailed(ArtifactError):
    """onnxruntime refused the verified bytes (an operator it lacks, a corrupt graph)."""

    reason = "LoadFailed"


class ProviderUnavailable(ArtifactError):
    reason = "ProviderUnavailable"


class InferenceFailed(Exception):
    """onnxruntime raised while running the model: the model's fault, not the request's."""


@dataclass(frozen=True)
class Fetched:
    path: Path
    sha256: str
    size_bytes: int
    reused: bool  # a copy with the right digest was already on disk (a container restart)
    seconds: float


def fetch_verified(uri: str, sha256: str, model_dir: Path, *, limits: Limits,
                   external_data: dict[str, str] | None = None) -> Fetched:
    """The model at `uri`, on disk under `model_dir`, with its digest proven; the external data
    files it names are fetched beside it and each proven against `external_data` (location ->
    sha256, from MLModel spec.artifact.externalData): onnxruntime never reads an unverified byte.
    A model naming a file without a digest is refused (ExternalDataNotListed)."""
    started = time.monotonic()
    listed = external_data or {}
    folder = model_dir / sha256.removeprefix("sha256:")
    target = folder / "model.onnx"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if target.is_file() and sha256_of(target)[0] == sha256 and _extras_verified(target, folder, listed):
            return Fetched(target, sha256, target.stat().st_size, True, time.monotonic() - started)
    except OSError as exc:
        raise StorageFailed(f"cannot use the model folder {model_dir}: {exc.strerror or exc}") from None
    result: FetchResult = fetch_artifact(uri, target, limits=dataclasses.replace(limits, expected_sha256=sha256))
    verify_digest(result, sha256, what="the model")
    try:
        for location in _safe(external_locations(result.path)):
            if uri.startswith("oci://"):
                raise ExternalDataNotListed("the model reads external data files, and an oci:// artifact carries "
                                            "the model file alone")
            expected = listed.get(location)
            if expected is None:
                raise ExternalDataNotListed(f"the model reads external data file {location!r}, for which the "
                                            "runtime has no digest (EDGELINE_MODEL_EXTERNAL_DATA); it is not loaded")
            extra = fetch_artifact(urllib.parse.urljoin(uri, urllib.parse.quote(location)), folder / location,
                                   limits=limits)
            verify_digest(extra, expected, what=f"external data file {location}")
    except ArtifactError:
        target.unlink(missing_ok=True)  # not usable without its verified data: fetched again next time
        raise
    return Fetched(result.path, result.sha256, result.size_bytes, False, time.monotonic() - started)


def _extras_verified(target: Path, folder: Path, listed: dict[str, str]) -> bool:
    """A kept copy is reused only if every external data file beside it still has its digest."""
    try:
        locations = _safe(external_locations(target))
    except ArtifactError:
        return False
    for location in locations:
        path = folder / location
        if location not in listed or not path.is_file() or sha256_of(path)[0] != listed[location]:
            return False
    return True


def _safe(locations: list[str]) -> list[str]:
    # A location outside the model's folder is not fetched; onnxruntime then fails to load and says why.
    return [loc for loc in locations
            if loc and not PurePosixPath(loc).is_absolute() and ".." not in PurePosixPath(loc).parts]


def load_profile(uri: str, sha256: str, model_dir: Path, limits: Limits, inputs: list[TensorSpec],
                 outputs: list[TensorSpec]):
    """The reference profile at `uri`, its digest proven, parsed and checked against the model's
    tensors (ArtifactError or quality.ProfileInvalid otherwise)."""
    from edgeline.runtime.quality import ProfileInvalid, check_profile, parse_profile

    target = model_dir / "profiles" / (sha256.removeprefix("sha256:") + ".json")
    if not (target.is_file() and sha256_of(target)[0] == sha256):
        # A profile is a few kB: a URI that serves more is not one.
        result = fetch_artifact(uri, target, limits=dataclasses.replace(limits, max_bytes=16 * 1024**2))
        verify_digest(result, sha256, what="the reference profile")
    try:
        text = target.read_bytes()
    except OSError as exc:
        raise ProfileInvalid(f"cannot read the reference profile: {exc.strerror or exc}") from None
    return check_profile(parse_profile(text), inputs, outputs)


class LoadedModel:
    """An onnxruntime session and what OIP metadata says about it."""

    def __init__(self, session, digest: str, provider: str):
        self.session = session
        self.digest = digest
        self.provider = provider
        self.inputs = [_spec(arg) for arg in session.get_inputs()]
        self.outputs = [_spec(arg) for arg in session.get_outputs()]
        self._run_options = _quiet_run_options()

    def infer(self, inputs: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        names = outputs or [spec.name for spec in self.outputs]
        try:
            results = self.session.run(names, inputs, self._run_options)
        except Exception as exc:  # onnxruntime raises its own classes (Fail, InvalidArgument, ...) and RuntimeError
            raise InferenceFailed(_ort_message(exc)) from exc
        return dict(zip(names, results))


def load_model(path: Path, digest: str, provider: str, *, intra_op_threads: int = 0) -> LoadedModel:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if provider not in available:
        raise ProviderUnavailable(f"execution provider {provider} is not available in this runtime image; "
                                  f"it has {', '.join(available)}")
    options = ort.SessionOptions()
    # onnxruntime logs its own errors in colour on stderr; the runtime logs them itself, as JSON lines.
    options.log_severity_level = 4
    # Idle onnxruntime threads spin by default: on an edge node with a CPU limit that burns the
    # Pod's quota (and gets it throttled) while the model waits for requests.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.intra_op_num_threads = intra_op_threads  # 0: one per core
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=[provider])
    except Exception as exc:  # onnxruntime's exception classes are not importable by a stable name
        raise LoadFailed(f"onnxruntime cannot load the model: {_ort_message(exc)}") from None
    return LoadedModel(session, digest, provider)


def _quiet_run_options():
    import onnxruntime as ort

    options = ort.RunOptions()
    options.log_severity_level = 4
    return options


def _spec(arg) -> TensorSpec:
    return TensorSpec(arg.name, oip_datatype(arg.type), metadata_shape(arg.shape))


def _ort_message(exc: BaseException) -> str:
    """onnxruntime's message without its error-code prefix and source paths, on one line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    for prefix in ("[ONNXRuntimeError] : ",):
        if text.startswith(prefix):
            text = text[len(prefix):].split(" : ", 2)[-1]
    if "Status Message: " in text:
        head, _, status = text.partition("Status Message: ")
        # The status starts with "<source file>:<line> <function> <check> was false." on CPU kernels.
        detail = status.split(" was false. ", 1)[-1]
        text = head.strip() + " " + detail
    return text[:500]
