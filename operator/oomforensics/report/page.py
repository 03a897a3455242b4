"""The report page: one self-contained HTML file (inline CSS, SVG and script; nothing fetched).

Everything that comes from a profile, a manifest or a file name is escaped: Go function names
hold `<`, `>`, `&` and `*`, and folder names are whatever was on disk.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

from oomforensics.analysis.accounting import ACCOUNT_ROWS
from oomforensics.analysis.comparison import Comparison
from oomforensics.analysis.units import format_bytes, format_signed
from oomforensics.report.flamehtml import render_flame
from oomforensics.report.model import Report, RunReport, TimelinePoint
from oomforensics.report.timeline import has_memory_figures, render_timeline

DASH = "\u2013"  # an en dash: no value
PATH_FRAMES = 10  # call path frames shown before the rest is folded away


def _esc(value: object) -> str:
    return escape(str(value), quote=True)


def _bytes(value: int | None) -> str:
    return DASH if value is None else format_bytes(value)


def _signed(value: int | None) -> str:
    return DASH if value is None else format_signed(value, "bytes")


def _clock(t: float, date: bool = False) -> str:
    fmt = "%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S"
    return datetime.fromtimestamp(t, UTC).strftime(fmt)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def render_report(report: Report) -> str:
    title = "oomforensics report"
    if len(report.runs) == 1:
        title += f": {report.runs[0].title}"
    body = [
        _header(report),
        _overview(report) if len(report.runs) > 1 else "",
        *(_run(run, report) for run in report.runs),
        _footer(report),
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{_esc(title)}</title><style>{CSS}</style></head>"
        f'<body data-runs="{len(report.runs)}" data-snapshots="{report.snapshot_count}">'
        + "".join(body)
        + f"<script>{SCRIPT}</script></body></html>\n"
    )


def _header(report: Report) -> str:
    runs = report.runs
    select = ""
    if len(runs) > 1:
        options = "".join(
            f'<option value="{_esc(run.anchor)}">{_esc(run.title)}</option>' for run in runs
        )
        select = (
            '<label class="picker">Container run '
            f'<select id="run-select"><option value="">all {len(runs)} runs</option>{options}'
            "</select></label>"
        )
    pods = len({(r.identity.namespace, r.identity.pod) for r in runs})
    return (
        "<header><h1>Out-of-memory forensics</h1>"
        f'<p class="sub">{report.snapshot_count} snapshots, {len(runs)} container '
        f"run{'s' if len(runs) != 1 else ''} of {pods} pod{'s' if pods != 1 else ''} · generated "
        f"{_esc(report.generated_at.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S'))} UTC"
        + (f" by oomforensics {_esc(report.tool_version)}" if report.tool_version else "")
        + f"</p>{select}</header>"
    )


def _overview(report: Report) -> str:
    rows = []
    for run in report.runs:
        points = run.timeline.points
        peak = run.timeline.peak
        share = f" ({peak.percent_of_limit:.0f}%)" if peak and peak.percent_of_limit else ""
        verdict = run.comparison.verdict.split(". ")[0] + "." if run.comparison else DASH
        leak = run.comparison is not None and run.comparison.leak_suspected
        rows.append(
            f'<tr><td><a href="#{_esc(run.anchor)}">{_esc(run.title)}</a></td>'
            f'<td class="num">{len(points)}</td>'
            f"<td>{_esc(_clock(points[0].time, True))}, "
            f"{_duration(run.timeline.stop - run.timeline.start)}</td>"
            f'<td class="num">{_bytes(peak.working_set if peak else None)}{share}</td>'
            f'<td>{_esc(_end_label(run))}</td><td class="{"leak" if leak else "ok"}">'
            f"{_esc(verdict)}</td></tr>"
        )
    return (
        '<section class="overview"><h2>Container runs</h2><table><thead><tr><th>run</th>'
        "<th>snapshots</th><th>started, lasted</th><th>peak working set</th><th>end</th>"
        "<th>verdict</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _end_label(run: RunReport) -> str:
    end = run.timeline.end
    if end is None:
        return "running or unknown"
    if end.kind == "oom-kill":
        return "OOM kill" + (f" at {_clock(end.time)}" if end.time is not None else "")
    if end.kind == "exit":
        return "exited" + (f" (exit code {end.exit_code})" if end.exit_code is not None else "")
    return "restarted"


def _run(run: RunReport, report: Report) -> str:
    c = run.comparison
    parts = [
        f'<section class="run" id="{_esc(run.anchor)}" data-run="{_esc(run.title)}">',
        f"<h2>{_esc(run.title)}</h2>",
        _facts(run),
        _verdict(c),
        "<h3>Memory over time</h3>",
        render_timeline(run.timeline, run.anchor),
        _legend(run),
        _snapshot_table(run),
    ]
    if c is not None:
        parts += [
            _findings(c),
            _suspects(c),
            _growth_paths(c),
            _trend(c),
            _accounting(c),
            _goroutines(c),
        ]
    parts.append(_flame_section(run, report))
    if run.notes:
        parts.append(
            '<div class="notes"><h3>Notes</h3><ul>'
            + "".join(f"<li>{_esc(n)}</li>" for n in run.notes)
            + "</ul></div>"
        )
    parts.append("</section>")
    return "".join(parts)


def _facts(run: RunReport) -> str:
    points = run.timeline.points
    facts = [
        ("captured", f"{_clock(points[0].time, True)} \u2013 {_clock(points[-1].time)} UTC"),
        ("limit", _bytes(run.timeline.limit) if run.timeline.limit else "none recorded"),
        ("end", _end_label(run)),
        *run.facts,
    ]
    if run.timeline.end is not None:
        facts.append(("how it ended", run.timeline.end.message))
    return (
        '<dl class="facts">'
        + "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in facts)
        + "</dl>"
    )


def _verdict(c: Comparison | None) -> str:
    if c is None:
        return '<p class="verdict none">Fewer than two comparable snapshots: no verdict.</p>'
    css = "leak" if c.leak_suspected else "ok"
    return (
        f'<div class="verdict {css}"><strong>Verdict</strong> <span class="between">'
        f"{_esc(_name(c.base.source))} → {_esc(_name(c.new.source))}</span>"
        f"<p>{_esc(c.verdict)}</p></div>"
    )


def _name(source: str) -> str:
    return source.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def _legend(run: RunReport) -> str:
    points = run.timeline.points
    items = []
    if any(p.working_set is not None for p in points):
        items.append(("working-set", "working set (what the kubelet and OOM killer count)"))
    if any(p.rss is not None for p in points):
        items.append(("rss", "RSS"))
    if any(p.heap_inuse is not None for p in points):
        items.append(("heap", "Go HeapInuse"))
    if not has_memory_figures(run.timeline):
        items.append(("heap-profile", "heap profile in use (no memory figures were recorded)"))
    if run.timeline.limit:
        items.append(("limit", "memory limit"))
        shown = ", ".join(f"{t}%" for t in run.timeline.thresholds)
        items.append(("threshold", f"capture thresholds ({shown} of the limit)"))
    items.append(("marker", "snapshot (label: why it was taken)"))
    if any(p.pre_oom for p in points):
        items.append(("pre-oom", "last snapshot before the OOM kill"))
    end = run.timeline.end
    if end is not None and end.time is not None:
        items.append(("oom" if end.kind == "oom-kill" else "exit", _end_label(run)))
    return (
        '<ul class="legend">'
        + "".join(f'<li><span class="key {k}"></span>{_esc(text)}</li>' for k, text in items)
        + "</ul>"
    )


def _snapshot_table(run: RunReport) -> str:
    rows = []
    for p in run.timeline.points:
        rows.append(
            f"<tr{' class=pre-oom' if p.pre_oom else ''}><td>{_esc(_clock(p.time))}</td>"
            f"<td>{_esc(p.reason)}{' (pre-OOM)' if p.pre_oom else ''}</td>"
            f'<td class="num">{_bytes(p.working_set)}</td><td class="num">{_percent(p)}</td>'
            f'<td class="num">{_bytes(p.rss)}</td><td class="num">{_bytes(p.heap_inuse)}</td>'
            f'<td class="mono">{_esc(p.snapshot)}</td><td>{_esc(", ".join(p.files))}</td></tr>'
        )
    return (
        f"<details><summary>Snapshots ({len(rows)})</summary><table><thead><tr><th>time "
        "(UTC)</th><th>reason</th><th>working set</th><th>of limit</th><th>RSS</th>"
        "<th>HeapInuse</th><th>snapshot</th><th>files</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></details>"
    )


def _percent(p: TimelinePoint) -> str:
    share = p.percent_of_limit
    return DASH if share is None else f"{share:.1f}%"


def _findings(c: Comparison) -> str:
    items = "".join(
        f'<li><span class="kind">{_esc(f.kind)}</span> {_esc(f.message)}</li>'
        for f in c.analysis.findings
    )
    return f'<h3>Findings</h3><ul class="findings">{items}</ul>'


def _path(frames: tuple[str, ...]) -> str:
    """A call path, leaf first, as code chips; long ones fold after PATH_FRAMES."""
    chips = [f"<code>{_esc(f)}</code>" for f in frames]
    shown = " ← ".join(chips[:PATH_FRAMES])
    if len(chips) > PATH_FRAMES:
        rest = " ← ".join(chips[PATH_FRAMES:])
        shown += (
            f' <details class="more"><summary>{len(chips) - PATH_FRAMES} more frames</summary>'
            f"← {rest}</details>"
        )
    return f'<div class="path">{shown}</div>'


def _suspects(c: Comparison) -> str:
    suspects = c.analysis.suspects
    if not suspects:
        return "<h3>Top growth</h3><p class=note>No suspect: nothing grew beyond noise.</p>"
    rows = "".join(
        f'<tr><td class="num">{rank}</td><td><code class="fn">{_esc(s.function)}</code>'
        + (f'<div class="held">held by {_esc(s.mechanism)}</div>' if s.mechanism else "")
        + f"{_path(s.path)}</td>"
        f'<td class="num">{_signed(s.bytes)}</td><td class="num">{s.objects:+d}</td></tr>'
        for rank, s in enumerate(suspects, 1)
    )
    return (
        "<h3>Top growth: suspects</h3><p class=hint>Each growing call stack is charged to its "
        "first application frame (where the fix goes); the path is the dominant one, leaf "
        "first.</p><table class=suspects><thead><tr><th>#</th><th>suspect and call path</th>"
        f"<th>bytes</th><th>objects</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _growth_paths(c: Comparison) -> str:
    paths = c.analysis.growth_paths
    if not paths:
        return ""
    rows = "".join(
        f'<tr><td><code class="fn">{_esc(p.function)}</code>{_path(p.path[1:])}</td>'
        f'<td class="num">{_signed(p.bytes)}</td></tr>'
        for p in paths
    )
    return (
        "<h3>Top growing allocation sites</h3><p class=hint>Functions by their own (flat) "
        "growth, with their heaviest callers, as pprof's <code>peek</code> shows them.</p>"
        f"<table><thead><tr><th>function and callers</th><th>flat growth</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _trend(c: Comparison) -> str:
    trend = c.trend
    if trend is None or not trend.functions:
        return ""
    rows = "".join(
        f'<tr><td><code class="fn">{_esc(f.name)}</code></td>'
        f'<td class="num">{_signed(int(f.slope))}/h</td><td class="num">{f.steadiness:.2f}</td>'
        f'<td class="num">{_bytes(f.first)}</td><td class="num">{_bytes(f.last)}</td></tr>'
        for f in trend.functions[:8]
    )
    return (
        f"<h3>Trend over {_duration(trend.duration_seconds)}</h3><p class=hint>Cumulative "
        "in-use bytes per function, least-squares growth per hour and steadiness (1: a "
        "constant rate, low: one jump).</p><table><thead><tr><th>function</th><th>rate</th>"
        f"<th>steadiness</th><th>first</th><th>last</th></tr></thead><tbody>{rows}</tbody>"
        "</table>"
    )


def _accounting(c: Comparison) -> str:
    base, new = c.analysis.facts.base, c.analysis.facts.new
    rows = []
    for label, attribute in ACCOUNT_ROWS:
        before, after = getattr(base, attribute), getattr(new, attribute)
        if before is None and after is None:
            continue
        delta = after - before if before is not None and after is not None else None
        rows.append(
            f"<tr><td>{_esc(label)}</td><td class=num>{_bytes(before)}</td>"
            f"<td class=num>{_bytes(after)}</td><td class=num>{_signed(delta)}</td></tr>"
        )
    note = (
        "<p class=hint>RSS here is MaxRSS (the peak) from heap.txt: no current RSS was "
        "recorded.</p>"
        if new.rss_source == "MaxRSS"
        else ""
    )
    return (
        "<h3>Memory accounting</h3><p class=hint>Where the resident memory goes, from "
        "runtime.MemStats and the RSS: the heap profile shows only live objects as of the last "
        "GC.</p><table class=accounting><thead><tr><th>where the memory is</th><th>baseline</th>"
        f"<th>latest</th><th>change</th></tr></thead><tbody>{''.join(rows)}</tbody></table>" + note
    )


def _goroutines(c: Comparison) -> str:
    g = c.goroutines
    if g.base is None or g.new is None:
        return ""
    rows = "".join(
        f'<tr><td><code class="fn">{_esc(name)}</code></td><td class=num>{count:+d}</td></tr>'
        for name, count in g.growth[:8]
    )
    table = (
        f"<table><thead><tr><th>goroutines started by</th><th>change</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
        if rows
        else ""
    )
    return f"<h3>Goroutines: {g.base} → {g.new} ({g.new - g.base:+d})</h3>{table}"


def _flame_section(run: RunReport, report: Report) -> str:
    graph, c = run.flame, run.comparison
    if graph is None or c is None:
        return ""
    pruned = (
        f"{graph.pruned_frames} frames narrower than {100 * graph.min_share:g}% of the change "
        "are left out to keep this page small."
        if graph.pruned_frames
        else f"Frames narrower than {100 * graph.min_share:g}% of the change would be left out; "
        "none were."
    )
    del report
    return (
        f"<h3>Diff flame graph: {_esc(_name(c.base.source))} → {_esc(_name(c.new.source))}</h3>"
        f"<p class=hint>In-use heap (inuse_space) by call stack, latest minus baseline "
        f"({_bytes(graph.base_total)} → {_bytes(graph.new_total)}). Callers above callees; a "
        "frame's width is the bytes that changed under it (growth and shrinkage both count), "
        "its colour says which way: "
        '<span class="key grew"></span>grew <span class="key shrank"></span>shrank '
        '<span class="key mixed"></span>both. Hover for bytes; click to zoom, click the top '
        f"row to zoom out. {_esc(pruned)}</p>"
        + render_flame(graph, run.anchor)
        + f'<p class="flame-info" id="{_esc(run.anchor)}-info">&nbsp;</p>'
    )


def _footer(report: Report) -> str:
    del report
    return (
        "<footer>Snapshots are read from the archive layout "
        "<code>{namespace}/{investigation}/{pod}/{container}/run-{N}/{time}-{reason}/</code>; "
        "compare any two with <code>oomforensics diff</code> for pprof's exact numbers."
        "</footer>"
    )


CSS = """
:root{--fg:#1d2330;--muted:#5b6475;--line:#d9dde5;--bg:#f6f7f9;--card:#fff;--ws:#1f5fbf;
--rss:#7a3fb0;--heap:#2e8b57;--limit:#c62828;--threshold:#e08a00;--grew:hsl(6,80%,62%);
--shrank:hsl(212,80%,62%);--mixed:hsl(6,18%,84%)}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
color:var(--fg);background:var(--bg)}
header{background:#1d2330;color:#fff;padding:14px 28px;display:flex;flex-wrap:wrap;
align-items:baseline;gap:6px 24px}
header h1{font-size:20px;margin:0}
header .sub{margin:0;color:#c8cfdb}
.picker{margin-left:auto;color:#c8cfdb}
.picker select{margin-left:6px;font:inherit;padding:2px 4px}
section{background:var(--card);margin:18px 28px;padding:14px 22px 20px;border:1px solid var(--line);
border-radius:6px}
h2{font-size:18px;margin:4px 0 8px}
h3{font-size:15px;margin:22px 0 6px}
table{border-collapse:collapse;width:100%;margin:4px 0}
th,td{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{font-weight:600;color:var(--muted);font-size:12.5px}
td.num,th.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
td.leak{color:#a11d1d}
td.ok{color:#22663b}
tr.pre-oom td{background:#fff4f0}
code,.mono{font:12.5px/1.4 ui-monospace,"DejaVu Sans Mono",Menlo,monospace}
code.fn{font-weight:600}
.path{margin-top:3px;color:var(--muted);word-break:break-word}
.path code{background:#f0f2f6;padding:0 3px;border-radius:3px;color:var(--fg)}
.path details.more{display:inline}
table.suspects td:nth-child(2){width:75%}
.held{color:var(--muted);font-style:italic}
.hint,.note{color:var(--muted);margin:2px 0 6px;font-size:13px}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0 0 10px}
dl.facts dt{color:var(--muted)}
dl.facts dd{margin:0;word-break:break-all}
.verdict{border-left:5px solid #999;background:#f4f5f7;padding:8px 14px;margin:10px 0}
.verdict p{margin:4px 0 0}
.verdict.leak{border-color:#c62828;background:#fff3f1}
.verdict.ok{border-color:#2e8b57;background:#f0faf3}
.verdict .between{color:var(--muted);font-size:12.5px;margin-left:8px}
ul.findings{padding-left:18px;margin:4px 0}
ul.findings li{margin:3px 0}
.kind{display:inline-block;font:600 11.5px ui-monospace,monospace;background:#eef0f4;
border-radius:3px;padding:0 5px;margin-right:4px}
svg.timeline{width:100%;max-width:1280px;height:auto;display:block;background:#fff}
svg.timeline text{font-size:12px;fill:#3d4555}
svg.timeline .title{font-size:13px;fill:var(--muted)}
svg.timeline .grid{stroke:#edf0f4}
svg.timeline .tick,svg.timeline .frame{stroke:#8a93a3}
svg.timeline .series{fill:none;stroke-width:2;stroke-linejoin:round}
svg.timeline .working-set{stroke:var(--ws);stroke-width:2.5}
svg.timeline .rss{stroke:var(--rss);stroke-dasharray:6 4}
svg.timeline .heap{stroke:var(--heap);stroke-width:1.6}
svg.timeline .heap-profile{stroke:var(--heap);stroke-width:2.5}
svg.timeline .after{stroke:var(--ws);stroke-dasharray:3 4;stroke-width:2}
svg.timeline .limit{stroke:var(--limit);stroke-width:2}
svg.timeline .limit-label{fill:var(--limit);font-weight:600}
svg.timeline .threshold{stroke:var(--threshold);stroke-dasharray:5 5;stroke-width:1.2}
svg.timeline .threshold-label{fill:#a86700}
svg.timeline .marker circle{fill:#fff;stroke:var(--ws);stroke-width:2.2}
svg.timeline .marker.pre-oom circle{fill:var(--limit);stroke:#7a1010}
svg.timeline .marker-label{font-size:11.5px;fill:#1d2330;paint-order:stroke;stroke:#fff;
stroke-width:3px;stroke-linejoin:round}
svg.timeline .leader{stroke:#8a93a3;stroke-width:1}
svg.timeline .end line{stroke:var(--limit);stroke-dasharray:4 3;stroke-width:1.5}
svg.timeline .end path{stroke:var(--limit);stroke-width:3}
svg.timeline .end text{fill:var(--limit);font-weight:700}
svg.timeline .end.exit line,svg.timeline .end.exit path{stroke:#555}
svg.timeline .end.exit text{fill:#555}
ul.legend{list-style:none;padding:0;margin:6px 0 4px;display:flex;flex-wrap:wrap;gap:4px 18px;
font-size:12.5px;color:var(--muted)}
.key{display:inline-block;width:22px;height:0;border-top:3px solid;vertical-align:middle;
margin:0 6px 2px 0}
.key.working-set{border-color:var(--ws)}
.key.rss{border-top:2px dashed var(--rss)}
.key.heap{border-color:var(--heap);border-top-width:2px}
.key.heap-profile{border-color:var(--heap)}
.key.limit{border-color:var(--limit)}
.key.threshold{border-top:2px dashed var(--threshold)}
.key.marker,.key.pre-oom{width:11px;height:11px;border:2.2px solid var(--ws);border-radius:50%;
background:#fff}
.key.pre-oom{background:var(--limit);border-color:#7a1010}
.key.oom{width:4px;border:0;border-left:3px dashed var(--limit);height:14px}
.key.exit{width:4px;border:0;border-left:3px dashed #555;height:14px}
.key.grew,.key.shrank,.key.mixed{width:14px;height:12px;border:1px solid #999}
.key.grew{background:var(--grew)}
.key.shrank{background:var(--shrank)}
.key.mixed{background:var(--mixed)}
.flame{position:relative;width:100%;overflow:hidden;border:1px solid var(--line);
background:#fafbfc;margin-top:6px}
.fr{position:absolute;height:19px;padding:0 4px;overflow:hidden;white-space:nowrap;
text-overflow:ellipsis;font:11.5px/19px ui-monospace,"DejaVu Sans Mono",monospace;color:#1d2330;
border-right:1px solid #fff;border-bottom:1px solid #fff;cursor:pointer}
.fr:hover{outline:1.5px solid #1d2330;z-index:1}
.fr.root{font-weight:600}
.fr[hidden]{display:none}
.flame-info{font:12px ui-monospace,monospace;color:var(--muted);white-space:pre-wrap;
min-height:3.2em}
.notes{color:var(--muted)}
details summary{cursor:pointer;color:var(--muted);margin:6px 0}
footer{margin:10px 28px 28px;color:var(--muted);font-size:12.5px}
"""

SCRIPT = """
(function () {
  "use strict";
  var select = document.getElementById("run-select");
  if (select) {
    select.addEventListener("change", function () {
      var wanted = select.value;
      document.querySelectorAll("section.run").forEach(function (section) {
        section.hidden = wanted !== "" && section.id !== wanted;
      });
    });
  }
  document.querySelectorAll(".flame").forEach(function (flame) {
    var frames = Array.prototype.slice.call(flame.querySelectorAll("[data-frame]"));
    var info = document.getElementById(flame.getAttribute("data-flame") + "-info");
    function num(el, name) { return Number(el.getAttribute("data-" + name)); }
    function zoom(target) {
      var start = num(target, "start"), width = num(target, "width"), depth = num(target, "depth");
      if (!(width > 0)) { return; }
      frames.forEach(function (f) {
        var s = num(f, "start"), w = num(f, "width"), d = num(f, "depth");
        var above = d < depth && s <= start && s + w >= start + width;
        var inside = d >= depth && s >= start && s + w <= start + width;
        f.hidden = !(above || inside);
        if (above) {
          f.style.left = "0%"; f.style.width = "100%";
        } else if (inside) {
          f.style.left = (100 * (s - start) / width).toFixed(4) + "%";
          f.style.width = (100 * w / width).toFixed(4) + "%";
        }
      });
    }
    flame.addEventListener("click", function (event) {
      var f = event.target.closest("[data-frame]");
      if (f) { zoom(f); }
    });
    flame.addEventListener("mouseover", function (event) {
      var f = event.target.closest("[data-frame]");
      if (f && info) { info.textContent = f.getAttribute("title"); }
    });
  });
})();
"""
