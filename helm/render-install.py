#!/usr/bin/env python3
"""Renders manifests/install.yaml from the chart with default values:

    helm template edgeline helm/edgeline --namespace edgeline-system --include-crds

    python helm/render-install.py           # write manifests/install.yaml
    python helm/render-install.py --check   # exit 1 when it differs (tests/integration/test_chart.py runs this)

helm: $HELM, else the pinned build from dev/build-tools.sh
(~/.cache/edgeline/bin/helm-<HELM_VERSION>), else helm on PATH.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "manifests" / "install.yaml"
ARGS = ["template", "edgeline", "helm/edgeline", "--namespace", "edgeline-system", "--include-crds"]
HEADER = ("# Edgeline, everything in one file: the chart helm/edgeline rendered with default values.\n"
          "# Do not edit; regenerate with `python helm/render-install.py` (docs/install.md).\n"
          "#   kubectl apply --server-side -f manifests/install.yaml\n")


def helm_binary() -> str:
    if os.environ.get("HELM"):
        return os.environ["HELM"]
    versions = dict(line.split("=", 1) for line in (ROOT / "dev" / "versions.env").read_text().splitlines()
                    if "=" in line and not line.lstrip().startswith("#"))
    cache = Path(os.environ.get("EDGELINE_CACHE", Path.home() / ".cache" / "edgeline"))
    pinned = cache / "bin" / f"helm-{versions['HELM_VERSION'].strip()}"
    if pinned.is_file():
        return str(pinned)
    found = shutil.which("helm")
    if not found:
        sys.exit(f"render-install: helm not found ({pinned}); build it with `bash dev/build-tools.sh helm`")
    return found


def rendered() -> str:
    proc = subprocess.run([helm_binary(), *ARGS], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        sys.exit(f"render-install: helm template failed:\n{proc.stderr}")
    return HEADER + proc.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when it differs")
    args = parser.parse_args(argv)
    text = rendered()
    if args.check:
        if not TARGET.is_file() or TARGET.read_text() != text:
            print("manifests/install.yaml is out of date: run python helm/render-install.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    print(f"wrote {TARGET.relative_to(ROOT)} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
