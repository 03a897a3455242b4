"""The decoder's inner loops in C (`_kernels.c`), as numpy arrays; None where they do not apply.

The extension is optional (built at install time when a C compiler is there). Each function
returns exactly what the numpy step it replaces computes, or None when the extension is not
built, is switched off (OOMF_KERNELS=0, for comparing the two) or the input is one it does not
take; the caller then runs the numpy step, which decides.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from types import ModuleType
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from oomforensics.pprof.fields import (
    FunctionParts,
    MappingParts,
    Messages,
    ProfileParts,
    ValueTypeParts,
)

Index = NDArray[np.intp]


def _load() -> ModuleType | None:
    if os.environ.get("OOMF_KERNELS", "1") == "0":
        return None
    try:
        from oomforensics.pprof import _kernels  # type: ignore[attr-defined]
    except ImportError:
        return None
    module: ModuleType = _kernels
    return module


_C = _load()


def available() -> bool:
    """Whether the C kernels are built and in use."""
    return _C is not None


class SampleIds(NamedTuple):
    location_ids: NDArray[np.uint64] | NDArray[np.uint32]
    offsets: Index  # sample i's ids are location_ids[offsets[i] : offsets[i + 1]]
    values: NDArray[np.int64]  # one row per sample


def decode_samples(messages: Sequence[bytes], width: int) -> SampleIds | None:
    """Location ids and values of encoded Sample messages (`width` values each)."""
    if _C is None:
        return None
    decoded = _C.decode_samples(_encoded(messages), width)
    if decoded is None:
        return None
    ids, wide, offsets, values = decoded
    location_ids: NDArray[np.uint64] | NDArray[np.uint32] = (
        np.frombuffer(ids, dtype=np.uint64) if wide else np.frombuffer(ids, dtype=np.uint32)
    )
    return SampleIds(
        location_ids,
        np.frombuffer(offsets, dtype=np.intp),
        np.frombuffer(values, dtype=np.int64).reshape(len(messages), width),
    )


class SampleFrames(NamedTuple):
    offsets: Index  # sample i's frames are frames[offsets[i] : offsets[i + 1]]
    frames: NDArray[np.int32]
    values: NDArray[np.int64]  # one row per sample


def decode_sample_frames(
    messages: Sequence[bytes],
    width: int,
    table: NDArray[np.int32],
    frame_offsets: Index,
    nodes: NDArray[np.int32],
) -> SampleFrames | None:
    """`decode_samples` with each location id made its location's frames as it is read (no
    array of ids between): each sample's frames, its locations' (location j of id i being
    table[i], its frames nodes[frame_offsets[j] : frame_offsets[j + 1]]) laid end to end, and
    its values."""
    if _C is None:
        return None
    decoded = _C.decode_sample_frames(
        _encoded(messages),
        width,
        _contiguous(table, np.int32),
        _contiguous(frame_offsets, np.intp),
        _contiguous(nodes, np.int32),
    )
    if decoded is None:
        return None
    offsets, frames, values = decoded
    return SampleFrames(
        np.frombuffer(offsets, dtype=np.intp),
        np.frombuffer(frames, dtype=np.int32),
        np.frombuffer(values, dtype=np.int64).reshape(len(messages), width),
    )


class LocationLines(NamedTuple):
    ids: NDArray[np.uint64]
    mapping_ids: NDArray[np.uint64]
    line_offsets: Index  # location i's lines are line_offsets[i] .. line_offsets[i + 1] - 1
    function_ids: NDArray[np.uint64]  # per line


def decode_locations(messages: Sequence[bytes]) -> LocationLines | None:
    """Ids, mapping ids and each line's function id of encoded Location messages."""
    if _C is None:
        return None
    decoded = _C.decode_locations(_encoded(messages))
    if decoded is None:
        return None
    ids, mappings, offsets, functions = decoded
    return LocationLines(
        np.frombuffer(ids, dtype=np.uint64),
        np.frombuffer(mappings, dtype=np.uint64),
        np.frombuffer(offsets, dtype=np.intp),
        np.frombuffer(functions, dtype=np.uint64),
    )


def function_table(
    offsets: Index, frames: NDArray[np.int32], column: NDArray[np.int64], size: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]] | None:
    """Per node: flat, cum (each sample once) and whether a sample with a non-zero value has
    it. `column` must be int64 whose sums cannot overflow (see arrays.exact_values)."""
    if _C is None or column.dtype != np.int64:
        return None
    table = _C.function_table(
        _contiguous(offsets, np.intp),
        _contiguous(frames, np.int32),
        _contiguous(column, np.int64),
        size,
    )
    if table is None:
        return None
    flat, cum, present = table
    return (
        np.frombuffer(flat, dtype=np.int64),
        np.frombuffer(cum, dtype=np.int64),
        np.frombuffer(present, dtype=np.bool_),
    )


def translate(
    table: NDArray[np.int32], nodes: NDArray[np.int32], out: NDArray[np.int32] | None = None
) -> NDArray[np.int32]:
    """np.take(table, nodes, out=out), for int32 node ids (numpy first copies them to intp);
    `out`, when given, is a contiguous int32 array of as many items as `nodes`."""
    if _C is not None and (out is None or (out.flags.c_contiguous and out.dtype == np.int32)):
        translated = _C.translate(_contiguous(table, np.int32), _contiguous(nodes, np.int32), out)
        if translated is not None:
            return out if out is not None else np.frombuffer(translated, dtype=np.int32)
    result: NDArray[np.int32] = np.take(table, nodes, out=out)
    return result


def stack_hashes(
    offsets: Index, frames: NDArray[np.int32], multipliers: NDArray[np.uint64]
) -> NDArray[np.uint64] | None:
    """Per sample: its length times multipliers[-1] plus (frame + 1) * multipliers[depth] for
    each frame, modulo 2**64; None if a stack is deeper than the multipliers."""
    if _C is None:
        return None
    hashes = _C.stack_hashes(
        _contiguous(offsets, np.intp),
        _contiguous(frames, np.int32),
        _contiguous(multipliers, np.uint64),
    )
    return None if hashes is None else np.frombuffer(hashes, dtype=np.uint64)


def same_stacks(offsets: Index, frames: NDArray[np.int32], representative: Index) -> bool | None:
    """Whether every sample's frames equal its representative sample's."""
    if _C is None:
        return None
    same: bool = _C.same_stacks(
        _contiguous(offsets, np.intp),
        _contiguous(frames, np.int32),
        _contiguous(representative, np.intp),
    )
    return same


def split_profile(raw: bytes) -> ProfileParts | None:
    """The top level of an encoded (not gzipped) profile, without protobuf; None for what
    upb should decide (an unknown field, period_type twice, data that is not valid)."""
    if _C is None:
        return None
    data = raw if type(raw) is bytes else bytes(raw)  # the messages stay spans of it
    split = _C.split_profile(data)
    if split is None:
        return None
    types, samples, mappings, locations, functions, strings, scalars, period, comments = split
    drop, keep, time_nanos, duration_nanos, period_value, default = scalars
    return ProfileParts(
        sample_type=[ValueTypeParts(*t) for t in types],
        sample=Messages(data, samples),
        mapping=[MappingParts(*m) for m in mappings],
        location=Messages(data, locations),
        function=[FunctionParts(*f) for f in functions],
        string_table=strings,
        drop_frames=drop,
        keep_frames=keep,
        time_nanos=time_nanos,
        duration_nanos=duration_nanos,
        period=period_value,
        default_sample_type=default,
        given_period_type=None if period is None else ValueTypeParts(*period),
        comment=comments,
    )


def _encoded(messages: Sequence[bytes]) -> list[bytes] | tuple[bytes, bytearray]:
    """Messages as the kernels take them: spans of one buffer in place, else a list of bytes."""
    if isinstance(messages, Messages):
        return messages.data, messages.bounds
    return messages if isinstance(messages, list) else list(messages)


def _contiguous(array: NDArray[np.generic], dtype: type[np.generic]) -> NDArray[np.generic]:
    return np.ascontiguousarray(array, dtype=dtype)
