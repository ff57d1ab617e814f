"""oci:// references, manifests and layer selection: the pure part of artifacts.oci."""

from __future__ import annotations

import hashlib
import ipaddress
import json

import pytest

from edgeline.artifacts import errors, oci
from edgeline.artifacts.fetch import Limits, fetch_artifact

DIGEST = "sha256:" + "a" * 64
LAYER = "sha256:" + "b" * 64


@pytest.mark.parametrize("text, expected", [
    (f"oci://registry.example/models/detector@{DIGEST}", ("registry.example", "models/detector", None, DIGEST)),
    (f"oci://127.0.0.1:5000/detector@{DIGEST}", ("127.0.0.1:5000", "detector", None, DIGEST)),
    (f"oci://[::1]:5000/a/b/c@{DIGEST}", ("[::1]:5000", "a/b/c", None, DIGEST)),
    (f"oci://registry.example/models/detector:1.2.0@{DIGEST}",
     ("registry.example", "models/detector", "1.2.0", DIGEST)),
    ("oci://localhost:5000/models/detector:1.2.0", ("localhost:5000", "models/detector", "1.2.0", None)),
    ("registry.example/models/my_model-v2.onnx", ("registry.example", "models/my_model-v2.onnx", None, None)),
])
def test_references_are_parsed(text, expected):
    ref = oci.parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == expected


@pytest.mark.parametrize("text, says", [
    ("oci://registry.example", "names no repository"),
    ("oci:///models/detector", "names no repository"),
    ("oci://registry.example/Models/Detector@" + DIGEST, "not a repository name"),
    ("oci://registry.example/models//detector", "not a repository name"),
    ("oci://registry.example/models/detector@sha256:abc", "not a manifest digest"),
    ("oci://registry.example/models/detector@md5:" + "a" * 32, "not a manifest digest"),
    ("oci://registry.example/models/detector:-bad", "not a valid tag"),
    ("oci://user@registry.example/models/detector", "not a registry"),
    ("oci://registry.example:99999/m", "invalid port"),
    ("https://registry.example/models/detector", "not an oci:// reference"),
])
def test_malformed_references_are_refused_with_the_reason(text, says):
    with pytest.raises(errors.ReferenceInvalid) as err:
        oci.parse_reference(text)
    assert says in err.value.message and not err.value.transient


def test_a_tag_alone_is_refused_for_fetching():
    with pytest.raises(errors.ReferenceInvalid) as err:
        oci.pinned("oci://registry.example/models/detector:1.2.0")
    assert "names a tag, not a manifest digest" in err.value.message
    assert f"oci://registry.example/models/detector@sha256:" in err.value.message
    assert oci.pinned(f"oci://registry.example/models/detector@{DIGEST}").digest == DIGEST


def test_a_reference_prints_back_and_pins_to_a_digest():
    ref = oci.parse_reference("oci://127.0.0.1:5000/models/detector:1.0")
    assert str(ref) == "oci://127.0.0.1:5000/models/detector:1.0"
    assert str(ref.pinned(DIGEST)) == f"oci://127.0.0.1:5000/models/detector@{DIGEST}"
    assert ref.host == "127.0.0.1"
    assert oci.parse_reference(f"oci://[::1]:5000/m@{DIGEST}").host == "::1"


def test_tag_only_fetches_fail_before_any_connection(tmp_path):
    with pytest.raises(errors.ReferenceInvalid):
        fetch_artifact("oci://198.18.0.1:1/models/detector:latest", tmp_path / "m.onnx", limits=Limits(retries=1))
    assert not (tmp_path / "m.onnx").exists()


# --- manifests -----------------------------------------------------------------------------------

def manifest(layers, **extra) -> dict:
    return {"schemaVersion": 2, "mediaType": oci.MANIFEST, "config": {"mediaType": oci.EMPTY_CONFIG,
            "digest": oci.EMPTY_DIGEST, "size": 2}, "layers": layers, **extra}


def layer(media_type=oci.MODEL_LAYER, digest=LAYER, size=10, title="model.onnx") -> dict:
    entry = {"mediaType": media_type, "digest": digest, "size": size}
    if title:
        entry["annotations"] = {oci.TITLE: title}
    return entry


def body_and_digest(document) -> tuple[bytes, str]:
    body = json.dumps(document).encode()
    return body, "sha256:" + hashlib.sha256(body).hexdigest()


def test_the_manifest_must_have_the_digest_it_is_asked_by():
    body, digest = body_and_digest(manifest([layer()]))
    assert oci.parse_manifest(body, digest, "shown")["layers"][0]["digest"] == LAYER
    with pytest.raises(errors.DigestMismatch) as err:
        oci.parse_manifest(body + b" ", digest, "oci://r/m@x")
    assert "the manifest of oci://r/m@x" in err.value.message


@pytest.mark.parametrize("document, says", [
    ({"schemaVersion": 2, "mediaType": oci.INDEX, "manifests": []}, "image index"),
    ({"schemaVersion": 2, "manifests": [{}]}, "image index"),
    ({"schemaVersion": 1, "name": "x"}, "schema 1 manifest"),
    ({"schemaVersion": 2, "mediaType": "application/vnd.example+json"}, "application/vnd.example+json manifest"),
    (["not", "an", "object"], "not a JSON object"),
])
def test_what_is_not_an_artifact_manifest_is_refused(document, says):
    body, digest = body_and_digest(document)
    with pytest.raises(errors.ManifestInvalid) as err:
        oci.parse_manifest(body, digest, "shown")
    assert says in err.value.message


def test_a_manifest_that_is_not_json_is_refused():
    body = b"<html>"
    with pytest.raises(errors.ManifestInvalid, match="not JSON"):
        oci.parse_manifest(body, "sha256:" + hashlib.sha256(body).hexdigest(), "shown")


@pytest.mark.parametrize("layers, chosen", [
    ([layer()], LAYER),
    ([layer(media_type="text/plain", digest="sha256:" + "c" * 64, title="README"), layer()], LAYER),
    # oras push's default media type, one .onnx file: taken
    ([layer(media_type="application/vnd.oci.image.layer.v1.tar", title="detector.onnx")], LAYER),
    ([layer(media_type="application/octet-stream", title="Detector.ONNX")], LAYER),
])
def test_the_model_layer_is_chosen(layers, chosen):
    assert oci.model_layer(manifest(layers), "shown").digest == chosen


@pytest.mark.parametrize("layers, says", [
    ([], "has no layers"),
    ([layer(), layer(digest="sha256:" + "c" * 64)], "2 layers of type"),
    ([layer(media_type="application/vnd.oci.image.layer.v1.tar+gzip", title="model.onnx")], "holds no model layer"),
    ([layer(media_type="application/octet-stream", title="weights.bin")], "holds no model layer"),
    ([layer(media_type="application/octet-stream", title=None)], "holds no model layer"),
    ([layer(media_type="application/octet-stream"), layer(media_type="text/plain", title="x.onnx",
                                                          digest="sha256:" + "c" * 64)], "holds no model layer"),
    ([layer(digest="sha256:xyz")], "without a valid mediaType"),
    ([layer(size=-1)], "without a valid mediaType"),
    ([layer(size=True)], "without a valid mediaType"),
    (["layer"], "not an object"),
])
def test_manifests_without_exactly_one_model_layer_are_refused(layers, says):
    with pytest.raises(errors.ManifestInvalid) as err:
        oci.model_layer(manifest(layers), "shown")
    assert says in err.value.message and not err.value.transient


def test_the_pushed_manifest_is_an_artifact_manifest_that_selects_its_layer_and_is_reproducible():
    body = oci.artifact_manifest(LAYER, 1452, "detector.onnx")
    assert body == oci.artifact_manifest(LAYER, 1452, "detector.onnx")  # same file, same digest
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    document = oci.parse_manifest(body, digest, "shown")
    assert document["artifactType"] == oci.ARTIFACT_TYPE
    assert document["config"] == {"mediaType": oci.EMPTY_CONFIG, "digest": oci.EMPTY_DIGEST, "size": 2,
                                  "data": "e30="}
    assert oci.EMPTY_DIGEST == "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    assert oci.model_layer(document, "shown") == oci.Layer(oci.MODEL_LAYER, LAYER, 1452, "detector.onnx")


@pytest.mark.parametrize("header, expected", [
    ('Bearer realm="https://auth.example/token",service="registry.example"',
     ("bearer", {"realm": "https://auth.example/token", "service": "registry.example"})),
    ('Basic realm="Registry Realm"', ("basic", {"realm": "Registry Realm"})),
    (None, None),
    ("", None),
])
def test_challenges_are_parsed(header, expected):
    assert oci.parse_challenge(header) == expected


@pytest.mark.parametrize("addresses, allowed", [
    (["127.0.0.1"], True),
    (["::1"], True),
    (["198.18.0.1"], True),
    (["127.0.0.1", "93.184.216.34"], False),   # one public address: https only
    (["93.184.216.34"], False),
    ([], False),
])
def test_plain_http_is_only_for_non_public_addresses(addresses, allowed):
    assert oci.plain_http_allowed([ipaddress.ip_address(a) for a in addresses]) == allowed
