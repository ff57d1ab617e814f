"""A revision names what runs where: the model bytes (digest and URI), the runtime spec and,
when given, the placement and rollout (`covers`), so that an approval of a revision is an
approval of all of them (docs/approvals.md). Same inputs, same revision, on every machine and
after every restart."""

from __future__ import annotations

import hashlib
import json

from edgeline.api.edgedeployment import Runtime


def revision_of(digest: str, uri: str, runtime: Runtime, external_data: dict[str, str] | None = None,
                variants_digest: str | None = None, covers: dict | None = None) -> str:
    # External data digests are part of the model's bytes; absent, the hash is what it always was.
    # So are the model's variants (domain.variants.variants_digest): approving a revision approves them all.
    fields = {"digest": digest, "uri": uri, "runtime": runtime.dump(), **({"externalData": external_data}
                                                                        if external_data else {}),
              **({"variants": variants_digest} if variants_digest else {})}
    if covers:          # where and how it rolls out: widening either needs a new approval
        fields["covers"] = covers
    payload = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:10]
