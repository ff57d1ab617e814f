"""`edgeline history NAME`: the revisions of an EdgeDeployment, newest first, with who
approved each and how it ended (Deployed, KnownGood, RolledBack, Superseded), the revision
waiting for approval, and the rollbacks."""

from __future__ import annotations

import argparse
import datetime as dt

from edgeline.commands.status import add_common_options, age, read_deployment, render


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("history", help="list an EdgeDeployment's revisions, approvals and outcomes",
                            description=__doc__.splitlines()[0])
    parser.add_argument("name", help="EdgeDeployment name")
    add_common_options(parser)
    parser.add_argument("-o", "--output", choices=["table", "json", "yaml"], default="table", help="output format")
    parser.set_defaults(func=run_history)


def _approvers(records: list[dict]) -> list[str]:
    return [r.get("user") for r in records or [] if r.get("user")]


def history_rows(status: dict) -> list[dict]:
    """One row per revision: pending first, then status.history (newest first)."""
    current = (status.get("currentRevision") or {}).get("revision")
    bad = set(status.get("badRevisions") or [])
    rows = []
    pending = status.get("pendingApproval") or {}
    pending_rev = (pending.get("revision") or {})
    if pending_rev.get("revision"):
        rows.append({"revision": pending_rev["revision"], "model": pending_rev.get("model"),
                     "version": pending_rev.get("version"), "deployedAt": None,
                     "outcome": "AwaitingApproval", "approvedBy": _approvers(pending.get("approvals")),
                     "current": False, "bad": pending_rev["revision"] in bad})
    for entry in status.get("history") or []:
        ref = entry.get("revision") or {}
        rows.append({"revision": ref.get("revision"), "model": ref.get("model"), "version": ref.get("version"),
                     "deployedAt": entry.get("deployedAt"), "outcome": entry.get("outcome") or "Deployed",
                     "approvedBy": _approvers(entry.get("approvals")), "current": ref.get("revision") == current,
                     "bad": ref.get("revision") in bad})
    return rows


def rollback_rows(status: dict) -> list[dict]:
    return [{"from": r.get("fromRevision"), "to": r.get("toRevision"), "mode": r.get("mode"),
             "alert": r.get("alert"), "clusters": r.get("clusters") or [], "appliedAt": r.get("appliedAt"),
             "latencyMs": r.get("latencyMs")} for r in status.get("rollbacks") or []]


def format_table(rows: list[list[str]]) -> str:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def format_history(revisions: list[dict], rollbacks: list[dict], now: dt.datetime) -> str:
    table = [["REVISION", "MODEL", "VERSION", "OUTCOME", "DEPLOYED", "APPROVED BY"]]
    for row in revisions:
        mark = "*" if row["current"] else " "
        outcome = row["outcome"] + (" (bad)" if row["bad"] and row["outcome"] != "RolledBack" else "")
        table.append([f"{mark}{row['revision']}", row["model"] or "-", row["version"] or "-", outcome,
                      f"{age(row['deployedAt'], now)} ago" if row["deployedAt"] else "-",
                      ", ".join(row["approvedBy"]) or "-"])
    out = format_table(table) if revisions else "no revisions yet"
    if rollbacks:
        lines = [format_table([["ROLLBACK", "MODE", "CLUSTERS", "WHEN", "ALERT"]] + [
            [f"{r['from']} -> {r['to']}", r["mode"] or "-", ", ".join(r["clusters"]) or "-",
             f"{age(r['appliedAt'], now)} ago" if r["appliedAt"] else "-", r["alert"] or "-"] for r in rollbacks])]
        out += "\n\n" + "\n".join(lines)
    return out + "\n\n* runs now. Roll back with: edgeline rollback NAME --to REVISION"


def run_history(args: argparse.Namespace) -> int:
    found = read_deployment(args)
    if found is None:
        return 1
    status = found[2].get("status") or {}
    revisions, rollbacks = history_rows(status), rollback_rows(status)
    if args.output == "table":
        print(format_history(revisions, rollbacks, dt.datetime.now(dt.timezone.utc)))
    else:
        print(render({"revisions": revisions, "rollbacks": rollbacks}, args.output))
    return 0
