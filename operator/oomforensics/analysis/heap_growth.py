"""The heap-growth finding: the owners whose live heap still grows beyond their sampling
error (bars in thresholds.py)."""

from __future__ import annotations

from collections.abc import Sequence

from oomforensics.analysis.accounting import MemoryAccount
from oomforensics.analysis.facts import Facts, heap_bar
from oomforensics.analysis.frames import is_runtime
from oomforensics.analysis.model import Finding, FindingKind
from oomforensics.analysis.series import SCATTER_POINTS, SeriesEvidence, Track
from oomforensics.analysis.suspects import Suspect
from oomforensics.analysis.thresholds import Thresholds
from oomforensics.analysis.trend import TrendReport
from oomforensics.analysis.units import format_bytes
from oomforensics.analysis.wording import (
    percent_of,
    rate_words,
    shape_words,
    signed_bytes,
)


def find_heap_suspects(
    candidates: Sequence[Suspect], evidence: SeriesEvidence, thresholds: Thresholds
) -> list[Suspect]:
    """The owners whose bytes still grow beyond their sampling error, fastest first.

    The application's own functions lead; the runtime's own structures (goroutine
    descriptors, say) are a symptom reported with the goroutines, never a heap suspect.
    """
    by_name = {s.function: s for s in candidates}
    out = []
    for track in evidence.heap:
        if not track.leaking or track.report.growth_z < thresholds.significance:
            continue
        if is_runtime(track.name):
            continue
        suspect = by_name.get(track.name)
        if suspect is None or suspect.bytes <= 0:
            continue
        out.append(_with_track(suspect, track))
    if evidence.count == 2:
        # Two snapshots: no shape to rank by, so the pair's order (net growth) stands.
        order = {s.function: i for i, s in enumerate(candidates)}
        out.sort(key=lambda s: order.get(s.function, len(order)))
    return out[:5]


def _with_track(suspect: Suspect, track: Track) -> Suspect:
    return Suspect(
        suspect.function,
        suspect.bytes,
        suspect.objects,
        suspect.path,
        suspect.mechanism,
        error=track.error,
        shape=track.shape.value,
    )


def heap_growth_finding(
    facts: Facts, suspects: Sequence[Suspect], evidence: SeriesEvidence, thresholds: Thresholds
) -> Finding | None:
    if not suspects:
        return None
    growth = facts.heap_growth
    bar = heap_bar(facts, thresholds)
    # Below SCATTER_POINTS snapshots the series cannot measure how much of a function's live
    # heap is merely in flight at each GC (churn caught live), so the pair's bar still holds:
    # a control that only churns moved main.churn by 9 sampling errors over three snapshots.
    paired = evidence.count < SCATTER_POINTS
    if paired and growth < bar:
        return None
    lead = evidence.heap_track(suspects[0].function)
    assert lead is not None
    names = "; ".join(
        _track_words(evidence.heap_track(s.function), s.function) for s in suspects[:3]
    )
    message = (
        f"The live heap changed by {signed_bytes(growth)} "
        f"({percent_of(growth, facts.heap_reference)} of the "
        f"{format_bytes(facts.heap_reference)} heap){rate_words(facts, growth)}. "
        f"Still growing: {names}."
    )
    lag = _profile_lag_note(facts.new)
    return Finding(
        FindingKind.HEAP_GROWTH,
        message + (f" {lag}" if lag else ""),
        {
            "bytes": growth,
            "heapReference": facts.heap_reference,
            "threshold": bar if paired else None,
            "gcCycles": facts.gc_cycles,
            "seconds": facts.seconds,
            "bytesPerHour": facts.per_hour(growth),
            "suspects": [s.function for s in suspects[:3]],
            "shape": lead.shape.value,
            "error": lead.error,
            "leadGrowth": lead.growth,
        },
    )


def _track_words(track: Track | None, name: str) -> str:
    if track is None:
        return name
    return (
        f"{name} {signed_bytes(track.growth)} ± {format_bytes(track.error)} ({shape_words(track)})"
    )


def _profile_lag_note(snapshot_account: MemoryAccount) -> str:
    alloc = snapshot_account.heap_alloc
    profiled = snapshot_account.heap_profile_inuse
    if alloc is None or not alloc or abs(alloc - profiled) <= 0.25 * alloc:
        return ""
    return (
        f"(The heap profile shows {format_bytes(profiled)} live as of the last GC, while "
        f"HeapAlloc is {format_bytes(alloc)} now: the profile lags, garbage not yet collected "
        "counts in HeapAlloc.)"
    )


def rank_by_trend(suspects: Sequence[Suspect], trend: TrendReport) -> list[Suspect]:
    """Over three or more snapshots, steady growers first (their trend score), then the rest.

    The score is that of the bytes each suspect holds, not of its function's cum: a frame such
    as net/http.(*conn).serve is on the stack of far more growth than it owns.
    """
    scores = {f.name: f.score for f in trend.owners}
    return sorted(suspects, key=lambda s: (-scores.get(s.function, float("-inf")), -s.bytes))
