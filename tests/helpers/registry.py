"""Real OCI registries for tests (Debian's docker-registry, the binary the dev environment runs)
and `edgeline model push` as a person runs it.

    origin = RunningRegistry(tmp / "origin")                          # 127.0.0.1:<free port>
    mirror = RunningRegistry(tmp / "mirror", upstream=origin.url)     # a pull-through cache of it
    pushed = push(Path("model.onnx"), f"oci://{origin.address}/models/detector:1.0.0")

A missing docker-registry raises (devenv.registry.RegistryError): tests that need one fail.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from edgeline.devenv import registry as devenv_registry
from tests.helpers.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class RunningRegistry:
    """docker-registry serving on `host` (loopback by default; a host address Pods reach for the
    e2e tests) with its storage under `base`; `upstream` makes it a pull-through cache of that
    registry (distribution's proxy.remoteurl)."""

    def __init__(self, base: Path, upstream: str | None = None, host: str = "127.0.0.1"):
        binary = devenv_registry.registry_binary()
        self.base = base
        self.port = free_port(host)
        self.address = f"{host}:{self.port}"
        self.url = f"http://{self.address}"
        config = base / "config.yml"
        devenv_registry.write_config(config, base / "storage", self.port)
        text = config.read_text().replace(f"addr: 127.0.0.1:{self.port}", f"addr: {self.address}")
        if upstream:
            text += f"proxy:\n  remoteurl: {upstream}\n"
        config.write_text(text)
        self.log = (base / "registry.log").open("ab")
        self.process = subprocess.Popen([binary, "serve", str(config)], stdout=self.log, stderr=self.log)
        wait_for(self._answers, timeout=30, what=lambda: f"docker-registry on {self.address} to answer "
                                                         f"(log: {(base / 'registry.log').read_text()[-500:]})")

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"docker-registry exited: {(self.base / 'registry.log').read_text()[-800:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/v2/", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def blobs(self) -> set[str]:
        """Digests of the blobs in its storage (what a mirror has kept)."""
        folder = self.base / "storage" / "docker" / "registry" / "v2" / "blobs" / "sha256"
        return {"sha256:" + p.parent.name for p in folder.glob("*/*/data")} if folder.is_dir() else set()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        if not self.log.closed:
            self.log.close()

    def __enter__(self) -> RunningRegistry:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def push(path: Path, target: str) -> dict:
    """`edgeline model push -o json FILE TARGET`: {uri, sha256, sizeBytes, tag}."""
    proc = subprocess.run([sys.executable, "-m", "edgeline", "model", "push", "-o", "json", str(path), target],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)
