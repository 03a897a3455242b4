"""A diff's functions come in pprof's FlatNameOrder: |flat| descending, then name."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from oomforensics.pprof.diff import FunctionValue, _in_pprof_order, pprof_order

# Few distinct magnitudes (ties in |flat| decide by name), both signs, zero flat (most rows).
figures = st.integers(-3, 3).map(lambda k: k * 4096)
rows = st.lists(
    st.tuples(st.text(min_size=1, max_size=6), figures, figures),
    unique_by=lambda row: row[0],
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(rows=rows)
def test_arrays_are_ordered_as_pprof_orders_functions(rows) -> None:
    names = [name for name, _, _ in rows]
    flat = np.array([f for _, f, _ in rows], dtype=np.int64)
    cum = np.array([c for _, _, c in rows], dtype=np.int64)
    expected = pprof_order([FunctionValue(*row) for row in rows])
    assert _in_pprof_order(names, flat, cum) == expected


def test_the_order_puts_larger_magnitudes_first_then_names() -> None:
    names = ["b", "a", "c", "d"]
    ordered = _in_pprof_order(
        names, np.array([0, 0, -8, 8], dtype=np.int64), np.array([1, 2, 3, 4], dtype=np.int64)
    )
    assert [f.name for f in ordered] == ["c", "d", "a", "b"]
