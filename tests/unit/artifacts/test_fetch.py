"""Fetching over a real loopback HTTP server and from files: streamed, hashed, bounded."""

from __future__ import annotations

from dataclasses import replace

import pytest

from edgeline.artifacts import errors
from edgeline.artifacts.fetch import (
    FETCHERS,
    FetchResult,
    Limits,
    fetch_artifact,
    register,
    sha256_of,
    verify_digest,
)
from tests.helpers.onnx_models import file_digest as digest

LIMITS = Limits(max_bytes=1024 * 1024, connect_timeout_s=2, read_timeout_s=0.3, retries=3, backoff_s=0.01,
                max_redirects=3)


def test_http_fetch_streams_hashes_and_names_the_file_only_when_complete(server, models, tmp_path):
    dest = tmp_path / "out" / "m.onnx"
    result = fetch_artifact(f"{server.url}/squeezenet.onnx", dest, limits=LIMITS)
    assert result.sha256 == digest(models / "squeezenet.onnx") == sha256_of(dest)[0]
    assert result.size_bytes == (models / "squeezenet.onnx").stat().st_size
    assert result.path == dest and result.duration > 0
    assert [p.name for p in dest.parent.iterdir()] == ["m.onnx"]
    verify_digest(result, digest(models / "squeezenet.onnx"))  # no error


def test_a_wrong_digest_names_both_digests_and_removes_the_file(server, models, tmp_path):
    result = fetch_artifact(f"{server.url}/gemm.onnx", tmp_path / "m.onnx", limits=LIMITS)
    with pytest.raises(errors.DigestMismatch) as err:
        verify_digest(result, "sha256:" + "0" * 64)
    assert (err.value.reason, err.value.transient) == ("DigestMismatch", False)
    assert err.value.actual == digest(models / "gemm.onnx") and err.value.expected == "sha256:" + "0" * 64
    assert err.value.actual in err.value.message and "0" * 64 in err.value.message
    assert not result.path.exists()


@pytest.mark.parametrize("path, error, transient", [
    ("status/404", errors.NotFound, False),
    ("status/400", errors.FetchFailed, False),
    ("status/503", errors.FetchFailed, True),
    ("status/429", errors.FetchFailed, True),
    ("stall", errors.FetchTimeout, True),
    ("truncated/gemm.onnx", errors.Truncated, True),
    ("redirect-loop", errors.TooManyRedirects, False),
    ("big.onnx", errors.TooLarge, False),
    ("announce-huge", errors.TooLarge, False),
    ("unsized/big.onnx", errors.TooLarge, False),
    ("private/gemm.onnx", errors.Unauthorized, False),
])
def test_http_failures_are_typed_with_a_reason(server, tmp_path, path, error, transient):
    with pytest.raises(error) as err:
        fetch_artifact(f"{server.url}/{path}", tmp_path / "m.onnx", limits=LIMITS)
    assert err.value.reason == error.reason and err.value.transient == transient
    assert err.value.message and "Traceback" not in err.value.message
    assert list(tmp_path.iterdir()) == []  # no partial file left behind


def test_an_http_error_carries_its_status(server, tmp_path):
    with pytest.raises(errors.FetchFailed) as err:
        fetch_artifact(f"{server.url}/status/500", tmp_path / "m.onnx", limits=LIMITS)
    assert err.value.status == 500 and "500" in err.value.message


def test_only_what_may_pass_is_retried(server, tmp_path):
    fetch_artifact(f"{server.url}/flaky/gemm.onnx", tmp_path / "a.onnx", limits=LIMITS)
    fetch_artifact(f"{server.url}/busy/gemm.onnx", tmp_path / "b.onnx", limits=LIMITS)
    for path in ("status/502?retry", "status/404?retry", "status/401?retry"):
        with pytest.raises(errors.ArtifactError):
            fetch_artifact(f"{server.url}/{path}", tmp_path / "c.onnx", limits=LIMITS)
    assert server.hits["/flaky/gemm.onnx"] == 2 and server.hits["/busy/gemm.onnx"] == 2
    assert server.hits["/status/502?retry"] == LIMITS.retries
    assert server.hits["/status/404?retry"] == 1 and server.hits["/status/401?retry"] == 1


def test_redirects_are_followed_within_the_bound(server, models, tmp_path):
    result = fetch_artifact(f"{server.url}/redirect/gemm.onnx", tmp_path / "m.onnx", limits=LIMITS)
    assert result.sha256 == digest(models / "gemm.onnx")


def test_a_body_without_content_length_is_streamed(server, models, tmp_path):
    result = fetch_artifact(f"{server.url}/unsized/gemm.onnx", tmp_path / "m.onnx", limits=LIMITS)
    assert result.sha256 == digest(models / "gemm.onnx")


def test_bearer_and_basic_credentials_open_private_artifacts(tls_server, tmp_path):
    limits = replace(LIMITS, ca_bundle=tls_server.ca_bundle)
    url = tls_server.url
    fetch_artifact(f"{url}/private/gemm.onnx", tmp_path / "a.onnx", limits=limits,
                   credentials={"token": "secret-token\n"})
    fetch_artifact(f"{url}/basic/gemm.onnx", tmp_path / "b.onnx", limits=limits,
                   credentials={"username": "user", "password": "password"})
    with pytest.raises(errors.Unauthorized):
        fetch_artifact(f"{url}/private/gemm.onnx", tmp_path / "c.onnx", limits=limits,
                       credentials={"token": "wrong"})
    with pytest.raises(errors.CredentialsInvalid):
        fetch_artifact(f"{url}/private/gemm.onnx", tmp_path / "d.onnx", limits=limits,
                       credentials={"user": "x"})


def test_a_server_that_is_not_there_is_a_transient_failure(tmp_path):
    with pytest.raises(errors.FetchFailed) as err:
        fetch_artifact("http://127.0.0.1:9/m.onnx", tmp_path / "m.onnx", limits=LIMITS)
    assert err.value.transient and err.value.status is None


def test_tls_is_verified(tmp_path):
    # A plain-HTTP server spoken to over TLS fails the handshake; nothing is downloaded insecurely.
    import http.server
    import threading

    plain = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=plain.serve_forever, daemon=True).start()
    try:
        with pytest.raises(errors.FetchFailed):
            fetch_artifact(f"https://127.0.0.1:{plain.server_address[1]}/m.onnx", tmp_path / "m.onnx",
                           limits=LIMITS)
    finally:
        plain.shutdown()
        plain.server_close()


@pytest.mark.parametrize("uri, planned", [
    ("s3://bucket/m.onnx", True), ("ftp://host/m.onnx", False),
    ("models/m.onnx", False),
])
def test_unsupported_schemes_are_refused_clearly(tmp_path, uri, planned):
    with pytest.raises(errors.UnsupportedScheme) as err:
        fetch_artifact(uri, tmp_path / "m.onnx", limits=LIMITS)
    assert ("planned" in err.value.message) == planned and "http://" in err.value.message
    assert not err.value.transient


def test_a_new_scheme_is_one_registered_class(tmp_path):
    @register("mem")
    class MemoryFetcher:
        def fetch(self, uri, dest_path, *, limits, credentials):
            dest_path.write_bytes(b"model")
            return FetchResult(dest_path, 5, "sha256:x", 0.0)

    try:
        assert fetch_artifact("mem://m", tmp_path / "m", limits=LIMITS).size_bytes == 5
    finally:
        del FETCHERS["mem"]


def test_file_uris_copy_in_chunks_and_name_what_is_missing(models, tmp_path):
    result = fetch_artifact((models / "gemm.onnx").as_uri(), tmp_path / "m.onnx", limits=LIMITS)
    assert result.sha256 == digest(models / "gemm.onnx")
    with pytest.raises(errors.NotFound, match="does not exist"):
        fetch_artifact((models / "nope.onnx").as_uri(), tmp_path / "n.onnx", limits=LIMITS)
    with pytest.raises(errors.NotFound, match="not a regular file"):
        fetch_artifact(models.as_uri(), tmp_path / "n.onnx", limits=LIMITS)
    with pytest.raises(errors.TooLarge):
        fetch_artifact((models / "big.onnx").as_uri(), tmp_path / "n.onnx", limits=LIMITS)
    with pytest.raises(errors.UnsupportedScheme, match="local path"):
        fetch_artifact("file://fileserver/models/m.onnx", tmp_path / "n.onnx", limits=LIMITS)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
