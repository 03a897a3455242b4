"""Call stacks shared across profiles: which samples of one or more profiles have the same
stack (`index_stacks`), for per-stack sums such as new minus base."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
from numpy.typing import NDArray

from oomforensics.pprof import kernels
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
    # What callers derive from `names` (which kind of code each name is, say), kept with it:
    # an index derived from a joint one shares the joint one's names and this.
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

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

    The index of several parts is kept with the first, and a part indexed alone after it was
    indexed with others takes its groups from that joint index: a diff groups base and new
    together and then each alone (its owners), and the joint grouping already holds both.
    """
    if len(parts) == 1:
        derived = _from_joint(parts[0])
        if derived is not None:
            return derived
    else:
        kept = _kept_joint(parts)
        if kept is not None:
            return kept
    index = _index(parts)
    if len(parts) > 1:
        parts[0].memo.setdefault(_JOINT, []).append((tuple(parts), index))
        for k, part in enumerate(parts):
            part.memo.setdefault(_MEMBER, (index, k))
    return index


_JOINT = "joint stack indexes"  # on a joint index's first part: [(parts, index)]
_MEMBER = "member of a joint stack index"  # on each part: (index, its position in it)


def _kept_joint(parts: Sequence[Samples]) -> StackIndex | None:
    for kept_parts, index in parts[0].memo.get(_JOINT, ()):
        if len(kept_parts) == len(parts) and all(
            a is b for a, b in zip(kept_parts, parts, strict=True)
        ):
            result: StackIndex = index
            return result
    return None


def _from_joint(part: Samples) -> StackIndex | None:
    """The index of `part` alone, from a joint index it is a part of (None if none is kept):
    its samples' joint groups, renumbered; frames and names stay the joint index's."""
    member = part.memo.get(_MEMBER)
    if member is None:
        return None
    joint, k = member
    start = joint.part_starts[k]
    joint_groups = joint.group[start : start + len(part)]
    present = np.zeros(len(joint) + 1, dtype=np.intp)
    present[joint_groups + 1] = 1
    renumber = np.cumsum(present)
    group = renumber[joint_groups]
    first = np.full(int(renumber[-1]), len(part), dtype=np.intp)
    np.minimum.at(first, group, np.arange(len(part), dtype=np.intp))
    offsets = joint.offsets[start : start + len(part) + 1]
    return StackIndex(joint.names, joint.frames, offsets, (0,), group, first, joint.memo)


@dataclass(frozen=True, slots=True)
class JointNames:
    """The names of several `Samples` in one table: the first one's, then each other's own
    as they come; and per part, the number in it of each of its nodes (None for a part whose
    nodes are numbered as the first's, or that has no frames to number)."""

    names: tuple[str, ...]
    numbers: tuple[NDArray[np.int32] | None, ...]


def joint_names(parts: Sequence[Samples]) -> JointNames:
    """The joint table of the names of `parts`, kept with the first part: a diff's pprof
    table and its stack index both number base and new on it (10,000 names: 5 ms each)."""
    for kept_parts, kept in parts[0].memo.get(_NAMES, ()):
        if len(kept_parts) == len(parts) and all(
            a is b for a, b in zip(kept_parts, parts, strict=True)
        ):
            result: JointNames = kept
            return result
    first = parts[0].names
    table = dict(zip(first, range(len(first)), strict=True))
    numbers: list[NDArray[np.int32] | None] = []
    for part in parts:
        if part.names == first or not part.frames.size:
            numbers.append(None)
            continue
        # Looked up in C; only the names the table does not have yet are added, in order.
        found = list(map(table.get, part.names))
        if None in found:
            for k in [k for k, number in enumerate(found) if number is None]:
                found[k] = table.setdefault(part.names[k], len(table))
        numbers.append(np.array(found, dtype=np.int32))
    joint = JointNames(tuple(table), tuple(numbers))
    parts[0].memo.setdefault(_NAMES, []).append((tuple(parts), joint))
    return joint


_NAMES = "joint name tables"  # on a joint table's first part: [(parts, JointNames)]


def _joint_frames(
    parts: Sequence[Samples], joint: JointNames
) -> tuple[NDArray[np.int32], list[NDArray[np.int32]]]:
    """The parts' frames laid end to end, numbered in the joint table (each translated in
    place, not into an array of its own and then copied); one part's are its own."""
    if len(parts) == 1:
        return parts[0].frames, [parts[0].frames]
    frames = np.empty(sum(part.frames.size for part in parts), dtype=np.int32)
    frame_parts: list[NDArray[np.int32]] = []
    at = 0
    for part, numbers in zip(parts, joint.numbers, strict=True):
        into = frames[at : at + part.frames.size]
        at += part.frames.size
        if numbers is None:
            into[:] = part.frames
        else:
            kernels.translate(numbers, part.frames, out=into)
        frame_parts.append(into)
    return frames, frame_parts


def _index(parts: Sequence[Samples]) -> StackIndex:
    table = joint_names(parts)
    frames, frame_parts = _joint_frames(parts, table)
    translated = [numbers is not None for numbers in table.numbers]
    longest = max((int(np.diff(part.offsets).max(initial=0)) for part in parts), default=0)
    # At least the multipliers written down: a profile's own hashes are then the same in
    # every index it is part of (kept with it), whichever part has the longest stack.
    multipliers = _multipliers(max(longest, len(_DRAWN) // 8 - 1))
    hashes = [
        _hashes(part, frames, multipliers) if moved else _own_hashes(part, multipliers)
        for part, frames, moved in zip(parts, frame_parts, translated, strict=True)
    ]

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
    return StackIndex(table.names, frames, offsets, part_starts, group, first)


def _multipliers(longest: int) -> NDArray[np.uint64]:
    """The odd multipliers of depths 0 .. longest - 1, and of the length (the last)."""
    if _HASH_SEED == _DRAWN_SEED and longest + 1 <= len(_DRAWN) // 8:
        # The draws are a prefix of one sequence (each is one 64-bit output masked to 63
        # bits), so the first ones, written down, are the draws themselves.
        multipliers = np.frombuffer(_DRAWN, dtype=">u8", count=longest + 1).astype(np.uint64)
    else:
        rng = np.random.default_rng(_HASH_SEED)
        multipliers = rng.integers(0, 2**63, size=longest + 1, dtype=np.uint64)
    result: NDArray[np.uint64] = multipliers * np.uint64(2) + np.uint64(1)
    return result


# np.random.default_rng(0x5EED_F00D).integers(0, 2**63, size=128, dtype=np.uint64), big-endian:
# importing numpy.random (and hashlib, secrets, hmac with it) is 14 ms, a sixtieth of a diff.
# tests/unit/pprof/test_stack_multipliers.py checks them against numpy.
_DRAWN_SEED = 0x5EED_F00D
_DRAWN = bytes.fromhex(
    "770313730f5aed7d0c6198bc2f3a32d83261863425e761272bc95467a57d3a8e665448d8fce2d67150b66323"
    "26d7c8bd1f69e80e3794416e33dc2b5ee25b3d5a7b2d60c83be2557a7f88b133672423421f6980278558f871"
    "3c32535014b8f900526c52d498669f550b9e5233803812123850968c375465a7691b0b374036406353b5fc9d"
    "f2a71934762a765248c7e8380800a896c807dbd079659426e156e7661f4468476b8db656619097b5c53d3a06"
    "2bca0fddca839dfc462238609ef2f6a42888754f8ab767ce65b047befb7fb8ba4ef82445f71d23127dc44d96"
    "5a78a1a40e62ee5419e71f8d4dd801875f5a186b1900523823b97c1f71b533acb3f708d310848f212beb8d72"
    "57fdb29aea7253c024c41fb70657ba214f0be8c803d52cfa1d52fb992139ae9f648ec64986be98e15c83ec16"
    "0c42088a2cc2a945c23bbf8945957bcd6503cf9513093205d1cd92545027ea98d37ef2d06c7901da3f9601b1"
    "5e2441591a9d64090f3eff9e8dc9e34d6c123fccfb669209266acb75300af0ca146460f54c892e026ef2b3d8"
    "39772ea212817a013d6d1df47a7bef89fcde63470014560a0d8f30202a0eb842de5cb95d50b35f9bc7c292fe"
    "6fb01f130c91edb27696b1e1f03eb89830033953e46f985226ce4a0fdf88919f1a57af605d5cc6b330daaebf"
    "700e8b827962d57f7a9c75c26336e7a755847cc02421beaaeaa28fd02aabcd41171316a97857cd16aca2305c"
    "7a01495d7134240e4196cc2e15ae4b7f3f48abbb442c6be2078d96c96822cfe42fc1ae916118d9125279455a"
    "2ec7b73d393601c2b1ee632d76ee2680ed160d03495c9ddd350e3e6747403d8be528363517da442d5478998c"
    "5c8644ec4e02c9dc7dfa1d55934a5a3261cd864beb50801440c3e6f604a0d5a71c002871a683ab051e53c547"
    "367fbf502563a2cbba53f7a9649f896646ff4c2841b390df09a193b4157b3f169522abfc62e043b90303f9a7"
    "7889b7afd621b1dd05f3133b0e032460470500a1b6c5c14b57e01bcfa04cee82111d5213628e850e04e4e858"
    "fae096ab2e5ca0638cd2d66e0ec42a8910f96ba5554c3e06b7bd8b6154dedf23786dba9363a10898aee9ec7d"
    "76344a0301db6432400f8d575587d56f2de9396cc31e8de27eea908252a3206b329717b7891f9d6a20483bb5"
    "b441dd062dd267bec76379505f9f23ff11d91a297259d199209072a9595799c6b087f022098234c791e9871b"
    "37ccbac7ce4c79b7680e7d9b85eba69c2eb321eaf7d32b4a3b6b0f0f6d5d233a4533128fe71a84641d0f3ccc"
    "d491cbd852e35f041db3149d7d28f0c7e3e0547d0dff38f6ea6e04d319e9e802424f1e2604ba0f8465db396b"
    "6e605ae921ab0193624e3a464b3dd8435e33fabbb3bad49d196e1ea0373c41df144f7e0c14c75b9560a8a53d"
    "ff561eba51462573341290fc"
)


def prepare_hashes(part: Samples) -> None:
    """Hash the stacks of `part` ahead, as an index of it with profiles no deeper will: a
    diff does this for its base while the new profile is still being decoded."""
    longest = int(np.diff(part.offsets).max(initial=0))
    _own_hashes(part, _multipliers(max(longest, len(_DRAWN) // 8 - 1)))


def _own_hashes(part: Samples, multipliers: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """`_hashes` of a part's own frames, kept with it (a profile is indexed alone and with
    another, with the same multipliers)."""
    key = f"stack hashes {multipliers.size}"
    if key not in part.memo:
        part.memo[key] = _hashes(part, part.frames, multipliers)
    result: NDArray[np.uint64] = part.memo[key]
    return result


def _hashes(
    part: Samples, frames: NDArray[np.int32], multipliers: NDArray[np.uint64]
) -> NDArray[np.uint64]:
    """Each sample's stack hash (`frames`: the part's frames, numbered in the joint table)."""
    fast = kernels.stack_hashes(part.offsets, frames, multipliers)
    if fast is not None:
        return fast
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
    fast = kernels.same_stacks(offsets, frames, representative)
    if fast is not None:
        return fast
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
