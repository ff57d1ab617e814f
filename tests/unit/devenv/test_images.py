"""The pause and hello images are built reproducibly (same source, same digest)."""

import json
import shutil

from edgeline.devenv import images
from edgeline.devenv.environment import repo_root


def test_the_same_source_gives_the_same_digest(tmp_path):
    first = images.build(images.IMAGES["pause"], repo_root(), tmp_path / "a")
    second = images.build(images.IMAGES["pause"], repo_root(), tmp_path / "b")
    assert first.digest == second.digest and first.tag == second.tag
    # A cached layout is reused as it is.
    assert images.build(images.IMAGES["pause"], repo_root(), tmp_path / "a") == first
    shutil.rmtree(tmp_path / "b")


def test_the_image_is_one_static_binary_run_as_non_root(tmp_path):
    built = images.build(images.IMAGES["hello"], repo_root(), tmp_path)
    index = json.loads((built.layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((built.layout / "blobs" / "sha256" / manifest_digest).read_text())
    config = json.loads((built.layout / "blobs" / "sha256" / manifest["config"]["digest"].split(":")[1]).read_text())
    assert config["config"]["Entrypoint"] == ["/hello"]
    assert config["config"]["User"] == "65532:65532"
    assert len(manifest["layers"]) == 1
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == built.tag
