"""Lists of names in messages: a few and a count."""

import pytest

from edgeline.domain.names import some


@pytest.mark.parametrize("names, kwargs, text", [
    ([], {}, "none"),
    ([], {"none": "every cluster"}, "every cluster"),
    (["a"], {}, "a"),
    (["a", "b", "c", "d", "e"], {}, "a, b, c, d, e"),
    (["a", "b", "c", "d", "e", "f"], {}, "a, b, c, d, e and 1 more"),
    ((f"c{i}" for i in range(1000)), {"shown": 2}, "c0, c1 and 998 more"),
])
def test_some(names, kwargs, text):
    assert some(names, **kwargs) == text
