"""The verdict: one short paragraph an SRE can act on. What grew, its shape, where, what next,
and how sure it is (judgement.py)."""

from __future__ import annotations

from oomforensics.analysis.judgement import Confidence, SeriesJudgement, judge, lead_track
from oomforensics.analysis.model import Analysis, Finding, FindingKind
from oomforensics.analysis.units import format_bytes
from oomforensics.analysis.wording import shape_words

# What to check first, per kind of leak.
_ADVICE = {
    FindingKind.HEAP_GROWTH: (
        "Check what {where} keeps: maps and caches without eviction, slices or buffers that "
        "only grow, entries added per request and never removed."
    ),
    FindingKind.GOROUTINE_LEAK: (
        "Check what those goroutines block on: channel sends nobody receives, locks never "
        "released, missing context cancellation, missing timeouts."
    ),
    FindingKind.NON_HEAP_GROWTH: (
        "Look at cgo libraries, mmap and other native allocations; Go heap profiles cannot "
        "show this memory."
    ),
}
_HTTP_HEADLINES = {
    FindingKind.UNCLOSED_RESPONSE_BODY: "HTTP response bodies are never closed.",
    FindingKind.TRANSPORT_PER_REQUEST: (
        "a new http.Transport (or Client) per request: idle connections of abandoned "
        "Transports pile up."
    ),
    FindingKind.SERVER_CONNECTIONS: "HTTP server connections pile up, held open by their clients.",
}


def write_verdict(analysis: Analysis, judgement: SeriesJudgement | None = None) -> str:
    judged = judgement if judgement is not None else judge(analysis)
    findings = {f.kind: f for f in analysis.findings}
    tail = _confidence(judged)
    if FindingKind.NO_GROWTH in findings:
        return f"No leak suspected. {findings[FindingKind.NO_GROWTH].message} {tail}"
    likely = "Likely" if judged.confidence is Confidence.HIGH else "Possible"
    first = next(f for f in analysis.findings if f.kind.leak)
    if first.kind in _HTTP_HEADLINES:
        return f"{likely} leak: {_HTTP_HEADLINES[first.kind]} {first.message} {tail}"
    sentences = [_headline(analysis, first, likely)]
    for kind in (FindingKind.HEAP_GROWTH, FindingKind.GOROUTINE_LEAK, FindingKind.NON_HEAP_GROWTH):
        if kind in findings:
            sentences.append(findings[kind].message)
    lead = analysis.suspects[0].function if analysis.suspects else "the code above"
    sentences.append(_ADVICE[first.kind].format(where=lead))
    sentences.append(tail)
    return " ".join(sentences)


def _headline(analysis: Analysis, first: Finding, likely: str) -> str:
    lead = analysis.suspects[0] if analysis.suspects else None
    track = lead_track(analysis, first)
    shape = f", {shape_words(track)}" if track is not None else ""
    if first.kind == FindingKind.HEAP_GROWTH and lead is not None:
        error = f" ± {format_bytes(lead.error)}" if lead.error is not None else ""
        via = f", via {' <- '.join(lead.path[:5])}" if len(lead.path) > 1 else ""
        return f"{likely} leak in {lead.function} (+{format_bytes(lead.bytes)}{error}{shape}{via})."
    if first.kind == FindingKind.GOROUTINE_LEAK:
        where = f" in {lead.function}" if lead is not None else ""
        return (
            f"{likely} goroutine leak{where}{shape.replace(', ', ' (', 1) + ')' if shape else ''}."
        )
    if first.kind == FindingKind.NON_HEAP_GROWTH:
        return f"{likely} native memory leak outside the Go heap."
    return f"{likely} leak."


def _confidence(judged: SeriesJudgement) -> str:
    return f"Confidence: {judged.confidence.value} ({judged.message.rstrip('.')})."
