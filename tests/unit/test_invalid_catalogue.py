"""The catalogue of bad input that tests/e2e/test_invalid_input.py sends to the real hub is large,
and every case says what the rejection must say (checked here without a cluster)."""

from tests.helpers.invalid_cases import CASES, expectations


def test_the_catalogue_is_large_and_every_case_says_what_it_expects():
    assert len(CASES) >= 30
    for path in CASES:
        assert expectations(path), f"{path.name} has no '# expect:' line"
