"""The operator's fetches under its policy, against real HTTP(S) servers on loopback: what an
MLModel author may not make the operator read or reach (docs/security.md)."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import replace

import pytest

from edgeline.artifacts import errors
from edgeline.artifacts.fetch import Limits, fetch_artifact
from edgeline.artifacts.policy import FetchPolicy
from edgeline.settings import Settings
from tests.helpers.artifact_server import ArtifactServer
from tests.helpers.onnx_models import file_digest as digest

BASE = Limits(max_bytes=1024 * 1024, connect_timeout_s=2, read_timeout_s=0.3, retries=1, backoff_s=0.01)
# What the operator uses when started without allow-lists, and with loopback 127.0.0.1 allowed.
STRICT = replace(BASE, policy=FetchPolicy.from_settings(Settings()))
LOOPBACK = replace(BASE, policy=FetchPolicy.from_settings(Settings(artifact_allowed_cidrs="127.0.0.1/32")))


def test_the_operator_policy_is_strict_by_default():
    limits = Limits.for_operator(Settings())
    assert limits.policy == FetchPolicy() and limits.max_redirects == 3 and limits.deadline_s > 0


# -- file:// --------------------------------------------------------------------------------------

def test_file_uris_are_refused_unless_the_operator_allows_a_folder(models, tmp_path):
    token = tmp_path / "serviceaccount" / "token"  # stands for the operator's own ServiceAccount token
    token.parent.mkdir()
    token.write_text("eyJhbGciOi...")
    for uri in (token.as_uri(), (tmp_path / "no-such-file").as_uri(), (models / "gemm.onnx").as_uri()):
        with pytest.raises(errors.SchemeDisabled) as err:
            fetch_artifact(uri, tmp_path / "out" / "m.onnx", limits=STRICT)
        assert not err.value.transient
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_file_uris_are_limited_to_the_allowed_folders_also_through_symlinks(models, tmp_path):
    limits = replace(BASE, policy=FetchPolicy.from_settings(Settings(artifact_file_roots=str(models))))
    assert fetch_artifact((models / "gemm.onnx").as_uri(), tmp_path / "a.onnx", limits=limits).sha256 == \
        digest(models / "gemm.onnx")
    secret = tmp_path / "secret"
    secret.write_text("token")
    link = models / "innocent.onnx"
    link.symlink_to(secret)
    try:
        messages = set()
        for target in (secret, link, tmp_path / "missing"):
            with pytest.raises(errors.PathNotAllowed) as err:
                fetch_artifact(target.as_uri(), tmp_path / "b.onnx", limits=limits)
            messages.add(err.value.message.replace(str(target), "<path>"))
        # The same words whether the file exists or not: nothing about files outside leaks.
        assert len(messages) == 1
    finally:
        link.unlink()


# -- addresses ---------------------------------------------------------------------------------

@pytest.mark.parametrize("uri", [
    "http://127.0.0.1:{port}/gemm.onnx",
    "http://localhost:{port}/gemm.onnx",
    "http://[::1]:{port}/gemm.onnx",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/latest/meta-data/",
    "http://kubernetes.default.svc/api",
    "http://10.96.0.1/",
    # Other spellings of 127.0.0.1 that resolvers accept: judged by the address they resolve to.
    "http://2130706433:{port}/gemm.onnx",
    "http://0x7f.0.0.1:{port}/gemm.onnx",
    "http://127.1:{port}/gemm.onnx",
    "http://metadata.google.internal./computeMetadata/v1/",
])
def test_non_public_addresses_are_refused_before_any_connection(server, tmp_path, uri):
    before = sum(server.hits.values())
    with pytest.raises(errors.AddressNotAllowed) as err:
        fetch_artifact(uri.format(port=server.port), tmp_path / "m.onnx", limits=STRICT)
    assert not err.value.transient and "EDGELINE_ARTIFACT_ALLOWED" in err.value.message
    assert sum(server.hits.values()) == before  # refused before a request was sent


def test_an_allow_listed_range_is_fetched_and_only_that_range(server, models, tmp_path):
    result = fetch_artifact(f"{server.url}/gemm.onnx", tmp_path / "m.onnx", limits=LOOPBACK)
    assert result.sha256 == digest(models / "gemm.onnx")
    with pytest.raises(errors.AddressNotAllowed):
        fetch_artifact(f"http://127.0.0.2:{server.port}/gemm.onnx", tmp_path / "n.onnx", limits=LOOPBACK)


def test_every_redirect_hop_is_checked_again(server, tmp_path):
    for target in ("http://169.254.169.254/latest/meta-data/", f"http://127.0.0.2:{server.port}/gemm.onnx",
                   "http://localhost/gemm.onnx"):
        with pytest.raises(errors.AddressNotAllowed):
            fetch_artifact(f"{server.url}/redirect-to?url={target}", tmp_path / "m.onnx", limits=LOOPBACK)
    assert list(tmp_path.iterdir()) == []


def test_redirects_are_limited_to_three(server, tmp_path):
    with pytest.raises(errors.TooManyRedirects):
        fetch_artifact(f"{server.url}/redirect-loop?three", tmp_path / "m.onnx",
                       limits=Limits.for_operator(Settings(artifact_allowed_cidrs="127.0.0.1/32")))
    assert server.hits["/redirect-loop?three"] == 1 and server.hits["/redirect-loop"] == 3


def test_redirects_to_file_or_from_https_to_http_are_refused(server, tls_server, tmp_path, models):
    limits = replace(LOOPBACK, ca_bundle=tls_server.ca_bundle,
                     policy=replace(LOOPBACK.policy, allowed_hosts=frozenset({"localhost"}),
                                    file_roots=(models,)))
    with pytest.raises(errors.RedirectRefused):
        fetch_artifact(f"{server.url}/redirect-to?url={(models / 'gemm.onnx').as_uri()}", tmp_path / "a",
                       limits=limits)
    with pytest.raises(errors.RedirectRefused, match="never from https to http"):
        fetch_artifact(f"{tls_server.url}/redirect-to?url={server.url}/gemm.onnx", tmp_path / "b", limits=limits)


def test_the_connection_goes_to_the_address_that_was_checked(models, tmp_path, monkeypatch):
    """DNS rebinding: the name resolves to an allowed address when checked and to a forbidden
    one a moment later. The fetch connects to the checked address and never asks again."""
    with ArtifactServer(models) as public:
        # The "internal" service listens on the same port of another loopback address.
        internal = ArtifactServer(models, port=public.port, host="127.0.0.2").start()
        answers = iter(["127.0.0.1"] + ["127.0.0.2"] * 10)
        asked = []

        real_getaddrinfo = socket.getaddrinfo

        def rebinding_dns(host, port, *args, **kwargs):
            if host[0].isdigit():  # an address literal: no DNS involved
                return real_getaddrinfo(host, port, *args, **kwargs)
            asked.append(host)
            address = next(answers)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

        monkeypatch.setattr(socket, "getaddrinfo", rebinding_dns)
        try:
            result = fetch_artifact(f"http://models.example.com:{public.port}/gemm.onnx", tmp_path / "m.onnx",
                                    limits=LOOPBACK)
        finally:
            internal.stop()
    assert result.sha256 == digest(models / "gemm.onnx")
    assert asked == ["models.example.com"] and sum(internal.hits.values()) == 0
    assert public.hits["/gemm.onnx"] == 1


def test_connection_tls_and_dns_failures_read_the_same_to_users(tmp_path):
    """A user must not map the operator's network by telling refused, filtered, unresolvable and
    TLS-speaking ports apart; the cause goes to the operator's log only."""
    import http.server
    import threading

    plain = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=plain.serve_forever, daemon=True).start()
    limits = replace(LOOPBACK, policy=replace(LOOPBACK.policy, allowed_hosts=frozenset({"no-such-host.invalid"})))
    try:
        found = {}
        for name, uri in (("refused", "http://127.0.0.1:9/m.onnx"),
                          ("tls", f"https://127.0.0.1:{plain.server_address[1]}/m.onnx"),
                          ("dns", "http://no-such-host.invalid/m.onnx")):
            with pytest.raises(errors.FetchFailed) as err:
                fetch_artifact(uri, tmp_path / "m.onnx", limits=limits)
            assert type(err.value) is errors.FetchFailed and err.value.status is None and err.value.transient
            found[name] = err.value.message.replace("127.0.0.1", "HOST").replace("no-such-host.invalid", "HOST")
    finally:
        plain.shutdown()
        plain.server_close()
    assert len(set(found.values())) == 1, found
    assert "could not be fetched" in found["refused"]


# -- credentials, deadline ---------------------------------------------------------------------

def test_credentials_are_never_sent_over_plain_http(server, tmp_path):
    with pytest.raises(errors.CredentialsRefused, match="https"):
        fetch_artifact(f"{server.url}/private/gemm.onnx?plain", tmp_path / "m.onnx", limits=LOOPBACK,
                       credentials={"token": "secret-token"})
    assert server.hits["/private/gemm.onnx?plain"] == 0


def test_credentials_stay_with_the_origin_the_uri_names(tls_server, tmp_path):
    limits = replace(LOOPBACK, ca_bundle=tls_server.ca_bundle,
                     policy=replace(LOOPBACK.policy, allowed_hosts=frozenset({"localhost"})))
    fetch_artifact(f"{tls_server.url}/redirect/private/gemm.onnx", tmp_path / "a.onnx", limits=limits,
                   credentials={"token": "secret-token"})  # same origin: kept
    other_origin = f"https://127.0.0.1:{tls_server.port}/private/gemm.onnx?other"
    with pytest.raises(errors.Unauthorized):
        fetch_artifact(f"{tls_server.url}/redirect-to?url={other_origin}", tmp_path / "b.onnx", limits=limits,
                       credentials={"token": "secret-token"})
    assert tls_server.authorization["/private/gemm.onnx?other"] is None


def test_tls_is_verified_against_the_host_name_while_connecting_to_the_checked_address(tls_server, tmp_path):
    limits = replace(LOOPBACK, policy=replace(LOOPBACK.policy, allowed_hosts=frozenset({"localhost"})))
    with pytest.raises(errors.FetchFailed):  # the server's CA is not trusted
        fetch_artifact(f"{tls_server.url}/gemm.onnx", tmp_path / "m.onnx", limits=limits)
    fetch_artifact(f"{tls_server.url}/gemm.onnx", tmp_path / "m.onnx",
                   limits=replace(limits, ca_bundle=tls_server.ca_bundle))


def test_a_fetch_has_an_overall_deadline_that_a_trickle_cannot_defeat(models, tmp_path):
    with ArtifactServer(models, drip_s=0.05) as trickle:
        limits = replace(LOOPBACK, deadline_s=1.0, read_timeout_s=0.5)
        started = time.monotonic()
        with pytest.raises(errors.FetchTimeout, match="deadline of 1s"):
            fetch_artifact(f"{trickle.url}/drip", tmp_path / "m.onnx", limits=limits)
        assert time.monotonic() - started < 5
    assert os.listdir(tmp_path) == []  # the partial file is gone
