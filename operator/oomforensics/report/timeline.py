"""The memory timeline as inline SVG: working set against the limit, thresholds, snapshots, end.

Every snapshot marker carries `data-snapshot` (its name) and `data-reason`; an OOM kill is a
`data-oom-kill` element: tests and tools can find them in the page. The markup is
templates/timeline.svg.j2; this module computes the geometry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from markupsafe import Markup

from oomforensics.analysis.units import format_bytes
from oomforensics.report.model import Timeline, TimelinePoint
from oomforensics.report.templating import template

WIDTH, HEIGHT = 960, 360
LEFT, RIGHT, TOP, BOTTOM = 78, 64, 24, 56
_TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)
_MiB = 1024 * 1024
# Reasons that are labelled even when crowded: they say why memory was captured.
_ROUTINE = frozenset({"periodic", "snapshot"})


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


@dataclass(frozen=True, slots=True)
class Label:
    x: float
    y: float
    text: str
    anchor_end: bool = False


@dataclass(frozen=True, slots=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True, slots=True)
class Threshold:
    percent: int
    y: float
    title: str


@dataclass(frozen=True, slots=True)
class EndMark:
    kind: str
    attribute: str  # data-oom-kill or data-exit: what tests and tools look for
    when: str
    title: str
    x: float
    y: float
    label: str


@dataclass(frozen=True, slots=True)
class Marker:
    snapshot: str
    reason: str
    pre_oom: bool
    title: str
    x: float
    y: float
    leader: Line | None
    label: Label | None


@dataclass(frozen=True, slots=True)
class Drawing:
    """Everything templates/timeline.svg.j2 draws, in SVG user units."""

    anchor: str
    y_grid: list[Label]
    x_ticks: list[Label]
    day: str
    thresholds: list[Threshold]
    limit: Label | None  # its y and its value's text
    series: list[tuple[str, str]]  # CSS class, polyline points
    end: EndMark | None
    markers: list[Marker]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM


def render_timeline(timeline: Timeline, anchor: str) -> Markup:
    return Markup(template("timeline.svg.j2").render(d=draw_timeline(timeline, anchor)))


def draw_timeline(timeline: Timeline, anchor: str) -> Drawing:
    s = _Scale(timeline)
    limit = None
    if timeline.limit:
        limit = Label(LEFT, s.y(timeline.limit), format_bytes(timeline.limit))
    return Drawing(
        anchor=anchor,
        y_grid=_y_grid(s),
        x_ticks=_x_ticks(s),
        day=datetime.fromtimestamp(timeline.start, UTC).strftime("%Y-%m-%d"),
        thresholds=_thresholds(s, timeline),
        limit=limit,
        series=_series(s, timeline),
        end=_end(s, timeline),
        markers=_markers(s, timeline),
    )


def _y_grid(s: _Scale) -> list[Label]:
    out = []
    value = 0
    while value <= s.ymax + 1:
        out.append(Label(LEFT - 8, s.y(value), format_bytes(value)))
        value += s.step
    return out


def _x_ticks(s: _Scale) -> list[Label]:
    step = _time_step(s.t1 - s.t0)
    tick = math.ceil(s.t0 / step) * step
    out = []
    while tick <= s.t1:
        out.append(Label(s.x(tick), HEIGHT - BOTTOM, _clock(tick, step < 60)))
        tick += step
    return out


def _thresholds(s: _Scale, timeline: Timeline) -> list[Threshold]:
    limit = timeline.limit
    if not limit:
        return []
    return [
        Threshold(
            t,
            s.y(limit * t / 100),
            f"{t}% of the limit: {format_bytes(limit * t // 100)}",
        )
        for t in timeline.thresholds
    ]


def _path(s: _Scale, points: list[tuple[float, int]]) -> str:
    return " ".join(f"{s.x(t):.1f},{s.y(v):.1f}" for t, v in points)


def _series(s: _Scale, timeline: Timeline) -> list[tuple[str, str]]:
    out = []
    series = [("heap", "heap_inuse"), ("rss", "rss"), ("working-set", "working_set")]
    if not has_memory_figures(timeline):
        series = [("heap-profile", "heap_profile")]
    for css, attribute in series:
        points = [
            (p.time, value) for p in timeline.points if (value := getattr(p, attribute)) is not None
        ]
        if len(points) >= 2:
            out.append((css, _path(s, points)))
    end = timeline.end
    last = timeline.points[-1]
    if end is not None and end.time is not None:
        reached = end.working_set if end.working_set is not None else timeline.limit
        if reached is not None:
            out.append(("after", _path(s, [(last.time, last.memory), (end.time, reached)])))
    return out


def _end(s: _Scale, timeline: Timeline) -> EndMark | None:
    end = timeline.end
    if end is None or end.time is None:
        return None
    kill = end.kind == "oom-kill"
    label = "OOM kill" if kill else "exit"
    at = timeline.limit if kill and timeline.limit else end.working_set
    when = datetime.fromtimestamp(end.time, UTC).strftime("%H:%M:%S")
    return EndMark(
        kind=end.kind,
        attribute="data-oom-kill" if kill else "data-exit",
        when=when,
        title=f"{label} at {when} UTC: {end.message}",
        x=s.x(end.time),
        y=s.y(at) if at is not None else TOP + 8,
        label=label,
    )


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


def _around(x: float, y: float, r: float) -> Box:
    return (x - r, y - r, x + r, y + r)


def _occupied(s: _Scale, timeline: Timeline) -> list[Box]:
    """What labels must not cover: every marker, the end's label and cross, the limit's value."""
    placed = [
        (s.x(p.time) - 6, s.y(p.memory) - 6, s.x(p.time) + 6, s.y(p.memory) + 6)
        for p in timeline.points
    ]
    if timeline.end is not None and timeline.end.time is not None:
        x = s.x(timeline.end.time)
        placed.append((x - 70, TOP, x, TOP + 16))
        at = timeline.limit if timeline.end.kind == "oom-kill" else timeline.end.working_set
        if at is not None:
            placed.append((x - 8, s.y(at) - 8, x + 8, s.y(at) + 8))
    if timeline.limit:
        y = s.y(timeline.limit)
        placed.append((LEFT, y - 18, LEFT + 70, y - 2))
    return placed


def _markers(s: _Scale, timeline: Timeline) -> list[Marker]:
    """Snapshot markers; each labelled with its reason where a free spot near it is found.

    Labels are laid out greedily in time order: the first spot next to the marker (right of
    it, or left near the right edge) that covers no other label or marker; a label moved off
    its marker gets a leader line. Crowded routine captures keep only their tooltip.
    """
    placed = _occupied(s, timeline)
    out = []
    for p in timeline.points:
        x, y = s.x(p.time), s.y(p.memory)
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
        leader = label = None
        if spot is not None:
            dy, left, box = spot
            placed.append(box)
            base = y + dy
            if abs(dy) > 10 or left != sides[0]:
                leader = Line(x, y, box[2] if left else box[0], base - 4)
            label = Label(box[2] if left else box[0], base, text, anchor_end=left)
        out.append(Marker(p.snapshot, p.reason, p.pre_oom, _describe(p), x, y, leader, label))
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
