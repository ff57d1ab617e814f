"""Why an artifact could not be fetched, verified or inspected.

Every error carries the CamelCase `reason` that lands in a condition and an Event, a
`message` a person understands (never a traceback), and `transient`: whether trying the
same thing later may succeed (a stalled server, a 503) or never will (a 404, a wrong
digest, bytes that are not ONNX). The controller maps transient to kopf.TemporaryError.
"""

from __future__ import annotations


class ArtifactError(Exception):
    reason = "ArtifactError"
    transient = False

    def __init__(self, message: str, *, transient: bool | None = None):
        super().__init__(message)
        self.message = message
        if transient is not None:
            self.transient = transient

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reason={self.reason!r}, transient={self.transient}, message={self.message!r})"


class UnsupportedScheme(ArtifactError):
    reason = "UnsupportedScheme"


class NotFound(ArtifactError):
    reason = "NotFound"


class FetchTimeout(ArtifactError):
    reason = "FetchTimeout"
    transient = True


class TooLarge(ArtifactError):
    reason = "TooLarge"


class Truncated(ArtifactError):
    """Fewer bytes arrived than the server announced (a dropped connection, a restart)."""

    reason = "Truncated"
    transient = True


class FetchFailed(ArtifactError):
    """Any other failure to get the bytes; `status` is the HTTP status when there was one.
    Transient for connection errors, 5xx and 429; permanent for other answers."""

    reason = "FetchFailed"

    def __init__(self, message: str, *, status: int | None = None, transient: bool | None = None):
        if transient is None:
            transient = status is None or status == 429 or status >= 500
        super().__init__(message, transient=transient)
        self.status = status
        self.retry_after = 0.0  # seconds the server asked us to wait (429/503 Retry-After)


class TooManyRedirects(FetchFailed):
    reason = "TooManyRedirects"

    def __init__(self, message: str):
        super().__init__(message, transient=False)


class Unauthorized(FetchFailed):
    """401/403: the credentials Secret is missing, wrong or lacks access."""

    reason = "Unauthorized"

    def __init__(self, message: str, *, status: int):
        super().__init__(message, status=status, transient=False)


class TLSVerifyFailed(FetchFailed):
    reason = "TLSVerifyFailed"

    def __init__(self, message: str):
        super().__init__(message, transient=False)


class CredentialsInvalid(ArtifactError):
    reason = "CredentialsInvalid"


class DigestMismatch(ArtifactError):
    reason = "DigestMismatch"

    def __init__(self, *, expected: str, actual: str, what: str = "the artifact"):
        super().__init__(f"{what} has digest {actual}, but the spec expects {expected}")
        self.expected = expected
        self.actual = actual


class NotOnnx(ArtifactError):
    reason = "NotOnnx"


class CheckerFailed(ArtifactError):
    reason = "CheckerFailed"


class StorageFailed(ArtifactError):
    """The operator's scratch space failed (full, read-only): not the artifact's fault."""

    reason = "StorageFailed"
    transient = True


class SchemeDisabled(ArtifactError):
    """file:// while the operator has no folders it may read."""

    reason = "SchemeDisabled"


class PathNotAllowed(ArtifactError):
    """A file:// path outside the operator's allowed folders."""

    reason = "PathNotAllowed"


class AddressNotAllowed(ArtifactError):
    """A host that is (or resolves to) loopback, link-local, private or cluster-internal."""

    reason = "AddressNotAllowed"


class RedirectRefused(ArtifactError):
    """A redirect to another scheme (https to http, to file://)."""

    reason = "RedirectRefused"


class CredentialsRefused(ArtifactError):
    """A credentials Secret that may not be used (not labelled for Edgeline, a ServiceAccount
    token, or a URI that is not https)."""

    reason = "CredentialsRefused"


class CredentialsUnavailable(ArtifactError):
    """The credentials Secret cannot be read or is not labelled for Edgeline yet: fixable without a new model."""

    reason = "CredentialsUnavailable"
    transient = True


class ValidationResourceExhausted(ArtifactError):
    """The memory-limited validation process ran out of memory or was killed."""

    reason = "ValidationResourceExhausted"


class ValidationAbandoned(ArtifactError):
    """Validation of this generation was started several times and never finished (the operator
    was restarted while it ran): not tried again, so a model cannot keep the operator in a crash loop."""

    reason = "ValidationAbandoned"


class ExternalDataNotListed(ArtifactError):
    """The model names external data files whose digests the spec does not give."""

    reason = "ExternalDataNotListed"


class ReferenceInvalid(ArtifactError):
    """An oci:// reference that is malformed or not pinned by a manifest digest (a tag can move)."""

    reason = "ReferenceInvalid"


class ManifestInvalid(ArtifactError):
    """The registry's manifest is not one model artifact (an image index, no model layer, several,
    a compressed layer, not JSON)."""

    reason = "ManifestInvalid"
