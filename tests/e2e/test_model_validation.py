"""A data scientist registers model versions; Edgeline proves each is the exact,
well-formed artifact, or says precisely why not."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from tests.e2e.conftest import wait_for
from tests.helpers import onnx_models
from tests.helpers.artifact_server import serve


def digest(path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("artifacts")
    onnx_models.write(onnx_models.gemm_relu(), root / "gemm.onnx")
    onnx_models.write(onnx_models.gemm_relu(opset=21), root / "opset21.onnx")
    shutil.copy(onnx_models.shipped_model(), root / "squeezenet.onnx")
    (root / "notes.onnx").write_bytes(b"not a model at all\n" * 20)
    (root / "huge.onnx").write_bytes(b"\0" * (6 * 2**20))  # over the operator's 5 MiB test limit
    with serve(root, stall_s=30) as url:
        yield url, root


def mlmodel(name, namespace, uri, sha256=None, **spec):
    artifact = {"uri": uri, **({"sha256": sha256} if sha256 else {})}
    return {"apiVersion": "edgeline.io/v1alpha1", "kind": "MLModel",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"model": "detector", "version": name, "artifact": artifact, **spec}}


def condition(obj, ctype):
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == ctype), {})


def phase_of(hub, namespace, name, phases):
    def check():
        obj = hub.get("mlmodel", name, "-n", namespace)
        return obj if obj.get("status", {}).get("phase") in phases else None
    return wait_for(check, timeout=90, what=f"{name} to reach {phases}")


def test_a_good_model_becomes_ready_with_what_inspection_found(hub, operator, namespace, artifacts):
    url, root = artifacts
    hub.apply(mlmodel("gemm", namespace, f"{url}/gemm.onnx", digest(root / "gemm.onnx"),
                      stage="production", requirements={"maxOpset": 17}))
    hub.kubectl("wait", "-n", namespace, "mlmodel/gemm", "--for=condition=Ready", "--timeout=90s")
    status = hub.get("mlmodel", "gemm", "-n", namespace)["status"]
    assert status["phase"] == "Ready" and status["observedGeneration"] == 1
    assert status["artifact"]["digest"] == digest(root / "gemm.onnx")
    assert status["inspection"]["inputs"] == [{"name": "x", "elemType": "FLOAT", "shape": ["batch", "3"]}]
    assert status["inspection"]["opsetImports"] == [{"domain": "", "version": 17}]
    assert condition(hub.get("mlmodel", "gemm", "-n", namespace), "ArtifactVerified")["status"] == "True"
    wait_for(lambda: any(e["reason"] == "Validated" for e in hub.events("gemm", namespace)),
             timeout=20, what="a Validated Event")
    columns = hub.kubectl("get", "mlmodel", "gemm", "-n", namespace).stdout
    assert "Ready" in columns and "17" in columns


def test_a_model_that_a_package_ships_is_validated(hub, operator, namespace, artifacts):
    url, root = artifacts
    hub.apply(mlmodel("squeezenet", namespace, f"{url}/squeezenet.onnx", digest(root / "squeezenet.onnx")))
    obj = phase_of(hub, namespace, "squeezenet", {"Ready", "Invalid"})
    assert obj["status"]["phase"] == "Ready", condition(obj, "Ready")
    assert obj["status"]["inspection"]["initializerCount"] == 52


@pytest.mark.parametrize("case, file, wrong_digest, phase, reason", [
    ("wrong-digest", "gemm.onnx", True, "Invalid", "DigestMismatch"),
    ("not-onnx", "notes.onnx", False, "Invalid", "NotOnnx"),
    ("opset-too-new", "opset21.onnx", False, "Invalid", "OpsetTooNew"),
    ("missing", "status/404", False, "Invalid", "NotFound"),
    ("too-large", "huge.onnx", False, "Invalid", "TooLarge"),
    ("stalls", "stall", False, "Pending", "FetchTimeout"),
    ("truncated", "truncated/gemm.onnx", False, "Pending", "Truncated"),
])
def test_bad_artifacts_get_their_reason_in_status(hub, operator, namespace, artifacts,
                                                   case, file, wrong_digest, phase, reason):
    url, root = artifacts
    sha = "sha256:" + "1" * 64 if wrong_digest else None
    hub.apply(mlmodel(case, namespace, f"{url}/{file}", sha, requirements={"maxOpset": 17}))

    def has_reason():
        obj = hub.get("mlmodel", case, "-n", namespace)
        ready = condition(obj, "Ready")
        return obj if ready.get("reason") == reason and obj["status"].get("phase") == phase else None

    obj = wait_for(has_reason, timeout=90, what=f"{case}: phase {phase} with reason {reason}")
    assert condition(obj, "Ready")["status"] == "False"
    if reason == "DigestMismatch":
        message = condition(obj, "Ready")["message"]
        assert digest(root / "gemm.onnx") in message and "1" * 64 in message
    wait_for(lambda: any(e["reason"] == reason and e["type"] == "Warning" for e in hub.events(case, namespace)),
             timeout=20, what=f"a Warning Event {reason}")


def test_an_unsupported_scheme_is_rejected_at_admission(hub, crds_installed, namespace):
    result = hub.apply(mlmodel("s3-model", namespace, "s3://models/m.onnx"), check=False)
    assert result.returncode != 0 and "spec.artifact.uri" in result.stderr


def test_a_restart_does_not_redo_finished_validation(hub, operator, namespace, artifacts):
    url, root = artifacts
    hub.apply(mlmodel("kept", namespace, f"{url}/gemm.onnx", digest(root / "gemm.onnx")))
    hub.kubectl("wait", "-n", namespace, "mlmodel/kept", "--for=condition=Ready", "--timeout=90s")
    before = hub.get("mlmodel", "kept", "-n", namespace)["status"]
    operator.kill()
    operator.start()
    # Another model validated after the restart proves the operator is at work again.
    hub.apply(mlmodel("after-restart", namespace, f"{url}/gemm.onnx", digest(root / "gemm.onnx")))
    hub.kubectl("wait", "-n", namespace, "mlmodel/after-restart", "--for=condition=Ready", "--timeout=90s")
    after = hub.get("mlmodel", "kept", "-n", namespace)["status"]
    assert after["artifact"]["fetchedAt"] == before["artifact"]["fetchedAt"]
    assert after["conditions"] == before["conditions"]
