"""Exact integer arithmetic on numpy arrays, for sums that must equal pprof's to the byte.

Sample values are int64. A column whose absolute values sum below 2**61 is kept as int64, so no
sum or difference of its values (or of two such columns) can overflow; a column that could is
kept as Python ints in an object array (slow, but exact, and never seen in practice).
`group_sum` then adds by key with float64 bincount when every partial sum is below 2**52 (so
each is exact), and with integer arithmetic otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

IntArray = NDArray[Any]
"""Integers: int64, or Python ints in an object array where int64 could overflow."""

_INT64_SAFE = float(2**61)
FLOAT_EXACT = float(2**52)  # below this, float64 sums of integers are exact


def exact_values(values: NDArray[np.int64]) -> IntArray:
    """`values` itself when int64 cannot overflow in any sum of a column; else Python ints."""
    return exact_values_and_bounds(values)[0]


def exact_values_and_bounds(values: NDArray[np.int64]) -> tuple[IntArray, NDArray[np.float64]]:
    """`exact_values` and the `column_bounds` of the values, which it computes on the way."""
    bounds = column_bounds(values)
    if bounds.size and bounds.max() >= _INT64_SAFE:
        return values.astype(object), bounds
    return values, bounds


def column_bounds(values: IntArray) -> NDArray[np.float64]:
    """Per column: an upper bound of the sum of absolute values (float64)."""
    if values.size == 0:
        return np.zeros(values.shape[1] if values.ndim == 2 else 0, dtype=np.float64)
    return _bound(values)


def _bound(values: IntArray) -> NDArray[np.float64]:
    magnitudes = np.abs(values.astype(np.float64))
    return np.asarray(magnitudes.sum(axis=0) * (1 + 1e-9), dtype=np.float64)


def group_sum(
    keys: NDArray[np.integer[Any]], weights: IntArray, size: int, bound: float
) -> IntArray:
    """Per key in 0 .. size - 1, the exact sum of `weights` (whose |sum| is at most `bound`)."""
    if weights.dtype != object and bound < FLOAT_EXACT:
        sums = np.bincount(keys, weights=weights.astype(np.float64), minlength=size)
        return sums.astype(np.int64)
    if weights.dtype != object and bound < 2 * _INT64_SAFE:
        out = np.zeros(size, dtype=np.int64)
        np.add.at(out, keys, weights)
        return out
    exact = np.zeros(size, dtype=object)  # Python ints
    np.add.at(exact, keys, weights.astype(object))
    return exact


def total(weights: IntArray) -> int:
    """The exact sum, as a Python int."""
    return int(weights.sum()) if weights.size else 0


def segment_ids(lengths: NDArray[np.intp]) -> NDArray[np.int32]:
    """For segments of the given lengths laid end to end: the segment of each element."""
    return np.repeat(np.arange(lengths.size, dtype=np.int32), lengths)


def positions(offsets: NDArray[np.intp]) -> NDArray[np.intp]:
    """For segments starting at offsets[:-1]: each element's position within its segment."""
    starts = offsets[:-1][offsets[1:] > offsets[:-1]]  # non-empty segments
    steps = np.ones(int(offsets[-1]), dtype=np.intp)
    steps[starts[1:]] = 1 - np.diff(starts)
    if steps.size:
        steps[0] = 0
    return np.cumsum(steps, out=steps)


def first_in_range(
    hits: NDArray[np.intp], start: NDArray[np.intp], stop: NDArray[np.intp], last: bool = False
) -> NDArray[np.intp]:
    """Per range start[i] .. stop[i] - 1: the first (or last) of the ascending indices `hits`
    in it, or -1."""
    if last:
        at = np.searchsorted(hits, stop) - 1
        found = np.where(at >= 0, hits[np.maximum(at, 0)], -1) if hits.size else at
        return np.where(found >= start, found, -1)
    at = np.searchsorted(hits, start)
    found = hits[np.minimum(at, hits.size - 1)] if hits.size else np.full(start.size, -1)
    return np.where((at < hits.size) & (found < stop), found, -1)


def expand_ranges(start: NDArray[np.intp], size: NDArray[np.intp]) -> NDArray[np.intp]:
    """The indices start[i] .. start[i] + size[i] - 1 for every i, in order."""
    count = int(size.sum())
    shift: NDArray[np.intp] = start - (np.cumsum(size) - size)
    indices: NDArray[np.intp] = np.arange(count, dtype=np.intp) + np.repeat(shift, size)
    return indices


def unique_inverse(values: NDArray[Any]) -> tuple[NDArray[Any], NDArray[np.intp]]:
    """`np.unique(values, return_inverse=True)` for 1-D arrays, by one stable sort (np.unique
    would also import numpy.ma, a hundredth of a second, on its first call)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    first = np.empty(ordered.size, dtype=bool)
    first[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    inverse = np.empty(ordered.size, dtype=np.intp)
    inverse[order] = np.cumsum(first) - 1
    return ordered[first], inverse


def all_distinct(values: NDArray[Any]) -> bool:
    """Whether no value of a 1-D array occurs twice."""
    ordered = np.sort(values)
    return not bool((ordered[1:] == ordered[:-1]).any())
