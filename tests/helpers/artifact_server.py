"""A real HTTP server on 127.0.0.1 serving a folder, plus paths that misbehave on purpose.

    with serve(folder) as url:            # url = "http://127.0.0.1:<port>"
        fetch(f"{url}/model.onnx")

    with ArtifactServer(folder) as server:  # server.url, server.hits (requests per path)
        ...

    python -m tests.helpers.artifact_server FOLDER [--port N]   # in a process of its own

Paths besides the files of the folder (NAME is a file in it):
  /status/CODE            answers CODE
  /flaky/NAME             500 on the first request, then the file
  /busy/NAME              429 with Retry-After: 0 on the first request, then the file
  /stall                  announces 1000 bytes, sends one, then goes silent for stall_s
  /truncated/NAME         announces 100 bytes more than the file has, sends the file, closes
  /unsized/NAME           the file without Content-Length (the end is the connection's close)
  /announce-huge          announces a terabyte, sends nothing
  /redirect/NAME          302 to /NAME;  /redirect-loop redirects to itself
  /private/NAME           needs "Authorization: Bearer <token>"
  /basic/NAME             needs HTTP basic auth with user:password
  /redirect-to?url=URL    302 to any URL (another host, another scheme)
  /drip                   sends one byte every drip_s, without end (defeats a per-read timeout)
Every request's Authorization header is recorded in server.authorization[path].
With tls=True the server speaks HTTPS with a certificate for localhost and 127.0.0.1 from a CA
of its own (server.ca_bundle); its url then names https://localhost:<port>.
Files go out with sendfile, so serving a 2 GB model costs the server no memory.
"""

from __future__ import annotations

import argparse
import base64
import collections
import http.server
import ssl
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path


class ArtifactServer:
    def __init__(self, root: Path, port: int = 0, *, stall_s: float = 3.0, token: str = "secret-token",
                 user: str = "user", password: str = "password", tls: bool = False, drip_s: float = 0.1,
                 host: str = "127.0.0.1"):
        self.root = Path(root).resolve()
        self.stall_s = stall_s
        self.drip_s = drip_s
        self.authorization: dict[str, str | None] = {}
        self.ca_bundle: Path | None = None
        self.token = token
        self.basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.hits: collections.Counter[str] = collections.Counter()
        self._first_seen: set[str] = set()
        self._lock = threading.Lock()
        self._server = http.server.ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        if tls:
            self._wrap_tls()
            self.url = f"https://localhost:{self.port}"
        self._thread: threading.Thread | None = None

    def _wrap_tls(self) -> None:
        from edgeline.pki import CertificateAuthority

        ca = CertificateAuthority.create("artifact-server-ca")
        cert, key = ca.issue("localhost", server_names=("localhost", "127.0.0.1"))
        self._tmp = tempfile.TemporaryDirectory(prefix="artifact-server-")
        folder = Path(self._tmp.name)
        (folder / "ca.pem").write_bytes(ca.cert_pem)
        (folder / "cert.pem").write_bytes(cert)
        (folder / "key.pem").write_bytes(key)
        self.ca_bundle = folder / "ca.pem"
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)

    def first_time(self, key: str) -> bool:
        with self._lock:
            if key in self._first_seen:
                return False
            self._first_seen.add(key)
            return True

    def start(self) -> ArtifactServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="artifact-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def __enter__(self) -> ArtifactServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve(root: Path, port: int = 0, stall_s: float = 3.0, **options):
    """Context manager yielding the base URL, e.g. http://127.0.0.1:41234"""
    return _UrlContext(ArtifactServer(root, port, stall_s=stall_s, **options))


class _UrlContext:
    def __init__(self, server: ArtifactServer):
        self.server = server

    def __enter__(self) -> str:
        return self.server.start().url

    def __exit__(self, *exc) -> None:
        self.server.stop()


def _handler(server: ArtifactServer):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def handle(self):
            try:
                super().handle()
            except (ConnectionError, TimeoutError):
                pass  # the client gave up (a size limit, a timeout): expected in these tests

        def do_HEAD(self):
            self.do_GET(head=True)

        def do_GET(self, head: bool = False):
            server.hits[self.path] += 1  # with the query, so that a test can count its own requests
            server.authorization[self.path] = self.headers.get("Authorization")
            path, _, query = self.path.partition("?")
            first, _, rest = path.lstrip("/").partition("/")
            if first == "status":
                self._status(int(rest))
            elif first == "flaky":
                self._status(500) if server.first_time(path) else self._file(rest, head)
            elif first == "busy":
                if server.first_time(path):
                    self._status(429, {"Retry-After": "0"})
                else:
                    self._file(rest, head)
            elif first == "stall":
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(server.stall_s)
            elif first == "truncated":
                self._file(rest, head, extra_length=100)
            elif first == "unsized":
                self._file(rest, head, sized=False)
            elif first == "announce-huge":
                self.send_response(200)
                self.send_header("Content-Length", str(10**12))
                self.end_headers()
            elif first == "redirect":
                self._redirect(f"/{rest}")
            elif first == "redirect-to":
                self._redirect(urllib.parse.parse_qs(query)["url"][0])
            elif first == "drip":
                self.send_response(200)
                self.send_header("Content-Length", str(10**6))
                self.end_headers()
                for _ in range(10**6):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(server.drip_s)
            elif first == "redirect-loop":
                self._redirect("/redirect-loop")
            elif first == "private":
                if self.headers.get("Authorization") != f"Bearer {server.token}":
                    self._status(401)
                else:
                    self._file(rest, head)
            elif first == "basic":
                if self.headers.get("Authorization") != server.basic:
                    self._status(401, {"WWW-Authenticate": 'Basic realm="models"'})
                else:
                    self._file(rest, head)
            else:
                self._file(path.lstrip("/"), head)

        def _status(self, code: int, headers: dict | None = None):
            body = f"{code}\n".encode()
            self.send_response(code)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _redirect(self, location: str):
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _file(self, name: str, head: bool, *, extra_length: int = 0, sized: bool = True):
            path = (server.root / name).resolve()
            if server.root not in path.parents or not path.is_file():
                self._status(404)
                return
            size = path.stat().st_size
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if sized:
                self.send_header("Content-Length", str(size + extra_length))
            self.end_headers()
            if head:
                return
            self.wfile.flush()
            with open(path, "rb") as f:
                self.connection.sendfile(f)
            self.close_connection = True

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a folder of model artifacts on 127.0.0.1")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = ArtifactServer(args.folder, args.port)
    print(server.url, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
