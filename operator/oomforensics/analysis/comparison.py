"""Compare two snapshots: the exact heap diff, MemStats side by side, goroutine growth.

`comparison_json` is the `oomforensics diff --json` contract; its keys are relied on by other
tools, so change them only additively.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from oomforensics.analysis.accounting import MemoryAccount
from oomforensics.analysis.findings import Analysis, analyse
from oomforensics.analysis.judgement import SeriesJudgement, judge
from oomforensics.analysis.series import SeriesEvidence, Track, gather_series, in_time_order
from oomforensics.analysis.snapshot import Snapshot
from oomforensics.analysis.trend import TrendReport, function_trends
from oomforensics.analysis.verdict import write_verdict
from oomforensics.pprof.diff import BaseMode, HeapDiff, diff_profiles
from oomforensics.pprof.errors import InvalidProfile
from oomforensics.pprof.profile import index_stacks


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
    analysis: Analysis
    verdict: str
    trend: TrendReport | None = None  # over every snapshot, when three or more were given
    judgement: SeriesJudgement | None = None  # the series' shape and confidence (always set)

    @property
    def leak_suspected(self) -> bool:
        """A leak finding was raised, at any confidence (see `judgement` for how sure)."""
        return self.analysis.leak_suspected


def compare(
    base: Snapshot,
    new: Snapshot,
    sample_index: str | int | None = "inuse_space",
    mode: BaseMode = BaseMode.DIFF_BASE,
    series: Sequence[Snapshot] = (),
) -> Comparison:
    """Compare `base` with `new`, judged on the whole `series` (base and new when empty);
    with three or more snapshots, add trends."""
    heap = diff_profiles(base.profile, new.profile, sample_index, mode)
    for snapshot in (base, new, *series):
        _require_heap_profile(snapshot)
    # Group base and new by stack together first: the per-profile work below (each one's
    # owners) then takes its groups from this joint index instead of grouping again.
    index_stacks([base.profile.samples, new.profile.samples])
    trend = function_trends(series, sample_index) if len(series) >= 3 else None
    evidence = gather_series(series if len(series) >= 2 else (base, new))
    analysis = analyse(base, new, trend, series=evidence)
    judgement = judge(analysis)
    verdict = write_verdict(analysis, judgement)
    return Comparison(
        base=base,
        new=new,
        heap=heap,
        memory=MemoryComparison(
            memory_figures(base, analysis.facts.base), memory_figures(new, analysis.facts.new)
        ),
        goroutines=GoroutineComparison(
            base=analysis.facts.goroutines_base,
            new=analysis.facts.goroutines_new,
            growth=analysis.facts.goroutine_growth,
        ),
        analysis=analysis,
        verdict=verdict,
        trend=trend,
        judgement=replace(judgement, verdict=verdict),
    )


def _require_heap_profile(snapshot: Snapshot) -> None:
    types = {st.type for st in snapshot.profile.sample_types}
    if not {"inuse_space", "inuse_objects"} <= types:
        raise InvalidProfile(
            f"{snapshot.source}: not a heap profile (its sample types are "
            f"{', '.join(sorted(types))}); oomforensics analyses /debug/pprof/heap profiles"
        )


def judge_series(
    snapshots: Sequence[Snapshot], sample_index: str | int | None = "inuse_space"
) -> SeriesJudgement:
    """The judgement of one container run's snapshots (any order; sorted by capture time).

    At least two snapshots. See judgement.py for the confidence levels and when
    `leak_suspected` is True, False or None (Unknown).
    """
    comparison = compare_series(sort_by_time(snapshots), sample_index)
    assert comparison.judgement is not None
    return comparison.judgement


def sort_by_time(snapshots: Sequence[Snapshot]) -> list[Snapshot]:
    return [s for _, s in in_time_order(snapshots)[0]]


def compare_series(
    snapshots: Sequence[Snapshot],
    sample_index: str | int | None = "inuse_space",
    mode: BaseMode = BaseMode.DIFF_BASE,
) -> Comparison:
    """The first snapshot is the base, the last the new one; all of them make the trend."""
    if len(snapshots) < 2:
        raise ValueError("need at least two snapshots to compare")
    return compare(snapshots[0], snapshots[-1], sample_index, mode, snapshots)


def memory_figures(snapshot: Snapshot, account: MemoryAccount) -> dict[str, int]:
    """MemStats integer fields, rssBytes when known, and the accounting's derived figures."""
    figures = snapshot.heap_text.memstats.integers() if snapshot.heap_text else {}
    return {**figures, **account.as_dict()}


def comparison_json(
    comparison: Comparison, top: int | None = None, *, function_rows: bool = True
) -> dict[str, Any]:
    """The comparison as JSON values; without `function_rows`, "functions" is left empty for
    the caller to write (the CLI writes 10,000 rows of them as text, not as objects)."""
    heap = comparison.heap
    functions = heap.functions if top is None else heap.functions[:top]
    return {
        "sampleIndex": heap.sample_index,
        "unit": heap.unit,
        "baseMode": heap.mode.value,
        "total": {"base": heap.base_total, "new": heap.new_total},
        "functions": (
            [{"name": f.name, "flat": f.flat, "cum": f.cum} for f in functions]
            if function_rows
            else []
        ),
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
        "suspects": [s.to_json() for s in comparison.analysis.suspects],
        "growthPaths": [
            {"function": p.function, "bytes": p.bytes, "path": list(p.path)}
            for p in comparison.analysis.growth_paths
        ],
        "findings": [f.to_json() for f in comparison.analysis.findings],
        "verdict": comparison.verdict,
        "leakSuspected": comparison.leak_suspected,
        **({"trend": _trend_json(comparison.trend, top)} if comparison.trend else {}),
        **(
            {
                "confidence": comparison.judgement.confidence.value,
                "series": series_json(comparison.judgement, comparison.analysis.series),
            }
            if comparison.judgement is not None and comparison.analysis.series is not None
            else {}
        ),
    }


def series_json(judgement: SeriesJudgement, evidence: SeriesEvidence) -> dict[str, Any]:
    """The series' judgement and the tracks it stands on (bounded: MAX_TRACKS per kind)."""
    return {
        **judgement.to_json(),
        "timed": evidence.timed,
        "period": evidence.period,
        "offsets": [round(t, 3) for t in evidence.seconds],
        "heapTotal": _track_json(evidence.heap_total),
        "heap": [_track_json(t) for t in evidence.heap],
        "goroutines": [_track_json(t) for t in evidence.goroutines],
        "connections": {state.value: _track_json(t) for state, t in evidence.connections.items()},
        "native": _track_json(evidence.native) if evidence.native is not None else None,
        "provenLeaks": (
            [{"function": f, "count": c} for f, c in evidence.proven_leaks]
            if evidence.proven_leaks is not None
            else None
        ),
    }


def _track_json(track: Track) -> dict[str, Any]:
    report = track.report
    return {
        "name": track.name,
        "unit": track.unit,
        "shape": track.shape.value,
        "steady": report.steady,
        "first": track.first,
        "last": track.last,
        "growth": track.growth,
        "error": track.error,
        "growthSigma": _finite(report.growth_z),
        "lateGrowth": round(report.late_growth),
        "lateSigma": _finite(report.late_z),
        "perHour": round(report.rate_per_second * 3600, 1),
        "values": [round(p.value) for p in report.points],
        "errors": [round(p.variance**0.5) for p in report.points],
    }


def _finite(value: float) -> float | None:
    return round(value, 2) if value == value and abs(value) != float("inf") else None


def _trend_json(trend: TrendReport, top: int | None) -> dict[str, Any]:
    functions = trend.functions if top is None else trend.functions[:top]
    return {
        "sampleIndex": trend.sample_index,
        "unit": trend.unit,
        "seconds": trend.duration_seconds,
        "functions": [
            {
                "name": f.name,
                "perHour": round(f.slope, 1),
                "steadiness": round(f.steadiness, 3),
                "first": f.first,
                "last": f.last,
            }
            for f in functions
        ],
    }
