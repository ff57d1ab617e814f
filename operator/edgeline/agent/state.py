"""What the agent keeps on the site's disk, so that a restart without the WAN loses nothing:
the last assignments seen from the hub, what runs (and since when), the reverts done here and
the rollbacks not yet acknowledged by the hub. Written atomically (write, fsync, rename)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgeline.api.edgedeployment import RevisionRef
from edgeline.domain.site_reports import SiteRollback
from edgeline.domain.site_schedule import HeldRollback


@dataclass
class Running:
    revision: RevisionRef
    since: float            # epoch seconds when the site switched to it
    namespace: str = ""     # where its objects are on the site
    owner: tuple[str, str, str] = ("", "", "")   # the EdgeDeployment's namespace, name and uid (owner labels)


@dataclass
class SiteState:
    assignments: dict[str, str] = field(default_factory=dict)      # object name -> assignment JSON
    running: dict[str, Running] = field(default_factory=dict)
    reverted: dict[str, dict[str, str]] = field(default_factory=dict)   # object -> {bad revision: restored}
    rollbacks: dict[str, list[SiteRollback]] = field(default_factory=dict)  # object -> not yet acknowledged
    held: dict[str, HeldRollback] = field(default_factory=dict)     # object -> revert the schedule holds

    def to_json(self) -> str:
        return json.dumps({
            "assignments": self.assignments,
            "running": {k: {"revision": v.revision.dump(), "since": v.since, "namespace": v.namespace,
                            "owner": list(v.owner)}
                        for k, v in self.running.items()},
            "reverted": self.reverted,
            "rollbacks": {k: [asdict(r) for r in v] for k, v in self.rollbacks.items()},
            "held": {k: v.dump() for k, v in self.held.items()}}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SiteState:
        data = json.loads(text)
        return cls(
            assignments=dict(data.get("assignments") or {}),
            running={k: Running(RevisionRef.model_validate(v["revision"]), float(v["since"]), v.get("namespace", ""),
                             tuple(v.get("owner") or ("", "", "")))
                     for k, v in (data.get("running") or {}).items()},
            reverted={k: dict(v) for k, v in (data.get("reverted") or {}).items()},
            rollbacks={k: [SiteRollback(**r) for r in v] for k, v in (data.get("rollbacks") or {}).items()},
            held={k: HeldRollback.load(v) for k, v in (data.get("held") or {}).items()})


def load(path: Path) -> SiteState:
    try:
        return SiteState.from_json(path.read_text())
    except FileNotFoundError:
        return SiteState()


def save(path: Path, state: SiteState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    with open(temporary, "w") as out:
        out.write(state.to_json())
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
