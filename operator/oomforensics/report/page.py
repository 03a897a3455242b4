"""The report page: one self-contained HTML file (inline CSS, SVG and script; nothing fetched).

The markup is in templates/ (rendered with autoescaping: Go function names hold `<`, `>`, `&`
and `*`, and folder names are whatever was on disk), the stylesheet and script in static/.
This module gathers what the templates show.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC

from markupsafe import Markup

from oomforensics.analysis.accounting import ACCOUNT_ROWS
from oomforensics.analysis.comparison import Comparison
from oomforensics.report.flamehtml import render_flame
from oomforensics.report.model import Report, RunReport
from oomforensics.report.templating import DASH, bytes_or_dash, clock, static, template
from oomforensics.report.timeline import has_memory_figures, render_timeline

PATH_FRAMES = 10  # call path frames shown before the rest is folded away


@dataclass(frozen=True, slots=True)
class OverviewRow:
    run: RunReport
    snapshots: int
    started: float
    lasted: float
    peak: int | None
    share: str
    end: str
    leak: bool
    verdict: str


@dataclass(frozen=True, slots=True)
class RunView:
    run: RunReport
    facts: list[tuple[str, str]]
    timeline: Markup
    legend: list[tuple[str, str]]
    accounting: list[tuple[str, int | None, int | None, int | None]]
    flame: Markup | None
    fold: int = PATH_FRAMES
    dash: str = DASH


@dataclass(frozen=True, slots=True)
class PageView:
    title: str
    generated: str
    pods: int
    overview: list[OverviewRow]
    runs: list[RunView]
    css: Markup
    script: Markup


def render_report(report: Report) -> str:
    title = "oomforensics report"
    if len(report.runs) == 1:
        title += f": {report.runs[0].title}"
    page = PageView(
        title=title,
        generated=report.generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        pods=len({(r.identity.namespace, r.identity.pod) for r in report.runs}),
        overview=[_overview_row(run) for run in report.runs] if len(report.runs) > 1 else [],
        runs=[_run_view(run) for run in report.runs],
        css=static("report.css"),
        script=static("report.js"),
    )
    return template("report.html.j2").render(page=page, report=report)


def _overview_row(run: RunReport) -> OverviewRow:
    points, peak = run.timeline.points, run.timeline.peak
    return OverviewRow(
        run=run,
        snapshots=len(points),
        started=points[0].time,
        lasted=run.timeline.stop - run.timeline.start,
        peak=peak.working_set if peak else None,
        share=f" ({peak.percent_of_limit:.0f}%)" if peak and peak.percent_of_limit else "",
        end=end_label(run),
        leak=run.comparison is not None and run.comparison.leak_suspected,
        verdict=run.comparison.verdict.split(". ")[0] + "." if run.comparison else DASH,
    )


def end_label(run: RunReport) -> str:
    end = run.timeline.end
    if end is None:
        return "running or unknown"
    told = end.attribution
    how = f" ({told.cause.value}, confidence {told.confidence.value})" if told else ""
    if end.kind == "oom-kill":
        return "OOM kill" + (f" at {clock(end.time)}" if end.time is not None else "") + how
    if told is not None:  # an end the operator told apart from an OOM kill
        code = f", exit code {end.exit_code}" if end.exit_code is not None else ""
        return f"{told.ending.value}{code}{how}: not an OOM kill"
    if end.kind == "exit":
        return "exited" + (f" (exit code {end.exit_code})" if end.exit_code is not None else "")
    return "restarted"


def _run_view(run: RunReport) -> RunView:
    c = run.comparison
    return RunView(
        run=run,
        facts=_facts(run),
        timeline=render_timeline(run.timeline, run.anchor),
        legend=_legend(run),
        accounting=_accounting(c) if c is not None else [],
        flame=render_flame(run.flame, run.anchor) if run.flame is not None and c else None,
    )


def _facts(run: RunReport) -> list[tuple[str, str]]:
    points = run.timeline.points
    facts = [
        ("captured", f"{clock(points[0].time, True)} {DASH} {clock(points[-1].time)} UTC"),
        ("limit", bytes_or_dash(run.timeline.limit) if run.timeline.limit else "none recorded"),
        ("end", end_label(run)),
        *run.facts,
    ]
    if run.timeline.end is not None:
        facts.append(("how it ended", run.timeline.end.message))
        told = run.timeline.end.attribution
        if told is not None and told.last_reading is not None:
            last = told.last_reading
            share = f" ({last.percent_of_limit:.1f}% of the limit)" if last.percent_of_limit else ""
            when = (
                f", {last.seconds_before:.0f} s before the end"
                if last.seconds_before is not None
                else ""
            )
            facts.append(("last reading", f"{bytes_or_dash(last.working_set)}{share}{when}"))
    return facts


def _legend(run: RunReport) -> list[tuple[str, str]]:
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
        items.append(("oom" if end.kind == "oom-kill" else "exit", end_label(run)))
    return items


def _accounting(c: Comparison) -> list[tuple[str, int | None, int | None, int | None]]:
    """Rows of the memory accounting: (where, baseline, latest, change), known rows only."""
    base, new = c.analysis.facts.base, c.analysis.facts.new
    rows = []
    for label, attribute in ACCOUNT_ROWS:
        before, after = getattr(base, attribute), getattr(new, attribute)
        if before is None and after is None:
            continue
        delta = after - before if before is not None and after is not None else None
        rows.append((label, before, after, delta))
    return rows
