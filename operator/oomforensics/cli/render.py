"""Human output of a comparison: a pprof-style top table, then MemStats and goroutines."""

from __future__ import annotations

from oomforensics.analysis.comparison import Comparison
from oomforensics.analysis.units import format_signed, format_value, percent

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


def render_comparison(comparison: Comparison, top: int | None) -> str:
    return "\n".join(
        [
            *_header(comparison),
            *_top_table(comparison, top),
            *_memory_table(comparison),
            *_goroutines(comparison),
        ]
    )


def _header(c: Comparison) -> list[str]:
    heap = c.heap
    unit = heap.unit
    return [
        f"base: {c.base.source}",
        f"new:  {c.new.source}",
        f"{heap.sample_index}: {format_value(heap.base_total, unit)} -> "
        f"{format_value(heap.new_total, unit)} "
        f"({format_signed(heap.new_total - heap.base_total, unit)}), -{heap.mode.value}",
        "",
    ]


def _top_table(c: Comparison, top: int | None) -> list[str]:
    heap, unit = c.heap, c.heap.unit
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
    if not base and not new:
        return ["memory: no heap.txt (heap?debug=1) in the snapshots", ""]
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
