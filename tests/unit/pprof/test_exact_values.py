"""Sample values stay int64 while no sum can overflow, else become Python ints; the bounds
that decide it are the ones the samples keep."""

from __future__ import annotations

import numpy as np

from oomforensics.pprof.arrays import column_bounds, exact_values, exact_values_and_bounds
from oomforensics.pprof.profile import parse_profile
from tests.support.profiles import ProfileBuilder


def test_columns_that_could_overflow_become_python_ints() -> None:
    small = np.array([[1, -2], [3, 4]], dtype=np.int64)
    values, bounds = exact_values_and_bounds(small)
    assert values is small and values.dtype == np.int64
    assert bounds.tolist() == column_bounds(small).tolist()
    large = np.array([[2**61, 1], [2**61, 1]], dtype=np.int64)
    values, bounds = exact_values_and_bounds(large)
    assert values.dtype == object and values.tolist() == large.tolist()
    assert bounds.tolist() == column_bounds(large).tolist()
    assert exact_values(large).dtype == object
    empty = np.zeros((0, 2), dtype=np.int64)
    assert exact_values_and_bounds(empty)[0] is empty


def test_decoded_samples_keep_the_bounds_of_their_values() -> None:
    builder = ProfileBuilder()
    builder.sample([["main.a"], ["main.main"]], 1, 2**61, 1, 4096)
    builder.sample([["main.b"], ["main.main"]], 1, 2**61, 1, 4096)
    samples = parse_profile(builder.serialize()).samples
    assert samples.values.dtype == object  # 2**62 in a column: int64 sums could overflow
    assert samples.bounds.tolist() == column_bounds(samples.values).tolist()
