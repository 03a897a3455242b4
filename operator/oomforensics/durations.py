"""Durations as people write them in a spec or a store option: Go's grammar ("15s", "10m",
"1h30m", "500ms"), the same the CRD's `pattern` accepts. One grammar for every duration."""

from __future__ import annotations

import math
import re

from oomforensics.errors import OomForensicsError

# The CRD's pattern for every duration field (crds/ checks against it in the tests).
PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
EXAMPLES = "15s, 500ms, 10m or 1h30m"


class InvalidDuration(OomForensicsError, ValueError):
    """Not a duration in Go's grammar."""


def parse_duration(text: object) -> float:
    """A duration in seconds: "1h30m" -> 5400.0."""
    if not isinstance(text, str) or not re.fullmatch(PATTERN, text):
        raise InvalidDuration(f"expected a duration such as {EXAMPLES}, got {text!r}")
    total = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(text))
    if not math.isfinite(total):
        raise InvalidDuration(f"duration {text!r} is too large")
    return total
