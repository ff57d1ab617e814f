"""Fetching model artifacts: streamed to disk in 1 MiB chunks while hashed, never held whole.

Schemes live in a registry: supporting s3:// or oci:// is one class with a `fetch()`
method decorated with `@register("s3")`; callers only ever call `fetch_artifact()`.
"""

from __future__ import annotations

import hashlib
import os
import time
import urllib.parse
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Protocol

import urllib3

from edgeline.artifacts.errors import (
    ArtifactError,
    CredentialsInvalid,
    DigestMismatch,
    FetchFailed,
    FetchTimeout,
    NotFound,
    TLSVerifyFailed,
    TooLarge,
    TooManyRedirects,
    Truncated,
    Unauthorized,
    UnsupportedScheme,
)

if TYPE_CHECKING:
    from edgeline.settings import Settings

CHUNK = 1024 * 1024
# Schemes the design plans for; named in the error so users know it is not a typo.
PLANNED_SCHEMES = ("s3", "oci")


@dataclass(frozen=True)
class Limits:
    """How far one fetch may go. `ca_bundle` adds trust for a private CA; TLS is always verified."""

    max_bytes: int = 8 * 1024**3
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    retries: int = 3  # attempts in all, for connection errors, 5xx and 429
    backoff_s: float = 1.0  # first pause between attempts; doubles each time
    max_backoff_s: float = 30.0
    max_redirects: int = 5
    ca_bundle: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_bytes=settings.artifact_max_bytes,
            connect_timeout_s=settings.artifact_connect_timeout_s,
            read_timeout_s=settings.artifact_read_timeout_s,
            retries=settings.artifact_retries,
            backoff_s=settings.artifact_retry_backoff_s,
            max_redirects=settings.artifact_max_redirects,
            ca_bundle=settings.artifact_ca_bundle,
        )


@dataclass(frozen=True)
class FetchResult:
    path: Path
    size_bytes: int
    sha256: str  # "sha256:<hex>"
    duration: float  # seconds, including retries


class Fetcher(Protocol):
    def fetch(self, uri: str, dest_path: Path, *, limits: Limits, credentials: dict | None) -> FetchResult: ...


FETCHERS: dict[str, Fetcher] = {}


def register(*schemes: str):
    """Class decorator: one instance of the class serves the given URI schemes."""

    def add(cls):
        instance = cls()
        for scheme in schemes:
            FETCHERS[scheme] = instance
        return cls

    return add


def fetcher_for(uri: str) -> Fetcher:
    scheme = urllib.parse.urlsplit(uri).scheme.lower()
    fetcher = FETCHERS.get(scheme)
    if fetcher is None:
        known = ", ".join(f"{s}://" for s in sorted(FETCHERS))
        if scheme in PLANNED_SCHEMES:
            raise UnsupportedScheme(f"{scheme}:// artifacts are planned but not supported yet; use {known}")
        shown = f"{scheme}://" if scheme else "a URI without a scheme"
        raise UnsupportedScheme(f"{shown} is not a supported artifact location; use {known}")
    return fetcher


def fetch_artifact(uri: str, dest_path: Path, *, limits: Limits, credentials: dict | None = None) -> FetchResult:
    """Fetches `uri` to `dest_path` (which appears only once complete) and hashes it on the way."""
    fetcher = fetcher_for(uri)
    dest_path = Path(dest_path)
    dest_path.parent.mkdir(parents=True, exist_ok=True)
    return fetcher.fetch(uri, dest_path, limits=limits, credentials=credentials)


def verify_digest(result: FetchResult, expected: str | None, what: str = "the artifact") -> None:
    """Raises DigestMismatch, and removes the file, unless the bytes are the ones expected.
    No expected digest means nothing to compare with (the API demands one in production)."""
    if expected and result.sha256 != expected.lower():
        result.path.unlink(missing_ok=True)
        raise DigestMismatch(expected=expected, actual=result.sha256, what=what)


def sha256_of(path: Path) -> tuple[str, int]:
    """Digest and size of a local file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as source:
        while n := source.readinto(buffer):
            digest.update(view[:n])
            size += n
    return "sha256:" + digest.hexdigest(), size


def _stream_to_disk(dest: Path, chunks: Iterable[bytes], *, limit: int, uri: str, started: float) -> FetchResult:
    """Writes chunks to a temporary file beside dest while hashing, then renames it: a
    half-written file never carries the final name, and a failure leaves nothing behind."""
    digest = hashlib.sha256()
    size = 0
    part = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        with open(part, "wb", buffering=0) as out:
            for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"{_safe(uri)} is larger than the limit of {limit} bytes")
                digest.update(chunk)
                out.write(chunk)
        part.replace(dest)
    finally:
        part.unlink(missing_ok=True)
    return FetchResult(dest, size, "sha256:" + digest.hexdigest(), time.monotonic() - started)


def _safe(uri: str) -> str:
    """The URI without user:password and query (pre-signed URLs carry tokens there)."""
    parts = urllib.parse.urlsplit(uri)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


@register("file")
class FileFetcher:
    """file:///path: local files, test data, and PVC-backed storage mounted into the operator."""

    def fetch(self, uri: str, dest_path: Path, *, limits: Limits, credentials: dict | None) -> FetchResult:
        started = time.monotonic()
        path = local_path(uri)
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise NotFound(f"{path} is not a regular file")
        except FileNotFoundError:
            raise NotFound(f"{path} does not exist") from None
        except PermissionError:
            raise FetchFailed(f"{path} is not readable by the operator", transient=False) from None
        if size > limits.max_bytes:
            raise TooLarge(f"{path} is {size} bytes, over the limit of {limits.max_bytes} bytes")

        def chunks():
            with open(path, "rb", buffering=0) as source:
                while block := source.read(CHUNK):
                    yield block

        try:
            return _stream_to_disk(dest_path, chunks(), limit=limits.max_bytes, uri=uri, started=started)
        except PermissionError:
            raise FetchFailed(f"{path} is not readable by the operator", transient=False) from None


def local_path(uri: str) -> Path:
    """The path a file:// URI names; only local hosts are accepted."""
    parts = urllib.parse.urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise UnsupportedScheme(f"file:// URIs must name a local path, not host {parts.netloc!r}")
    path = Path(urllib.parse.unquote(parts.path))
    if not path.is_absolute():
        raise NotFound(f"{uri} does not name an absolute path")
    return path


@register("http", "https")
class HttpFetcher:
    """http(s)://: connect and read timeouts, bounded redirects, TLS verified, and retries
    with exponential backoff for connection errors, 5xx and 429 only."""

    def fetch(self, uri: str, dest_path: Path, *, limits: Limits, credentials: dict | None) -> FetchResult:
        started = time.monotonic()
        headers = {"Accept-Encoding": "identity", **_auth_headers(credentials)}
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._once(uri, dest_path, limits, headers, started)
            except (FetchFailed, Truncated) as exc:
                # A stall (FetchTimeout) is not retried here: it already cost a whole read timeout,
                # and the controller retries transient failures later with its own backoff.
                if not exc.transient or attempt >= max(1, limits.retries):
                    raise
                pause = min(limits.backoff_s * 2 ** (attempt - 1), limits.max_backoff_s)
                time.sleep(max(pause, min(getattr(exc, "retry_after", 0.0), limits.max_backoff_s)))

    def _once(self, uri: str, dest: Path, limits: Limits, headers: dict, started: float) -> FetchResult:
        shown = _safe(uri)
        try:
            response = _pool(limits.ca_bundle).request(
                "GET", uri, headers=headers, preload_content=False,
                timeout=urllib3.Timeout(connect=limits.connect_timeout_s, read=limits.read_timeout_s),
                # urllib3 follows redirects (and drops Authorization when the host changes);
                # every other retry is ours, so that only what may pass is retried.
                retries=urllib3.Retry(total=None, connect=0, read=0, status=0, other=0,
                                      redirect=limits.max_redirects, raise_on_redirect=True),
            )
        except urllib3.exceptions.MaxRetryError as exc:
            if isinstance(exc.reason, urllib3.exceptions.ResponseError):
                raise TooManyRedirects(f"{shown} redirected more than {limits.max_redirects} times") from None
            raise _connection_error(shown, exc.reason, limits) from None
        except urllib3.exceptions.HTTPError as exc:
            raise _connection_error(shown, exc, limits) from None
        try:
            _raise_for_status(shown, response)
            length = _content_length(response)
            if length is not None and length > limits.max_bytes:
                raise TooLarge(f"{shown} is {length} bytes, over the limit of {limits.max_bytes} bytes")
            try:
                result = _stream_to_disk(dest, response.stream(CHUNK), limit=limits.max_bytes,
                                         uri=uri, started=started)
            except urllib3.exceptions.ReadTimeoutError:
                raise FetchTimeout(f"{shown} stopped sending for more than {limits.read_timeout_s:g}s") from None
            except (urllib3.exceptions.ProtocolError, urllib3.exceptions.IncompleteRead) as exc:
                raise Truncated(f"{shown} ended early ({_first_line(exc)})") from None
            except urllib3.exceptions.HTTPError as exc:
                raise _connection_error(shown, exc, limits) from None
            if length is not None and result.size_bytes != length:
                dest.unlink(missing_ok=True)
                raise Truncated(f"{shown} sent {result.size_bytes} of the {length} bytes it announced")
            return result
        finally:
            response.release_conn()


@lru_cache(maxsize=8)
def _pool(ca_bundle: Path | None) -> urllib3.PoolManager:
    # One pool per trust store, shared by all threads (PoolManager is thread-safe).
    kwargs = {"ca_certs": str(ca_bundle)} if ca_bundle else {}
    return urllib3.PoolManager(num_pools=16, maxsize=4, cert_reqs="CERT_REQUIRED", **kwargs)


def _raise_for_status(shown: str, response) -> None:
    status = response.status
    if status == 200:
        return
    if status in (404, 410):
        raise NotFound(f"{shown} answered {status}: no such artifact")
    if status in (401, 403):
        raise Unauthorized(f"{shown} answered {status}: check the credentials Secret", status=status)
    error = FetchFailed(f"{shown} answered HTTP {status}", status=status)
    if status in (429, 503):
        error.retry_after = _retry_after(response.headers.get("Retry-After"))
    raise error


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0  # an HTTP date: our own backoff is good enough


def _content_length(response) -> int | None:
    value = response.headers.get("Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _connection_error(shown: str, exc: BaseException | None, limits: Limits) -> ArtifactError:
    # NewConnectionError (refused, no route) subclasses ConnectTimeoutError in urllib3 2: test it first.
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return FetchFailed(f"cannot connect to {shown}: {_first_line(exc)}")
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        return FetchFailed(f"cannot connect to {shown} within {limits.connect_timeout_s:g}s")
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return FetchTimeout(f"{shown} did not answer within {limits.read_timeout_s:g}s")
    if isinstance(exc, urllib3.exceptions.SSLError):
        return TLSVerifyFailed(f"TLS with {shown} failed: {_first_line(exc)}")
    return FetchFailed(f"cannot reach {shown}: {_first_line(exc)}")


def _first_line(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


def _auth_headers(credentials: dict | None) -> dict:
    """Credentials come from a Secret the caller read: `token` (bearer) or `username` and `password`."""
    if not credentials:
        return {}
    if credentials.get("token"):
        return {"Authorization": f"Bearer {credentials['token'].strip()}"}
    if credentials.get("username") and "password" in credentials:
        return urllib3.make_headers(basic_auth=f"{credentials['username']}:{credentials['password']}")
    raise CredentialsInvalid("the credentials Secret needs `token`, or `username` and `password`")
