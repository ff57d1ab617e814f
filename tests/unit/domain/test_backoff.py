import pytest

from edgeline.domain.backoff import retry_delay


@pytest.mark.parametrize("failures, base, cap, expected", [
    (0, 1.0, 60.0, 0.0),           # a good tick: no extra wait
    (1, 1.0, 60.0, 1.0),           # the first retry comes after the base delay
    (2, 1.0, 60.0, 2.0),
    (3, 1.0, 60.0, 4.0),
    (6, 1.0, 60.0, 32.0),
    (7, 1.0, 60.0, 60.0),          # 64 s would pass the cap
    (500, 1.0, 60.0, 60.0),        # a loop that fails for days stays at the cap (no overflow)
    (3, 0.5, 60.0, 2.0),
    (1, 5.0, 3.0, 3.0),            # a base above the cap is capped too
])
def test_retry_delay_doubles_from_the_base_up_to_the_cap(failures, base, cap, expected):
    assert retry_delay(failures, base, cap) == expected
