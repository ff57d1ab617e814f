"""Reading .edgeline/images.env and naming images in the local registry."""

import pytest

from edgeline.devenv.registry import RegistryError, images_to_push, read_images_env, split_reference


@pytest.mark.parametrize("reference, expected", [
    ("ghcr.io/edgeline/operator:0.1.0-abc", ("edgeline/operator", "0.1.0-abc")),
    ("localhost:5000/edgeline/edge-runtime:1", ("edgeline/edge-runtime", "1")),
    ("edgeline/operator", ("edgeline/operator", "latest")),
    ("127.0.0.1:4000/x/y:2@sha256:" + "0" * 64, ("x/y", "2")),
])
def test_split_reference(reference, expected):
    assert split_reference(reference) == expected


def test_images_env_lines_with_quotes_exports_and_comments(tmp_path):
    env = tmp_path / "images.env"
    env.write_text("# built by make images\nexport OPERATOR_IMAGE='ghcr.io/edgeline/operator:0.1.0-abc'\n"
                   'OPERATOR_IMAGE_ARCHIVE="build/operator.tar"\n\nRUNTIME_IMAGE=ghcr.io/edgeline/edge-runtime:0.1.0\n')
    assert read_images_env(env) == {
        "OPERATOR_IMAGE": "ghcr.io/edgeline/operator:0.1.0-abc",
        "OPERATOR_IMAGE_ARCHIVE": "build/operator.tar",
        "RUNTIME_IMAGE": "ghcr.io/edgeline/edge-runtime:0.1.0",
    }


def test_images_with_an_archive_are_pushed_relative_to_the_checkout(tmp_path):
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "operator.tar").write_bytes(b"")
    values = {"OPERATOR_IMAGE": "ghcr.io/edgeline/operator:0.1.0-abc", "OPERATOR_IMAGE_ARCHIVE": "build/operator.tar",
              "RUNTIME_IMAGE": "ghcr.io/edgeline/edge-runtime:0.1.0"}
    assert images_to_push(values, tmp_path) == {
        "operator": (f"oci-archive:{tmp_path}/build/operator.tar", "edgeline/operator", "0.1.0-abc"),
    }


def test_a_missing_archive_is_a_clear_error(tmp_path):
    with pytest.raises(RegistryError, match="does not exist"):
        images_to_push({"RUNTIME_IMAGE": "a/b:1", "RUNTIME_IMAGE_ARCHIVE": "/nope.tar"}, tmp_path)
