"""The local OCI registry (Debian's docker-registry, the CNCF distribution registry) and
pushing images into it with skopeo.

It listens on 127.0.0.1 only and stores its data in the environment's state directory.
Every containerd of the environment pulls from it over plain HTTP (a hosts.toml per node),
which is fine on loopback and nowhere else.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

IMAGES_ENV = Path(".edgeline") / "images.env"


class RegistryError(RuntimeError):
    pass


def registry_binary() -> str:
    found = shutil.which("docker-registry")
    if not found:
        raise RegistryError("docker-registry is not installed: run `bash dev/install-node-tools.sh`")
    return found


def write_config(path: Path, storage: Path, port: int) -> None:
    storage.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# The local environment's registry (written by `edgeline dev up`).\n"
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )


def push(source: str, registry: str, repository: str, tag: str, log: Path) -> str:
    """skopeo copy `source` (oci:DIR:TAG or oci-archive:FILE) to registry/repository:tag."""
    skopeo = shutil.which("skopeo")
    if not skopeo:
        raise RegistryError("skopeo is not installed: run `bash dev/install-node-tools.sh`")
    target = f"{registry}/{repository}:{tag}"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.run(
            [skopeo, "copy", "--quiet", "--dest-tls-verify=false", "--retry-times", "2",
             source, f"docker://{target}"],
            stdout=out, stderr=subprocess.PIPE, text=True, timeout=600,
        )
    if proc.returncode != 0:
        raise RegistryError(f"pushing {source} to {target} failed: {proc.stderr.strip()}")
    return target


def read_images_env(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (quotes allowed), as the image build writes them."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip().removeprefix("export ").strip()
        values[key] = value.strip().strip("'\"")
    return values


def images_to_push(values: dict[str, str], base: Path) -> dict[str, tuple[str, str, str]]:
    """name -> (skopeo source, repository, tag) for every <NAME>_IMAGE with an archive beside it.
    The repository keeps the reference's path without its registry host:
    ghcr.io/edgeline/operator:0.1.0-abc -> edgeline/operator, 0.1.0-abc."""
    found = {}
    for key, reference in values.items():
        if not key.endswith("_IMAGE"):
            continue
        archive = values.get(key + "_ARCHIVE")
        if not archive:
            continue
        archive_path = Path(archive)
        if not archive_path.is_absolute():
            archive_path = base / archive_path
        if not archive_path.exists():
            raise RegistryError(f"{key}_ARCHIVE names {archive_path}, which does not exist")
        repository, tag = split_reference(reference)
        found[key.removesuffix("_IMAGE").lower()] = (f"oci-archive:{archive_path}", repository, tag)
    return found


def split_reference(reference: str) -> tuple[str, str]:
    name, _, digest = reference.partition("@")
    tag = "latest"
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    parts = name.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]
    return "/".join(parts), tag
