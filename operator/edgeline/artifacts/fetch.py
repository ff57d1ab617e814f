"""Fetching model artifacts: streamed to disk in 1 MiB chunks while hashed, never held whole.

Schemes live in a registry: supporting s3:// is one class with a `fetch()` method decorated
with `@register("s3")`; callers only ever call `fetch_artifact()`. oci:// lives in
`artifacts.oci` (registered when this module is imported).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import socket
import stat
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Protocol

import urllib3

from edgeline.artifacts.errors import (
    CredentialsInvalid,
    CredentialsRefused,
    DigestMismatch,
    FetchFailed,
    FetchTimeout,
    NotFound,
    RedirectRefused,
    TooLarge,
    TooManyRedirects,
    Truncated,
    Unauthorized,
    UnsupportedScheme,
)
from edgeline.artifacts.policy import FetchPolicy, unreachable

if TYPE_CHECKING:
    from edgeline.settings import Settings

log = logging.getLogger("edgeline.artifacts")

CHUNK = 1024 * 1024
# Schemes the design plans for; named in the error so users know it is not a typo.
PLANNED_SCHEMES = ("s3",)


@dataclass(frozen=True)
class Limits:
    """How far one fetch may go. `ca_bundle` adds trust for a private CA; TLS is always verified.
    `policy` says where fetching may go (docs/security.md); None means anywhere, for the
    runtime and the CLI, which fetch what a person or the hub chose. The operator always sets one."""

    max_bytes: int = 8 * 1024**3
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    retries: int = 3  # attempts in all, for connection errors, 5xx and 429
    backoff_s: float = 1.0  # first pause between attempts; doubles each time
    max_backoff_s: float = 30.0
    max_redirects: int = 3
    ca_bundle: Path | None = None
    deadline_s: float = 1800.0  # the whole fetch, retries included
    policy: FetchPolicy | None = None
    # oci:// only: site-local pull-through registries (http(s)://host:port) asked before the
    # registry the reference names (docs/edge-autonomy.md); the digest is verified either way.
    registry_mirrors: tuple[str, ...] = ()
    # The digest the caller will demand (verify_digest); oci:// compares it with the manifest's
    # layer digest before downloading, so a wrong artifact.sha256 costs no download.
    expected_sha256: str | None = None

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
            deadline_s=settings.artifact_deadline_s,
        )

    @classmethod
    def for_operator(cls, settings: Settings) -> Limits:
        """The limits of the hub's own fetches: with the operator's fetch policy."""
        from dataclasses import replace

        return replace(cls.from_settings(settings), policy=FetchPolicy.from_settings(settings))


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


def _stream_to_disk(dest: Path, chunks: Iterable[bytes], *, limit: int, uri: str, started: float,
                    deadline: float | None = None, deadline_s: float = 0.0) -> FetchResult:
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
                if deadline is not None and time.monotonic() > deadline:
                    raise FetchTimeout(f"{_safe(uri)} did not finish within the deadline of {deadline_s:g}s")
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
    """file:///path: local files, test data, and PVC-backed storage mounted into the operator.
    With a policy, only under its folders: checked on the path as given (symlinks resolved)
    and again on the file actually opened."""

    def fetch(self, uri: str, dest_path: Path, *, limits: Limits, credentials: dict | None) -> FetchResult:
        started = time.monotonic()
        path = local_path(uri)
        if limits.policy is not None:
            limits.policy.check_file(path)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            raise NotFound(f"{path} does not exist") from None
        except PermissionError:
            raise FetchFailed(f"{path} is not readable by the operator", transient=False) from None
        except OSError as exc:
            raise NotFound(f"{path} cannot be opened: {exc.strerror}") from None
        try:
            if limits.policy is not None:  # the file opened, whatever was swapped in since the check
                limits.policy.check_file(Path(os.readlink(f"/proc/self/fd/{fd}")))
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise NotFound(f"{path} is not a regular file")
        except BaseException:
            os.close(fd)
            raise
        source = os.fdopen(fd, "rb", buffering=0)
        with source:
            if info.st_size > limits.max_bytes:
                raise TooLarge(f"{path} is {info.st_size} bytes, over the limit of {limits.max_bytes} bytes")

            def chunks():
                while block := source.read(CHUNK):
                    yield block

            try:
                return _stream_to_disk(dest_path, chunks(), limit=limits.max_bytes, uri=uri, started=started,
                                       deadline=started + limits.deadline_s, deadline_s=limits.deadline_s)
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


REDIRECTS = (301, 302, 303, 307, 308)


def retrying(attempt_once, limits: Limits, deadline: float):
    """attempt_once() again after connection errors, 5xx and 429 (Truncated too), with
    exponential backoff, at most `limits.retries` attempts in all, never past `deadline`."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return attempt_once()
        except (FetchFailed, Truncated) as exc:
            # A stall (FetchTimeout) is not retried here: it already cost a whole read timeout,
            # and the controller retries transient failures later with its own backoff.
            if not exc.transient or attempt >= max(1, limits.retries):
                raise
            pause = min(limits.backoff_s * 2 ** (attempt - 1), limits.max_backoff_s)
            pause = max(pause, min(getattr(exc, "retry_after", 0.0), limits.max_backoff_s))
            if time.monotonic() + pause >= deadline:
                raise
            time.sleep(pause)


@register("http", "https")
class HttpFetcher:
    """http(s)://: an overall deadline besides connect and read timeouts, redirects followed by
    hand (each hop's host resolved, checked against the policy, and connected to at the very
    address checked, so DNS cannot answer differently between check and connect), TLS verified
    against the host name, and retries with exponential backoff for connection errors, 5xx and
    429 only. Credentials go over https only, and only to the origin the URI names."""

    def fetch(self, uri: str, dest_path: Path, *, limits: Limits, credentials: dict | None) -> FetchResult:
        started = time.monotonic()
        deadline = started + limits.deadline_s
        if credentials and urllib.parse.urlsplit(uri).scheme.lower() != "https":
            raise CredentialsRefused(f"credentials are only sent over https://, and {_safe(uri)} is not https")
        auth = _auth_headers(credentials)
        return retrying(lambda: self._once(uri, dest_path, limits, auth, started, deadline), limits, deadline)

    def _once(self, uri: str, dest: Path, limits: Limits, auth: dict, started: float, deadline: float) -> FetchResult:
        url = uri
        origin = _origin(uri)
        for _hop in range(limits.max_redirects + 1):
            parts = urllib.parse.urlsplit(url)
            headers = {"Accept-Encoding": "identity", **(auth if _origin(url) == origin else {})}
            response, pool = _open(parts, limits, headers, deadline)
            try:
                if response.status in REDIRECTS:
                    location = response.headers.get("Location")
                    if not location:
                        raise FetchFailed(f"{_safe(url)} answered HTTP {response.status} without a Location",
                                          status=response.status)
                    following = urllib.parse.urljoin(url, location)
                    scheme = urllib.parse.urlsplit(following).scheme.lower()
                    if scheme not in ("http", "https") or (parts.scheme == "https" and scheme != "https"):
                        raise RedirectRefused(f"{_safe(url)} redirects to {scheme or 'a relative'}:// "
                                              f"({_safe(following)}); Edgeline follows redirects to http(s) only, "
                                              "and never from https to http")
                    url = following
                    continue
                return self._body(url, response, dest, limits, started, deadline)
            finally:
                response.release_conn()
                pool.close()
        raise TooManyRedirects(f"{_safe(uri)} redirected more than {limits.max_redirects} times")

    def _body(self, url: str, response, dest: Path, limits: Limits, started: float, deadline: float) -> FetchResult:
        shown = _safe(url)
        _raise_for_status(shown, response)
        length = _content_length(response)
        if length is not None and length > limits.max_bytes:
            raise TooLarge(f"{shown} is {length} bytes, over the limit of {limits.max_bytes} bytes")
        # A server that sends a byte now and then defeats the read timeout; the deadline cuts it off.
        watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), response.shutdown)
        watchdog.daemon = True
        watchdog.start()
        try:
            result = _stream_to_disk(dest, response.stream(CHUNK), limit=limits.max_bytes, uri=url,
                                     started=started, deadline=deadline, deadline_s=limits.deadline_s)
        except urllib3.exceptions.ReadTimeoutError:
            raise FetchTimeout(f"{shown} stopped sending for more than {limits.read_timeout_s:g}s") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if time.monotonic() >= deadline:
                raise FetchTimeout(f"{shown} did not finish within the deadline of {limits.deadline_s:g}s") from None
            if isinstance(exc, (urllib3.exceptions.ProtocolError, urllib3.exceptions.IncompleteRead)):
                raise Truncated(f"{shown} ended early ({_first_line(exc)})") from None
            if isinstance(exc, OSError) and not isinstance(exc, ConnectionError):
                raise  # the scratch disk, not the server
            raise Truncated(f"{shown} ended early ({_first_line(exc)})") from None
        finally:
            watchdog.cancel()
        if time.monotonic() >= deadline:  # cut off by the watchdog: an end that is not the artifact's
            dest.unlink(missing_ok=True)
            raise FetchTimeout(f"{shown} did not finish within the deadline of {limits.deadline_s:g}s")
        if length is not None and result.size_bytes != length:
            dest.unlink(missing_ok=True)
            raise Truncated(f"{shown} sent {result.size_bytes} of the {length} bytes it announced")
        return result


def _open(parts: urllib.parse.SplitResult, limits: Limits, headers: dict, deadline: float, *,
          method: str = "GET", body=None):
    """One request to the host of `parts`, at an address that passed the policy. Returns the
    response (its body unread) and the pool to close after it. `body` (bytes or a file) goes
    with uploads (`edgeline model push`)."""
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsupportedScheme(f"{scheme}:// cannot be fetched over HTTP")
    host = parts.hostname
    if not host:
        raise FetchFailed(f"{_safe(parts.geturl())} names no host", transient=False)
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise FetchFailed(f"{_safe(parts.geturl())} has an invalid port", transient=False) from None
    addresses = limits.policy.resolve(host, port) if limits.policy else _resolve(host, port)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    host_header = f"[{host}]" if ":" in host else host
    if parts.port:
        host_header += f":{parts.port}"
    last: BaseException | None = None
    for address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchTimeout(f"{_safe(parts.geturl())} did not finish within the deadline of {limits.deadline_s:g}s")
        timeout = urllib3.Timeout(connect=min(limits.connect_timeout_s, remaining),
                                  read=min(limits.read_timeout_s, remaining))
        if scheme == "https":
            extra = {"ca_certs": str(limits.ca_bundle)} if limits.ca_bundle else {}
            pool = urllib3.HTTPSConnectionPool(str(address), port, timeout=timeout, maxsize=1, retries=False,
                                               cert_reqs="CERT_REQUIRED", server_hostname=host, **extra)
        else:
            pool = urllib3.HTTPConnectionPool(str(address), port, timeout=timeout, maxsize=1, retries=False)
        try:
            response = pool.urlopen(method, target, body=body, headers={**headers, "Host": host_header},
                                    redirect=False, retries=False, preload_content=False, assert_same_host=False,
                                    timeout=timeout)
            return response, pool
        except urllib3.exceptions.ReadTimeoutError:
            pool.close()
            raise FetchTimeout(f"{_safe(parts.geturl())} did not answer within {limits.read_timeout_s:g}s") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            pool.close()
            last = exc
            # The cause stays in the operator's log; users see one message for all of them.
            log.warning("fetching from %s (%s port %s) failed: %s", host, address, port, _first_line(exc))
    raise FetchFailed(unreachable(host)) from None


def _resolve(host: str, port: int) -> list:
    """Addresses of `host` without a policy (the runtime, the CLI)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        log.warning("cannot resolve %s: %s", host, exc)
        raise FetchFailed(unreachable(host)) from None
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos))


def _origin(uri: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(uri)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port


def _raise_for_status(shown: str, response) -> None:
    """HTTP statuses are told apart: by the time there is one, the host passed the policy (a
    public or allow-listed server), so its answers map nothing the user could not reach."""
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


# oci:// registers itself here (it builds on the HTTP code above).
from edgeline.artifacts import oci as _oci  # noqa: E402,F401  (registers oci://)
