"""Decode profile.proto into a compact, function-level model.

The model keeps what every later step needs (sample types and, per sample, its call stack of
function names and its values) and nothing pprof's `-granularity=functions` view would
discard: frames are named exactly as `go tool pprof` names its nodes, inlined frames are
expanded, and the profile's own drop_frames/keep_frames pruning is applied as pprof applies it.

Stacks are arrays (`Samples`): each sample's frames are node ids into a table of function
names, so a 100,000-sample profile is a few numpy arrays rather than 100,000 tuples of strings.
Decoding reads samples and locations as raw bytes (`ProfileView`) and decodes their varints
for all samples at once (`wire`); a profile that uses an encoding the vectorised decoder does
not handle, or that is invalid, is decoded the ordinary way, one message at a time, which
gives the same model or the same error.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, TypeVar

import numpy as np
from google.protobuf.message import DecodeError
from numpy.typing import NDArray

from oomforensics.pprof import profile_pb2, wire
from oomforensics.pprof.arrays import (
    IntArray,
    column_bounds,
    exact_values,
    group_sum,
    positions,
    segment_ids,
    total,
)
from oomforensics.pprof.compression import DEFAULT_MAX_DECOMPRESSED, gunzip_bounded, is_gzip
from oomforensics.pprof.errors import InvalidProfile, ProfileTooLarge, UnknownSampleIndex
from oomforensics.pprof.names import pprof_name

Stack = tuple[str, ...]
"""Function names of one call stack, leaf first (index 0 is where the sample was taken)."""

Index = NDArray[np.intp]

_Text = Callable[[int, str], str]


@dataclass(frozen=True, slots=True)
class SampleType:
    type: str
    unit: str


class Samples:
    """Every sample's call stack and values, as arrays.

    Sample i's stack is `frames[offsets[i]:offsets[i + 1]]`, leaf first, each frame a node id:
    an index into `names`, the function names (distinct). `values[i]` are its values in the
    order of the profile's sample types (int64, or Python ints where int64 could overflow).
    Samples are not merged by stack: every consumer either adds values up (which is linear) or
    groups samples by stack itself (`index_stacks`).
    """

    __slots__ = ("_memo", "bounds", "frames", "names", "offsets", "values")

    def __init__(
        self,
        names: Sequence[str],
        offsets: Index,
        frames: NDArray[np.int32],
        values: IntArray,
    ) -> None:
        self.names: tuple[str, ...] = tuple(names)
        self.offsets = offsets
        self.frames = frames
        self.values = values
        self.bounds = column_bounds(values)
        self._memo: dict[str, Any] = {}

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[Stack, Sequence[int]]], width: int) -> Samples:
        """Samples from (stack, values) pairs."""
        nodes: dict[str, int] = {}
        frames: list[int] = []
        offsets = [0]
        values: list[Sequence[int]] = []
        for stack, row in rows:
            if len(row) != width:
                raise ValueError(f"{len(row)} values for {width} sample types")
            frames.extend(nodes.setdefault(name, len(nodes)) for name in stack)
            offsets.append(len(frames))
            values.append(row)
        return cls(
            names=list(nodes),
            offsets=np.array(offsets, dtype=np.intp),
            frames=np.array(frames, dtype=np.int32),
            values=_value_matrix(values, width),
        )

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def width(self) -> int:
        return int(self.values.shape[1])

    def lengths(self) -> Index:
        return np.diff(self.offsets)

    def stack(self, sample: int) -> Stack:
        names = self.names
        start, stop = int(self.offsets[sample]), int(self.offsets[sample + 1])
        return tuple(names[node] for node in self.frames[start:stop].tolist())

    def frame_samples(self) -> NDArray[np.int32]:
        """The sample of each frame."""
        return segment_ids(self.lengths())

    def stacks(self) -> dict[Stack, tuple[int, ...]]:
        """Per distinct stack, the element-wise sum of its samples' values (first-seen order)."""
        if "stacks" not in self._memo:
            names = self.names
            frames = self.frames.tolist()
            offsets = self.offsets.tolist()
            merged: dict[Stack, tuple[int, ...]] = {}
            for i, row in enumerate(self.values.tolist()):
                stack = tuple(names[node] for node in frames[offsets[i] : offsets[i + 1]])
                previous = merged.get(stack)
                merged[stack] = (
                    tuple(row)
                    if previous is None
                    else tuple(a + b for a, b in zip(previous, row, strict=True))
                )
            self._memo["stacks"] = merged
        result: dict[Stack, tuple[int, ...]] = self._memo["stacks"]
        return result

    def total(self, index: int) -> int:
        return total(self.values[:, index])

    def leaves(self) -> tuple[Index, Index]:
        """(samples with a non-empty stack, their leaf node)."""
        samples = np.flatnonzero(self.offsets[1:] > self.offsets[:-1])
        return samples, self.frames[self.offsets[samples]].astype(np.intp)

    def repeated_frames(self) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """(node, sample) once for each extra time a node is on a sample's stack (recursion).

        Keys sample * nodes + node sorted (numpy's SIMD sort) put a node recurring in a sample
        next to itself; the repeats are the keys equal to their predecessor.
        """
        size = len(self.names)
        samples = self.frame_samples()
        if len(self) * max(size, 1) < 2**32:
            keys: NDArray[np.uint32] | NDArray[np.int64] = samples.astype(np.uint32)
            keys *= np.uint32(size)
            keys += self.frames.astype(np.uint32)
        else:
            keys = samples.astype(np.int64)
            keys *= size
            keys += self.frames
        del samples
        keys.sort()
        repeats = np.compress(keys[1:] == keys[:-1], keys[1:]).astype(np.intp)
        return repeats % max(size, 1), repeats // max(size, 1)

    def function_table(self, index: int) -> tuple[IntArray, IntArray, NDArray[np.bool_]]:
        """Per node: flat, cum, and whether any sample with a non-zero value has it (pprof
        adds a sample to the flat of its leaf and to the cum of each function on it once)."""
        size = len(self.names)
        column = self.values[:, index]
        bound = float(self.bounds[index]) if self.bounds.size else 0.0
        samples, leaves = self.leaves()
        flat = group_sum(leaves, column[samples], size, bound)
        # Every frame adds its sample's value, then each repeat within a sample takes it back.
        per_frame = np.take(column, self.frame_samples())
        deep = bound * float(self.lengths().max(initial=0))
        cum = group_sum(self.frames, per_frame, size, deep)
        present = np.bincount(self.frames[per_frame != 0], minlength=size) > 0
        del per_frame
        nodes, owners = self.repeated_frames()
        if nodes.size:
            cum = cum - group_sum(nodes, column[owners], size, deep)
        return flat, cum, present


@dataclass(frozen=True, slots=True, eq=False)
class Profile:
    """A pprof profile reduced to function-level stacks (see `Samples`)."""

    sample_types: tuple[SampleType, ...]
    samples: Samples
    default_sample_type: str = ""
    time_nanos: int = 0
    duration_nanos: int = 0
    period: int = 0
    period_type: SampleType | None = None
    comments: tuple[str, ...] = ()
    # Names pprof prints shortened (see `names`) -> the function's full system name.
    full_names: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_stacks(
        cls,
        sample_types: Sequence[SampleType],
        stacks: Mapping[Stack, Sequence[int]],
        **metadata: Any,
    ) -> Profile:
        """A profile with one sample per stack (for tools and tests that build one by hand)."""
        rows = Samples.from_rows(stacks.items(), len(sample_types))
        return cls(sample_types=tuple(sample_types), samples=rows, **metadata)

    @property
    def stacks(self) -> Mapping[Stack, tuple[int, ...]]:
        """Each distinct stack with the element-wise sum of the values of its samples, in the
        order of `sample_types` (built on first use; the analysis works on `samples`)."""
        return self.samples.stacks()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Profile):
            return NotImplemented
        return (
            self.sample_types == other.sample_types
            and self.default_sample_type == other.default_sample_type
            and self.time_nanos == other.time_nanos
            and self.duration_nanos == other.duration_nanos
            and self.period == other.period
            and self.period_type == other.period_type
            and self.comments == other.comments
            and dict(self.stacks) == dict(other.stacks)
        )

    def sample_index(self, wanted: str | int | None = None) -> int:
        """Resolve a sample index the way pprof's -sample_index does (name or number)."""
        names = [st.type for st in self.sample_types]
        if wanted is None or wanted == "":
            if self.default_sample_type in names:
                return names.index(self.default_sample_type)
            return len(names) - 1  # pprof's default: the last sample type
        if isinstance(wanted, int) or wanted.isdigit():
            index = int(wanted)
            if 0 <= index < len(names):
                return index
        elif wanted in names:
            return names.index(wanted)
        elif wanted.removeprefix("inuse_") in names:  # pprof: inuse_space for "space"
            return names.index(wanted.removeprefix("inuse_"))
        raise UnknownSampleIndex(
            f"sample index {wanted!r} is not in this profile (it has: {', '.join(names)})"
        )

    def total(self, index: int) -> int:
        """Sum of one sample type over all samples."""
        return self.samples.total(index)


def _value_matrix(rows: Sequence[Sequence[int]], width: int) -> IntArray:
    try:
        values = np.array(rows, dtype=np.int64).reshape(len(rows), width)
    except OverflowError:
        big = np.empty((len(rows), width), dtype=object)
        for i, row in enumerate(rows):
            big[i, :] = list(row)
        return big
    return exact_values(values)


# --- stacks shared across profiles ------------------------------------------------------


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
    for part in parts:
        if part.names == parts[0].names or not part.frames.size:
            frame_parts.append(part.frames)
            continue
        translate = np.fromiter(
            (table.setdefault(name, len(table)) for name in part.names),
            dtype=np.int32,
            count=len(part.names),
        )
        frame_parts.append(np.take(translate, part.frames))
    longest = max((int(np.diff(part.offsets).max(initial=0)) for part in parts), default=0)
    rng = np.random.default_rng(_HASH_SEED)
    multipliers = rng.integers(0, 2**63, size=longest + 1, dtype=np.uint64)
    multipliers = multipliers * np.uint64(2) + np.uint64(1)

    hashes: list[NDArray[np.uint64]] = []
    for part, frames in zip(parts, frame_parts, strict=True):
        lengths = np.diff(part.offsets)
        hashed = frames.astype(np.uint64)
        hashed += np.uint64(1)
        hashed *= np.take(multipliers, positions(part.offsets))
        own = lengths.astype(np.uint64) * multipliers[-1]
        nonempty = np.flatnonzero(lengths)
        if nonempty.size:
            own[nonempty] += np.add.reduceat(hashed, part.offsets[nonempty])
        hashes.append(own)
        del hashed

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
        if not (frames[_expand(mine[part], size)] == frames[_expand(theirs[part], size)]).all():
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


# --- decoding ---------------------------------------------------------------------------


def parse_profile(data: bytes, max_bytes: int = DEFAULT_MAX_DECOMPRESSED) -> Profile:
    """Parse a profile as served by net/http/pprof: gzipped or raw protobuf.

    Raises InvalidProfile for anything that is not a well-formed profile (HTML error pages,
    truncated gzip, dangling references) and ProfileTooLarge past `max_bytes`.
    """
    if is_gzip(data):
        raw = gunzip_bounded(data, max_bytes)
    elif len(data) > max_bytes:
        raise ProfileTooLarge(f"profile exceeds the {max_bytes} byte limit")
    else:
        raw = data
    if not raw:
        raise InvalidProfile("empty profile")
    view = profile_pb2.ProfileView()
    try:
        view.ParseFromString(raw)
    except DecodeError:
        raise InvalidProfile(f"not a pprof profile ({_describe(data)})") from None
    try:
        return _build_vectorised(view, data)
    except (wire.Unsupported, InvalidProfile, IndexError, ValueError, OverflowError):
        # Decode message by message instead: the same profile, or the exact error. (A profile
        # is untrusted input: whatever trips the vectorised decoder gets the careful one.)
        pass
    return _build(view, data)


def _describe(data: bytes) -> str:
    head = data[:64].lstrip().lower()
    if head.startswith((b"<!doctype", b"<html")):
        return "got an HTML page"
    if head[:1].isascii() and head[:1].isalpha():
        return "got text starting with " + repr(data[:32].decode("utf-8", "replace"))
    return "protobuf decoding failed"


class _Header:
    """What both decoders read the same way: strings, sample types, mappings, metadata."""

    def __init__(self, msg: profile_pb2.ProfileView, original: bytes) -> None:
        # The string table is read as bytes: Go's decoder (pprof's) does not check UTF-8, and
        # upb would refuse the whole profile for one bad name. Invalid bytes become lone
        # surrogates, which print back as the same bytes (surrogateescape), as pprof prints.
        raw = msg.string_table
        if not raw or raw[0] != b"":
            raise InvalidProfile(f"not a pprof profile ({_describe(original)}: bad string table)")
        self.strings: Sequence[str] = [b.decode("utf-8", "surrogateescape") for b in raw]
        self._full_names: dict[str, str] = {}
        self.sample_types = tuple(
            SampleType(self.text(vt.type, "sample_type"), self.text(vt.unit, "sample_type"))
            for vt in msg.sample_type
        )
        if not self.sample_types:
            raise InvalidProfile(f"not a pprof profile ({_describe(original)}: no sample types)")

        # pprof's CheckValid: ids are non-zero and distinct.
        for what, ids in (
            ("mapping", [m.id for m in msg.mapping]),
            ("function", [fn.id for fn in msg.function]),
        ):
            _check_ids(what, ids)

    def text(self, index: int, what: str) -> str:
        if not 0 <= index < len(self.strings):
            raise InvalidProfile(f"{what} refers to string {index}, beyond the string table")
        return self.strings[index]

    def function_name(self, fn: profile_pb2.Function) -> str:
        """The function's name as pprof prints it (see `names`); "" when it has none."""
        name = self.text(fn.name, "function")
        system_name = self.text(fn.system_name, "function")
        shown = pprof_name(name, system_name)
        if shown and shown != name:
            self._full_names.setdefault(shown, system_name)
        return shown

    def profile(self, msg: profile_pb2.ProfileView, samples: Samples) -> Profile:
        text = self.text
        period_type = (
            SampleType(
                text(msg.period_type.type, "period_type"),
                text(msg.period_type.unit, "period_type"),
            )
            if msg.HasField("period_type")
            else None
        )
        return Profile(
            sample_types=self.sample_types,
            samples=samples,
            default_sample_type=text(msg.default_sample_type, "default_sample_type"),
            time_nanos=msg.time_nanos,
            duration_nanos=msg.duration_nanos,
            period=msg.period,
            period_type=period_type,
            comments=tuple(text(c, "comment") for c in msg.comment),
            full_names=self._full_names,
        )


def _check_ids(what: str, ids: Sequence[int]) -> None:
    if 0 in ids:
        raise InvalidProfile(f"malformed profile: found {what} with reserved ID=0")
    if len(set(ids)) != len(ids):
        raise InvalidProfile(f"malformed profile: multiple {what}s with the same id")


# The fields the vectorised decoder reads, as (field number, wire type).
_V, _L = wire.VARINT, wire.LENGTH_DELIMITED
_SAMPLE = wire.wire_types([(1, _V), (1, _L), (2, _V), (2, _L), (3, _L)])
_LABEL = wire.wire_types([(1, _V), (2, _V), (3, _V), (4, _V)])
_LOCATION = wire.wire_types([(1, _V), (2, _V), (3, _V), (4, _L), (5, _V)])
_LINE = wire.wire_types([(1, _V), (2, _V), (3, _V)])


def _tag(field_number: int, wire_type: int) -> int:
    return (field_number << 3) | wire_type


@dataclass
class _Locations:
    """The locations of a profile, decoded: ids, mappings and their lines' function ids."""

    ids: NDArray[np.uint64]
    mapping_ids: NDArray[np.uint64]
    line_offsets: Index  # location i's lines are line_offsets[i] .. line_offsets[i + 1] - 1
    function_ids: NDArray[np.uint64]  # per line


@dataclass
class _RawSamples:
    location_ids: NDArray[np.uint64] | NDArray[np.uint32]
    offsets: Index
    values: NDArray[np.int64]


def _build_vectorised(view: profile_pb2.ProfileView, original: bytes) -> Profile:
    """Decode with numpy; raises wire.Unsupported or InvalidProfile to hand over to `_build`."""
    width = len(view.sample_type)
    raw_samples = _decode_samples(list(view.sample), width)
    locations = _decode_locations(list(view.location))
    header = _Header(view, original)
    nodes, location_frames, pruned, pruned_beneath = _name_locations(view, header, locations)
    samples = _sample_frames(raw_samples, locations, location_frames, pruned, pruned_beneath)
    frame_offsets, frames = samples
    return header.profile(
        view,
        Samples(nodes, frame_offsets, frames, exact_values(raw_samples.values)),
    )


def _decode_samples(messages: list[bytes], width: int) -> _RawSamples:
    """Location ids and values of every sample, decoded half a megabyte of samples at a time
    (small temporaries stay in cache and are reused instead of faulted in afresh)."""
    sizes = np.fromiter(map(len, messages), dtype=np.intp, count=len(messages))
    ids: list[NDArray[np.uint64] | NDArray[np.uint32]] = []
    values: list[NDArray[np.uint64] | NDArray[np.uint32]] = []
    id_counts: list[Index] = []
    for lo, hi in _batches(sizes, _BATCH_BYTES):
        batch_ids, batch_counts, batch_values = _decode_sample_batch(messages[lo:hi], width)
        ids.append(batch_ids)
        id_counts.append(batch_counts)
        values.append(batch_values)
    offsets = np.zeros(len(messages) + 1, dtype=np.intp)
    if messages:
        np.cumsum(np.concatenate(id_counts), out=offsets[1:])
    location_ids = _concatenate(ids)
    matrix = _concatenate(values).astype(np.uint64).view(np.int64).reshape(len(messages), width)
    return _RawSamples(location_ids, offsets, matrix)


_BATCH_BYTES = 1 << 19


def _batches(sizes: Index, budget: int) -> Iterator[tuple[int, int]]:
    """Consecutive ranges of messages of about `budget` bytes each (at least one message)."""
    ends = np.cumsum(sizes)
    lo = 0
    while lo < sizes.size:
        before = int(ends[lo - 1]) if lo else 0
        hi = max(int(np.searchsorted(ends, before + budget, side="right")), lo + 1)
        yield lo, hi
        lo = hi


def _concatenate(
    parts: list[NDArray[np.uint64] | NDArray[np.uint32]],
) -> NDArray[np.uint64] | NDArray[np.uint32]:
    if not parts:
        return np.zeros(0, dtype=np.uint32)
    if any(part.dtype == np.uint64 for part in parts):
        wide: NDArray[np.uint64] = np.concatenate([part.astype(np.uint64) for part in parts])
        return wide
    narrow: NDArray[np.uint32] = np.concatenate(parts)
    return narrow


def _decode_sample_batch(
    messages: list[bytes], width: int
) -> tuple[NDArray[np.uint64] | NDArray[np.uint32], Index, NDArray[np.uint64] | NDArray[np.uint32]]:
    """(location ids, their count per sample, values) of consecutive samples."""
    data, ends = wire.padded(messages)
    tokens = wire.tokenize(data, ends)
    del data
    first, stop = wire.message_tokens(tokens, ends)
    fields = wire.walk(tokens, first, stop, _SAMPLE)
    labels = fields.select((_tag(3, _L),))
    if labels.message.size:
        wire.walk(tokens, labels.start, labels.stop, _LABEL)  # validated, not kept
    count = len(messages)

    def repeated(number: int) -> tuple[NDArray[np.uint64] | NDArray[np.uint32], Index]:
        occurrences = fields.select((_tag(number, _V), _tag(number, _L)))
        found = wire.token_mask(occurrences.start, occurrences.stop, len(tokens))
        sizes = np.bincount(
            occurrences.message, weights=occurrences.stop - occurrences.start, minlength=count
        ).astype(np.intp)
        return tokens.values(found), sizes

    location_ids, id_counts = repeated(1)
    values, value_counts = repeated(2)
    if (value_counts != width).any():
        raise wire.Unsupported("a sample with a value count other than the sample types'")
    return location_ids, id_counts, values


def _decode_locations(chunks: list[bytes]) -> _Locations:
    count = len(chunks)
    data, ends = wire.padded(chunks)
    tokens = wire.tokenize(data, ends)
    del data
    first, stop = wire.message_tokens(tokens, ends)
    fields = wire.walk(tokens, first, stop, _LOCATION)

    def scalar(occurrences: wire.Fields, size: int) -> NDArray[np.uint64]:
        out = np.zeros(size, dtype=np.uint64)
        present, at = occurrences.last_per_message(size)
        out[present] = tokens.u64(at)
        return out

    lines = fields.select((_tag(4, _L),)).ordered()
    line_fields = wire.walk(tokens, lines.start, lines.stop, _LINE)
    line_offsets = np.zeros(count + 1, dtype=np.intp)
    np.cumsum(np.bincount(lines.message, minlength=count), out=line_offsets[1:])
    return _Locations(
        ids=scalar(fields.select((_tag(1, _V),)), count),
        mapping_ids=scalar(fields.select((_tag(2, _V),)), count),
        line_offsets=line_offsets,
        function_ids=scalar(line_fields.select((_tag(1, _V),)), len(lines.message)),
    )


def _lookup(
    keys: NDArray[np.uint64], wanted: NDArray[np.uint64] | NDArray[np.uint32]
) -> NDArray[np.int32]:
    """Position of each `wanted` value in `keys` (distinct), -1 where absent."""
    if keys.size == 0 or wanted.size == 0:
        return np.full(wanted.size, -1, dtype=np.int32)
    top = int(keys.max())
    if top <= 4 * keys.size + 4096:  # ids are small (Go numbers them from 1): a table
        table = np.full(top + 2, -1, dtype=np.int32)
        table[keys.astype(np.intp)] = np.arange(keys.size, dtype=np.int32)
        if int(wanted.max()) > top:
            wanted = np.minimum(wanted, top + 1)
        return np.take(table, wanted)
    order = np.argsort(keys, kind="stable")
    ranks = np.minimum(np.searchsorted(keys[order], wanted.astype(np.uint64)), keys.size - 1)
    found = order[ranks]
    return np.where(keys[found] == wanted, found, -1).astype(np.int32)


def _name_locations(
    view: profile_pb2.ProfileView, header: _Header, locations: _Locations
) -> tuple[list[str], tuple[Index, NDArray[np.int32]], NDArray[np.bool_], NDArray[np.bool_]]:
    """Node names, each location's frames (CSR of node ids, leaf first) after drop_frames
    trimming, and which locations pprof's Prune marks as pruned / pruned beneath."""
    text = header.text
    objfiles = {m.id: text(m.filename, "mapping") for m in view.mapping}
    drop = _compile(text(view.drop_frames, "drop_frames"))
    keep = _compile(text(view.keep_frames, "keep_frames")) if drop is not None else None
    count = locations.ids.size
    if np.unique(locations.ids).size != count or (locations.ids == 0).any():
        raise wire.Unsupported("duplicate or zero location ids")  # the careful decoder says
    function_ids = np.fromiter((fn.id for fn in view.function), np.uint64, len(view.function))
    # Each function's name, as an index into `shown` (names as pprof prints them).
    shown = [header.function_name(fn) for fn in view.function]
    function_names = np.arange(len(shown), dtype=np.int64)
    if np.unique(function_ids).size != function_ids.size:
        raise wire.Unsupported("duplicate function ids")
    mapping_ids = locations.mapping_ids
    if any(int(m) not in objfiles for m in np.unique(mapping_ids) if m):
        raise wire.Unsupported("a location refers to a missing mapping")

    # Each line's function name (a string index), or -1 for a line without a function.
    line_functions = locations.function_ids
    named = line_functions != 0
    position = _lookup(function_ids, line_functions[named])
    if (position < 0).any():
        raise wire.Unsupported("a line refers to a missing function")
    line_strings = np.full(line_functions.size, -1, dtype=np.int64)
    line_strings[named] = function_names[position]

    # Nodes: one per distinct display name. A function with an empty name and a line without
    # a function are named after the location's binary, as pprof does.
    node_of: dict[str, int] = {}
    used, string_slot = np.unique(line_strings[named], return_inverse=True)
    string_names = [shown[s] for s in used.tolist()]
    string_nodes = np.array(
        [node_of.setdefault(name, len(node_of)) if name else -1 for name in string_names],
        dtype=np.int32,
    )
    line_nodes = np.full(line_functions.size, -1, dtype=np.int32)
    line_nodes[named] = string_nodes[string_slot]
    mapping_list, mapping_slot = np.unique(mapping_ids, return_inverse=True)
    placeholders = np.array(
        [
            node_of.setdefault(_unnamed(objfiles.get(int(m), "")), len(node_of))
            for m in mapping_list
        ],
        dtype=np.int32,
    )
    location_placeholder = placeholders[mapping_slot]
    line_count = np.diff(locations.line_offsets)
    line_location = segment_ids(line_count)
    unnamed_lines = np.flatnonzero(line_nodes < 0)
    line_nodes[unnamed_lines] = location_placeholder[line_location[unnamed_lines]]

    # drop_frames: the outermost line whose function matches is cut with everything inlined
    # into it; a location whose outermost line matches is pruned whole.
    cut = np.full(count, -1, dtype=np.intp)
    if drop is not None and named.any():
        matches = np.array(
            [bool(name) and _prunes(name, drop, keep) for name in string_names], dtype=bool
        )
        line_matches = np.zeros(line_functions.size, dtype=bool)
        line_matches[named] = matches[string_slot]
        hit = np.flatnonzero(line_matches)
        np.maximum.at(cut, line_location[hit], hit - locations.line_offsets[line_location[hit]])
    pruned_beneath = cut >= 0
    pruned = pruned_beneath & (cut == line_count - 1)
    trimmed = np.flatnonzero(pruned_beneath & ~pruned)

    # Each location's frames: its lines from the first kept one; one placeholder without lines.
    frame_start = locations.line_offsets[:-1].copy()
    frame_start[trimmed] += cut[trimmed] + 1
    frame_count = locations.line_offsets[1:] - frame_start
    empty = np.flatnonzero(line_count == 0)
    if empty.size:
        frame_start[empty] = line_nodes.size + np.arange(empty.size)
        frame_count[empty] = 1
        line_nodes = np.concatenate([line_nodes, location_placeholder[empty]])
    names = list(node_of)
    return names, _pack_frames(frame_start, frame_count, line_nodes), pruned, pruned_beneath


def _pack_frames(
    start: Index, size: Index, nodes: NDArray[np.int32]
) -> tuple[Index, NDArray[np.int32]]:
    """Frames start[i] .. start[i] + size[i] - 1 of `nodes` as a compact CSR (offsets, nodes)."""
    offsets = np.zeros(size.size + 1, dtype=np.intp)
    np.cumsum(size, out=offsets[1:])
    if (start == offsets[:-1]).all() and offsets[-1] == nodes.size:
        return offsets, nodes
    return offsets, nodes[_expand(start, size)]


def _expand(start: Index, size: Index) -> Index:
    """The indices start[i] .. start[i] + size[i] - 1 for every i, in order."""
    total = int(size.sum())
    shift: Index = start - (np.cumsum(size) - size)
    indices: Index = np.arange(total, dtype=np.intp) + np.repeat(shift, size)
    return indices


def _sample_frames(
    raw: _RawSamples,
    locations: _Locations,
    location_frames: tuple[Index, NDArray[np.int32]],
    pruned: NDArray[np.bool_],
    pruned_beneath: NDArray[np.bool_],
) -> tuple[Index, NDArray[np.int32]]:
    """Each sample's frames: its locations (after pruning) expanded to their frames."""
    where = _lookup(locations.ids, raw.location_ids)
    if where.size and where.min() < 0:
        raise wire.Unsupported("a sample refers to a missing location")
    offsets = raw.offsets
    if pruned_beneath.any():
        where, offsets = _prune_samples(where, offsets, pruned, pruned_beneath)
    frame_offsets, nodes = location_frames
    size = np.diff(frame_offsets).astype(np.int32)
    leaf_node = nodes[frame_offsets[:-1]]
    if (size == 1).all():
        return offsets, np.take(leaf_node, where)
    # Most locations have one frame: place those, then the inlined frames of the others.
    counts = np.take(size, where)
    cumulative = np.zeros(counts.size + 1, dtype=np.intp)
    np.cumsum(counts, out=cumulative[1:])
    placed = cumulative[:-1]
    frames = np.empty(int(cumulative[-1]), dtype=np.int32)
    frames[placed] = np.take(leaf_node, where)
    inlined = np.flatnonzero(counts > 1)
    if inlined.size:
        extras = counts[inlined].astype(np.intp) - 1
        target = _expand(placed[inlined] + 1, extras)
        frames[target] = nodes[_expand(frame_offsets[where[inlined]] + 1, extras)]
    return cumulative[offsets], frames


def _prune_samples(
    where: NDArray[np.int32],
    offsets: Index,
    pruned: NDArray[np.bool_],
    pruned_beneath: NDArray[np.bool_],
) -> tuple[NDArray[np.int32], Index]:
    """pprof's Prune on every sample: scanning from the root, past the first location that is
    not itself pruned, cut at the next one that is (keeping it if only pruned beneath)."""
    count = offsets.size - 1
    owner = segment_ids(np.diff(offsets))
    depth = positions(offsets)
    flagged = pruned_beneath[where]
    user = np.full(count, -1, dtype=np.intp)
    kept = np.flatnonzero(~flagged)
    np.maximum.at(user, owner[kept], depth[kept])
    cut = np.full(count, -1, dtype=np.intp)
    candidates = np.flatnonzero(flagged & (depth < user[owner]))
    np.maximum.at(cut, owner[candidates], depth[candidates])
    start = np.zeros(count, dtype=np.intp)
    has_cut = np.flatnonzero(cut >= 0)
    start[has_cut] = cut[has_cut] + pruned[where[offsets[has_cut] + cut[has_cut]]]
    keep = depth >= start[owner]
    new_offsets = np.zeros(count + 1, dtype=np.intp)
    np.cumsum(np.bincount(owner[keep], minlength=count), out=new_offsets[1:])
    return where[keep], new_offsets


def _prunes(name: str, drop: re.Pattern[str], keep: re.Pattern[str] | None) -> bool:
    simple = _simplify(name)
    return bool(drop.match(simple)) and (keep is None or not keep.match(simple))


# --- message-by-message decoding: any valid profile, and the exact error for others --------


def _build(view: profile_pb2.ProfileView, original: bytes) -> Profile:
    header = _Header(view, original)
    width = len(header.sample_types)
    locations = [_decode(profile_pb2.Location, raw, original) for raw in view.location]
    frames, pruned, pruned_beneath = _location_frames(view, locations, header)
    rows: list[tuple[Stack, Sequence[int]]] = []
    stack_cache: dict[tuple[int, ...], Stack] = {}
    for raw in view.sample:
        sample = _decode(profile_pb2.Sample, raw, original)
        values = tuple(sample.value)
        if len(values) != width:
            raise InvalidProfile(f"a sample has {len(values)} values for {width} sample types")
        ids = tuple(sample.location_id)
        stack = stack_cache.get(ids)
        if stack is None:
            stack = _stack(ids, frames, pruned, pruned_beneath)
            stack_cache[ids] = stack
        rows.append((stack, values))
    return header.profile(view, Samples.from_rows(rows, width))


_Message = TypeVar("_Message", profile_pb2.Sample, profile_pb2.Location)


def _decode(kind: type[_Message], raw: bytes, original: bytes) -> _Message:
    try:
        return kind.FromString(raw)
    except DecodeError:
        raise InvalidProfile(f"not a pprof profile ({_describe(original)})") from None


def _location_frames(
    msg: profile_pb2.ProfileView, locations: Sequence[profile_pb2.Location], header: _Header
) -> tuple[dict[int, Stack], set[int], set[int]]:
    """Name every location's frames (leaf first) and apply drop_frames/keep_frames line trimming."""
    text = header.text
    functions = {fn.id: fn for fn in msg.function}
    objfiles = {m.id: text(m.filename, "mapping") for m in msg.mapping}
    drop = _compile(text(msg.drop_frames, "drop_frames"))
    keep = _compile(text(msg.keep_frames, "keep_frames")) if drop is not None else None

    _check_ids("location", [loc.id for loc in locations])
    frames: dict[int, Stack] = {}
    pruned: set[int] = set()
    pruned_beneath: set[int] = set()
    for loc in locations:
        if loc.mapping_id and loc.mapping_id not in objfiles:
            raise InvalidProfile(f"location {loc.id} refers to missing mapping {loc.mapping_id}")
        objfile = objfiles.get(loc.mapping_id, "")
        names: list[str] = []
        raw_names: list[str] = []
        for line in loc.line:
            if line.function_id == 0:
                names.append(_unnamed(objfile))
                raw_names.append("")
                continue
            fn = functions.get(line.function_id)
            if fn is None:
                raise InvalidProfile(
                    f"location {loc.id} refers to missing function {line.function_id}"
                )
            name = header.function_name(fn)
            names.append(name or _unnamed(objfile))
            raw_names.append(name)
        if not names:
            names.append(_unnamed(objfile))  # pprof keeps unsymbolized locations as nodes
        if drop is not None and raw_names:
            cut = _prune_point(raw_names, drop, keep)
            if cut is not None:
                pruned_beneath.add(loc.id)
                if cut == len(raw_names) - 1:
                    pruned.add(loc.id)
                else:
                    names = names[cut + 1 :]
        frames[loc.id] = tuple(names)
    return frames, pruned, pruned_beneath


def _unnamed(objfile: str) -> str:
    # pprof's NodeInfo.NameComponents for a frame without a function name.
    return f"[{posixpath.basename(objfile)}]" if objfile else "<unknown>"


def _compile(pattern: str) -> re.Pattern[str] | None:
    if not pattern:
        return None
    try:
        return re.compile(f"^(?:{pattern})$")
    except re.error:
        return None  # pprof ignores a profile's bad prune regexp, and so do we


_BRACKET = re.compile(r"\(anonymous namespace\)|operator\(\)|\(")


def _simplify(name: str) -> str:
    """pprof's simplifyFunc: drop a C++-style argument list (which also cuts Go method names)."""
    name = name.removeprefix(".")
    for match in _BRACKET.finditer(name):
        if match.group(0) == "(":
            return name[: match.start()]
    return name


def _prune_point(
    raw_names: list[str], drop: re.Pattern[str], keep: re.Pattern[str] | None
) -> int | None:
    """Index of the outermost line whose function pprof's Prune drops, if any."""
    for i in range(len(raw_names) - 1, -1, -1):
        name = raw_names[i]
        if not name:
            continue
        if _prunes(name, drop, keep):
            return i
    return None


def _stack(
    ids: tuple[int, ...], frames: dict[int, Stack], pruned: set[int], pruned_beneath: set[int]
) -> Stack:
    for loc_id in ids:
        if loc_id not in frames:
            raise InvalidProfile(f"a sample refers to missing location {loc_id}")
    if pruned_beneath:
        ids = _prune_sample(ids, pruned, pruned_beneath)
    return tuple(name for loc_id in ids for name in frames[loc_id])


def _prune_sample(
    ids: tuple[int, ...], pruned: set[int], pruned_beneath: set[int]
) -> tuple[int, ...]:
    # Scan from the root; never prune before the first frame that is not itself pruned.
    found_user = False
    for i in range(len(ids) - 1, -1, -1):
        loc_id = ids[i]
        if loc_id not in pruned and loc_id not in pruned_beneath:
            found_user = True
            continue
        if not found_user:
            continue
        if loc_id in pruned:
            return ids[i + 1 :]
        return ids[i:]
    return ids
