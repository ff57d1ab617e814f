"""The anonymous Bearer token dance of OCI registries (Docker Hub, GHCR, Harbor speak it): a small
registry on loopback that answers /v2/ with a challenge, hands out a token for the asked scope,
and serves the artifact only with it. The real-registry tests (tests/integration/test_oci_artifacts.py)
cover the rest; docker-registry itself needs a JWT-signing token service for this."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import urllib.parse

import pytest

from edgeline.artifacts import errors, oci
from edgeline.artifacts.fetch import Limits, fetch_artifact

MODEL = b"\x08\x08onnx-bytes" * 50
LAYER = "sha256:" + hashlib.sha256(MODEL).hexdigest()
MANIFEST = oci.artifact_manifest(LAYER, len(MODEL), "model.onnx")
DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()


class TokenRegistry(http.server.ThreadingHTTPServer):
    def __init__(self, token_status: int = 200):
        self.scopes: list[str] = []
        self.token_status = token_status
        super().__init__(("127.0.0.1", 0), Handler)
        self.daemon_threads = True
        self.base = f"127.0.0.1:{self.server_address[1]}"


class Handler(http.server.BaseHTTPRequestHandler):
    server: TokenRegistry

    def log_message(self, *args):
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None):
        self.send_response(status)
        for key, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path, _, query = self.path.partition("?")
        if path == "/token":
            self.server.scopes.append(urllib.parse.parse_qs(query).get("scope", [""])[0])
            return self._send(self.server.token_status, json.dumps({"token": "anon-123"}).encode())
        challenge = {"WWW-Authenticate": f'Bearer realm="http://{self.server.base}/token",service="test"'}
        if self.headers.get("Authorization") != "Bearer anon-123":
            return self._send(401, b"{}", challenge)
        if path == "/v2/":
            return self._send(200, b"{}")
        if path == f"/v2/models/detector/manifests/{DIGEST}":
            return self._send(200, MANIFEST, {"Content-Type": oci.MANIFEST})
        if path == f"/v2/models/detector/blobs/{LAYER}":
            return self._send(200, MODEL)
        return self._send(404)


@pytest.fixture
def registry():
    def start(**kwargs):
        server = TokenRegistry(**kwargs)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    servers: list[TokenRegistry] = []
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_an_anonymous_token_is_fetched_for_the_pull_scope_and_used(registry, tmp_path):
    server = registry()
    result = fetch_artifact(f"oci://{server.base}/models/detector@{DIGEST}", tmp_path / "m.onnx",
                            limits=Limits(retries=1))
    assert result.sha256 == LAYER and (tmp_path / "m.onnx").read_bytes() == MODEL
    assert server.scopes == ["repository:models/detector:pull"]


def test_a_refused_token_is_unauthorized(registry, tmp_path):
    server = registry(token_status=403)
    with pytest.raises(errors.Unauthorized, match="token service"):
        fetch_artifact(f"oci://{server.base}/models/detector@{DIGEST}", tmp_path / "m.onnx", limits=Limits(retries=1))
    assert not (tmp_path / "m.onnx").exists()


def test_credentials_never_go_to_a_plain_http_token_service(registry, tmp_path):
    server = registry()
    with pytest.raises(errors.CredentialsRefused):
        fetch_artifact(f"oci://{server.base}/models/detector@{DIGEST}", tmp_path / "m.onnx", limits=Limits(retries=1),
                       credentials={"username": "u", "password": "p"})
    assert server.scopes == []
