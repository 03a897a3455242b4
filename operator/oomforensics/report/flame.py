"""The diff flame graph: how each call path's live heap changed from the baseline to the latest.

Built per call stack, like `go tool pprof -diff_base`: every stack's inuse_space in the latest
profile minus its inuse_space in the baseline. A frame's width is the bytes that changed under
it, growth and shrinkage both counted (the sum of |change| over the stacks through it), so
children always fit inside their parent and a frame that grew by 8 MB while a sibling path
shrank by 1 MB is 9 MB wide; how much of it grew and how much shrank is kept apart (`grown`,
`shrunk`) and decides the colour. When nothing shrank, widths are exactly the growth in bytes.

Frames narrower than `min_share` of the whole are pruned (with everything above them), so the
page stays small for profiles with a hundred thousand stacks; the graph says how many. Should
that still leave more than `max_frames`, the share doubles until it does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from oomforensics.analysis.suspects import stack_growth
from oomforensics.pprof.profile import Profile

ROOT_NAME = "all changes"
DEFAULT_MIN_SHARE = 0.005  # 0.5 % of the bytes that changed
# A bound on the page's size whatever the profile: past it, the pruning share doubles until the
# graph fits (a frame is ~400 bytes of HTML, so this is at most ~2 MB).
DEFAULT_MAX_FRAMES = 5000


@dataclass(frozen=True, slots=True)
class FlameFrame:
    """One box of the graph. Positions and widths are in bytes of change."""

    name: str
    depth: int  # 0 for the root, 1 for the outermost function of a stack, ...
    start: int  # bytes of change to the left of this frame
    grown: int  # growth of the stacks through this frame (>= 0)
    shrunk: int  # shrinkage of the stacks through this frame, as a magnitude (>= 0)
    self_net: int  # net change of the stacks that end in this frame (its own allocations)

    @property
    def width(self) -> int:
        return self.grown + self.shrunk

    @property
    def net(self) -> int:
        return self.grown - self.shrunk


@dataclass(frozen=True, slots=True)
class FlameGraph:
    """Frames in depth-first order, the root first; each parent before its children."""

    frames: tuple[FlameFrame, ...]
    sample_index: str
    base_total: int  # inuse_space of the baseline profile
    new_total: int  # inuse_space of the latest profile
    min_share: float
    pruned_frames: int  # frames left out as narrower than min_share of the root

    @property
    def root(self) -> FlameFrame:
        return self.frames[0]

    @property
    def total(self) -> int:
        return self.root.width

    @property
    def depth(self) -> int:
        return max(frame.depth for frame in self.frames) + 1


class _Node:
    __slots__ = ("children", "grown", "self_net", "shrunk")

    def __init__(self) -> None:
        self.grown = 0
        self.shrunk = 0
        self.self_net = 0
        self.children: dict[int, _Node] = {}

    @property
    def width(self) -> int:
        return self.grown + self.shrunk


def diff_flame_graph(
    base: Profile,
    new: Profile,
    sample_index: str = "inuse_space",
    min_share: float = DEFAULT_MIN_SHARE,
    max_frames: int = DEFAULT_MAX_FRAMES,
) -> FlameGraph:
    """The diff flame graph of `new` against `base` (heap profiles)."""
    if not 0 <= min_share < 1:
        raise ValueError(f"min_share must be in [0, 1), got {min_share}")
    if max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    if sample_index != "inuse_space":
        raise ValueError("the diff flame graph is built from inuse_space")
    growth = stack_growth(base, new)
    root = _Node()
    nodes, offsets, names = growth.frames.tolist(), growth.offsets.tolist(), growth.names
    for sample, delta in zip(growth.samples.tolist(), growth.bytes.tolist(), strict=True):
        if not delta:
            continue
        grown, shrunk = (delta, 0) if delta > 0 else (0, -delta)
        node = root
        node.grown += grown
        node.shrunk += shrunk
        # Stacks are leaf first; the graph grows from the outermost frame.
        for frame in reversed(nodes[offsets[sample] : offsets[sample + 1]]):
            child = node.children.get(frame)
            if child is None:
                child = node.children[frame] = _Node()
            child.grown += grown
            child.shrunk += shrunk
            node = child
        node.self_net += delta
    frames, pruned = _layout(root, names, min_share)
    while len(frames) > max_frames and min_share < 0.5:
        min_share = min(max(min_share * 2, 0.001), 0.5)
        frames, pruned = _layout(root, names, min_share)
    space = new.sample_index(sample_index)
    return FlameGraph(
        frames=frames,
        sample_index=sample_index,
        base_total=base.total(base.sample_index(sample_index)),
        new_total=new.total(space),
        min_share=min_share,
        pruned_frames=pruned,
    )


def _layout(
    root: _Node, names: tuple[str, ...], min_share: float
) -> tuple[tuple[FlameFrame, ...], int]:
    """Frames depth-first, widest child first, and how many were pruned."""
    min_width = max(math.ceil(root.width * min_share), 1)
    out: list[FlameFrame] = []
    pruned = 0
    # An explicit stack: Go stacks can be hundreds of frames deep.
    todo: list[tuple[str, _Node, int, int]] = [(ROOT_NAME, root, 0, 0)]
    while todo:
        name, node, depth, start = todo.pop()
        out.append(FlameFrame(name, depth, start, node.grown, node.shrunk, node.self_net))
        ordered = sorted(node.children.items(), key=lambda kv: (-kv[1].width, names[kv[0]]))
        placed: list[tuple[str, _Node, int, int]] = []
        offset = start
        for frame, child in ordered:
            if child.width < min_width:
                pruned += _count(child)
                continue
            placed.append((names[frame], child, depth + 1, offset))
            offset += child.width
        todo.extend(reversed(placed))
    return tuple(out), pruned


def _count(node: _Node) -> int:
    count, todo = 0, [node]
    while todo:
        current = todo.pop()
        count += 1
        todo.extend(current.children.values())
    return count
