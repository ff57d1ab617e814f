"""The catalogue of bad input that tests/e2e/test_invalid_input.py sends to the real hub is large,
and every case says what the rejection must say (checked here without a cluster)."""

from tests.helpers.invalid_cases import CASES, expectations


def test_the_catalogue_is_large_and_every_case_says_what_it_expects():
    assert len(CASES) >= 30
    for path in CASES:
        assert expectations(path), f"{path.name} has no '# expect:' line"


def test_every_case_has_a_number_of_its_own():
    """A case's number names its objects (`case-<number>`) and is how docs and reviews cite it."""
    numbers = [path.name.split("-", 1)[0] for path in CASES]
    assert all(n.isdigit() for n in numbers), numbers
    assert sorted(n for n in set(numbers) if numbers.count(n) > 1) == []
