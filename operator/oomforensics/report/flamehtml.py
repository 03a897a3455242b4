"""The diff flame graph as HTML: one absolutely positioned box per frame, widths in percent.

Each box carries `data-frame` and its numbers (`data-depth`, `data-start`, `data-width`,
`data-net`, in bytes), and a title with the function and the bytes; a click zooms into a frame
(the script rescales the boxes from those attributes), a click on the root zooms back out.
The markup is templates/flame.html.j2; this module computes what goes into it.
"""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup

from oomforensics.analysis.units import format_bytes
from oomforensics.report.flame import FlameFrame, FlameGraph
from oomforensics.report.templating import template

ROW = 20  # px per depth


def _signed(value: int) -> str:
    return ("+" if value >= 0 else "") + format_bytes(value)


def frame_colour(frame: FlameFrame) -> str:
    """Red for growth, blue for shrinkage, stronger the more one-sided; grey when balanced."""
    if not frame.width:
        return "hsl(0,0%,88%)"
    ratio = frame.net / frame.width  # -1 (all shrank) .. 1 (all grew)
    hue = 6 if ratio >= 0 else 212
    strength = abs(ratio)
    return f"hsl({hue},{18 + 62 * strength:.0f}%,{84 - 22 * strength:.0f}%)"


def frame_title(frame: FlameFrame, total: int) -> str:
    share = 100 * frame.width / total if total else 0.0
    lines = [
        frame.name,
        f"net {_signed(frame.net)} (grew {format_bytes(frame.grown)}, "
        f"shrank {format_bytes(frame.shrunk)})",
        f"{share:.1f}% of all bytes that changed",
    ]
    if frame.self_net:
        lines.append(f"allocated here (self): {_signed(frame.self_net)}")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Box:
    """One frame placed on the page: percentages of the graph's width, pixels from its top."""

    frame: FlameFrame
    left: float
    width: float
    top: int
    colour: str
    title: str
    label: str


def boxes(graph: FlameGraph) -> list[Box]:
    total = graph.total
    return [
        Box(
            frame=frame,
            left=100 * frame.start / total,
            width=100 * frame.width / total,
            top=frame.depth * ROW,
            colour=frame_colour(frame),
            title=frame_title(frame, total),
            label=frame.name if frame.depth else f"{frame.name}: net {_signed(frame.net)}",
        )
        for frame in graph.frames
    ]


def render_flame(graph: FlameGraph, anchor: str) -> Markup:
    return Markup(
        template("flame.html.j2").render(
            total=graph.total,
            anchor=anchor,
            height=graph.depth * ROW,
            boxes=boxes(graph) if graph.total else [],
        )
    )
