"""`edgeline run`: the operator itself, against the cluster of the current kubeconfig."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run the operator (kopf) against the current cluster")
    run.add_argument("--namespace", action="append", default=[],
                     help="watch only this namespace (repeatable); default: all namespaces")
    run.add_argument("--liveness", default="http://0.0.0.0:8081/healthz",
                     help="liveness endpoint served by the operator ('' to disable)")
    run.add_argument("--verbose", action="store_true", help="debug logging")
    run.set_defaults(func=_run)


def _run(args) -> int:
    from edgeline.controllers.operator import run_operator

    return run_operator(namespaces=args.namespace, liveness=args.liveness or None, verbose=args.verbose)
