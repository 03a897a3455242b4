"""The resident set a target reports on its Prometheus `/metrics` page.

The fallback memory source when no PodMetrics are served (no metrics-server) and the local
mode's source: `process_resident_memory_bytes`, which Go's Prometheus client exports.
"""

from __future__ import annotations

import math
import re

RSS_METRIC = "process_resident_memory_bytes"
METRICS_PATH = "/metrics"
_SAMPLE = re.compile(rf"^{RSS_METRIC}(?:\{{[^}}]*\}})?[ \t]+(\S+)", re.MULTILINE)


def resident_bytes(text: str) -> int | None:
    """process_resident_memory_bytes from a text exposition; None when absent or not a size."""
    found = _SAMPLE.search(text)
    if found is None:
        return None
    try:
        value = float(found.group(1))
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and value >= 0 else None
