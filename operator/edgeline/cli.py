"""The `edgeline` command. Each command group lives in `edgeline.commands.<group>`
and registers its own sub-commands, so that the groups stay independent.

Only the group that is asked for is imported: the edge runtime image carries the `runtime`
extra alone (no kopf, Kubernetes clients or onnx), and `edgeline runtime serve` must start
there; the other groups appear in `edgeline --help` from the table below."""

from __future__ import annotations

import argparse
import importlib
import sys

from edgeline import __version__

# Command groups, in the order `edgeline --help` lists them: name -> (help, extra it needs).
COMMAND_GROUPS = {
    "run": ("run the operator (kopf) against the current cluster", "operator"),
    "dev": ("local hub and edge clusters for development and tests", "operator"),
    "model": ("work with model artifacts", "operator"),
    "models": ("list MLModels with phase, version, opset and size", "operator"),
    "approve": ("approve the revision an EdgeDeployment waits for", "operator"),
    "promote": ("promote an MLModel to staging or production (recorded)", "operator"),
    "status": ("show an EdgeDeployment as a tree of waves and clusters", "operator"),
    "history": ("list an EdgeDeployment's revisions, approvals and outcomes", "operator"),
    "rollback": ("roll an EdgeDeployment back to an earlier revision", "operator"),
    "runtime": ("the edge inference server", "runtime"),
    "cluster": ("register pull sites (edgeline cluster join)", "operator"),
    "agent": ("the pull site's agent (dials out to the hub)", "agent"),
}


class MissingExtra(Exception):
    """A command group needs a package of an extra that is not installed."""


def _requested_group(argv: list[str]) -> str | None:
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMAND_GROUPS else None
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser with the requested group registered by its module (all groups if argv is None)
    and the others as entries that only name themselves in the help."""
    parser = argparse.ArgumentParser(
        prog="edgeline",
        description="Edgeline: ML models across cloud and K3s edge clusters.",
    )
    parser.add_argument("--version", action="version", version=f"edgeline {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = set(COMMAND_GROUPS) if argv is None else {_requested_group(argv)}
    for group, (text, extra) in COMMAND_GROUPS.items():
        if group not in wanted:
            sub.add_parser(group, help=text)
            continue
        try:
            module = importlib.import_module(f"edgeline.commands.{group}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.split(".")[0] != "edgeline":
                raise MissingExtra(f"edgeline {group} needs the Python package {exc.name.split('.')[0]!r}, "
                                   f"which comes with the {extra!r} extra: pip install 'edgeline[{extra}]'") from exc
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        parser = build_parser(argv)
    except MissingExtra as exc:
        print(exc, file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
