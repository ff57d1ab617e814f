"""The `edgeline` command imports only the group it runs: `edgeline runtime serve` starts in the
runtime image, where the operator's packages are not installed."""

from __future__ import annotations

import subprocess
import sys

import pytest

import edgeline
from edgeline import cli

# Run in a child: the test process has imported everything already.
PROBE = """
import sys
from edgeline.cli import build_parser
build_parser(sys.argv[1:])
print(" ".join(sorted(m for m in ("kopf", "lightkube", "onnx", "yaml", "edgeline.controllers") if m in sys.modules)))
"""


def _imported_by(*argv: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], check=True, capture_output=True, text=True).stdout
    return set(out.split())


def test_the_runtime_group_imports_no_operator_package():
    assert _imported_by("runtime", "serve") == set()


def test_a_cluster_group_imports_what_it_runs_with():
    assert "yaml" in _imported_by("status", "demo")


def test_help_lists_every_group_without_importing_them(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    listed = capsys.readouterr().out
    assert all(group in listed for group in cli.COMMAND_GROUPS)
    assert _imported_by("--help") == set()


def test_a_group_whose_extra_is_missing_says_which_extra(monkeypatch, capsys):
    def missing(name, *args, **kwargs):
        raise ModuleNotFoundError("No module named 'kopf'", name="kopf")

    monkeypatch.setattr(cli.importlib, "import_module", missing)
    assert cli.main(["run"]) == 2
    assert "pip install 'edgeline[operator]'" in capsys.readouterr().err


def test_the_help_table_says_what_each_group_module_says():
    # The groups' own parsers (all imported) and the table give the same `edgeline --help`.
    assert cli.build_parser().format_help() == cli.build_parser([]).format_help()


def test_version_is_the_packages(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.strip() == f"edgeline {edgeline.__version__}"
