"""Name what grew: the dominant call path of each growing function, and suspects.

This is what an engineer does with pprof's `top` and `peek`: take the functions whose memory
grew, walk their callers along the heaviest growth, and stop at the first frame that is the
application's own code, because that is where the fix goes (`main.appendAudit`, not
`bytes.growSlice`). Growth is computed per call stack (new minus base), so the walk follows
the paths that actually grew.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from oomforensics.analysis.frames import entry_frame, first_application_frame, mechanism
from oomforensics.pprof.profile import Profile, Stack

StackGrowth = Mapping[Stack, tuple[int, int]]
"""Per stack: (bytes, objects) new minus base."""


@dataclass(frozen=True, slots=True)
class GrowthPath:
    """A growing function and its heaviest chain of callers, `peek` style."""

    function: str
    bytes: int
    path: tuple[str, ...]  # the function first, then its callers


@dataclass(frozen=True, slots=True)
class Suspect:
    function: str  # the first application frame, or the standard-library entry point
    bytes: int
    objects: int
    path: tuple[str, ...]  # leaf first, ending at `function`
    mechanism: str | None  # set when no application frame is on the path

    def to_json(self) -> dict[str, object]:
        return {
            "function": self.function,
            "bytes": self.bytes,
            "objects": self.objects,
            "path": list(self.path),
            "mechanism": self.mechanism,
        }


def stack_growth(base: Profile, new: Profile) -> dict[Stack, tuple[int, int]]:
    """(inuse bytes, inuse objects) growth per stack, zero-growth stacks left out."""
    space = new.sample_index("inuse_space")
    objects = new.sample_index("inuse_objects")
    growth: dict[Stack, tuple[int, int]] = {}
    for stack in base.stacks.keys() | new.stacks.keys():
        if not stack:
            continue
        after = new.stacks.get(stack)
        before = base.stacks.get(stack)
        delta_bytes = (after[space] if after else 0) - (before[space] if before else 0)
        delta_objects = (after[objects] if after else 0) - (before[objects] if before else 0)
        if delta_bytes or delta_objects:
            growth[stack] = (delta_bytes, delta_objects)
    return growth


def dominant_path(stacks: Iterable[tuple[Stack, int]], stop: str | None = None) -> tuple[str, ...]:
    """The heaviest leaf-to-root walk through `stacks` (each with its growth), as `peek` would.

    At each depth, keep the frame carrying the most growth among the stacks that agree with the
    path so far. Stops after `stop` when given.
    """
    candidates = [(stack, weight) for stack, weight in stacks if weight > 0 and stack]
    path: list[str] = []
    depth = 0
    while candidates:
        weights: defaultdict[str, int] = defaultdict(int)
        for stack, weight in candidates:
            weights[stack[depth]] += weight
        frame = max(weights, key=lambda f: (weights[f], f))
        path.append(frame)
        if frame == stop:
            break
        depth += 1
        candidates = [
            (stack, weight)
            for stack, weight in candidates
            if stack[depth - 1] == frame and len(stack) > depth
        ]
    return tuple(path)


def growth_paths(growth: StackGrowth, limit: int = 5) -> list[GrowthPath]:
    """The top functions by flat growth, each with its dominant chain of callers."""
    by_leaf: defaultdict[str, list[tuple[Stack, int]]] = defaultdict(list)
    for stack, (delta, _) in growth.items():
        by_leaf[stack[0]].append((stack, delta))
    totals = {leaf: sum(d for _, d in items) for leaf, items in by_leaf.items()}
    top = sorted((leaf for leaf in totals if totals[leaf] > 0), key=lambda f: (-totals[f], f))
    return [GrowthPath(leaf, totals[leaf], dominant_path(by_leaf[leaf])) for leaf in top[:limit]]


def find_suspects(growth: StackGrowth, limit: int = 5, min_share: float = 0.02) -> list[Suspect]:
    """Suspects ranked by net bytes of growth attributed to them.

    Each growing stack is attributed to its first application frame; a stack without one (growth
    inside net/http's own goroutines, say) to its entry point, with the mechanism named.
    Suspects below `min_share` of the total growth are noise and left out.
    """
    groups: defaultdict[str, list[tuple[Stack, int, int]]] = defaultdict(list)
    for stack, (delta_bytes, delta_objects) in growth.items():
        owner = first_application_frame(stack) or entry_frame(stack)
        groups[owner].append((stack, delta_bytes, delta_objects))
    total = sum(max(0, d) for d, _ in growth.values())
    ranked = sorted(
        (
            (owner, sum(b for _, b, _ in items), sum(o for _, _, o in items))
            for owner, items in groups.items()
        ),
        key=lambda g: (-g[1], g[0]),
    )
    suspects = []
    for owner, net_bytes, net_objects in ranked[:limit]:
        if net_bytes <= 0 or net_bytes < min_share * total:
            break
        path = dominant_path(((stack, b) for stack, b, _ in groups[owner]), stop=owner)
        application = first_application_frame(path) == owner
        suspects.append(
            Suspect(owner, net_bytes, net_objects, path, None if application else mechanism(owner))
        )
    return suspects
