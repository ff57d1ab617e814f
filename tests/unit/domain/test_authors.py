"""Who changed the spec, from the annotation the API server writes (docs/approvals.md)."""

import pytest

from edgeline.domain.authors import authors_since, last_author, parse

ANNOTATION = "1 editor\n2 approver-a\n3 system:serviceaccount:factory:ci\n4 approver-a\nnot a line\n5"


def test_lines_are_generation_and_user():
    assert parse(ANNOTATION) == [(1, "editor"), (2, "approver-a"), (3, "system:serviceaccount:factory:ci"),
                                 (4, "approver-a")]
    assert parse(None) == [] and last_author(parse(None)) is None
    assert last_author(parse(ANNOTATION)) == "approver-a"


@pytest.mark.parametrize("case, since, expected", [
    ("never approved: everyone, in order of their first change", None,
     ["editor", "approver-a", "system:serviceaccount:factory:ci"]),
    ("only changes after the approved generation", 1, ["approver-a", "system:serviceaccount:factory:ci"]),
    ("a later change by an earlier author still counts", 3, ["approver-a"]),
    ("nothing changed since", 4, []),
])
def test_authors_since_the_last_approved_generation(case, since, expected):
    assert authors_since(parse(ANNOTATION), since) == expected, case
