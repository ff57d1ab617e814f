"""One JSON line per event on stderr, each naming the runtime it comes from, so that a log
collector on the edge (or `kubectl logs | jq`) can filter by model, version or event."""

from __future__ import annotations

import json
import sys
import threading
from datetime import datetime, timezone
from typing import TextIO

from edgeline import timestamps


class EventLog:
    def __init__(self, identity: dict[str, str], stream: TextIO | None = None):
        self.identity = dict(identity)
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()  # lines from the loader thread and the event loop never interleave

    def __call__(self, event: str, level: str = "info", **fields) -> None:
        record = {"time": timestamps.format_ms(datetime.now(timezone.utc)),
                  "level": level, "event": event, **self.identity, **fields}
        line = json.dumps(record, default=str, separators=(",", ":"))
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()
