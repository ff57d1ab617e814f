"""The catalogue of bad input (tests/e2e/invalid/): one YAML file per case, whose `# expect: ...`
comments say what the API server's message must contain."""

from __future__ import annotations

from pathlib import Path

CASES = sorted((Path(__file__).resolve().parents[1] / "e2e" / "invalid").glob("*.yaml"))


def expectations(path: Path) -> list[str]:
    return [line.split("# expect:", 1)[1].strip() for line in path.read_text().splitlines()
            if line.startswith("# expect:")]
