"""A real HTTP server on 127.0.0.1 that serves a directory, plus misbehaving paths:
/status/<code>, /flaky/<name> (500 once, then the file), /stall, /truncated/<name>,
/redirect-loop, /redirect/<name>, /private/<name> (needs Bearer secret-token)."""

from __future__ import annotations

import http.server
import threading
import time
from contextlib import contextmanager
from pathlib import Path


def _handler(root: Path, stall_s: float):
    seen_flaky: set[str] = set()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _file(self, name: str, declared: int | None = None, cut: int | None = None):
            path = root / name
            if not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(declared if declared is not None else len(data)))
            self.end_headers()
            self.wfile.write(data[:cut] if cut is not None else data)

        def do_GET(self):
            parts = self.path.strip("/").split("/", 1)
            head, rest = parts[0], parts[1] if len(parts) > 1 else ""
            if head == "status":
                self.send_error(int(rest))
            elif head == "flaky":
                if rest not in seen_flaky:
                    seen_flaky.add(rest)
                    self.send_error(500)
                else:
                    self._file(rest)
            elif head == "stall":
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(stall_s)
            elif head == "truncated":
                size = (root / rest).stat().st_size
                self._file(rest, declared=size + 100)
                self.close_connection = True
            elif head == "redirect-loop":
                self.send_response(302)
                self.send_header("Location", "/redirect-loop")
                self.end_headers()
            elif head == "redirect":
                self.send_response(302)
                self.send_header("Location", f"/{rest}")
                self.end_headers()
            elif head == "private":
                if self.headers.get("Authorization") != "Bearer secret-token":
                    self.send_error(401)
                else:
                    self._file(rest)
            else:
                self._file(self.path.strip("/"))

    return Handler


@contextmanager
def serve(root: Path, port: int = 0, stall_s: float = 3.0):
    """Yields the base URL, e.g. http://127.0.0.1:41234"""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _handler(Path(root), stall_s))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
