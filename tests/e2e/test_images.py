"""The images `make images` builds really work: the edge runtime image, run by podman the way a
Pod runs it (read-only root filesystem, its own non-root user, every capability dropped), fetches
a real ONNX model over HTTP, verifies its digest and answers an Open Inference Protocol v2 request
with what onnxruntime computes; the operator image runs `edgeline` as non-root; the runtime image
carries none of the operator's packages.

The images come from dev/build-images.sh (cached: it only checks when nothing changed) and are
found through .edgeline/images.env. No cluster is needed. podman missing fails the test.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest

from edgeline import __version__
from tests.e2e.conftest import wait_for
from tests.helpers import onnx_models, runtime_models
from tests.helpers.artifact_server import ArtifactServer
from tests.helpers.runtime_models import MODEL_NAME, images, infer_body, run_directly
from tests.helpers.runtime_process import http

ROOT = Path(__file__).resolve().parents[2]
NON_ROOT = "65532"
# Third-party packages only the operator needs (edgeline's own modules are one package, a few hundred kB).
OPERATOR_PACKAGES = ("kopf", "lightkube", "kubernetes", "onnx", "yaml", "cryptography")


def _env_file(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            found[key] = value
    return found


@pytest.fixture(scope="module")
def built() -> dict[str, str]:
    """Builds the images if their sources changed (a no-op otherwise) and returns images.env."""
    for tool in ("podman", "mmdebstrap", "skopeo"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: run `make images` (dev/install-container-tools.sh installs it)")
    proc = subprocess.run(["bash", "dev/build-images.sh"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, f"dev/build-images.sh failed:\n{proc.stderr[-4000:]}"
    return _env_file(ROOT / ".edgeline" / "images.env")


@pytest.fixture(scope="module")
def podman(built):
    """podman with the project's settings (runc, vfs storage, host network, ulimits)."""
    out = subprocess.run(["bash", "dev/install-container-tools.sh", "--env"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    env = dict(os.environ)
    for line in out.splitlines():
        key, value = line.removeprefix("export ").split("=", 1)
        env[key] = value

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(["podman", *args], env=env, capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            pytest.fail(f"podman {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        return proc

    return run


def _inspect(podman, ref: str) -> dict:
    return json.loads(podman("image", "inspect", ref).stdout)[0]


def _python_in(podman, image: str, code: str) -> str:
    """Runs Python in the image as a Pod would: read-only root, image's user, no capabilities."""
    return podman("run", "--rm", "--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges",
                  "--entrypoint", "/opt/edgeline/bin/python", image, "-c", code).stdout.strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _revision(image: str) -> str:
    """The last commit that changed what the image is built from (what its labels and tag name)."""
    name = {"OPERATOR_IMAGE": "operator", "RUNTIME_IMAGE": "edge-runtime"}[image]
    return subprocess.run(["git", "log", "-1", "--format=%H", "--", "pyproject.toml", "README.md", "operator",
                           f"images/{name}"], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def test_the_runtime_image_serves_a_real_model_read_only_as_non_root(built, podman, tmp_path):
    # Given: the defect detector 2.0.0 on an HTTP server, and the runtime image started as a Pod runs it
    shutil.copy(runtime_models.sample_model("2.0.0"), tmp_path / "detector.onnx")
    digest = onnx_models.file_digest(tmp_path / "detector.onnx")
    port = _free_port()
    name = f"edgeline-test-runtime-{uuid.uuid4().hex[:8]}"
    with ArtifactServer(tmp_path) as server:
        podman("run", "--detach", "--name", name, "--read-only", "--cap-drop=ALL",
               "--security-opt=no-new-privileges", "--network=host",
               "--env", "EDGELINE_DEPLOYMENT=line-3", "--env", "EDGELINE_NAMESPACE=factory-a",
               built["RUNTIME_IMAGE"],
               "runtime", "serve", "--model-uri", f"{server.url}/detector.onnx", "--sha256", digest,
               "--model-name", MODEL_NAME, "--model-version", "2.0.0", "--host", "127.0.0.1", "--port", str(port))
        try:
            url = f"http://127.0.0.1:{port}"

            def ready_or_gone():
                if podman("container", "exists", name, check=False).returncode != 0:
                    return "gone"
                state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
                if state != "running":
                    return state
                try:
                    return http("GET", f"{url}/v2/health/ready")[0] == 200 and "ready"
                except OSError:
                    return None

            outcome = wait_for(ready_or_gone, timeout=90, what="the runtime container to be ready")
            logs = podman("logs", name, check=False)
            assert outcome == "ready", f"the container is {outcome}:\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}"

            # When: an OIP v2 inference request comes in
            frames = images(batch=3, seed=11)
            status, body = http("POST", f"{url}/v2/models/{MODEL_NAME}/infer", infer_body(frames, request_id="c-1"))

            # Then: it answers with what onnxruntime computes for that model
            assert status == 200, body
            assert body["model_name"] == MODEL_NAME and body["model_version"] == "2.0.0" and body["id"] == "c-1"
            output = next(o for o in body["outputs"] if o["name"] == "probabilities")
            expected = run_directly(runtime_models.sample_model("2.0.0"), frames)
            np.testing.assert_allclose(np.array(output["data"], np.float32).reshape(expected.shape), expected,
                                       rtol=1e-6, atol=0)
            assert server.hits["/detector.onnx"] == 1

            # ... as the image's non-root user, the model fetched to /tmp (the root filesystem is read-only)
            exec_ = podman("exec", name, "/opt/edgeline/bin/python", "-c",
                           "import os, pathlib; print(os.getuid(), os.getgid()); "
                           "print(sorted(p.name for p in pathlib.Path('/tmp/edgeline-runtime').iterdir()))")
            uid_gid, files = exec_.stdout.strip().splitlines()
            assert uid_gid == f"{NON_ROOT} {NON_ROOT}"
            assert digest.removeprefix("sha256:") in files, files  # kept by digest, under /tmp
            refused = podman("exec", name, "/opt/edgeline/bin/python", "-c", "open('/opt/edgeline/x', 'w')",
                             check=False)
            assert refused.returncode != 0 and "Read-only file system" in refused.stderr

            # ... and it carries none of the operator's packages
            carried = podman("exec", name, "/opt/edgeline/bin/python", "-c",
                             "import importlib.util as u; "
                             f"print(' '.join(m for m in {OPERATOR_PACKAGES!r} if u.find_spec(m)))").stdout.strip()
            assert carried == "", f"the runtime image carries {carried}"

            # ... and it stops cleanly on SIGTERM, as a Pod's container is stopped
            podman("stop", "--time", "20", name)
            assert podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip() == "0"
        finally:
            podman("rm", "--force", name, check=False)


def test_the_operator_image_runs_edgeline_as_non_root(built, podman):
    help_text = podman("run", "--rm", "--read-only", "--cap-drop=ALL", built["OPERATOR_IMAGE"], "--help").stdout
    assert "usage: edgeline" in help_text and all(group in help_text for group in ("run", "runtime", "status"))
    # The operator's modules import on a read-only root filesystem, as user 65532, and say their version.
    found = _python_in(podman, built["OPERATOR_IMAGE"],
                       "import os, sys, edgeline.controllers.operator, kopf, onnx.checker; from edgeline import cli; "
                       "print(os.getuid()); sys.argv = ['edgeline', '--version']; cli.main()")
    assert found.splitlines() == [NON_ROOT, f"edgeline {__version__}"]
    assert _inspect(podman, built["OPERATOR_IMAGE"])["Config"]["Entrypoint"] == ["/opt/edgeline/bin/edgeline"]


@pytest.mark.parametrize("image", ["OPERATOR_IMAGE", "RUNTIME_IMAGE"])
def test_images_are_labelled_tagged_and_need_no_shell(built, podman, image):
    ref = built[image]
    config = _inspect(podman, ref)
    labels = config["Config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.revision"] == _revision(image)
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert labels["org.opencontainers.image.created"].endswith("Z")
    assert config["Config"]["User"] == f"{NON_ROOT}:{NON_ROOT}"
    # Exec form: the entrypoint is the program itself, not a shell command line.
    assert config["Config"]["Entrypoint"][0].startswith("/opt/edgeline/bin/")
    # <version>-<short sha>, and the plain <version> the chart and the renderer default to.
    repository, tag = ref.rsplit(":", 1)
    assert tag.startswith(f"{__version__}-{_revision(image)[:7]}")
    assert f"{repository}:{__version__}" in config["RepoTags"]
    archive = Path(built[f"{image}_ARCHIVE"])
    assert archive.is_file() and archive.stat().st_size > 0


def test_the_runtime_image_is_smaller_than_the_operator_image(built, podman, record_property):
    sizes = {name: int(_inspect(podman, built[name])["Size"]) for name in ("OPERATOR_IMAGE", "RUNTIME_IMAGE")}
    for name, size in sizes.items():
        record_property(f"{name.lower()}_mb", round(size / 1e6))
    print(f"\nimage sizes: operator {sizes['OPERATOR_IMAGE'] / 1e6:.0f} MB, "
          f"edge runtime {sizes['RUNTIME_IMAGE'] / 1e6:.0f} MB")
    assert sizes["RUNTIME_IMAGE"] < sizes["OPERATOR_IMAGE"], sizes
