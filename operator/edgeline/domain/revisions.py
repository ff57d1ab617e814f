"""A revision names what runs on a cluster: the model bytes (digest and URI) and the
runtime spec. Same inputs, same revision, on every machine and after every restart."""

from __future__ import annotations

import hashlib
import json

from edgeline.api.edgedeployment import Runtime


def revision_of(digest: str, uri: str, runtime: Runtime) -> str:
    payload = json.dumps({"digest": digest, "uri": uri, "runtime": runtime.dump()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:10]
