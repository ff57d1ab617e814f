"""Alerts the receiver (controllers.alerts) wrote onto an EdgeDeployment or a DataPipeline as
annotations: read back by that object's loop, and removed once status holds what they led
to (a crash in between repeats an idempotent decision, never loses an alert)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from lightkube.types import PatchType

from edgeline.clusters.connections import hub_client
from edgeline.clusters.resources import RESOURCES
from edgeline.controllers.alerts import ANNOTATION_PREFIX
from edgeline.domain.rollback import Alert

UNREADABLE = "unreadable"


@dataclass(frozen=True)
class Receipt:
    annotation: str         # the annotation that carried it
    alert: Alert            # named "unreadable" when the annotation could not be read
    received: str           # receivedAt as the receiver wrote it ("unreadable" when unreadable)

    @property
    def key(self) -> str:
        """Unique per delivery: the same alert received again is a new receipt."""
        if self.received == UNREADABLE:
            return f"{self.annotation}@{UNREADABLE}"
        return f"{self.annotation[len(ANNOTATION_PREFIX):]}@{self.received}"


def receipts(metadata: dict) -> list[Receipt]:
    """The object's alert annotations, oldest first."""
    found = []
    for key, value in (metadata.get("annotations") or {}).items():
        if not key.startswith(ANNOTATION_PREFIX):
            continue
        try:
            data = json.loads(value)
            alert = Alert(name=str(data["name"]), labels=dict(data["labels"]), fingerprint=data["fingerprint"],
                          starts_at=data.get("startsAt", ""), received_at=float(data["receivedAt"]))
            found.append(Receipt(key, alert, str(data["receivedAt"])))
        except (ValueError, KeyError, TypeError):
            found.append(Receipt(key, Alert(name=UNREADABLE, labels={}, fingerprint=key, starts_at="",
                                            received_at=0.0), UNREADABLE))
    return sorted(found, key=lambda r: r.alert.received_at)


async def remove(plural: str, name: str, namespace: str, annotations: list[str]) -> None:
    """Removes handled alert annotations (call only after status records what they led to)."""
    if annotations:
        await hub_client().patch(RESOURCES[plural], name, {"metadata": {"annotations": {a: None for a in annotations}}},
                                 namespace=namespace, patch_type=PatchType.MERGE)
