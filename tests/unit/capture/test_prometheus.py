"""The resident set read from a Prometheus text page (the fallback memory source)."""

from __future__ import annotations

import pytest

from oomforensics.capture.prometheus import resident_bytes

PAGE = """# HELP go_goroutines Number of goroutines.
# TYPE go_goroutines gauge
go_goroutines 12
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 4.2143744e+07
"""


def test_the_resident_set_is_read_from_a_go_client_page() -> None:
    assert resident_bytes(PAGE) == 42_143_744


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ('process_resident_memory_bytes{pod="a b"} 1024\n', 1024),
        ("process_resident_memory_bytes_total 5\nprocess_resident_memory_bytes 7\n", 7),
        ("# process_resident_memory_bytes 9\n", None),
        ("process_resident_memory_bytes NaN\n", None),
        ("process_resident_memory_bytes -1\n", None),
        ("process_resident_memory_bytes lots\n", None),
        ("<html>not a metrics page</html>", None),
        ("", None),
    ],
)
def test_only_a_real_sample_of_that_metric_counts(page: str, expected: int | None) -> None:
    assert resident_bytes(page) == expected
