"""The verdict: one short paragraph an SRE can act on. What grew, how fast, where, what next."""

from __future__ import annotations

from oomforensics.analysis.findings import Analysis, Finding
from oomforensics.analysis.suspects import Suspect
from oomforensics.analysis.units import format_bytes

# What to check first, per kind of leak.
_ADVICE = {
    "heap-growth": (
        "Check what {where} keeps: maps and caches without eviction, slices or buffers that "
        "only grow, entries added per request and never removed."
    ),
    "goroutine-leak": (
        "Check what those goroutines block on: channel sends nobody receives, missing context "
        "cancellation, missing timeouts."
    ),
    "non-heap-growth": (
        "Look at cgo libraries, mmap and other native allocations; Go heap profiles cannot "
        "show this memory."
    ),
}


def write_verdict(analysis: Analysis) -> str:
    findings = {f.kind: f for f in analysis.findings}
    if "no-growth" in findings:
        return "No leak suspected. " + findings["no-growth"].message
    lead = analysis.suspects[0] if analysis.suspects else None
    if "unclosed-response-body" in findings:
        return (
            "Likely leak: HTTP response bodies are never closed. "
            + findings["unclosed-response-body"].message
        )
    sentences = [_headline(findings, lead)]
    for kind in ("heap-growth", "goroutine-leak", "non-heap-growth"):
        if kind in findings:
            sentences.append(findings[kind].message)
    primary = next(k for k in ("heap-growth", "goroutine-leak", "non-heap-growth") if k in findings)
    sentences.append(_ADVICE[primary].format(where=lead.function if lead else "the code above"))
    return " ".join(sentences)


def _headline(findings: dict[str, Finding], lead: Suspect | None) -> str:
    if "heap-growth" in findings and lead is not None:
        where = f"{lead.function}" + (
            f" ({format_bytes(lead.bytes)}, via {' <- '.join(lead.path[:5])})"
            if len(lead.path) > 1
            else f" ({format_bytes(lead.bytes)})"
        )
        return f"Likely leak in {where}."
    if "goroutine-leak" in findings:
        return "Likely goroutine leak."
    if "non-heap-growth" in findings:
        return "Likely native memory leak outside the Go heap."
    return "Likely leak."
