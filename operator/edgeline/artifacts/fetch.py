"""Fetching model artifacts: streamed to disk in chunks while hashed, never held whole.

Schemes are a registry: a new one (s3://, oci://) is one class with `fetch()` added to
FETCHERS; callers only ever call `fetch_artifact()`.
"""

from __future__ import annotations

import hashlib
import os
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import urllib3

CHUNK = 1024 * 1024


class ArtifactError(Exception):
    """A failure with a CamelCase reason for conditions, and whether trying later may help."""

    def __init__(self, reason: str, message: str, transient: bool = False):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.transient = transient


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    connect_timeout_s: float
    read_timeout_s: float
    retries: int
    max_redirects: int


@dataclass(frozen=True)
class FetchResult:
    path: Path
    size_bytes: int
    sha256: str  # "sha256:<hex>"
    seconds: float


class Fetcher(Protocol):
    def fetch(self, uri: str, dest: Path, limits: Limits, credentials: dict | None) -> FetchResult: ...


def _stream_to(dest: Path, chunks, limits: Limits, uri: str, started: float) -> FetchResult:
    """Writes chunks to a temporary file beside dest, hashing as it goes."""
    digest = hashlib.sha256()
    size = 0
    tmp = dest.with_name(dest.name + ".part")
    try:
        with tmp.open("wb") as out:
            for chunk in chunks:
                size += len(chunk)
                if size > limits.max_bytes:
                    raise ArtifactError("TooLarge", f"{uri} is larger than the limit of {limits.max_bytes} bytes")
                digest.update(chunk)
                out.write(chunk)
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    return FetchResult(dest, size, "sha256:" + digest.hexdigest(), time.monotonic() - started)


class FileFetcher:
    """file:///path: local files, test data and PVC mounts in a cluster."""

    def fetch(self, uri: str, dest: Path, limits: Limits, credentials: dict | None) -> FetchResult:
        path = Path(urllib.parse.unquote(urllib.parse.urlparse(uri).path))
        started = time.monotonic()
        if not path.is_file():
            raise ArtifactError("NotFound", f"{path} does not exist or is not a file")
        if path.stat().st_size > limits.max_bytes:
            raise ArtifactError("TooLarge", f"{path} is larger than the limit of {limits.max_bytes} bytes")

        def chunks():
            with path.open("rb") as f:
                while block := f.read(CHUNK):
                    yield block

        return _stream_to(dest, chunks(), limits, uri, started)


class HttpFetcher:
    """http(s)://: timeouts, bounded redirects, TLS verified, retries with backoff for
    connection errors, 429 and 5xx only."""

    def __init__(self):
        self._pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED")

    def fetch(self, uri: str, dest: Path, limits: Limits, credentials: dict | None) -> FetchResult:
        headers = _auth_headers(credentials)
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._once(uri, dest, limits, headers)
            except ArtifactError as exc:
                if not exc.transient or attempt >= limits.retries:
                    raise
                time.sleep(min(0.5 * 2 ** (attempt - 1), 8.0))

    def _once(self, uri: str, dest: Path, limits: Limits, headers: dict) -> FetchResult:
        started = time.monotonic()
        timeout = urllib3.Timeout(connect=limits.connect_timeout_s, read=limits.read_timeout_s)
        try:
            response = self._pool.request(
                "GET", uri, headers=headers, preload_content=False, timeout=timeout,
                retries=urllib3.Retry(total=None, connect=0, read=0, status=0, redirect=limits.max_redirects),
            )
        except urllib3.exceptions.MaxRetryError as exc:
            if isinstance(exc.reason, urllib3.exceptions.ResponseError):
                raise ArtifactError("TooManyRedirects",
                                    f"{uri} redirected more than {limits.max_redirects} times") from None
            raise _connection_error(uri, exc.reason) from None
        except urllib3.exceptions.HTTPError as exc:
            raise _connection_error(uri, exc) from None
        try:
            status = response.status
            if status == 404:
                raise ArtifactError("NotFound", f"{uri} answered 404 Not Found")
            if status in (401, 403):
                raise ArtifactError("Unauthorized", f"{uri} answered {status}: check the credentials Secret")
            if status == 429 or status >= 500:
                raise ArtifactError("FetchFailed", f"{uri} answered {status}", transient=True)
            if status != 200:
                raise ArtifactError("FetchFailed", f"{uri} answered {status}")
            length = response.headers.get("Content-Length")
            if length and int(length) > limits.max_bytes:
                raise ArtifactError("TooLarge",
                                    f"{uri} is {length} bytes, over the limit of {limits.max_bytes} bytes")
            try:
                result = _stream_to(dest, response.stream(CHUNK, decode_content=False), limits, uri, started)
            except urllib3.exceptions.ReadTimeoutError:
                raise ArtifactError("FetchTimeout", f"{uri} stalled for more than {limits.read_timeout_s:g}s",
                                    transient=True) from None
            except urllib3.exceptions.ProtocolError as exc:
                raise ArtifactError("Truncated", f"{uri} ended early: {_first_line(exc)}", transient=True) from None
            if length and result.size_bytes != int(length):
                dest.unlink(missing_ok=True)
                raise ArtifactError("Truncated", f"{uri} sent {result.size_bytes} of {length} bytes", transient=True)
            return result
        finally:
            response.release_conn()


def _connection_error(uri: str, exc: BaseException) -> ArtifactError:
    if isinstance(exc, (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ConnectTimeoutError)):
        return ArtifactError("FetchTimeout", f"{uri} did not answer in time", transient=True)
    if isinstance(exc, urllib3.exceptions.SSLError):
        return ArtifactError("TLSError", f"{uri}: TLS verification failed: {_first_line(exc)}")
    return ArtifactError("FetchFailed", f"cannot reach {uri}: {_first_line(exc)}", transient=True)


def _first_line(exc: BaseException) -> str:
    return (str(exc) or exc.__class__.__name__).splitlines()[0][:200]


def _auth_headers(credentials: dict | None) -> dict:
    if not credentials:
        return {}
    if "token" in credentials:
        return {"Authorization": f"Bearer {credentials['token']}"}
    if "username" in credentials and "password" in credentials:
        return urllib3.make_headers(basic_auth=f"{credentials['username']}:{credentials['password']}")
    raise ArtifactError("CredentialsInvalid", "the credentials Secret needs `token`, or `username` and `password`")


FETCHERS: dict[str, Fetcher] = {"file": FileFetcher(), "http": HttpFetcher(), "https": HttpFetcher()}
PLANNED = {"s3", "oci"}


def fetch_artifact(uri: str, dest: Path, limits: Limits, credentials: dict | None = None) -> FetchResult:
    scheme = urllib.parse.urlparse(uri).scheme
    fetcher = FETCHERS.get(scheme)
    if fetcher is None:
        planned = " (planned, not yet supported)" if scheme in PLANNED else ""
        raise ArtifactError("UnsupportedScheme",
                            f"{scheme or 'no'}:// artifacts are not supported{planned}; use http(s):// or file://")
    dest.parent.mkdir(parents=True, exist_ok=True)
    return fetcher.fetch(uri, dest, limits, credentials)


def verify(result: FetchResult, expected: str | None) -> None:
    """Raises DigestMismatch (and removes the file) unless the bytes are the ones expected."""
    if expected and result.sha256 != expected:
        os.unlink(result.path)
        raise ArtifactError("DigestMismatch", f"the artifact's digest is {result.sha256}, the spec expects {expected}")
