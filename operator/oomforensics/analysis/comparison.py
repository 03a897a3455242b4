"""Compare two snapshots: the exact heap diff, MemStats side by side, goroutine growth.

`comparison_json` is the `oomforensics diff --json` contract; its keys are relied on by other
tools, so change them only additively.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oomforensics.analysis.snapshot import Snapshot
from oomforensics.pprof.diff import BaseMode, HeapDiff, diff_profiles
from oomforensics.pprof.goroutines import goroutine_growth


@dataclass(frozen=True, slots=True)
class MemoryComparison:
    base: dict[str, int]
    new: dict[str, int]

    @property
    def delta(self) -> dict[str, int]:
        return {k: self.new[k] - self.base[k] for k in self.new if k in self.base}


@dataclass(frozen=True, slots=True)
class GoroutineComparison:
    base: int | None
    new: int | None
    growth: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Comparison:
    base: Snapshot
    new: Snapshot
    heap: HeapDiff
    memory: MemoryComparison
    goroutines: GoroutineComparison
    # Filled by the forensic analysis; empty until it has something to say.
    suspects: tuple[dict[str, Any], ...] = ()
    findings: tuple[dict[str, Any], ...] = ()
    verdict: str = ""
    leak_suspected: bool = False


def compare(
    base: Snapshot,
    new: Snapshot,
    sample_index: str | int | None = "inuse_space",
    mode: BaseMode = BaseMode.DIFF_BASE,
) -> Comparison:
    return Comparison(
        base=base,
        new=new,
        heap=diff_profiles(base.profile, new.profile, sample_index, mode),
        memory=MemoryComparison(memory_figures(base), memory_figures(new)),
        goroutines=_goroutines(base, new),
    )


def memory_figures(snapshot: Snapshot) -> dict[str, int]:
    """MemStats integer fields, plus rssBytes when the capture recorded the resident set."""
    figures = snapshot.heap_text.memstats.integers() if snapshot.heap_text else {}
    if snapshot.rss_bytes is not None:
        figures["rssBytes"] = snapshot.rss_bytes
    return figures


def _goroutines(base: Snapshot, new: Snapshot) -> GoroutineComparison:
    growth: tuple[tuple[str, int], ...] = ()
    if base.goroutines and new.goroutines:
        growth = tuple(goroutine_growth(base.goroutines, new.goroutines))
    return GoroutineComparison(
        base=base.goroutines.total if base.goroutines else None,
        new=new.goroutines.total if new.goroutines else None,
        growth=growth,
    )


def comparison_json(comparison: Comparison, top: int | None = None) -> dict[str, Any]:
    heap = comparison.heap
    functions = heap.functions if top is None else heap.functions[:top]
    return {
        "sampleIndex": heap.sample_index,
        "unit": heap.unit,
        "baseMode": heap.mode.value,
        "total": {"base": heap.base_total, "new": heap.new_total},
        "functions": [{"name": f.name, "flat": f.flat, "cum": f.cum} for f in functions],
        "memory": {
            "base": comparison.memory.base,
            "new": comparison.memory.new,
            "delta": comparison.memory.delta,
        },
        "goroutines": {
            "base": comparison.goroutines.base,
            "new": comparison.goroutines.new,
            "growth": [{"function": f, "count": c} for f, c in comparison.goroutines.growth],
        },
        "suspects": list(comparison.suspects),
        "findings": list(comparison.findings),
        "verdict": comparison.verdict,
        "leakSuspected": comparison.leak_suspected,
    }
