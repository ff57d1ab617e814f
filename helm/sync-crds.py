#!/usr/bin/env python3
"""Copies what the chart takes from elsewhere in the repository into helm/edgeline/.

Helm reads only files inside the chart, so the sources of truth are copied in:
  crds/*.yaml                               -> helm/edgeline/crds/            (installed before the templates)
  manifests/monitoring/prometheusrule.yaml  -> helm/edgeline/files/         (template prometheusrule.yaml)
  manifests/rbac/user-roles.yaml            -> helm/edgeline/files/         (template user-roles.yaml)
  manifests/policies/promotions.yaml        -> helm/edgeline/files/         (template promotions.yaml)
  manifests/policies/approvals.yaml         -> helm/edgeline/files/         (template approvals.yaml)

    python helm/sync-crds.py           # copy
    python helm/sync-crds.py --check   # exit 1 and name the files that differ (tests/integration/test_chart.py runs this)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "helm" / "edgeline"
HEADER = "# Copied by helm/sync-crds.py from {source}; edit the source, then run the script.\n"


def copies() -> dict[Path, str]:
    """Target path -> the content it must have."""
    out: dict[Path, str] = {}
    for crd in sorted((ROOT / "crds").glob("*.yaml")):
        out[CHART / "crds" / crd.name] = HEADER.format(source=f"crds/{crd.name}") + crd.read_text()
    for source in ("manifests/monitoring/prometheusrule.yaml", "manifests/rbac/user-roles.yaml",
                   "manifests/policies/promotions.yaml",
                   "manifests/policies/approvals.yaml"):
        path = ROOT / source
        out[CHART / "files" / path.name] = HEADER.format(source=source) + path.read_text()
    return out


def differences() -> list[str]:
    wanted = copies()
    problems = [str(p.relative_to(ROOT)) for p, text in wanted.items()
                if not p.is_file() or p.read_text() != text]
    extra = [p for p in (CHART / "crds").glob("*.yaml") if p not in wanted]
    return problems + [f"{p.relative_to(ROOT)} (no longer in crds/)" for p in extra]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when something differs")
    args = parser.parse_args(argv)
    if args.check:
        problems = differences()
        for problem in problems:
            print(f"out of date: {problem} (run python helm/sync-crds.py)", file=sys.stderr)
        return 1 if problems else 0
    for stale in (CHART / "crds").glob("*.yaml"):
        if stale not in copies():
            stale.unlink()
    for path, text in copies().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(f"copied {len(copies())} files into {CHART.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
