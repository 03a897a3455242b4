"""The non-heap-growth finding: resident memory beyond all the Go runtime could hold, still
rising (bars in thresholds.py)."""

from __future__ import annotations

from collections.abc import Sequence

from oomforensics.analysis.facts import Facts, difference
from oomforensics.analysis.frames import is_application
from oomforensics.analysis.model import Finding, FindingKind
from oomforensics.analysis.series import SeriesEvidence
from oomforensics.analysis.suspects import Suspect
from oomforensics.analysis.thresholds import Thresholds
from oomforensics.analysis.units import format_bytes
from oomforensics.analysis.wording import rate_words, shape_words

CLEAR_NATIVE_FACTOR = 10  # native growth this many times its bar is beyond any jitter


def non_heap_growth_finding(
    facts: Facts, suspects: Sequence[Suspect], evidence: SeriesEvidence, thresholds: Thresholds
) -> Finding | None:
    before, after = facts.base.not_go, facts.new.not_go
    rss_before, rss_after = facts.base.rss, facts.new.rss
    if before is None or after is None or rss_before is None or rss_after is None:
        return None
    # Only RSS beyond everything Go could hold resident is provably native: below that, RSS
    # growing is Go touching memory it had already reserved (Sys counts reservations).
    delta = max(0, after) - max(0, before)
    rss_growth = rss_after - rss_before
    # Memory Go held unused at the base may have become resident since, as Go touched it.
    unused = facts.base.go_unused or 0
    bar = max(int(thresholds.non_heap_ratio * rss_after), thresholds.non_heap_min, unused)
    if delta < bar or delta < thresholds.non_heap_share * rss_growth:
        return None
    track = evidence.native
    if evidence.count > 2 and (track is None or not track.leaking):
        return None
    jitter_sized = delta < CLEAR_NATIVE_FACTOR * bar
    if evidence.count >= 4 and track is not None and not track.report.steady and jitter_sized:
        # Resident memory has no sampling model, and RSS and MemStats are read moments apart
        # in a busy process: growth of the size of that jitter (megabytes) counts only as a
        # steady climb without a drop. Growth many times the bar is no jitter, even when its
        # rate changed (a start-up's early RSS made an mmap leak of 142 MB "not steady").
        return None
    go_delta = difference(facts.base.go_sys, facts.new.go_sys)
    hint = next((s.function for s in suspects if is_application(s.function)), None)
    message = (
        f"RSS grew by {format_bytes(rss_after - rss_before)}"
        f"{rate_words(facts, rss_after - rss_before)} "
        f"while the Go runtime's own memory changed by {format_bytes(go_delta or 0)}: "
        f"{format_bytes(delta)} of the growth is outside the Go runtime (cgo, mmap, native "
        "libraries), which heap profiles cannot see"
        + (f"; {shape_words(track)}" if track is not None else "")
        + "."
        + (
            f" The heap profile's small growth points at {hint}, which may be what maps it."
            if hint
            else ""
        )
    )
    return Finding(
        FindingKind.NON_HEAP_GROWTH,
        message,
        {
            "bytes": delta,
            "rssGrowth": rss_after - rss_before,
            "goSysGrowth": go_delta,
            "threshold": bar,
            "rssSource": facts.new.rss_source,
            "shape": track.shape.value if track is not None else None,
        },
    )
