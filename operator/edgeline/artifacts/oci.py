"""oci:// model artifacts: an ONNX file kept in an OCI registry as an artifact and named by the
digest of its manifest, so the reference can only ever mean one set of bytes.

    oci://registry.example:5000/models/defect-detector@sha256:<manifest digest>

The manifest is an OCI image manifest (v1.1) with `artifactType` ARTIFACT_TYPE, the empty
config and one layer of media type MODEL_LAYER holding the .onnx file (docs/decisions.md,
`## oci: ...`). `edgeline model push` writes exactly that; `oras push` with the same media types
does too.

Fetching: GET the manifest by digest (OCI Accept headers), check the bytes against the digest,
pick the model layer, stream the blob to disk while hashing, check it against the layer's
digest. The HTTP underneath is `artifacts.fetch`'s: the fetch policy (host and address checks,
each redirect hop), the limits, the retries. Registries are spoken to over https; plain http
only to a registry whose addresses are all non-public (loopback, an allow-listed lab or site
range: the policy must already let the fetch go there), only when https fails, and never with
credentials. The digests make the bytes trustworthy either way.

`Limits.registry_mirrors` (the pull-site agent's `--registry-mirror`) are asked first: a
pull-through cache of the registry (distribution's `proxy.remoteurl`); any failure there falls
back to the registry the reference names.

Reference parsing, manifest checks and layer selection are pure functions (unit-tested);
`Registry` is the distribution API client. Blocking: callers run it in a thread.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from edgeline.artifacts.errors import (
    ArtifactError,
    CredentialsRefused,
    DigestMismatch,
    FetchFailed,
    ManifestInvalid,
    NotFound,
    ReferenceInvalid,
    TooLarge,
    Unauthorized,
)
from edgeline.artifacts.fetch import (
    FetchResult,
    HttpFetcher,
    Limits,
    _auth_headers,
    _open,
    _resolve,
    _safe,
    register,
    retrying,
    sha256_of,
)
from edgeline.artifacts.policy import FetchPolicy

log = logging.getLogger("edgeline.artifacts")

ARTIFACT_TYPE = "application/vnd.edgeline.model.v1"
MODEL_LAYER = "application/vnd.edgeline.model.onnx.v1"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
EMPTY_BYTES = b"{}"
EMPTY_DIGEST = "sha256:" + hashlib.sha256(EMPTY_BYTES).hexdigest()
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
ACCEPT = ", ".join((MANIFEST, INDEX, DOCKER_MANIFEST, DOCKER_LIST))
TITLE = "org.opencontainers.image.title"
MAX_MANIFEST_BYTES = 4 * 1024**2  # what registries accept at most (the OCI distribution spec's advice)

# The grammar of the OCI distribution spec (and of docker's reference package), written anew.
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?$")


@dataclass(frozen=True)
class Reference:
    registry: str                # host[:port], as written
    repository: str
    tag: str | None = None
    digest: str | None = None    # sha256:<hex> of the manifest

    def __str__(self) -> str:
        text = f"oci://{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(f"//{self.registry}").hostname or ""

    def pinned(self, digest: str) -> Reference:
        """The same artifact named by its manifest digest alone (what an MLModel takes)."""
        return Reference(self.registry, self.repository, None, digest)


def parse_reference(text: str) -> Reference:
    """oci://host[:port]/repository[:tag][@sha256:<hex>] (the oci:// may be left out)."""
    rest = text.removeprefix("oci://") if text.startswith("oci://") else text
    if "://" in rest:
        raise ReferenceInvalid(f"{text!r} is not an oci:// reference (oci://host[:port]/repository@sha256:<hex>)")
    registry, slash, path = rest.partition("/")
    if not slash or not registry or not path:
        raise ReferenceInvalid(f"{text!r} names no repository: write oci://host[:port]/repository@sha256:<hex>")
    if not _HOST.match(registry):
        raise ReferenceInvalid(f"{registry!r} in {text!r} is not a registry host[:port]")
    try:
        urllib.parse.urlsplit(f"//{registry}").port
    except ValueError:
        raise ReferenceInvalid(f"{registry!r} in {text!r} has an invalid port") from None
    name, at, digest = path.partition("@")
    tag = None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
        if not _TAG.match(tag):
            raise ReferenceInvalid(f"{tag!r} in {text!r} is not a valid tag")
    if not _REPOSITORY.match(name) or len(name) > 255:
        raise ReferenceInvalid(f"{name!r} in {text!r} is not a repository name (lower-case letters, digits, "
                               "and . _ - separators, parts joined by /)")
    if at and not _DIGEST.match(digest):
        raise ReferenceInvalid(f"{digest!r} in {text!r} is not a manifest digest (sha256:<64 lower-case hex>)")
    return Reference(registry, name, tag, digest or None)


def pinned(text: str) -> Reference:
    """The reference, which must name a manifest digest: a tag alone can be moved to other bytes."""
    ref = parse_reference(text)
    if not ref.digest:
        raise ReferenceInvalid(f"{text} names a tag, not a manifest digest: artifacts are immutable, so write "
                               f"oci://{ref.registry}/{ref.repository}@sha256:<manifest digest> "
                               "(`edgeline model push` prints it)")
    return ref


@dataclass(frozen=True)
class Layer:
    media_type: str
    digest: str
    size: int
    title: str | None = None


def parse_manifest(body: bytes, digest: str, shown: str) -> dict:
    """The manifest, once its bytes are proven to be the ones `digest` names."""
    actual = "sha256:" + hashlib.sha256(body).hexdigest()
    if actual != digest:
        raise DigestMismatch(expected=digest, actual=actual, what=f"the manifest of {shown}")
    try:
        manifest = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ManifestInvalid(f"the manifest of {shown} is not JSON") from None
    if not isinstance(manifest, dict):
        raise ManifestInvalid(f"the manifest of {shown} is not a JSON object")
    kind = manifest.get("mediaType")
    if kind in (INDEX, DOCKER_LIST) or "manifests" in manifest:
        raise ManifestInvalid(f"{shown} is an image index (one manifest per platform), not a model artifact; "
                              "name the digest of the artifact's own manifest")
    if kind not in (None, MANIFEST, DOCKER_MANIFEST) or manifest.get("schemaVersion") != 2:
        raise ManifestInvalid(f"{shown} is a {kind or 'schema ' + str(manifest.get('schemaVersion'))} manifest; "
                              f"Edgeline reads OCI image manifests ({MANIFEST})")
    return manifest


def model_layer(manifest: dict, shown: str) -> Layer:
    """The layer that holds the model: the one layer of media type MODEL_LAYER; failing that, a
    manifest's only layer when its title ends in .onnx and it is not compressed (what `oras push
    file.onnx` gives without a media type). Anything else is ambiguous or not a model, and says so."""
    layers = manifest.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ManifestInvalid(f"the manifest of {shown} has no layers: it holds no model")
    parsed = []
    for entry in layers:
        if not isinstance(entry, dict):
            raise ManifestInvalid(f"the manifest of {shown} has a layer that is not an object")
        media_type, digest, size = entry.get("mediaType"), entry.get("digest"), entry.get("size")
        if not isinstance(media_type, str) or not isinstance(digest, str) or not _DIGEST.match(digest) \
                or not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestInvalid(f"the manifest of {shown} has a layer without a valid mediaType, sha256 digest "
                                  "and size")
        title = (entry.get("annotations") or {}).get(TITLE)
        parsed.append(Layer(media_type, digest, size, title if isinstance(title, str) else None))
    models = [layer for layer in parsed if layer.media_type == MODEL_LAYER]
    if len(models) == 1:
        return models[0]
    if len(models) > 1:
        raise ManifestInvalid(f"the manifest of {shown} has {len(models)} layers of type {MODEL_LAYER}; "
                              "a model artifact has one")
    if len(parsed) == 1:
        only = parsed[0]
        # `oras push` names a plain file application/vnd.oci.image.layer.v1.tar; compressed it is not the file.
        compressed = only.media_type.endswith(("+gzip", "+zstd", ".gzip", ".zstd"))
        if only.title and only.title.lower().endswith(".onnx") and not compressed:
            return only
    kinds = ", ".join(sorted({layer.media_type for layer in parsed}))
    raise ManifestInvalid(f"{shown} holds no model layer (layers of type {kinds}); push the .onnx file as a layer "
                          f"of type {MODEL_LAYER} (`edgeline model push` does)")


def artifact_manifest(layer_digest: str, layer_size: int, title: str) -> bytes:
    """The manifest `edgeline model push` writes: the same bytes for the same file and name, so
    pushing a model twice gives the same digest (no creation time in it)."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": EMPTY_CONFIG, "digest": EMPTY_DIGEST, "size": len(EMPTY_BYTES),
                   "data": base64.b64encode(EMPTY_BYTES).decode()},
        "layers": [{"mediaType": MODEL_LAYER, "digest": layer_digest, "size": layer_size,
                    "annotations": {TITLE: title}}],
    }
    return json.dumps(manifest, separators=(",", ":"), sort_keys=False).encode()


def parse_challenge(header: str | None) -> tuple[str, dict[str, str]] | None:
    """`Bearer realm="...",service="..."` -> ("bearer", {...}); None without a header."""
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    params = {key.lower(): value for key, value in re.findall(r'(\w+)="([^"]*)"', rest)}
    return scheme.lower(), params


def plain_http_allowed(addresses: list) -> bool:
    """Plain http is only ever tried towards non-public addresses (loopback, a lab or site range
    the fetch policy let through): public registries speak https."""
    strict = FetchPolicy()
    return bool(addresses) and all(strict.refusal(address) is not None for address in addresses)


# --- the distribution API ----------------------------------------------------------------------


class Registry:
    """One registry (or mirror) at `base` (scheme://host[:port]), with the authorization it earned."""

    def __init__(self, base: str, limits: Limits, deadline: float, credentials: dict | None = None):
        self.base = base.rstrip("/")
        self.limits = limits
        self.deadline = deadline
        self.credentials = credentials
        self.auth: dict = {}

    @classmethod
    def connect(cls, registry: str, repository: str, limits: Limits, deadline: float,
                credentials: dict | None = None, *, push: bool = False) -> Registry:
        """https://registry, or plain http where that is allowed (module docstring), authorized
        for pulling (and pushing) `repository`."""
        found = cls(f"https://{registry}", limits, deadline, credentials)
        try:
            response = found._ping()
        except FetchFailed as exc:
            if exc.status is not None or not found._may_use_plain_http():
                raise
            if credentials:
                raise CredentialsRefused(f"registry {registry} does not speak https; Edgeline does not send "
                                         "credentials over plain http") from None
            log.info("registry %s does not answer https; using plain http (a non-public address)", registry)
            found = cls(f"http://{registry}", limits, deadline, None)
            response = found._ping()
        found._authorize(response, repository, push)
        return found

    @classmethod
    def at(cls, base: str, repository: str, limits: Limits, deadline: float) -> Registry:
        """A mirror at the URL the site gave (its scheme as written), anonymous."""
        found = cls(base, limits, deadline)
        found._authorize(found._ping(), repository, False)
        return found

    def _may_use_plain_http(self) -> bool:
        parts = urllib.parse.urlsplit(self.base)
        port = parts.port or 443
        try:
            addresses = (self.limits.policy.resolve(parts.hostname, port) if self.limits.policy
                         else _resolve(parts.hostname, port))
        except ArtifactError:
            return False
        return plain_http_allowed(addresses)

    # -- requests

    def _request(self, method: str, url: str, headers: dict | None = None, body=None, *, auth: bool = True):
        parts = urllib.parse.urlsplit(url)
        same = (parts.scheme, parts.netloc) == tuple(urllib.parse.urlsplit(self.base)[:2])
        sent = {"Accept-Encoding": "identity", **(self.auth if auth and same else {}), **(headers or {})}
        return _open(parts, self.limits, sent, self.deadline, method=method, body=body)

    def _ping(self):
        """GET /v2/: 200, or 401 with the challenge that says how to get a token."""
        response, pool = self._request("GET", f"{self.base}/v2/", auth=False)
        try:
            response.read(64 * 1024)
            if response.status not in (200, 401):
                raise FetchFailed(f"{self.base} answered HTTP {response.status} at /v2/: not an OCI registry",
                                  status=response.status)
            return response
        finally:
            response.release_conn()
            pool.close()

    def _authorize(self, ping, repository: str, push: bool) -> None:
        if ping.status == 200:
            if self.credentials and self.base.startswith("https://"):
                self.auth = _auth_headers(self.credentials)
            return
        challenge = parse_challenge(ping.headers.get("WWW-Authenticate"))
        if challenge is None:
            raise Unauthorized(f"{self.base} asks for authorization without saying how", status=401)
        scheme, params = challenge
        if self.credentials and not self.base.startswith("https://"):
            raise CredentialsRefused(f"Edgeline does not send credentials over plain http ({self.base})")
        if scheme == "basic":
            if not self.credentials:
                raise Unauthorized(f"{self.base} needs credentials (basic authentication)", status=401)
            self.auth = _auth_headers(self.credentials)
            return
        if scheme != "bearer" or not params.get("realm"):
            raise Unauthorized(f"{self.base} asks for {scheme} authorization, which Edgeline does not speak",
                               status=401)
        if self.credentials and self.credentials.get("token"):
            self.auth = {"Authorization": f"Bearer {self.credentials['token'].strip()}"}
            return
        self.auth = {"Authorization": f"Bearer {self._token(params, repository, push)}"}

    def _token(self, params: dict[str, str], repository: str, push: bool) -> str:
        """An (anonymous, or basic-authenticated over https) token from the challenge's realm."""
        query = {"scope": f"repository:{repository}:{'pull,push' if push else 'pull'}"}
        if params.get("service"):
            query["service"] = params["service"]
        realm = params["realm"]
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        headers = {}
        if self.credentials:
            if not realm.startswith("https://"):
                raise CredentialsRefused(f"the token service {_safe(realm)} is not https; Edgeline does not send "
                                         "credentials over plain http")
            headers = _auth_headers(self.credentials)
        response, pool = _open(urllib.parse.urlsplit(url), self.limits, headers, self.deadline)
        try:
            body = _read_small(response, 1024 * 1024, _safe(realm))
            if response.status != 200:
                raise Unauthorized(f"the token service {_safe(realm)} answered {response.status}",
                                   status=response.status)
        finally:
            response.release_conn()
            pool.close()
        try:
            answer = json.loads(body)
            token = answer.get("token") or answer.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise Unauthorized(f"the token service {_safe(realm)} gave no token", status=401)
        return token

    # -- pulling

    def manifest(self, repository: str, digest: str) -> bytes:
        url = f"{self.base}/v2/{repository}/manifests/{digest}"
        response, pool = self._request("GET", url, {"Accept": ACCEPT})
        try:
            _check_status(url, response)
            return _read_small(response, MAX_MANIFEST_BYTES, _safe(url))
        finally:
            response.release_conn()
            pool.close()

    def blob(self, repository: str, layer: Layer, dest: Path, started: float) -> FetchResult:
        """The layer's bytes to `dest`, streamed and hashed (redirects to storage are followed,
        each hop checked; the authorization goes to the registry only)."""
        url = f"{self.base}/v2/{repository}/blobs/{layer.digest}"
        return HttpFetcher()._once(url, dest, self.limits, self.auth, started, self.deadline)

    # -- pushing

    def has_blob(self, repository: str, digest: str) -> bool:
        url = f"{self.base}/v2/{repository}/blobs/{digest}"
        response, pool = self._request("HEAD", url)
        try:
            return response.status == 200
        finally:
            response.release_conn()
            pool.close()

    def upload_blob(self, repository: str, digest: str, size: int, body) -> None:
        """POST a session, PUT the whole blob in one request (monolithic upload)."""
        url = f"{self.base}/v2/{repository}/blobs/uploads/"
        response, pool = self._request("POST", url, {"Content-Length": "0"}, b"")
        try:
            response.read(64 * 1024)
            _check_status(url, response, ok=(202,))
            location = response.headers.get("Location")
        finally:
            response.release_conn()
            pool.close()
        if not location:
            raise FetchFailed(f"{_safe(url)} opened an upload without a Location", status=202, transient=False)
        target = urllib.parse.urljoin(url, location)
        target += ("&" if urllib.parse.urlsplit(target).query else "?") + urllib.parse.urlencode({"digest": digest})
        response, pool = self._request("PUT", target, {"Content-Type": "application/octet-stream",
                                                       "Content-Length": str(size)}, body)
        try:
            response.read(64 * 1024)
            _check_status(_safe(target), response, ok=(201, 204))
        finally:
            response.release_conn()
            pool.close()

    def put_manifest(self, repository: str, reference: str, body: bytes) -> str:
        url = f"{self.base}/v2/{repository}/manifests/{reference}"
        response, pool = self._request("PUT", url, {"Content-Type": MANIFEST, "Content-Length": str(len(body))},
                                       body)
        try:
            answer = response.read(64 * 1024)
            if response.status not in (200, 201):
                raise FetchFailed(f"{_safe(url)} refused the manifest (HTTP {response.status}: "
                                  f"{answer[:300].decode(errors='replace').strip()})", status=response.status,
                                  transient=response.status >= 500)
            return response.headers.get("Docker-Content-Digest") or ""
        finally:
            response.release_conn()
            pool.close()


def _check_status(url: str, response, ok: tuple[int, ...] = (200,)) -> None:
    if response.status in ok:
        return
    shown = _safe(url)
    if response.status == 404:
        raise NotFound(f"{shown} answered 404: no such manifest or blob in the registry")
    if response.status in (401, 403):
        raise Unauthorized(f"{shown} answered {response.status}: the registry refuses access "
                           "(check the credentials Secret)", status=response.status)
    raise FetchFailed(f"{shown} answered HTTP {response.status}", status=response.status)


def _read_small(response, limit: int, shown: str) -> bytes:
    body = response.read(limit + 1)
    if len(body) > limit:
        raise TooLarge(f"{shown} sent more than {limit} bytes where a small document was expected")
    return body


# --- the scheme --------------------------------------------------------------------------------


@register("oci")
class OciFetcher:
    """oci://registry/repository@sha256:<manifest digest>, through the mirrors first (if any)."""

    def fetch(self, uri: str, dest_path: Path, *, limits: Limits, credentials: dict | None) -> FetchResult:
        started = time.monotonic()
        deadline = started + limits.deadline_s
        ref = pinned(uri)
        for mirror in limits.registry_mirrors:
            try:
                result = retrying(lambda: self._through(Registry.at(mirror, ref.repository, limits, deadline),
                                                        ref, dest_path, limits, started), limits, deadline)
                log.info("fetched %s through the mirror %s", ref, _safe(mirror))
                return result
            except ArtifactError as exc:
                # The origin is asked next; the mirror's answer is only a faster way to the same bytes.
                log.warning("mirror %s could not serve %s (%s: %s); asking %s", _safe(mirror), ref, exc.reason,
                            exc.message, ref.registry)
        return retrying(lambda: self._through(Registry.connect(ref.registry, ref.repository, limits, deadline,
                                                               credentials),
                                              ref, dest_path, limits, started), limits, deadline)

    def _through(self, registry: Registry, ref: Reference, dest: Path, limits: Limits, started: float) -> FetchResult:
        shown = str(ref)
        manifest = parse_manifest(registry.manifest(ref.repository, ref.digest), ref.digest, shown)
        layer = model_layer(manifest, shown)
        expected = (limits.expected_sha256 or "").lower()
        if expected and expected != layer.digest:
            raise DigestMismatch(expected=expected, actual=layer.digest, what=f"the model layer of {shown}")
        if layer.size > limits.max_bytes:
            raise TooLarge(f"{shown} is {layer.size} bytes, over the limit of {limits.max_bytes} bytes")
        result = registry.blob(ref.repository, layer, dest, started)
        if result.sha256 != layer.digest:
            dest.unlink(missing_ok=True)
            raise DigestMismatch(expected=layer.digest, actual=result.sha256, what=f"the model layer of {shown}")
        return result


@dataclass(frozen=True)
class Pushed:
    reference: Reference   # pinned by the manifest digest
    sha256: str            # the model file's digest (artifact.sha256)
    size_bytes: int
    tag: str | None


def push(path: Path, target: str, limits: Limits, credentials: dict | None = None) -> Pushed:
    """Uploads the file at `path` as a model artifact to `target` (oci://registry/repo[:tag]):
    the empty config and the layer (skipped when the registry has them), then the manifest,
    under the tag if one is given, else under its digest."""
    ref = parse_reference(target)
    if ref.digest:
        raise ReferenceInvalid(f"{target} names a digest; push to a repository or a tag "
                               "(the digest comes from what is pushed)")
    deadline = time.monotonic() + limits.deadline_s
    sha256, size = sha256_of(path)
    if size > limits.max_bytes:
        raise TooLarge(f"{path} is {size} bytes, over the limit of {limits.max_bytes} bytes")
    registry = Registry.connect(ref.registry, ref.repository, limits, deadline, credentials, push=True)
    if not registry.has_blob(ref.repository, EMPTY_DIGEST):
        registry.upload_blob(ref.repository, EMPTY_DIGEST, len(EMPTY_BYTES), EMPTY_BYTES)
    if not registry.has_blob(ref.repository, sha256):
        with open(path, "rb") as body:
            registry.upload_blob(ref.repository, sha256, size, body)
    manifest = artifact_manifest(sha256, size, path.name)
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    answered = registry.put_manifest(ref.repository, ref.tag or digest, manifest)
    if answered and answered != digest:
        raise DigestMismatch(expected=digest, actual=answered, what="the manifest as the registry stored it")
    return Pushed(ref.pinned(digest), sha256, size, ref.tag)
