"""The memory timeline as inline SVG: working set against the limit, thresholds, snapshots, end.

Every snapshot marker carries `data-snapshot` (its name) and `data-reason`; an OOM kill is a
`data-oom-kill` element: tests and tools can find them in the page.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from html import escape

from oomforensics.analysis.units import format_bytes
from oomforensics.report.model import Timeline, TimelinePoint

WIDTH, HEIGHT = 960, 360
LEFT, RIGHT, TOP, BOTTOM = 78, 64, 24, 56
_TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)
_MiB = 1024 * 1024
# Reasons that are labelled even when crowded: they say why memory was captured.
_ROUTINE = frozenset({"periodic", "snapshot"})


def _esc(value: object) -> str:
    return escape(str(value), quote=True)


class _Scale:
    def __init__(self, timeline: Timeline) -> None:
        self.t0, self.t1 = timeline.start, timeline.stop
        span = self.t1 - self.t0
        pad = max(span * 0.04, 1.0)
        self.t0, self.t1 = self.t0 - pad, self.t1 + pad
        values = [
            v
            for p in timeline.points
            for v in (p.working_set, p.rss, p.heap_inuse, p.memory)
            if v is not None
        ]
        if timeline.limit:
            values.append(timeline.limit)
        if timeline.end is not None and timeline.end.working_set is not None:
            values.append(timeline.end.working_set)
        top = max(values, default=_MiB) * 1.08
        self.step = _nice_bytes(top / 5)
        self.ymax = max(self.step * math.ceil(top / self.step), self.step)

    def x(self, t: float) -> float:
        return LEFT + (t - self.t0) / (self.t1 - self.t0) * (WIDTH - LEFT - RIGHT)

    def y(self, value: float) -> float:
        return TOP + (1 - value / self.ymax) * (HEIGHT - TOP - BOTTOM)


def _nice_bytes(raw: float) -> int:
    """A tick step of 1, 2, 2.5 or 5 times a power of ten, in the largest 1024-unit below
    `raw` (so labels read 25MB, 50MB or 2.5GB, 5GB)."""
    unit = 1
    while raw >= unit * 1024 and unit < 1024**4:
        unit *= 1024
    scaled = raw / unit
    power = 10 ** math.floor(math.log10(scaled)) if scaled > 0 else 1
    for factor in (1, 2, 2.5, 5, 10):
        if scaled <= factor * power:
            return max(int(factor * power * unit), 1)
    return int(10 * power * unit)


def _time_step(span: float) -> int:
    for step in _TIME_STEPS:
        if span / step <= 8:
            return step
    return _TIME_STEPS[-1] * math.ceil(span / _TIME_STEPS[-1] / 8)


def _clock(t: float, seconds: bool) -> str:
    moment = datetime.fromtimestamp(t, UTC)
    return moment.strftime("%H:%M:%S" if seconds else "%H:%M")


def render_timeline(timeline: Timeline, anchor: str) -> str:
    s = _Scale(timeline)
    parts = [
        f'<svg class="timeline" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'data-timeline="{_esc(anchor)}" aria-label="memory over time against the limit">'
    ]
    parts += _axes(s, timeline)
    parts += _limit_lines(s, timeline)
    parts += _series(s, timeline)
    parts += _end(s, timeline)
    parts += _markers(s, timeline)
    parts.append("</svg>")
    return "".join(parts)


def _axes(s: _Scale, timeline: Timeline) -> list[str]:
    out = ['<g class="axis">']
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    value = 0
    while value <= s.ymax + 1:
        y = s.y(value)
        out.append(f'<line class="grid" x1="{LEFT}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(
            f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{_esc(format_bytes(value))}'
            "</text>"
        )
        value += s.step
    span = s.t1 - s.t0
    step = _time_step(span)
    tick = math.ceil(s.t0 / step) * step
    while tick <= s.t1:
        x = s.x(tick)
        out.append(
            f'<line class="tick" x1="{x:.1f}" x2="{x:.1f}" y1="{bottom}" y2="{bottom + 5}"/>'
        )
        out.append(
            f'<text x="{x:.1f}" y="{bottom + 19}" text-anchor="middle">'
            f"{_clock(tick, step < 60)}</text>"
        )
        tick += step
    out.append(f'<line class="frame" x1="{LEFT}" x2="{right}" y1="{bottom}" y2="{bottom}"/>')
    out.append(f'<line class="frame" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{bottom}"/>')
    day = datetime.fromtimestamp(timeline.start, UTC).strftime("%Y-%m-%d")
    out.append(
        f'<text class="title" x="{(LEFT + right) / 2:.0f}" y="{HEIGHT - 8}" '
        f'text-anchor="middle">time (UTC, {day})</text>'
    )
    out.append(
        f'<text class="title" transform="translate(16 {(TOP + bottom) / 2:.0f}) rotate(-90)" '
        'text-anchor="middle">memory</text>'
    )
    out.append("</g>")
    return out


def _limit_lines(s: _Scale, timeline: Timeline) -> list[str]:
    if not timeline.limit:
        return [
            f'<text class="note" x="{WIDTH - RIGHT}" y="{TOP + 12}" text-anchor="end">'
            "no memory limit recorded</text>"
        ]
    out = []
    right = WIDTH - RIGHT
    for threshold in timeline.thresholds:
        y = s.y(timeline.limit * threshold / 100)
        out.append(
            f'<line class="threshold" data-threshold="{threshold}" x1="{LEFT}" x2="{right}" '
            f'y1="{y:.1f}" y2="{y:.1f}"><title>{threshold}% of the limit: '
            f"{_esc(format_bytes(timeline.limit * threshold // 100))}</title></line>"
        )
        out.append(
            f'<text class="threshold-label" x="{right + 4}" y="{y + 4:.1f}">{threshold}%</text>'
        )
    y = s.y(timeline.limit)
    out.append(
        f'<line class="limit" x1="{LEFT}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}">'
        f"<title>memory limit {_esc(format_bytes(timeline.limit))}</title></line>"
    )
    out.append(
        f'<text class="limit-label" x="{right + 4}" y="{y + 4:.1f}">limit</text>'
        f'<text class="limit-label" x="{LEFT + 6}" y="{y - 6:.1f}">'
        f"{_esc(format_bytes(timeline.limit))}</text>"
    )
    return out


def _path(s: _Scale, points: list[tuple[float, int]]) -> str:
    return " ".join(f"{s.x(t):.1f},{s.y(v):.1f}" for t, v in points)


def _series(s: _Scale, timeline: Timeline) -> list[str]:
    out = []
    series = [("heap", "heap_inuse"), ("rss", "rss"), ("working-set", "working_set")]
    if not has_memory_figures(timeline):
        series = [("heap-profile", "heap_profile")]
    for css, attribute in series:
        points = [
            (p.time, value) for p in timeline.points if (value := getattr(p, attribute)) is not None
        ]
        if len(points) >= 2:
            out.append(f'<polyline class="series {css}" points="{_path(s, points)}"/>')
    end = timeline.end
    last = timeline.points[-1]
    if end is not None and end.time is not None:
        reached = end.working_set if end.working_set is not None else timeline.limit
        if reached is not None:
            out.append(
                f'<polyline class="series after" points="'
                f'{_path(s, [(last.time, last.memory), (end.time, reached)])}"/>'
            )
    return out


def _end(s: _Scale, timeline: Timeline) -> list[str]:
    end = timeline.end
    if end is None or end.time is None:
        return []
    x = s.x(end.time)
    kill = end.kind == "oom-kill"
    label = "OOM kill" if kill else "exit"
    attribute = "data-oom-kill" if kill else "data-exit"
    at = timeline.limit if kill and timeline.limit else end.working_set
    y = s.y(at) if at is not None else TOP + 8
    when = datetime.fromtimestamp(end.time, UTC).strftime("%H:%M:%S")
    return [
        f'<g class="end {end.kind}" {attribute}="{_esc(when)}">'
        f"<title>{_esc(label)} at {when} UTC: {_esc(end.message)}</title>"
        f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}"/>'
        f'<path d="M{x - 6:.1f},{y - 6:.1f}L{x + 6:.1f},{y + 6:.1f}M{x - 6:.1f},{y + 6:.1f}'
        f'L{x + 6:.1f},{y - 6:.1f}"/>'
        f'<text x="{x - 6:.1f}" y="{TOP + 12}" text-anchor="end">{_esc(label)}</text></g>'
    ]


Box = tuple[float, float, float, float]  # x0, y0, x1, y1
_LABEL_OFFSETS = (-10, -24, 20, -38, 34, -52, 48, -66)  # baseline offsets from the marker


def _overlaps(box: Box, boxes: list[Box]) -> bool:
    x0, y0, x1, y1 = box
    return any(x0 < b[2] and b[0] < x1 and y0 < b[3] and b[1] < y1 for b in boxes)


def _label_box(x: float, base: float, width: float, left: bool) -> Box:
    x0 = x - 8 - width if left else x + 8
    return (x0, base - 11, x0 + width, base + 3)


def _free(box: Box, placed: list[Box]) -> bool:
    inside = box[0] >= 2 and box[2] <= WIDTH - RIGHT and box[1] >= 4 and box[3] <= HEIGHT - BOTTOM
    return inside and not _overlaps(box, placed)


def _markers(s: _Scale, timeline: Timeline) -> list[str]:
    """Snapshot markers; each labelled with its reason where a free spot near it is found.

    Labels are laid out greedily in time order: the first spot next to the marker (right of
    it, or left near the right edge) that covers no other label or marker; a label moved off
    its marker gets a leader line. Crowded routine captures keep only their tooltip.
    """
    placed: list[Box] = []
    spots = [(p, s.x(p.time), s.y(p.memory)) for p in timeline.points]
    for _, x, y in spots:
        placed.append((x - 6, y - 6, x + 6, y + 6))
    if timeline.end is not None and timeline.end.time is not None:
        x = s.x(timeline.end.time)
        placed.append((x - 70, TOP, x, TOP + 16))  # the end's own label
        at = timeline.limit if timeline.end.kind == "oom-kill" else timeline.end.working_set
        if at is not None:
            placed.append((x - 8, s.y(at) - 8, x + 8, s.y(at) + 8))  # its cross
    if timeline.limit:
        y = s.y(timeline.limit)
        placed.append((LEFT, y - 18, LEFT + 70, y - 2))  # the limit's value
    out = ['<g class="markers">']
    for p, x, y in spots:
        out.append(
            f'<g class="marker{" pre-oom" if p.pre_oom else ""}" '
            f'data-snapshot="{_esc(p.snapshot)}" '
            f'data-reason="{_esc(p.reason)}"><title>{_esc(_describe(p))}</title>'
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{6 if p.pre_oom else 4.5}"/>'
        )
        text = p.reason + (" (pre-OOM)" if p.pre_oom else "")
        width = 6.4 * len(text) + 4
        room_right = x + width + 12 <= WIDTH - RIGHT
        sides = (False, True) if room_right else (True, False)  # left of the marker: True
        offsets = _LABEL_OFFSETS[:2] if p.reason in _ROUTINE else _LABEL_OFFSETS
        spot = next(
            (
                (dy, left, box)
                for dy in offsets
                for left in sides
                if _free(box := _label_box(x, y + dy, width, left), placed)
            ),
            None,
        )
        if spot is not None:
            dy, left, box = spot
            placed.append(box)
            base = y + dy
            if abs(dy) > 10 or left != sides[0]:
                tip = box[2] if left else box[0]
                out.append(
                    f'<line class="leader" x1="{x:.1f}" y1="{y:.1f}" x2="{tip:.1f}" '
                    f'y2="{base - 4:.1f}"/>'
                )
            anchor = ' text-anchor="end"' if left else ""
            out.append(
                f'<text class="marker-label" x="{box[2] if left else box[0]:.1f}" '
                f'y="{base:.1f}"{anchor}>{_esc(text)}</text>'
            )
        out.append("</g>")
    out.append("</g>")
    return out


def has_memory_figures(timeline: Timeline) -> bool:
    """Whether any snapshot recorded the working set, the RSS or MemStats."""
    return any(
        p.working_set is not None or p.rss is not None or p.heap_inuse is not None
        for p in timeline.points
    )


def _describe(p: TimelinePoint) -> str:
    when = datetime.fromtimestamp(p.time, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    parts = [f"{p.snapshot}", f"{when} UTC, reason {p.reason}"]
    if p.working_set is not None:
        share = f" ({p.percent_of_limit:.1f}% of the limit)" if p.percent_of_limit else ""
        parts.append(f"working set {format_bytes(p.working_set)}{share}")
    if p.rss is not None:
        parts.append(f"RSS {format_bytes(p.rss)}")
    if p.heap_inuse is not None:
        parts.append(f"HeapInuse {format_bytes(p.heap_inuse)}")
    parts.append(f"heap profile (live at the last GC) {format_bytes(p.heap_profile)}")
    parts.append("files: " + ", ".join(p.files))
    if p.pre_oom:
        parts.append("the last snapshot before the OOM kill")
    return "\n".join(parts)
