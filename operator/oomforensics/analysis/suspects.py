"""Name what grew: the dominant call path of each growing function, and suspects.

This is what an engineer does with pprof's `top` and `peek`: take the functions whose memory
grew, walk their callers along the heaviest growth, and stop at the first frame that is the
application's own code, because that is where the fix goes (`main.appendAudit`, not
`bytes.growSlice`). Growth is computed per call stack (new minus base), so the walk follows
the paths that actually grew.

A profile has a hundred thousand stacks, so the work is done on arrays (`StackGrowth`): frames
are node ids into a table of function names, and names are only looked at once per function.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from oomforensics.analysis.frames import (
    APPLICATION,
    PROFILER,
    RUNTIME,
    SYMBOL,
    first_application_frame,
    kinds,
    mechanism,
)
from oomforensics.analysis.sampling import sample_variance
from oomforensics.pprof.arrays import (
    IntArray,
    column_bounds,
    first_in_range,
    group_sum,
    unique_inverse,
)
from oomforensics.pprof.profile import Profile, Stack, index_stacks

Index = NDArray[np.intp]
_UNKNOWN = "<unknown>"  # entry_frame's name for an empty stack


class StackGrowth(Mapping[Stack, tuple[int, int]]):
    """Per stack: (bytes, objects) new minus base, for the stacks that grew or shrank.

    A read-only mapping from stack to growth, held as arrays: row r is the stack
    `frames[offsets[s]:offsets[s + 1]]` with s = `samples[r]` (node ids into `names`, leaf
    first), with `bytes[r]` and `objects[r]`. The mapping view builds its tuples on first use.
    `memo` holds what is derived from `names` alone; tables of the same names (a diff's growth
    and each profile's own) share it.
    """

    __slots__ = (
        "_dict",
        "_used",
        "bytes",
        "frames",
        "memo",
        "names",
        "objects",
        "offsets",
        "samples",
    )

    def __init__(
        self,
        names: tuple[str, ...],
        frames: NDArray[np.int32],
        offsets: Index,
        samples: Index,
        bytes_: IntArray,
        objects: IntArray,
        memo: dict[str, Any] | None = None,
    ) -> None:
        self.names = names
        self.memo = {} if memo is None else memo
        self.frames = frames
        self.offsets = offsets
        self.samples = samples
        self.bytes = bytes_
        self.objects = objects
        self._dict: dict[Stack, tuple[int, int]] | None = None
        self._used: list[int] | None = None

    @classmethod
    def from_mapping(cls, growth: Mapping[Stack, tuple[int, int]]) -> StackGrowth:
        if isinstance(growth, StackGrowth):
            return growth
        nodes: dict[str, int] = {}
        frames: list[int] = []
        offsets = [0]
        for stack in growth:
            frames.extend(nodes.setdefault(name, len(nodes)) for name in stack)
            offsets.append(len(frames))
        pairs = list(growth.values())
        matrix = np.array(pairs, dtype=object).reshape(len(pairs), 2)
        try:
            matrix = matrix.astype(np.int64)
            if column_bounds(matrix).max(initial=0) >= 2.0**61:
                matrix = np.array(pairs, dtype=object).reshape(len(pairs), 2)
        except OverflowError:
            pass
        return cls(
            names=tuple(nodes),
            frames=np.array(frames, dtype=np.int32),
            offsets=np.array(offsets, dtype=np.intp),
            samples=np.arange(len(pairs), dtype=np.intp),
            bytes_=matrix[:, 0],
            objects=matrix[:, 1],
        )

    # --- the mapping ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Stack]:
        return iter(self._as_dict())

    def __getitem__(self, stack: Stack) -> tuple[int, int]:
        return self._as_dict()[stack]

    def __contains__(self, stack: object) -> bool:
        return stack in self._as_dict()

    def _as_dict(self) -> dict[Stack, tuple[int, int]]:
        if self._dict is None:
            self._dict = dict(
                zip(
                    (self.stack(row) for row in range(len(self))),
                    zip(self.bytes.tolist(), self.objects.tolist(), strict=True),
                    strict=True,
                )
            )
        return self._dict

    # --- arrays -----------------------------------------------------------------------------

    def stack(self, row: int) -> Stack:
        sample = int(self.samples[row])
        start, stop = int(self.offsets[sample]), int(self.offsets[sample + 1])
        return tuple(self.names[node] for node in self.frames[start:stop].tolist())

    def lengths(self) -> Index:
        return self.offsets[self.samples + 1] - self.offsets[self.samples]

    def node_mask(self, predicate: Callable[[str], bool]) -> NDArray[np.bool_]:
        """Per node: whether its name satisfies `predicate` (asked only of nodes in use)."""
        mask = np.zeros(len(self.names), dtype=bool)
        if self._used is None:  # a count per node is a third of the cost of np.unique's
            counts = np.bincount(self.frames, minlength=len(self.names))
            self._used = np.flatnonzero(counts).tolist()
        used = self._used
        names = self.names
        mask[used] = np.fromiter(map(predicate, [names[n] for n in used]), bool, len(used))
        return mask

    def kind_mask(self, flags: int, wanted: int | None = None) -> NDArray[np.bool_]:
        """Per node: whether its name's kinds (frames.kinds), masked by `flags`, equal
        `wanted` (by default: any of `flags` is set)."""
        table: NDArray[np.uint8] | None = self.memo.get(_KINDS)
        if table is None:
            # Cached per name: a diff classifies its base's names while its new profile is
            # still being decoded (cli/diff.py), and a series repeats its names.
            table = np.fromiter(map(kinds, self.names), np.uint8, len(self.names))
            self.memo[_KINDS] = table
        masked = table & np.uint8(flags)
        mask: NDArray[np.bool_] = masked != 0 if wanted is None else masked == np.uint8(wanted)
        return mask

    def first_frame(self, mask: NDArray[np.bool_], last: bool = False) -> Index:
        """Per row: the index in `frames` of its first (leaf-most) frame whose node is in
        `mask` (or its last, root-most, one); -1 if it has none."""
        hits = np.flatnonzero(mask[self.frames])
        start = self.offsets[self.samples]
        return first_in_range(hits, start, self.offsets[self.samples + 1], last=last)

    def rows_with(self, predicate: Callable[[str], bool]) -> Index:
        """The rows whose stack has a frame whose name satisfies `predicate`."""
        mask = self.node_mask(predicate)
        if not mask.any():
            return np.zeros(0, dtype=np.intp)
        return np.flatnonzero(self.first_frame(mask) >= 0)

    def dominant_path(
        self, rows: Index, weights: IntArray, stop: str | None = None
    ) -> tuple[str, ...]:
        """The heaviest leaf-to-root walk through the given rows, each weighing `weights` (same
        order), as `peek` would: at each depth, the frame carrying the most growth among the
        rows that agree with the path so far. Stops after `stop` when given."""
        lengths = self.lengths()[rows]
        keep = np.flatnonzero((weights > 0) & (lengths > 0))
        starts = self.offsets[self.samples[rows[keep]]]
        lengths, weights = lengths[keep], weights[keep]
        bound = float(column_bounds(weights.reshape(-1, 1))[0]) if weights.size else 0.0
        names = self.names
        path: list[str] = []
        depth = 0
        while starts.size:
            nodes = self.frames[starts + depth]
            present, slot = unique_inverse(nodes)
            totals = group_sum(slot, weights, present.size, bound)
            best = totals.max()
            tied = present[np.flatnonzero(totals == best)].tolist()
            frame = max(tied, key=names.__getitem__)
            path.append(names[frame])
            if names[frame] == stop:
                break
            depth += 1
            kept = np.flatnonzero((nodes == frame) & (lengths > depth))
            starts, lengths, weights = starts[kept], lengths[kept], weights[kept]
        return tuple(path)


_KINDS = "kinds of each name"


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
    # Over a series (see series.py): the standard error of `bytes` from the heap profile's
    # sampling, the shape of what it holds, and for goroutine suspects how many were added.
    error: int | None = None
    shape: str | None = None
    goroutines: int | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "function": self.function,
            "bytes": self.bytes,
            "objects": self.objects,
            "path": list(self.path),
            "mechanism": self.mechanism,
            "error": self.error,
            "shape": self.shape,
            **({"goroutines": self.goroutines} if self.goroutines is not None else {}),
        }


def stack_growth(base: Profile | None, new: Profile) -> StackGrowth:
    """(inuse bytes, inuse objects) growth per stack, zero-growth stacks left out.

    Without a base, the growth from nothing: what each stack holds in `new`.
    """
    return _stack_growth_rows(base, new)[0]


def _stack_growth_rows(base: Profile | None, new: Profile) -> tuple[StackGrowth, Index, Index]:
    """`stack_growth`, with the stack group of each row and the group of each sample of
    `new` (so per-sample figures, such as a sampling variance, can follow the rows)."""
    space = new.sample_index("inuse_space")
    objects = new.sample_index("inuse_objects")
    parts = [new.samples] if base is None else [base.samples, new.samples]
    stacks = index_stacks(parts)

    def growth(index: int) -> IntArray:
        taken = [] if base is None else [-base.samples.values[:, index]]
        weights = np.concatenate([*taken, new.samples.values[:, index]])
        bound = float(sum(part.bounds[index] for part in parts))
        return group_sum(stacks.group, weights, len(stacks), bound)

    delta_bytes, delta_objects = growth(space), growth(objects)
    lengths = np.diff(stacks.offsets)[stacks.first]
    rows = np.flatnonzero(((delta_bytes != 0) | (delta_objects != 0)) & (lengths > 0))
    # Usually few stacks changed: keep just their frames.
    starts, sizes = stacks.offsets[stacks.first[rows]], lengths[rows]
    offsets = np.zeros(rows.size + 1, dtype=np.intp)
    np.cumsum(sizes, out=offsets[1:])
    frames = stacks.frames[np.arange(int(offsets[-1])) + np.repeat(starts - offsets[:-1], sizes)]
    table = StackGrowth(
        names=stacks.names,
        frames=frames,
        offsets=offsets,
        samples=np.arange(rows.size, dtype=np.intp),
        bytes_=delta_bytes[rows],
        objects=delta_objects[rows],
        memo=stacks.memo,
    )
    return table, rows, stacks.group[stacks.part_starts[-1] :]


def growth_paths(growth: Mapping[Stack, tuple[int, int]], limit: int = 5) -> list[GrowthPath]:
    """The top functions by flat growth, each with its dominant chain of callers."""
    table = StackGrowth.from_mapping(growth)
    rows = np.flatnonzero(table.lengths() > 0)
    leaves = table.frames[table.offsets[table.samples[rows]]].astype(np.intp)
    size = len(table.names)
    bound = float(column_bounds(table.bytes.reshape(-1, 1))[0]) if rows.size else 0.0
    totals = group_sum(leaves, table.bytes[rows], size, bound)
    growing = np.flatnonzero(totals > 0).tolist()
    values = totals.tolist()
    names = table.names
    top = heapq.nsmallest(limit, growing, key=lambda n: (-values[n], names[n]))
    return [
        GrowthPath(
            names[leaf],
            values[leaf],
            table.dominant_path(rows[leaves == leaf], table.bytes[rows[leaves == leaf]]),
        )
        for leaf in top
    ]


_PROFILER = "<profiler>"


def _stack_owners(table: StackGrowth) -> tuple[list[str], Index]:
    """Owner names, and per row the owner's index in them: the stack's first application
    frame, else its entry frame (the outermost frame outside the runtime), else its leaf."""
    names = list(table.names)
    application = table.kind_mask(APPLICATION)
    # What can be a stack's entry point (see frames.entry_frame): a symbol outside the runtime.
    entry = table.kind_mask(SYMBOL | RUNTIME, SYMBOL)
    first_app = table.first_frame(application)
    owner = np.full(len(table), -1, dtype=np.intp)
    found = np.flatnonzero(first_app >= 0)
    owner[found] = table.frames[first_app[found]]
    rest = np.flatnonzero(first_app < 0)
    if rest.size:
        last_entry = table.first_frame(entry, last=True)[rest]
        leaves = table.offsets[table.samples[rest]]
        fallback = np.where(last_entry >= 0, last_entry, leaves)
        empty = table.lengths()[rest] == 0
        owner[rest[~empty]] = table.frames[fallback[~empty]]
        if empty.any():
            if _UNKNOWN not in names:
                names.append(_UNKNOWN)
            owner[rest[empty]] = names.index(_UNKNOWN)
    return names, owner


def _owners_with_profiler(table: StackGrowth) -> tuple[list[str], Index, NDArray[np.bool_]]:
    """`_stack_owners`, with the profiler's own stacks given to one `<profiler>` owner."""
    names, owner = _stack_owners(table)
    # Growth under the profiler's own frames is the cost of looking, not a suspect.
    observer = table.first_frame(table.kind_mask(PROFILER)) >= 0
    if observer.any():
        names.append(_PROFILER)
        owner[observer] = len(names) - 1
    return names, owner, observer


def owner_bytes(profile: Profile) -> dict[str, int]:
    """Inuse bytes per suspect owner in one snapshot, attributed as `find_suspects` does.

    A trend of these, unlike a trend of a function's cum, follows what a suspect itself holds:
    `net/http.(*conn).serve` is on the stack of every handler's allocations (and of the
    profiler writing the snapshot), yet owns only its connections' buffers.
    """
    return {name: held for name, (held, _) in owner_estimates(profile).items()}


def owner_estimates(
    profile: Profile, variance: NDArray[np.float64] | None = None
) -> dict[str, tuple[int, float]]:
    """Per suspect owner: (inuse bytes, the variance of that estimate).

    `variance` holds one figure per sample of `profile` (see sampling.sample_variance); without
    it the variances are 0. The profiler's own stacks are left out, as in `find_suspects`.
    """
    table, rows, sample_groups = _stack_growth_rows(None, profile)
    if not len(table):
        return {}
    names, owner, _ = _owners_with_profiler(table)
    bound = float(column_bounds(table.bytes.reshape(-1, 1))[0])
    totals = group_sum(owner, table.bytes, len(names), bound).tolist()
    spread: list[float] = [0.0] * len(names)
    if variance is not None and variance.size:
        per_group = np.bincount(sample_groups, weights=variance, minlength=int(rows.max()) + 1)
        spread = np.bincount(owner, weights=per_group[rows], minlength=len(names)).tolist()
    present = np.flatnonzero(np.bincount(owner, minlength=len(names))).tolist()
    return {names[o]: (int(totals[o]), float(spread[o])) for o in present if names[o] != _PROFILER}


def held_estimates(profile: Profile) -> dict[str, tuple[int, float]]:
    """`owner_estimates` with each sample's sampling variance (sampling.sample_variance), as
    a series' heap tracks use them; kept with the profile, which a diff may prepare
    beforehand, alongside the decoding of the other profile."""
    memo = profile.samples.memo
    if _HELD not in memo:
        memo[_HELD] = owner_estimates(profile, sample_variance(profile))
    result: dict[str, tuple[int, float]] = memo[_HELD]
    return result


_HELD = "owner estimates with sampling variance"


def find_suspects(
    growth: Mapping[Stack, tuple[int, int]], limit: int = 5, min_share: float = 0.02
) -> list[Suspect]:
    """Suspects ranked by net bytes of growth attributed to them.

    Each growing stack is attributed to its first application frame; a stack without one (growth
    inside net/http's own goroutines, say) to its entry point, with the mechanism named.
    Suspects below `min_share` of the total growth are noise and left out.
    """
    table = StackGrowth.from_mapping(growth)
    names, owner, observer = _owners_with_profiler(table)
    size = len(names)
    bounds = column_bounds(np.stack([table.bytes, table.objects], axis=1))
    net_bytes = group_sum(owner, table.bytes, size, float(bounds[0])).tolist()
    net_objects = group_sum(owner, table.objects, size, float(bounds[1])).tolist()
    total = int(np.maximum(table.bytes[~observer], 0).sum()) if len(table) else 0
    owners = [
        o
        for o in np.flatnonzero(np.bincount(owner, minlength=size)).tolist()
        if names[o] != _PROFILER
    ]
    ranked = heapq.nsmallest(limit, owners, key=lambda o: (-net_bytes[o], names[o]))
    suspects = []
    for o in ranked:
        function, net = names[o], net_bytes[o]
        if net <= 0 or net < min_share * total:
            break
        rows = np.flatnonzero(owner == o)
        path = table.dominant_path(rows, table.bytes[rows], stop=function)
        application = first_application_frame(path) == function
        suspects.append(
            Suspect(
                function, net, net_objects[o], path, None if application else mechanism(function)
            )
        )
    return suspects
