"""The profile model: sample types, and every sample's call stack and values as arrays.

A profile is reduced to function-level stacks, as pprof's `-granularity=functions` view sees
it: each sample's frames are node ids into a table of function names (`Samples`), so a
100,000-sample profile is a few numpy arrays rather than 100,000 tuples of strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from oomforensics.pprof import kernels
from oomforensics.pprof.arrays import (
    FLOAT_EXACT,
    IntArray,
    column_bounds,
    exact_values,
    group_sum,
    segment_ids,
    total,
)
from oomforensics.pprof.errors import UnknownSampleIndex

Stack = tuple[str, ...]
"""Function names of one call stack, leaf first (index 0 is where the sample was taken)."""

Index = NDArray[np.intp]


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
        bounds: NDArray[np.float64] | None = None,  # column_bounds(values), when known
    ) -> None:
        self.names: tuple[str, ...] = tuple(names)
        self.offsets = offsets
        self.frames = frames
        self.values = values
        self.bounds = column_bounds(values) if bounds is None else bounds
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

    @property
    def memo(self) -> dict[str, Any]:
        """Figures derived from these samples, kept by the modules that derive them."""
        return self._memo

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
        next to itself; the repeats are the keys equal to their predecessor. (The same for
        every sample type: kept.)
        """
        if "repeats" not in self._memo:
            size = max(len(self.names), 1)
            lengths = self.lengths()
            if len(self) * size < 2**32:
                first = np.arange(len(self), dtype=np.uint32) * np.uint32(size)
                keys: NDArray[np.uint32] | NDArray[np.int64] = np.repeat(first, lengths)
                keys += self.frames.view(np.uint32)  # node ids are not negative
            else:
                keys = np.repeat(np.arange(len(self), dtype=np.int64) * size, lengths)
                keys += self.frames
            keys.sort()
            repeats = np.compress(keys[1:] == keys[:-1], keys[1:]).astype(np.intp)
            self._memo["repeats"] = (repeats % size, repeats // size)
        result: tuple[NDArray[np.intp], NDArray[np.intp]] = self._memo["repeats"]
        return result

    def function_table(self, index: int) -> tuple[IntArray, IntArray, NDArray[np.bool_]]:
        """Per node: flat, cum, and whether any sample with a non-zero value has it (pprof
        adds a sample to the flat of its leaf and to the cum of each function on it once).
        Kept per index: a diff asks for each profile's table, and may have it computed
        beforehand, alongside the decoding of the other profile. (Callers do not modify it.)"""
        key = f"function table {index}"
        if key not in self._memo:
            self._memo[key] = self._function_table(index)
        result: tuple[IntArray, IntArray, NDArray[np.bool_]] = self._memo[key]
        return result

    def _function_table(self, index: int) -> tuple[IntArray, IntArray, NDArray[np.bool_]]:
        size = len(self.names)
        column = self.values[:, index]
        table = kernels.function_table(self.offsets, self.frames, column, size)
        if table is not None:
            return table
        bound = float(self.bounds[index]) if self.bounds.size else 0.0
        samples, leaves = self.leaves()
        flat = group_sum(leaves, column[samples], size, bound)
        # Every frame adds its sample's value, then each repeat within a sample takes it back.
        lengths = self.lengths()
        deep = bound * float(lengths.max(initial=0))
        if column.dtype != object and deep < FLOAT_EXACT:  # group_sum's float path, cast once
            per_frame = np.repeat(column.astype(np.float64), lengths)
            cum = np.bincount(self.frames, weights=per_frame, minlength=size).astype(np.int64)
        else:
            per_frame = np.repeat(column, lengths)
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
