"""Which EdgeDeployments use an MLModel, and as what, worked out from the deployments' status:
`current` (the revision the fleet converged on), `pending` (wanted or being rolled out, not
reached yet), `last-known-good` (where a rollback would go) and `pinned` (kept on some clusters
by a per-cluster rollback). The MLModel controller writes the result to MLModel status.usedBy
as "namespace/name (role, role)"; a model nobody names there is safe to delete."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

ROLES = ("current", "pending", "last-known-good", "pinned")


def uses(status: Mapping | None) -> dict[str, tuple[str, ...]]:
    """MLModel name -> the roles in which one EdgeDeployment (given its status) uses it."""
    status = status or {}
    found: dict[str, set[str]] = {}

    def add(ref: Mapping | None, role: str) -> None:
        mlmodel = (ref or {}).get("mlmodel")
        if mlmodel:
            found.setdefault(mlmodel, set()).add(role)

    current = (status.get("currentRevision") or {}).get("revision")
    add(status.get("currentRevision"), "current")
    rollout = status.get("rollout") or {}
    for ref in (status.get("desiredRevision"), rollout.get("target") if not rollout.get("completedAt") else None):
        if ref and ref.get("revision") != current:
            add(ref, "pending")
    add(status.get("lastKnownGood"), "last-known-good")
    for pin in status.get("pinned") or []:
        add(pin.get("revision"), "pinned")
    return {m: tuple(r for r in ROLES if r in roles) for m, roles in found.items()}


def entry(namespace: str, name: str, roles: Iterable[str]) -> str:
    return f"{namespace}/{name} ({', '.join(roles)})"


def writes(wanted: Mapping[str, Iterable[str]], recorded: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """MLModel name -> the usedBy to write, for the models whose recorded usedBy differs from the
    wanted one (a model no deployment uses any more gets an empty list)."""
    out = {}
    for model in set(wanted) | set(recorded):
        want = sorted(wanted.get(model, ()))
        if want != sorted(recorded.get(model, ())):
            out[model] = want
    return out
