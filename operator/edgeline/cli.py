"""The `edgeline` command. Each command group lives in `edgeline.commands.<group>`
and registers its own sub-commands, so that the groups stay independent."""

from __future__ import annotations

import argparse
import importlib
import sys

# Command groups, in the order `edgeline --help` lists them.
COMMAND_GROUPS = ["run", "dev", "model", "models", "approve", "status", "history", "rollback", "runtime"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgeline",
        description="Edgeline: ML models across cloud and K3s edge clusters.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        importlib.import_module(f"edgeline.commands.{group}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
