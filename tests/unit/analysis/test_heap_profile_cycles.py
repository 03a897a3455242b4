"""Go publishes the heap profile at the end of a GC cycle: snapshots taken within one cycle
repeat its figures, so the heap's shape is judged on the first snapshot of each cycle."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from oomforensics.analysis.series import new_heap_profiles


def shot(cycles: int | None) -> Any:
    """A snapshot whose debug=1 text says NumGC = cycles (None: no text captured)."""
    if cycles is None:
        return SimpleNamespace(heap_text=None)
    memstats = SimpleNamespace(integer=lambda key: cycles if key == "NumGC" else None)
    return SimpleNamespace(heap_text=SimpleNamespace(memstats=memstats))


def test_snapshots_of_one_gc_cycle_count_once() -> None:
    # A leak at a steady rate: the cycles come further apart as the heap doubles.
    shots = [shot(n) for n in (3, 7, 9, 9, 10, 10, 10)]
    assert new_heap_profiles(cast(Any, shots)) == [0, 1, 2, 4]


def test_without_the_text_every_snapshot_counts() -> None:
    shots = [shot(None), shot(None), shot(None)]
    assert new_heap_profiles(cast(Any, shots)) == [0, 1, 2]
    mixed = [shot(4), shot(None), shot(4)]
    assert new_heap_profiles(cast(Any, mixed)) == [0, 1, 2]


def test_a_single_cycle_leaves_every_snapshot_rather_than_one() -> None:
    """One point is no series: the figures are then judged as they are."""
    assert new_heap_profiles(cast(Any, [shot(5), shot(5), shot(5)])) == [0, 1, 2]
