"""Kubernetes resource quantities ("500m", "4Gi", "1.5G") as plain numbers."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_SUFFIXES = {
    "": 1, "m": Decimal("0.001"),
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


def parse_quantity(text: str | int | float) -> Decimal:
    """Raises ValueError with the offending text for anything that is not a quantity."""
    if isinstance(text, (int, float)):
        return Decimal(str(text))
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise ValueError(f"{text!r} is not a Kubernetes quantity (e.g. 500m, 4Gi, 2)")
    number, suffix = match.groups()
    try:
        return Decimal(number) * _SUFFIXES[suffix or ""]
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a Kubernetes quantity") from None


def format_bytes(value: int) -> str:
    """Bytes for people: 1.5Gi, 300Mi, 12Ki."""
    for unit, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if value >= size:
            return f"{value / size:.1f}".rstrip("0").rstrip(".") + unit
    return str(value)
