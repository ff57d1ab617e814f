"""Who changed the spec, from the annotation the API server writes (docs/approvals.md)."""

import pytest

from edgeline.domain.authors import authors_since, last_author, parse, with_model_authors

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



@pytest.mark.parametrize("case, follows_latest, model, made_by, approved, expected", [
    ("a new version followed: its creator is an author", True, "d-2", ("approver-a",), "d-1",
     ["editor", "approver-a"]),
    ("and whoever promoted it", True, "d-2", ("ci", "approver-b"), "d-1", ["editor", "ci", "approver-b"]),
    ("nothing approved yet: the creator counts", True, "d-2", ("approver-a",), None, ["editor", "approver-a"]),
    ("the approved model itself: nothing new", True, "d-1", ("approver-a",), "d-1", ["editor"]),
    ("already an author: listed once", True, "d-2", ("editor", "editor"), "d-1", ["editor"]),
    ("created before creators were recorded", True, "d-2", (), "d-1", ["editor"]),
    ("Pinned: the spec change that names it is the change", False, "d-2", ("approver-a",), "d-1", ["editor"]),
    ("no model chosen", True, None, (), "d-1", ["editor"]),
])
def test_who_made_a_followed_model_is_an_author(case, follows_latest, model, made_by, approved, expected):
    assert with_model_authors(["editor"], follows_latest, model, made_by, approved) == expected, case
