"""The diff flame graph as HTML: one absolutely positioned box per frame, widths in percent.

Each box carries `data-frame` and its numbers (`data-depth`, `data-start`, `data-width`,
`data-net`, in bytes), and a title with the function and the bytes; a click zooms into a frame
(the script rescales the boxes from those attributes), a click on the root zooms back out.
"""

from __future__ import annotations

from html import escape

from oomforensics.analysis.units import format_bytes
from oomforensics.report.flame import FlameFrame, FlameGraph

ROW = 20  # px per depth


def _esc(value: object) -> str:
    return escape(str(value), quote=True)


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


def render_flame(graph: FlameGraph, anchor: str) -> str:
    total = graph.total
    if not total:
        return '<p class="note">No call stack changed between the two heap profiles.</p>'
    boxes = []
    for frame in graph.frames:
        left = 100 * frame.start / total
        width = 100 * frame.width / total
        label = frame.name if frame.depth else f"{frame.name}: net {_signed(frame.net)}"
        boxes.append(
            f'<div class="fr{" root" if frame.depth == 0 else ""}" data-frame '
            f'data-depth="{frame.depth}" data-start="{frame.start}" data-width="{frame.width}" '
            f'data-net="{frame.net}" style="left:{left:.4f}%;width:{width:.4f}%;'
            f'top:{frame.depth * ROW}px;background:{frame_colour(frame)}" '
            f'title="{_esc(frame_title(frame, total))}">{_esc(label)}</div>'
        )
    height = graph.depth * ROW
    return (
        f'<div class="flame" id="{_esc(anchor)}-flame" data-flame="{_esc(anchor)}" '
        f'data-total="{total}" style="height:{height}px">{"".join(boxes)}</div>'
    )
