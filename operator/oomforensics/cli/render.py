"""Human output of a comparison: a pprof-style top table, then MemStats and goroutines."""

from __future__ import annotations

from typing import TYPE_CHECKING

from oomforensics.analysis.accounting import ACCOUNT_ROWS
from oomforensics.analysis.snapshot import Snapshot
from oomforensics.analysis.units import format_signed, format_value, percent
from oomforensics.cli.sample_index import SampleIndexChoice
from oomforensics.pprof.diff import HeapDiff

if TYPE_CHECKING:  # the analysis is imported by the commands that run it
    from oomforensics.analysis.comparison import Comparison

# The MemStats figures an engineer reconciles against RSS, in the order they add up.
MEMORY_ROWS = (
    "rssBytes",
    "MaxRSS",
    "Sys",
    "HeapSys",
    "HeapInuse",
    "HeapIdle",
    "HeapReleased",
    "HeapAlloc",
    "HeapObjects",
    "StackInuse",
    "StackSys",
    "MSpanSys",
    "MCacheSys",
    "BuckHashSys",
    "GCSys",
    "OtherSys",
    "NextGC",
    "NumGC",
)
_COUNTS = {"HeapObjects", "NumGC"}


def render_comparison(
    comparison: Comparison, top: int | None, chosen: SampleIndexChoice | None = None
) -> str:
    return "\n".join(
        [
            *_header(comparison.base, comparison.new, comparison.heap, chosen),
            *_top_table(comparison.heap, top),
            *_suspects(comparison),
            *_trend(comparison),
            *_accounting(comparison),
            *_memory_table(comparison),
            *_goroutines(comparison),
            "",
            *_findings(comparison),
        ]
    )


def _suspects(c: Comparison) -> list[str]:
    if not c.analysis.suspects:
        return []
    lines = ["suspects (first application frame on the dominant growth path):"]
    for rank, s in enumerate(c.analysis.suspects, 1):
        error = f" ± {format_value(s.error, 'bytes')}" if s.error is not None else ""
        shape = f", {s.shape}" if s.shape else ""
        count = f", {s.goroutines:+d} goroutines" if s.goroutines is not None else ""
        lines.append(
            f"  {rank}. {s.function}  {format_signed(s.bytes, 'bytes')}{error}, "
            f"{s.objects:+d} objects{count}{shape}"
        )
        if s.mechanism:
            lines.append(f"     held by: {s.mechanism}")
        lines.append("     " + " <- ".join(s.path))
    return [*lines, ""]


def _trend(c: Comparison) -> list[str]:
    if c.trend is None:
        return []
    lines = [f"trend over {c.trend.duration_seconds:.0f}s (cum, per hour, steadiness 0..1):"]
    for f in c.trend.functions[:5]:
        lines.append(
            f"  {format_signed(int(f.slope), c.trend.unit):>10}/h  {f.steadiness:4.2f}  {f.name}"
        )
    return [*lines, ""]


def _accounting(c: Comparison) -> list[str]:
    base, new = c.analysis.facts.base, c.analysis.facts.new
    lines = [f"{'where the memory is':<30} {'base':>10} {'new':>10} {'delta':>10}"]
    for label, attribute in ACCOUNT_ROWS:
        before, after = getattr(base, attribute), getattr(new, attribute)
        if before is None and after is None:
            continue
        delta = after - before if before is not None and after is not None else None
        lines.append(
            f"{label:<30} {_cell(before, 'bytes'):>10} {_cell(after, 'bytes'):>10} "
            f"{(format_signed(delta, 'bytes') if delta is not None else '-'):>10}"
        )
    if new.rss_source == "MaxRSS":
        lines.append("(RSS here is MaxRSS, the peak, from heap.txt: no current RSS was recorded)")
    return [*lines, ""]


def _findings(c: Comparison) -> list[str]:
    lines = ["findings:"]
    lines += [f"  [{f.kind}] {f.message}" for f in c.analysis.findings]
    if c.judgement is not None:
        j = c.judgement
        suspected = {True: "True", False: "False", None: "Unknown"}[j.leak_suspected]
        lines.append(
            f"  series: {j.snapshots} snapshots over {j.seconds:.0f}s, shape {j.shape}, "
            f"confidence {j.confidence}, LeakSuspected {suspected} ({j.reason})"
        )
    lines += ["", "verdict: " + c.verdict]
    return lines


def render_table_only(
    base: Snapshot,
    new: Snapshot,
    heap: HeapDiff,
    chosen: SampleIndexChoice,
    top: int | None,
    why: str,
) -> str:
    """pprof's table for profiles the memory analysis does not read, and why it does not."""
    return "\n".join([*_header(base, new, heap, chosen), *_top_table(heap, top), why])


def _header(
    base: Snapshot, new: Snapshot, heap: HeapDiff, chosen: SampleIndexChoice | None
) -> list[str]:
    unit = heap.unit
    return [
        f"base: {base.source}",
        f"new:  {new.source}",
        *([chosen.describe()] if chosen is not None else []),
        f"{heap.sample_index}: {format_value(heap.base_total, unit)} -> "
        f"{format_value(heap.new_total, unit)} "
        f"({format_signed(heap.new_total - heap.base_total, unit)}), -{heap.mode.value}",
        "",
    ]


def _top_table(heap: HeapDiff, top: int | None) -> list[str]:
    unit = heap.unit
    shown = heap.functions if top is None else heap.functions[:top]
    lines = [f"{'flat':>10} {'flat%':>7} {'sum%':>7} {'cum':>10} {'cum%':>7}"]
    running = 0
    for f in shown:
        running += f.flat
        lines.append(
            f"{format_value(f.flat, unit):>10} {percent(f.flat, heap.report_total):>7} "
            f"{percent(running, heap.report_total):>7} {format_value(f.cum, unit):>10} "
            f"{percent(f.cum, heap.report_total):>7}  {f.name}"
        )
    if not heap.functions:
        lines.append("(no function changed)")
    elif len(shown) < len(heap.functions):
        lines.append(f"... {len(heap.functions) - len(shown)} more (use --top or --json)")
    return [*lines, ""]


def _memory_table(c: Comparison) -> list[str]:
    base, new, delta = c.memory.base, c.memory.new, c.memory.delta
    if not any(key in base or key in new for key in MEMORY_ROWS):
        # Bare profiles carry no MemStats: say so instead of printing an empty table.
        return ["memory: no MemStats (heap.txt, heap?debug=1) in the snapshots", ""]
    lines = [f"{'memory':<14} {'base':>10} {'new':>10} {'delta':>10}"]
    for key in MEMORY_ROWS:
        if key not in base and key not in new:
            continue
        unit = "count" if key in _COUNTS else "bytes"
        lines.append(
            f"{key:<14} {_cell(base.get(key), unit):>10} {_cell(new.get(key), unit):>10} "
            f"{(format_signed(delta[key], unit) if key in delta else '-'):>10}"
        )
    return [*lines, ""]


def _cell(value: int | None, unit: str) -> str:
    return "-" if value is None else format_value(value, unit)


def _goroutines(c: Comparison) -> list[str]:
    g = c.goroutines
    if g.base is None or g.new is None:
        return ["goroutines: no goroutine.txt (goroutine?debug=1) in the snapshots"]
    lines = [f"goroutines: {g.base} -> {g.new} ({g.new - g.base:+d})"]
    lines += [f"  {count:+6d}  {function}" for function, count in g.growth[:10]]
    return lines


def render_verdict(c: Comparison, suspects: int = 3) -> str:
    """The short form: verdict, the leading suspects with their paths, the finding kinds."""
    lines = ["verdict: " + c.verdict, ""]
    for rank, s in enumerate(c.analysis.suspects[:suspects], 1):
        lines.append(f"  {rank}. {s.function}  {format_signed(s.bytes, 'bytes')}")
        lines.append("     " + " <- ".join(s.path[:8]) + (" ..." if len(s.path) > 8 else ""))
    kinds = ", ".join(f.kind for f in c.analysis.findings)
    lines.append(f"findings: {kinds}")
    return "\n".join(lines)
