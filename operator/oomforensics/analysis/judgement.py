"""How sure the verdict is, and what the operator's LeakSuspected condition says.

The judgement of a series is about its lead finding's shape (series.py) and how much of the
run it has seen:

- high: four or more snapshots, and the lead is still growing in the later half of the run
  (beyond 3 standard errors) at least half as fast as in the earlier half; or Go's goroutine
  leak profile proves the goroutines leaked (two or more, whatever the number of snapshots).
  LeakSuspected is True only here (reason SteadyGrowth or GoroutineLeakProven).
- medium: three snapshots showing growth (reason InsufficientEvidence: one more tells whether
  it holds its rate). LeakSuspected is Unknown.
- low: two snapshots showing growth: no shape can be seen, so a leak cannot be told from
  warm-up (InsufficientEvidence); or a series still inside its warm-up: four or more
  snapshots whose growth is slowing (WarmingUp: a cache or a pool still filling looks like
  that). LeakSuspected is Unknown.

When nothing keeps growing, LeakSuspected is False, reason NoGrowth, GrowthStopped (a plateau),
SpikeGivenBack or Shrank; the confidence is low with two snapshots (a slow leak within the
sampling error would not show), medium with three, or when a plateau has been flat for less
time than it grew, and high otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from oomforensics.analysis.model import Analysis, Finding, FindingKind
from oomforensics.analysis.series import SeriesEvidence, Track
from oomforensics.analysis.shape import Shape
from oomforensics.analysis.wording import duration_words

CONFIDENT_SNAPSHOTS = 4


class Confidence(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Reason(StrEnum):
    STEADY_GROWTH = "SteadyGrowth"
    GOROUTINE_LEAK_PROVEN = "GoroutineLeakProven"
    INSUFFICIENT_EVIDENCE = "InsufficientEvidence"
    WARMING_UP = "WarmingUp"
    NO_GROWTH = "NoGrowth"
    GROWTH_STOPPED = "GrowthStopped"
    SPIKE_GIVEN_BACK = "SpikeGivenBack"
    SHRANK = "Shrank"


@dataclass(frozen=True, slots=True)
class SeriesJudgement:
    """The judgement of one container run's series of snapshots.

    `leak_suspected` is what the LeakSuspected condition shows: True, False, or None for
    Unknown (with `reason` InsufficientEvidence or WarmingUp). `shape` is the lead's (the
    finding the verdict leads with; for no leak, what moved most), `lead` its name.
    `verdict` is the full paragraph (set by comparison.compare; empty from `judge`).
    """

    leak_suspected: bool | None
    confidence: Confidence
    reason: Reason
    shape: Shape
    lead: str | None
    message: str  # how sure, and what more evidence would settle it
    snapshots: int
    seconds: float
    verdict: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "leakSuspected": self.leak_suspected,
            "confidence": self.confidence.value,
            "reason": self.reason.value,
            "shape": self.shape.value,
            "lead": self.lead,
            "message": self.message,
            "snapshots": self.snapshots,
            "seconds": round(self.seconds, 3),
        }


def judge(analysis: Analysis) -> SeriesJudgement:
    evidence = analysis.series
    if evidence is None:
        raise ValueError("the analysis carries no series evidence")
    leaks = [f for f in analysis.findings if f.kind.leak]
    if leaks:
        return _leak(analysis, evidence, leaks[0])
    return _no_leak(analysis, evidence)


def lead_track(analysis: Analysis, finding: Finding) -> Track | None:
    """The track whose shape the finding stands on."""
    evidence = analysis.series
    if evidence is None:
        return None
    if finding.kind == FindingKind.HEAP_GROWTH and analysis.suspects:
        names = finding.evidence.get("suspects") or [analysis.suspects[0].function]
        return evidence.heap_track(str(names[0]))
    if finding.kind == FindingKind.GOROUTINE_LEAK:
        growth = finding.evidence.get("growth") or []
        return evidence.goroutine_track(growth[0]["function"]) if growth else None
    if finding.kind == FindingKind.NON_HEAP_GROWTH:
        return evidence.native
    states = {
        FindingKind.UNCLOSED_RESPONSE_BODY: "client-awaiting-body",
        FindingKind.TRANSPORT_PER_REQUEST: "client-idle",
        FindingKind.SERVER_CONNECTIONS: "server-idle",
    }
    state = states.get(finding.kind)
    return next((t for s, t in evidence.connections.items() if s.value == state), None)


def _leak(analysis: Analysis, evidence: SeriesEvidence, finding: Finding) -> SeriesJudgement:
    track = lead_track(analysis, finding)
    shape = track.shape if track is not None else Shape.GREW
    lead = analysis.suspects[0].function if analysis.suspects else (track.name if track else None)
    count, span = evidence.count, evidence.span
    gap = span / (count - 1) if count > 1 else 0.0
    proven = _proven(analysis)

    def made(
        suspected: bool | None, confidence: Confidence, reason: Reason, message: str
    ) -> SeriesJudgement:
        return SeriesJudgement(suspected, confidence, reason, shape, lead, message, count, span)

    if proven:
        return made(
            True,
            Confidence.HIGH,
            Reason.GOROUTINE_LEAK_PROVEN,
            f"Go's goroutine leak profile proves {proven} goroutines leaked: the GC found them "
            "blocked on something no running goroutine can reach.",
        )
    if count == 2:
        return made(
            None,
            Confidence.LOW,
            Reason.INSUFFICIENT_EVIDENCE,
            "two snapshots cannot tell a leak from warm-up, a cache filling or a pool growing "
            f"to its size; take at least two more snapshots, {duration_words(gap)} apart.",
        )
    if count < CONFIDENT_SNAPSHOTS:
        return made(
            None,
            Confidence.MEDIUM,
            Reason.INSUFFICIENT_EVIDENCE,
            f"{count} snapshots over {duration_words(span)} show growth; "
            f"{CONFIDENT_SNAPSHOTS - count} more, {duration_words(gap)} apart, would show "
            "whether it holds its rate.",
        )
    if track is not None and track.shape is Shape.GROWING and not track.report.steady:
        more = max(2, count // 2)
        return made(
            None,
            Confidence.LOW,
            Reason.WARMING_UP,
            f"the growth is slowing over {duration_words(span)} (a warm-up, a cache or a pool "
            f"still filling looks like this); {more} more snapshots over "
            f"{duration_words(more * gap)} "
            "will tell a leak from a warm-up.",
        )
    return made(
        True,
        Confidence.HIGH,
        Reason.STEADY_GROWTH,
        f"{count} snapshots over {duration_words(span)}, still growing in the later half at a "
        "steady rate, beyond the sampling error.",
    )


def _proven(analysis: Analysis) -> int:
    for finding in analysis.findings:
        if finding.kind == FindingKind.GOROUTINE_LEAK:
            grown = {g["function"] for g in finding.evidence.get("growth") or []}
            proven = finding.evidence.get("provenLeaked") or []
            counts = [
                p["count"]
                for p in proven
                if p["count"] >= 2 and (not grown or p["function"] in grown)
            ]
            return int(sum(counts))
    return 0


def _no_leak(analysis: Analysis, evidence: SeriesEvidence) -> SeriesJudgement:
    count, span = evidence.count, evidence.span
    stopped = evidence.stopped()
    total = evidence.heap_total
    if total.shape is Shape.SHRANK or (count == 2 and total.report.growth_z <= -3):
        track, reason = total, Reason.SHRANK
    elif stopped:
        track = stopped[0]
        reason = Reason.GROWTH_STOPPED if track.shape is Shape.PLATEAU else Reason.SPIKE_GIVEN_BACK
    else:
        track, reason = total, Reason.NO_GROWTH
    shape = track.shape
    if count == 2:
        confidence = Confidence.LOW
        message = (
            "two snapshots: a slow leak within the sampling error would not show yet; more "
            "snapshots over a longer time would."
        )
    elif count < CONFIDENT_SNAPSHOTS:
        confidence = Confidence.MEDIUM
        message = f"{count} snapshots over {duration_words(span)}, nothing still growing."
    elif shape is Shape.PLATEAU and _flat_for(track) < _grew_for(track):
        confidence = Confidence.MEDIUM
        message = (
            f"{track.name} has been flat for only {duration_words(_flat_for(track))} after "
            f"{duration_words(_grew_for(track))} of growth; a few more snapshots would confirm it "
            "stays flat."
        )
    else:
        confidence = Confidence.HIGH
        message = f"{count} snapshots over {duration_words(span)}, nothing still growing."
    return SeriesJudgement(
        False,
        confidence,
        reason,
        shape,
        track.name if track is not total else None,
        message,
        count,
        span,
    )


def _flat_for(track: Track) -> float:
    report = track.report
    return report.span - report.points[report.knee].seconds


def _grew_for(track: Track) -> float:
    return track.report.points[track.report.knee].seconds
