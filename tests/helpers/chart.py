"""helm (built by dev/build-tools.sh) and the chart it renders, for the chart's tests with and
without a cluster. A missing helm fails the test with the command that builds it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "edgeline"
# helm's own cache and config stay in the test state folder, away from the user's.
HELM_HOME = ROOT / os.environ.get("EDGELINE_TEST_STATE", ".edgeline/test") / "helm"


def helm_binary() -> Path:
    versions = dict(line.split("=", 1) for line in (ROOT / "dev" / "versions.env").read_text().splitlines()
                    if "=" in line and not line.startswith("#"))
    cache = Path(os.environ.get("EDGELINE_CACHE", Path.home() / ".cache" / "edgeline"))
    return cache / "bin" / f"helm-{versions['HELM_VERSION'].strip()}"


def helm_runner():
    """run(*args, kubeconfig=None, check=True) -> CompletedProcess; fails the test when helm is missing."""
    binary = helm_binary()
    if not os.access(binary, os.X_OK):
        pytest.fail(f"helm is not built ({binary} is missing): run `bash dev/build-tools.sh helm`", pytrace=False)

    def run(*args: str, kubeconfig: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, "HELM_CACHE_HOME": str(HELM_HOME / "cache"),
               "HELM_CONFIG_HOME": str(HELM_HOME / "config"), "HELM_DATA_HOME": str(HELM_HOME / "data")}
        if kubeconfig:
            env["KUBECONFIG"] = str(kubeconfig)
        proc = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=180, env=env, cwd=ROOT)
        if check and proc.returncode != 0:
            pytest.fail(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}", pytrace=False)
        return proc
    return run


def render(helm, *values: str) -> list[dict]:
    out = helm("template", "edgeline", str(CHART), "--namespace", "edgeline-system", *values).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def one(objects: list[dict], kind: str, name: str | None = None) -> dict:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"{kind} {name}: {[o['metadata']['name'] for o in found]}"
    return found[0]


def env_of(deployment: dict) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
