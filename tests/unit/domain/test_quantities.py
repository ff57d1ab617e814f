from decimal import Decimal

import pytest

from edgeline.domain.quantities import format_bytes, parse_quantity


@pytest.mark.parametrize("text, expected", [
    ("4Gi", 4 * 2**30), ("500m", Decimal("0.5")), ("2", 2), ("1.5G", 1_500_000_000),
    ("16Mi", 16 * 2**20), ("1e3", 1000), (3, 3), ("0", 0),
])
def test_quantities_parse_like_kubernetes(text, expected):
    assert parse_quantity(text) == expected


@pytest.mark.parametrize("text", ["", "4GB", "abc", "1..2", "Gi", "4 Gi"])
def test_junk_is_rejected_with_the_text(text):
    with pytest.raises(ValueError, match="quantity"):
        parse_quantity(text)


@pytest.mark.parametrize("value, expected", [(0, "0"), (1023, "1023"), (1536, "1.5Ki"), (4 * 2**30, "4Gi")])
def test_bytes_read_well(value, expected):
    assert format_bytes(value) == expected
