"""Kubernetes resource quantities for memory: 256Mi, 1G, 512M, 1.5Gi, 134217728."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from oomforensics.errors import OomForensicsError

_SUFFIXES = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
_QUANTITY = re.compile(r"^([+]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|)$")


class InvalidQuantity(OomForensicsError, ValueError):
    pass


def parse_memory(text: str) -> int:
    """Bytes in a Kubernetes memory quantity, rounded up as the kubelet does."""
    match = _QUANTITY.match(text.strip())
    if match is None:
        raise InvalidQuantity(
            f"invalid memory quantity {text!r} (examples: 256Mi, 1Gi, 500M, 134217728)"
        )
    try:
        number = Decimal(match.group(1))
    except InvalidOperation:
        raise InvalidQuantity(f"invalid memory quantity {text!r}") from None
    value = number * _SUFFIXES[match.group(2)]
    integral = int(value.to_integral_value(rounding="ROUND_CEILING"))
    if integral <= 0:
        raise InvalidQuantity(f"memory quantity {text!r} must be positive")
    return integral
