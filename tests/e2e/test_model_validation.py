"""A data scientist registers model versions; Edgeline proves each is the exact,
well-formed artifact, or says precisely why not."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from tests.e2e.conftest import FILE_ARTIFACTS, STATE_DIR, wait_for
from tests.helpers import hostile_models, onnx_models
from tests.helpers.artifact_server import ArtifactServer, serve


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


def mlmodel(name, namespace, uri, sha256=None, artifact_extra=None, **spec):
    artifact = {"uri": uri, **({"sha256": sha256} if sha256 else {}), **(artifact_extra or {})}
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


# -- safe fetching (docs/security.md): what a namespace editor may not make the operator do --------

@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A server with hostile and external-data models, its request counts visible to the tests."""
    root = tmp_path_factory.mktemp("hostile")
    onnx_models.write(onnx_models.gemm_relu(), root / "gemm.onnx")
    onnx_models.write_with_external_data(onnx_models.gemm_relu(hidden=64), root / "external.onnx")
    hostile_models.memory_bomb(root / "memory-bomb.onnx", nodes=2_000_000)  # 4 MB, under the 5 MiB limit
    with ArtifactServer(root, drip_s=0.2) as server:
        yield server, root


def wait_reason(hub, namespace, name, phase, reason, timeout=90):
    def check():
        obj = hub.get("mlmodel", name, "-n", namespace)
        ready = condition(obj, "Ready")
        return obj if ready.get("reason") == reason and obj["status"].get("phase") == phase else None
    obj = wait_for(check, timeout=timeout, what=f"{name}: phase {phase} with reason {reason}")
    wait_for(lambda: any(e["reason"] == reason and e["type"] == "Warning" for e in hub.events(name, namespace)),
             timeout=20, what=f"a Warning Event {reason} for {name}")
    return obj


def test_file_uris_outside_the_allowed_folder_are_refused_without_a_trace_of_the_file(hub, operator, namespace):
    FILE_ARTIFACTS.mkdir(parents=True, exist_ok=True)
    onnx_models.write(onnx_models.gemm_relu(), FILE_ARTIFACTS / "gemm.onnx")
    hub.apply(mlmodel("from-folder", namespace, (FILE_ARTIFACTS / "gemm.onnx").as_uri()))
    hub.kubectl("wait", "-n", namespace, "mlmodel/from-folder", "--for=condition=Ready", "--timeout=90s")
    # The operator's own credentials: the kubeconfig it runs with.
    secret_file = STATE_DIR / "hub.kubeconfig"
    assert secret_file.is_file()
    hub.apply(mlmodel("steal-kubeconfig", namespace, secret_file.as_uri()))
    obj = wait_reason(hub, namespace, "steal-kubeconfig", "Invalid", "PathNotAllowed")
    assert "artifact" not in obj["status"]  # no size, no digest of the file
    assert "EDGELINE_ARTIFACT_FILE_ROOTS" in condition(obj, "Ready")["message"]


@pytest.mark.parametrize("case, path", [
    ("metadata", "http://169.254.169.254/latest/meta-data/"),
    ("other-loopback", "http://127.0.0.2:{port}/gemm.onnx"),
    ("cluster-service", "http://kubernetes.default.svc/api"),
    ("redirect-to-metadata", "{url}/redirect-to?url=http://169.254.169.254/latest/meta-data/"),
])
def test_non_public_addresses_are_refused_also_behind_a_redirect(hub, operator, namespace, hostile, case, path):
    server, _ = hostile
    hub.apply(mlmodel(case, namespace, path.format(port=server.port, url=server.url)))
    obj = wait_reason(hub, namespace, case, "Invalid", "AddressNotAllowed")
    assert "artifact" not in obj["status"] and "EDGELINE_ARTIFACT_ALLOWED" in condition(obj, "Ready")["message"]


def test_credentials_only_from_a_labelled_secret_over_https_never_a_service_account_token(
        hub, operator, namespace, hostile):
    server, _ = hostile
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "models-token", "namespace": namespace},
              "stringData": {"token": "secret-token"}}
    hub.apply(secret)
    https_uri = f"https://127.0.0.1:{server.port}/private/gemm.onnx"
    with_secret = {"credentialsSecretRef": {"name": "models-token"}}
    hub.apply(mlmodel("unlabelled", namespace, https_uri, artifact_extra=with_secret))
    obj = wait_reason(hub, namespace, "unlabelled", "Pending", "CredentialsUnavailable")
    assert 'edgeline.io/credentials: "true"' in condition(obj, "Ready")["message"]
    # Even a labelled Secret is not sent over plain http.
    hub.apply({**secret, "metadata": {**secret["metadata"], "labels": {"edgeline.io/credentials": "true"}}})
    hub.apply(mlmodel("over-http", namespace, f"{server.url}/private/gemm.onnx?over-http", artifact_extra=with_secret))
    wait_reason(hub, namespace, "over-http", "Invalid", "CredentialsRefused")
    assert server.hits["/private/gemm.onnx?over-http"] == 0
    # A ServiceAccount token, labelled or not, is never handed to an artifact server.
    hub.apply({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
               "metadata": {"name": "sa-token", "namespace": namespace,
                            "labels": {"edgeline.io/credentials": "true"},
                            "annotations": {"kubernetes.io/service-account.name": "default"}}})
    hub.apply(mlmodel("sa-token", namespace, https_uri, artifact_extra={"credentialsSecretRef": {"name": "sa-token"}}))
    obj = wait_reason(hub, namespace, "sa-token", "Invalid", "CredentialsRefused")
    assert "ServiceAccount token" in condition(obj, "Ready")["message"]


def test_external_data_files_are_verified_by_digest(hub, operator, namespace, hostile):
    server, root = hostile
    model_digest = digest(root / "external.onnx")
    hub.apply(mlmodel("unlisted", namespace, f"{server.url}/external.onnx", model_digest))
    obj = wait_reason(hub, namespace, "unlisted", "Invalid", "ExternalDataNotListed")
    assert "weights.bin" in condition(obj, "Ready")["message"]
    wrong = {"externalData": [{"path": "weights.bin", "sha256": "sha256:" + "3" * 64}]}
    hub.apply(mlmodel("wrong-weights", namespace, f"{server.url}/external.onnx", model_digest, artifact_extra=wrong))
    obj = wait_reason(hub, namespace, "wrong-weights", "Invalid", "DigestMismatch")
    assert "external data file weights.bin" in condition(obj, "Ready")["message"]
    listed = {"externalData": [{"path": "weights.bin", "sha256": digest(root / "weights.bin")}]}
    hub.apply(mlmodel("listed", namespace, f"{server.url}/external.onnx", model_digest, artifact_extra=listed))
    hub.kubectl("wait", "-n", namespace, "mlmodel/listed", "--for=condition=Ready", "--timeout=90s")
    assert hub.get("mlmodel", "listed", "-n", namespace)["status"]["inspection"]["externalData"] is True


def test_a_model_that_exhausts_validation_memory_is_invalid_and_the_operator_lives_on(
        hub, operator, namespace, hostile):
    server, root = hostile
    hub.apply(mlmodel("memory-bomb", namespace, f"{server.url}/memory-bomb.onnx"))
    obj = wait_reason(hub, namespace, "memory-bomb", "Invalid", "ValidationResourceExhausted", timeout=120)
    assert "EDGELINE_VALIDATION_MEMORY_BYTES" in condition(obj, "Ready")["message"]
    assert operator.proc.poll() is None  # the operator itself was not touched
    hub.apply(mlmodel("after-bomb", namespace, f"{server.url}/gemm.onnx", digest(root / "gemm.onnx")))
    hub.kubectl("wait", "-n", namespace, "mlmodel/after-bomb", "--for=condition=Ready", "--timeout=90s")
    assert server.hits["/memory-bomb.onnx"] == 1  # not retried


def test_a_model_whose_validation_never_survives_the_operator_is_given_up(hub, operator, namespace, hostile):
    """The operator dies (here: SIGKILL) during every validation of one model. After three
    unfinished attempts the model is Invalid instead of being tried on every start forever."""
    server, _ = hostile
    hub.apply(mlmodel("crash-loop", namespace, f"{server.url}/drip?crash-loop"))
    for attempt in (1, 2, 3):
        wait_for(lambda: (hub.get("mlmodel", "crash-loop", "-n", namespace).get("status", {})
                          .get("validation", {}).get("unfinished") == attempt
                          and server.hits["/drip?crash-loop"] == attempt),
                 timeout=60, what=f"validation attempt {attempt} under way")
        operator.kill()
        operator.start()
    obj = wait_reason(hub, namespace, "crash-loop", "Invalid", "ValidationAbandoned")
    assert "3 times" in condition(obj, "Ready")["message"]
    assert server.hits["/drip?crash-loop"] == 3
