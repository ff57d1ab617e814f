"""Who changed an EdgeDeployment's spec, as the API server recorded it (docs/approvals.md).

A MutatingAdmissionPolicy appends one line `<generation> <username>` to the annotation
`edgeline.io/authors` on every request that changes the spec, with the username from
`request.userInfo`; a ValidatingAdmissionPolicy refuses any other change of it. The four-eyes
rule compares approvers with everyone who changed the spec since the generation the last
approved revision was rolled out from, not only with the last writer.

With `modelRef.follow: LatestReady` a new MLModel changes what runs without a spec change: its
creator, as the API server recorded it on create (annotation `edgeline.io/created-by`, written
by MutatingAdmissionPolicy `edgeline-mlmodel-creator` and no one else), and whoever promoted it
(`edgeline.io/promoted-by`, vouched for by ValidatingAdmissionPolicy `edgeline-promotions`) are
then authors too."""

from __future__ import annotations

AUTHORS = "edgeline.io/authors"
CREATED_BY = "edgeline.io/created-by"


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


def with_model_authors(authors: list[str], follows_latest: bool, model: str | None, model_authors: tuple[str, ...],
                       approved_model: str | None) -> list[str]:
    """`authors` plus who made `model` the one followed (its creator, and whoever promoted it)
    when the deployment follows the newest Ready version and that model is not the one of the
    revision last approved. Under `Pinned` only a spec change can name another model, and its
    writer is already an author. A model created before creators were recorded names nobody."""
    if not follows_latest or model is None or model == approved_model:
        return list(authors)
    return [*authors, *(a for i, a in enumerate(model_authors) if a and a not in authors
                        and a not in model_authors[:i])]
