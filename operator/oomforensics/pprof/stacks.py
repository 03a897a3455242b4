"""Call stacks shared across profiles: which samples of one or more profiles have the same
stack (`index_stacks`), for per-stack sums such as new minus base."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from numpy.typing import NDArray

from oomforensics.pprof.arrays import expand_ranges, positions
from oomforensics.pprof.model import Index, Samples, Stack


@dataclass(frozen=True, slots=True)
class StackIndex:
    """The distinct call stacks of one or more `Samples`, which samples share each.

    Samples of all parts are numbered jointly (part 0's first), their frames translated to one
    table of names. `group[s]` is the stack of joint sample s; `first[g]` a sample of stack g.
    Stacks are numbered in no particular order.
    """

    names: tuple[str, ...]
    frames: NDArray[np.int32]
    offsets: Index
    part_starts: tuple[int, ...]  # joint index of each part's first sample
    group: Index
    first: Index

    def __len__(self) -> int:
        return len(self.first)

    def stack(self, group: int) -> Stack:
        sample = int(self.first[group])
        start, stop = int(self.offsets[sample]), int(self.offsets[sample + 1])
        return tuple(self.names[node] for node in self.frames[start:stop].tolist())


_HASH_SEED = 0x5EED_F00D


def index_stacks(parts: Sequence[Samples]) -> StackIndex:
    """Group the samples of `parts` by call stack (equal names, in order).

    Each stack gets a 64-bit hash (a random odd multiplier per depth times the node id, summed,
    plus one per length); samples are grouped by hash, then every sample is compared frame by
    frame with its group's first sample, so a hash collision cannot merge two stacks: if one
    ever happens, the grouping is redone exactly with Python dictionaries.
    """
    table = {name: i for i, name in enumerate(parts[0].names)}
    frame_parts: list[NDArray[np.int32]] = []
    translated: list[bool] = []
    for part in parts:
        same = part.names == parts[0].names or not part.frames.size
        translated.append(not same)
        if same:
            frame_parts.append(part.frames)
            continue
        translate = np.fromiter(
            (table.setdefault(name, len(table)) for name in part.names),
            dtype=np.int32,
            count=len(part.names),
        )
        frame_parts.append(np.take(translate, part.frames))
    longest = max((int(np.diff(part.offsets).max(initial=0)) for part in parts), default=0)
    multipliers = _multipliers(longest)
    hashes = [
        _hashes(part, frames, multipliers) if moved else _own_hashes(part, multipliers)
        for part, frames, moved in zip(parts, frame_parts, translated, strict=True)
    ]

    frames = np.concatenate(frame_parts) if len(frame_parts) > 1 else frame_parts[0]
    offsets = np.zeros(sum(len(part) for part in parts) + 1, dtype=np.intp)
    at = 0
    for part in parts:
        offsets[at + 1 : at + len(part) + 1] = part.offsets[1:] + offsets[at]
        at += len(part)
    part_starts = tuple(int(x) for x in np.cumsum([0] + [len(p) for p in parts])[:-1])
    joint = np.concatenate(hashes)
    count = joint.size
    order = np.argsort(joint)
    ordered = joint[order]
    new_group = np.empty(count, dtype=bool)
    new_group[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new_group[1:])
    group = np.empty(count, dtype=np.intp)
    group[order] = np.cumsum(new_group) - 1
    first = order[new_group]  # some sample of each group (the stacks are checked equal)
    if not _same_stacks(frames, offsets, first[group]):
        group, first = _exact_groups(frames, offsets)
    return StackIndex(tuple(table), frames, offsets, part_starts, group, first)


def _multipliers(longest: int) -> NDArray[np.uint64]:
    rng = np.random.default_rng(_HASH_SEED)
    multipliers = rng.integers(0, 2**63, size=longest + 1, dtype=np.uint64)
    result: NDArray[np.uint64] = multipliers * np.uint64(2) + np.uint64(1)
    return result


def _own_hashes(part: Samples, multipliers: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """`_hashes` of a part's own frames, kept with it (a profile is indexed alone and with
    another, with the same multipliers when its stacks are the longest)."""
    key = f"stack hashes {multipliers.size}"
    if key not in part.memo:
        part.memo[key] = _hashes(part, part.frames, multipliers)
    result: NDArray[np.uint64] = part.memo[key]
    return result


def _hashes(
    part: Samples, frames: NDArray[np.int32], multipliers: NDArray[np.uint64]
) -> NDArray[np.uint64]:
    """Each sample's stack hash (`frames`: the part's frames, numbered in the joint table)."""
    lengths = np.diff(part.offsets)
    hashed = frames.astype(np.uint64)
    hashed += np.uint64(1)
    hashed *= np.take(multipliers, positions(part.offsets))  # not kept: 8 bytes a frame
    own: NDArray[np.uint64] = lengths.astype(np.uint64) * multipliers[-1]
    nonempty = np.flatnonzero(lengths)
    if nonempty.size:
        own[nonempty] += np.add.reduceat(hashed, part.offsets[nonempty])
    return own


def _same_stacks(frames: NDArray[np.int32], offsets: Index, representative: Index) -> bool:
    """Whether every sample's stack equals its representative's, frame by frame."""
    others = np.flatnonzero(representative != np.arange(representative.size))
    if not others.size:
        return True
    lengths = offsets[others + 1] - offsets[others]
    mine, theirs = offsets[others], offsets[representative[others]]
    if not (offsets[representative[others] + 1] - theirs == lengths).all():
        return False
    for start in range(0, others.size, _VERIFY_CHUNK):  # bounded temporaries
        part = slice(start, start + _VERIFY_CHUNK)
        size = lengths[part]
        if not (
            frames[expand_ranges(mine[part], size)] == frames[expand_ranges(theirs[part], size)]
        ).all():
            return False
    return True


_VERIFY_CHUNK = 16384


def _exact_groups(frames: NDArray[np.int32], offsets: Index) -> tuple[Index, Index]:
    raw = frames.tobytes()
    width = frames.itemsize
    seen: dict[bytes, int] = {}
    bounds = (offsets * width).tolist()
    group = np.fromiter(
        (seen.setdefault(raw[a:b], len(seen)) for a, b in pairwise(bounds)),
        dtype=np.intp,
        count=len(offsets) - 1,
    )
    first = np.full(len(seen), len(group), dtype=np.intp)
    np.minimum.at(first, group, np.arange(len(group), dtype=np.intp))
    return group, first
