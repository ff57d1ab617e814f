"""oci:// model artifacts on real registries: `edgeline model push` uploads a real ONNX file to
a real registry (Debian's docker-registry, the CNCF distribution registry the dev environment
runs), the operator's fetch path gets exactly those bytes back by manifest digest, and a pull
site's cache gets them through a second registry configured as a pull-through mirror, even
after the origin registry is gone (the site's WAN is down).

No Kubernetes cluster is needed; a missing docker-registry fails these tests, it does not skip.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from edgeline.agent import cache
from edgeline.api.edgedeployment import RevisionRef
from edgeline.artifacts import errors
from edgeline.artifacts.fetch import Limits, fetch_artifact
from edgeline.artifacts.validation import validate_artifact
from edgeline.settings import Settings
from tests.helpers import onnx_models, runtime_models
from tests.helpers.registry import RunningRegistry, free_port, push
from tests.helpers.waiting import wait_for

# The operator's own fetch path, allowed to reach loopback as the dev environment's operator is.
OPERATOR = Settings(artifact_allowed_cidrs="127.0.0.1/32", artifact_retries=1)


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    running = RunningRegistry(tmp_path_factory.mktemp("origin"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "defect-detector-1.0.0.onnx"
    path.write_bytes(runtime_models.sample_model("1.0.0").read_bytes())
    return path


@pytest.fixture(scope="module")
def pushed(origin, model) -> dict:
    return push(model, f"oci://{origin.address}/models/defect-detector:1.0.0")


def test_push_prints_a_digest_pinned_reference_and_the_files_sha256(origin, model, pushed):
    assert pushed["uri"].startswith(f"oci://{origin.address}/models/defect-detector@sha256:")
    assert pushed["sha256"] == onnx_models.file_digest(model)
    assert pushed["sizeBytes"] == model.stat().st_size
    # The tag points at the same manifest, and the manifest is an artifact manifest of one layer.
    request = urllib.request.Request(f"{origin.url}/v2/models/defect-detector/manifests/1.0.0",
                                     headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        manifest = json.loads(response.read())
        assert response.headers["Docker-Content-Digest"] == pushed["uri"].rsplit("@", 1)[1]
    assert manifest["artifactType"] == "application/vnd.edgeline.model.v1"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    assert [(layer["mediaType"], layer["digest"]) for layer in manifest["layers"]] == [
        ("application/vnd.edgeline.model.onnx.v1", pushed["sha256"])]
    # Pushing the same file again gives the same digest: nothing in the manifest changes by itself.
    assert push(model, f"oci://{origin.address}/models/defect-detector:again")["uri"] == pushed["uri"]


def test_the_operator_fetches_and_inspects_the_pinned_artifact(pushed, tmp_path):
    outcome = validate_artifact(pushed["uri"], pushed["sha256"], settings=OPERATOR.model_copy(
        update={"artifact_dir": tmp_path}))
    assert outcome.error is None, outcome.error
    assert outcome.fetch.sha256 == pushed["sha256"]
    assert [t.name for t in outcome.inspection.inputs] == ["image"]


def test_a_wrong_artifact_sha256_is_refused_with_both_digests(pushed, tmp_path):
    wrong = "sha256:" + "0" * 64
    outcome = validate_artifact(pushed["uri"], wrong, settings=OPERATOR.model_copy(update={"artifact_dir": tmp_path}))
    assert outcome.reason == "DigestMismatch"
    assert pushed["sha256"] in outcome.message and wrong in outcome.message
    # Told by the manifest, before any byte of the model was downloaded.
    assert "the model layer of oci://" in outcome.message


def test_a_tag_only_reference_is_refused_without_fetching(origin, pushed, tmp_path):
    with pytest.raises(errors.ReferenceInvalid) as err:
        fetch_artifact(f"oci://{origin.address}/models/defect-detector:1.0.0", tmp_path / "m.onnx",
                       limits=Limits.for_operator(OPERATOR))
    assert "names a tag, not a manifest digest" in err.value.message


def test_the_fetch_policy_guards_registry_hosts(pushed, tmp_path):
    """Without loopback allowed (a production operator), the same reference is refused."""
    with pytest.raises(errors.AddressNotAllowed):
        fetch_artifact(pushed["uri"], tmp_path / "m.onnx", limits=Limits.for_operator(Settings()))


def test_a_manifest_digest_the_registry_does_not_have_is_not_found(origin, tmp_path):
    with pytest.raises(errors.NotFound):
        fetch_artifact(f"oci://{origin.address}/models/defect-detector@sha256:{'1' * 64}", tmp_path / "m.onnx",
                       limits=Limits.for_operator(OPERATOR))


def test_credentials_are_never_sent_to_a_plain_http_registry(pushed, tmp_path):
    with pytest.raises(errors.CredentialsRefused):
        fetch_artifact(pushed["uri"], tmp_path / "m.onnx", limits=Limits.for_operator(OPERATOR),
                       credentials={"username": "user", "password": "secret"})


def test_the_edge_runtime_loads_an_oci_model(pushed, tmp_path):
    from edgeline.runtime.loader import fetch_verified, load_model

    fetched = fetch_verified(pushed["uri"], pushed["sha256"], tmp_path, limits=Limits(retries=1))
    loaded = load_model(fetched.path, fetched.sha256, "CPUExecutionProvider")
    answer = loaded.infer({"image": runtime_models.images(1)})
    assert answer["probabilities"].shape[0] == 1


def test_a_site_gets_the_model_through_its_mirror_and_keeps_getting_it_with_the_origin_gone(
        tmp_path_factory, model, capsys):
    """A pull site with a site-local pull-through registry: the first fetch fills the mirror, and
    once the origin (behind the WAN) is gone, a fresh cache folder still gets the model."""
    origin = RunningRegistry(tmp_path_factory.mktemp("wan-origin"))
    mirror = RunningRegistry(tmp_path_factory.mktemp("site-mirror"), upstream=origin.url)
    try:
        artifact = push(model, f"oci://{origin.address}/models/defect-detector:1.0.0")
        revision = RevisionRef(revision="r1", digest=artifact["sha256"], uri=artifact["uri"])
        assert artifact["sha256"] not in mirror.blobs()

        started = time.monotonic()
        direct = cache.ensure(tmp_path_factory.mktemp("direct"), revision)
        origin_s = time.monotonic() - started
        started = time.monotonic()
        first = cache.ensure(tmp_path_factory.mktemp("site-1"), revision, mirrors=(mirror.url,))
        cold_s = time.monotonic() - started
        assert first.read_bytes() == model.read_bytes() == direct.read_bytes()
        # The mirror stores what it passed on in the background, right after serving it.
        wait_for(lambda: artifact["sha256"] in mirror.blobs(), timeout=20, what="the mirror to keep the model")

        origin.stop()  # the WAN is down
        started = time.monotonic()
        second = cache.ensure(tmp_path_factory.mktemp("site-2"), revision, mirrors=(mirror.url,))
        warm_s = time.monotonic() - started
        assert second.read_bytes() == model.read_bytes()
        with pytest.raises(cache.CacheMiss):  # without the mirror there is no way to the model now
            cache.ensure(tmp_path_factory.mktemp("site-3"), revision)
        with capsys.disabled():
            print(f"\n  oci fetch of {model.stat().st_size} bytes: origin {origin_s * 1000:.0f} ms, "
                  f"through the mirror cold {cold_s * 1000:.0f} ms, warm with the origin gone "
                  f"{warm_s * 1000:.0f} ms")
    finally:
        mirror.stop()
        origin.stop()


def test_a_dead_mirror_falls_back_to_the_origin(origin, pushed, tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    revision = RevisionRef(revision="r1", digest=pushed["sha256"], uri=pushed["uri"])
    found = cache.ensure(tmp_path, revision, mirrors=(dead,))
    assert onnx_models.file_digest(found) == pushed["sha256"]


def test_a_mirror_of_another_registry_cannot_hand_out_other_bytes(tmp_path_factory, model, origin, pushed):
    """A mirror that proxies some other registry answers 404 for this reference: the site falls
    back to the origin, and the digest decides what is kept."""
    elsewhere = RunningRegistry(tmp_path_factory.mktemp("elsewhere"))
    other = RunningRegistry(tmp_path_factory.mktemp("other-mirror"), upstream=elsewhere.url)
    try:
        other_file = tmp_path_factory.mktemp("other") / "defect-detector-2.0.0.onnx"
        other_file.write_bytes(runtime_models.sample_model("2.0.0").read_bytes())
        push(other_file, f"oci://{elsewhere.address}/models/defect-detector:1.0.0")  # same name, other bytes
        revision = RevisionRef(revision="r1", digest=pushed["sha256"], uri=pushed["uri"])
        found = cache.ensure(tmp_path_factory.mktemp("site"), revision, mirrors=(other.url,))
        assert found.read_bytes() == model.read_bytes()
    finally:
        other.stop()
        elsewhere.stop()
