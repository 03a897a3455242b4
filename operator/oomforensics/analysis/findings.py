"""Findings: what the evidence says, judged on the series of a container run's snapshots.

`analyse` runs each kind of finding (HTTP connections first, then the heap, goroutines and
native memory) and decides which suspects they name; the bars each must clear, and why, are
in thresholds.py.
"""

from __future__ import annotations

from collections.abc import Sequence

from oomforensics.analysis.connection_findings import http_findings
from oomforensics.analysis.facts import Facts, difference, gather_facts, heap_bar
from oomforensics.analysis.frames import is_application
from oomforensics.analysis.goroutine_leaks import goroutine_leak_finding
from oomforensics.analysis.heap_growth import (
    find_heap_suspects,
    heap_growth_finding,
    rank_by_trend,
)
from oomforensics.analysis.model import Analysis as Analysis  # re-exported for comparison.py
from oomforensics.analysis.model import Finding, FindingKind
from oomforensics.analysis.native_growth import non_heap_growth_finding
from oomforensics.analysis.series import SeriesEvidence, gather_series
from oomforensics.analysis.shape import Shape
from oomforensics.analysis.snapshot import Snapshot
from oomforensics.analysis.suspects import Suspect, find_suspects, growth_paths
from oomforensics.analysis.thresholds import DEFAULT_THRESHOLDS, Thresholds
from oomforensics.analysis.trend import TrendReport
from oomforensics.analysis.units import format_bytes
from oomforensics.analysis.wording import shape_words, signed_bytes


def analyse(
    base: Snapshot,
    new: Snapshot,
    trend: TrendReport | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    series: SeriesEvidence | None = None,
) -> Analysis:
    """Judge the run from `base` to `new`; `series` is the evidence of all its snapshots
    (gathered from the pair when not given)."""
    facts = gather_facts(base, new, thresholds)
    evidence = series if series is not None else gather_series([base, new])
    candidates = find_suspects(facts.stack_growth, limit=50, min_share=0.0)
    if trend is not None:
        candidates = rank_by_trend(candidates, trend)
    heap_suspects = find_heap_suspects(candidates, evidence, thresholds)

    findings: list[Finding] = []
    suspects: list[Suspect] = []
    for finding, caller in http_findings(facts, evidence, new, thresholds):
        findings.append(finding)
        if caller is not None:
            suspects.append(caller)
    if findings and not suspects:
        # No application function is tied to the leaking connections: the suspect is the
        # mechanism holding them (net/http's own goroutines), never a guessed caller.
        held = next((s for s in candidates if s.mechanism and s.bytes > 0), None)
        if held is not None:
            suspects.append(held)
    if findings:
        # The connections' own buffers and TLS state (owned by net/http's goroutines), and the
        # calling function's requests they keep, are what the HTTP finding explains; only the
        # application's other growth is another suspect.
        callers = {s.function for s in suspects}
        heap_suspects = [
            s for s in heap_suspects if is_application(s.function) and s.function not in callers
        ]
    heap = heap_growth_finding(facts, heap_suspects, evidence, thresholds)
    if heap is not None:
        findings.append(heap)
        suspects.extend(heap_suspects)
    goroutines = goroutine_leak_finding(facts, evidence, new, thresholds, http=bool(findings))
    if goroutines is not None:
        finding, owners = goroutines
        findings.append(finding)
        suspects.extend(owners)
    native = non_heap_growth_finding(facts, heap_suspects, evidence, thresholds)
    if native is not None:
        if (
            heap is not None
            and sum(s.bytes for s in heap_suspects) < 0.1 * native.evidence["bytes"]
        ):
            # A little heap growing beside much more native memory is the bookkeeping of the
            # native allocations (the slice of mappings), named in the native finding's hint.
            findings.remove(heap)
            heap = None
        findings.append(native)
        suspects.extend(heap_suspects)
    if not findings:
        findings.append(_no_growth(facts, evidence, thresholds))
        suspects = []
    return Analysis(
        facts=facts,
        suspects=tuple(_unique(suspects)[:5]),
        growth_paths=tuple(growth_paths(facts.stack_growth)),
        findings=tuple(findings),
        series=evidence,
    )


def _no_growth(facts: Facts, evidence: SeriesEvidence, thresholds: Thresholds) -> Finding:
    goroutines = (
        facts.goroutines_new - facts.goroutines_base
        if facts.goroutines_new is not None and facts.goroutines_base is not None
        else None
    )
    rss = difference(facts.base.rss, facts.new.rss)
    total = evidence.heap_total
    parts = [
        f"the live heap changed by {signed_bytes(facts.heap_growth)} ± {format_bytes(total.error)}"
    ]
    if goroutines is not None:
        parts.append(f"goroutines by {goroutines:+d}")
    if rss is not None:
        parts.append(f"RSS by {signed_bytes(rss)}")
    explained = evidence.stopped()[:2]
    sentences = []
    if total.shape is Shape.SHRANK or (
        evidence.count == 2 and total.report.growth_z <= -thresholds.significance
    ):
        sentences.append(
            f"The live heap shrank by {format_bytes(-facts.heap_growth)} "
            f"(± {format_bytes(total.error)}): nothing grew."
        )
    for track in explained[:2]:
        what = (
            "a bounded cache filling, a pool reaching its size or warm-up, not a leak"
            if track.shape is Shape.PLATEAU
            else "a one-off burst given back, not a leak"
        )
        sentences.append(f"{track.name} {shape_words(track)}: {what}.")
    if not sentences:
        sentences.append("Nothing grew beyond noise.")
    return Finding(
        FindingKind.NO_GROWTH,
        " ".join(sentences) + " Overall " + ", ".join(parts) + ".",
        {
            "heapBytes": facts.heap_growth,
            "heapError": total.error,
            "goroutines": goroutines,
            "rssBytes": rss,
            "heapThreshold": heap_bar(facts, thresholds),
            "stopped": [{"name": t.name, "shape": t.shape.value} for t in explained],
        },
    )


def _unique(suspects: Sequence[Suspect]) -> list[Suspect]:
    seen: set[str] = set()
    out = []
    for suspect in suspects:
        if suspect.function not in seen:
            seen.add(suspect.function)
            out.append(suspect)
    return out
