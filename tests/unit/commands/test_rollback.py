"""`edgeline rollback --to`: only revisions the deployment knows, by full name or unique prefix."""

import pytest

from edgeline.commands.rollback import UnknownRevision, known_revisions, resolve_revision

STATUS = {"desiredRevision": {"revision": "ab12000000"}, "currentRevision": {"revision": "ab12000000"},
          "history": [{"revision": {"revision": "ab12000000"}}, {"revision": {"revision": "ab34000000"}},
                      {"revision": {"revision": "cd00000000"}}]}


def test_known_revisions_are_listed_once_in_order():
    assert known_revisions(STATUS) == ["ab12000000", "ab34000000", "cd00000000"]


@pytest.mark.parametrize("wanted, expected", [("cd00000000", "cd00000000"), ("cd", "cd00000000"),
                                              ("ab3", "ab34000000")])
def test_a_full_revision_or_a_unique_prefix(wanted, expected):
    assert resolve_revision(STATUS, wanted) == expected


@pytest.mark.parametrize("wanted, message", [("ab", "ambiguous: ab12000000, ab34000000"),
                                             ("ff", "no revision 'ff'"), ("", "no revision ''")])
def test_an_unknown_or_ambiguous_revision_is_refused_with_the_reason(wanted, message):
    with pytest.raises(UnknownRevision, match=message):
        resolve_revision(STATUS, wanted)
