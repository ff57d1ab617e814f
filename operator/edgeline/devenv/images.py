"""Tiny images the local nodes need, built by the project itself (no registry to pull from).

`pause` is the Pod sandbox image containerd pins; `hello` is a small HTTP server that tests
run on the real nodes. Each is one static C binary (gcc -static, sources in dev/node/) in a
FROM-scratch image, written as an OCI image layout by hand: fixed file modes, owners and
timestamps, so the same source and compiler give the same image digest. Layouts are cached
under ~/.cache/edgeline/node-images/<name>-<key>, the key hashing the source, the compiler
version and this builder's format version.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

FORMAT_VERSION = "1"
EPOCH = "1970-01-01T00:00:00Z"


@dataclass(frozen=True)
class StaticImage:
    name: str  # repository name under edgeline/
    source: str  # path relative to the repository root
    user: str  # numeric user:group the container runs as
    exposed_port: int | None = None


IMAGES = {
    "pause": StaticImage("pause", "dev/node/pause.c", "65535:65535"),
    "hello": StaticImage("hello", "dev/node/hello.c", "65532:65532", exposed_port=8080),
}


@dataclass(frozen=True)
class Built:
    layout: Path  # an OCI image layout directory
    tag: str  # the tag inside the layout (and in registries)
    digest: str  # the manifest digest

    @property
    def skopeo_source(self) -> str:
        return f"oci:{self.layout}:{self.tag}"


class ImageBuildError(RuntimeError):
    pass


def _compiler_version() -> str:
    try:
        out = subprocess.run(["gcc", "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ImageBuildError("gcc is not installed: run `bash dev/install-node-tools.sh`") from exc
    return out.splitlines()[0]


def build(image: StaticImage, repo_root: Path, cache: Path) -> Built:
    source = (repo_root / image.source).read_bytes()
    key = hashlib.sha256(b"\0".join([
        FORMAT_VERSION.encode(), _compiler_version().encode(), image.user.encode(),
        str(image.exposed_port).encode(), source,
    ])).hexdigest()[:16]
    tag = f"v{FORMAT_VERSION}-{key[:12]}"
    # Not ~/.cache/edgeline/images: dev/build-images.sh owns and prunes that directory.
    layout = cache / "node-images" / f"{image.name}-{key}"
    if (layout / "index.json").is_file():
        return Built(layout, tag, json.loads((layout / "index.json").read_text())["manifests"][0]["digest"])

    work = layout.with_name(layout.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    (work / "blobs" / "sha256").mkdir(parents=True)
    binary = work / image.name
    compiled = subprocess.run(
        ["gcc", "-static", "-Os", "-s", "-o", str(binary), str(repo_root / image.source)],
        capture_output=True, text=True,
    )
    if compiled.returncode != 0:
        raise ImageBuildError(f"compiling {image.source} failed:\n{compiled.stderr}")

    layer_tar = _layer(image.name, binary.read_bytes())
    binary.unlink()
    layer_gz = _gzip(layer_tar)
    layer = _blob(work, layer_gz, "application/vnd.oci.image.layer.v1.tar+gzip")
    container_config: dict = {
        "Entrypoint": [f"/{image.name}"],
        "User": image.user,
        "WorkingDir": "/",
    }
    if image.exposed_port:
        container_config["ExposedPorts"] = {f"{image.exposed_port}/tcp": {}}
    config = _blob(work, _json({
        "architecture": "amd64",
        "os": "linux",
        "created": EPOCH,
        "config": container_config,
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()]},
        "history": [{"created": EPOCH, "created_by": f"edgeline: gcc -static {image.source}"}],
    }), "application/vnd.oci.image.config.v1+json")
    manifest = _blob(work, _json({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": [layer],
        "annotations": {"org.opencontainers.image.source": f"edgeline {image.source}",
                        "org.opencontainers.image.created": EPOCH},
    }), "application/vnd.oci.image.manifest.v1+json")
    (work / "oci-layout").write_bytes(_json({"imageLayoutVersion": "1.0.0"}))
    (work / "index.json").write_bytes(_json({
        "schemaVersion": 2,
        "manifests": [{**manifest, "annotations": {"org.opencontainers.image.ref.name": tag}}],
    }))
    shutil.rmtree(layout, ignore_errors=True)
    work.rename(layout)
    return Built(layout, tag, manifest["digest"])


def _json(value: dict) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _blob(layout: Path, data: bytes, media_type: str) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def _layer(name: str, binary: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = len(binary)
        info.mode = 0o755
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        tar.addfile(info, io.BytesIO(binary))
    return out.getvalue()


def _gzip(data: bytes) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as gz:
        gz.write(data)
    return out.getvalue()
