"""Who changed an EdgeDeployment's spec, as the API server recorded it (docs/approvals.md).

A MutatingAdmissionPolicy appends one line `<generation> <username>` to the annotation
`edgeline.io/authors` on every request that changes the spec, with the username from
`request.userInfo`; a ValidatingAdmissionPolicy refuses any other change of it. The four-eyes
rule compares approvers with everyone who changed the spec since the generation the last
approved revision was rolled out from, not only with the last writer."""

from __future__ import annotations

AUTHORS = "edgeline.io/authors"


def parse(annotation: str | None) -> list[tuple[int, str]]:
    """(generation, username) per line; lines that are not of that form are skipped."""
    entries = []
    for line in (annotation or "").splitlines():
        generation, _, user = line.strip().partition(" ")
        if generation.isdigit() and user:
            entries.append((int(generation), user))
    return entries


def authors_since(entries: list[tuple[int, str]], generation: int | None) -> list[str]:
    """Distinct users who changed the spec after `generation` (None: ever), in order of their
    first change then."""
    users: list[str] = []
    for made, user in entries:
        if (generation is None or made > generation) and user not in users:
            users.append(user)
    return users


def last_author(entries: list[tuple[int, str]]) -> str | None:
    return entries[-1][1] if entries else None
