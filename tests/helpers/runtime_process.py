"""`edgeline runtime serve` in a process of its own, as the kubelet would start it: its JSON log
lines collected as they come, and small HTTP helpers for its endpoints."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest

from tests.helpers.runtime_models import MODEL_NAME
from tests.helpers.waiting import wait_for


class RuntimeProcess:
    """`edgeline runtime serve` in a process of its own, its JSON log lines collected as they come."""

    def __init__(self, args: list[str], env: dict[str, str]):
        self.proc = subprocess.Popen([sys.executable, "-m", "edgeline", "runtime", "serve", *args],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        listening = wait_for(lambda: self.event("listening") or self._exited(), timeout=30,
                             what="the runtime to listen")
        if "port" not in listening:
            pytest.fail(f"the runtime exited before listening:\n{self.log_text()}")
        self.url = f"http://127.0.0.1:{listening['port']}"

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def _exited(self):
        return {"exited": self.proc.returncode} if self.proc.poll() is not None else None

    def events(self) -> list[dict]:
        return [json.loads(line) for line in list(self.lines)]

    def event(self, name: str) -> dict | None:
        return next((e for e in self.events() if e["event"] == name), None)

    def wait_events(self, name: str, count: int) -> list[dict]:
        """The first `count` events of that name, once the log has them (it is read as it comes)."""
        found = wait_for(lambda: [e for e in self.events() if e["event"] == name][count - 1:] and
                         [e for e in self.events() if e["event"] == name], timeout=10, what=f"{count} {name} events")
        return found[:count]

    def names(self) -> list[str]:
        return [e["event"] for e in self.events()]

    def log_text(self) -> str:
        return "\n".join(self.lines[-40:])

    def get(self, path: str) -> tuple[int, dict | str]:
        return http("GET", self.url + path)

    def post(self, path: str, body) -> tuple[int, dict | str]:
        return http("POST", self.url + path, body)

    def infer(self, body, version: str | None = None) -> tuple[int, dict | str]:
        path = f"/v2/models/{MODEL_NAME}" + (f"/versions/{version}" if version else "") + "/infer"
        return self.post(path, body)

    def metrics(self) -> dict[tuple[str, frozenset], float]:
        """{(series name, labels): value} from /metrics."""
        status, text = self.get("/metrics")
        assert status == 200
        samples = {}
        for line in text.splitlines():
            match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
            if match and not line.startswith("#"):
                labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
                samples[(match.group(1), labels)] = float(match.group(3))
        return samples

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                pytest.fail(f"the runtime ignored SIGTERM:\n{self.log_text()}")
        self._reader.join(timeout=5)
        return self.proc.returncode


def http(method: str, url: str, body=None, timeout: float = 30.0) -> tuple[int, dict | str]:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data is not None else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read().decode()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw
