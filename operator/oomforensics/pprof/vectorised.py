"""Decode profile.proto for all messages at once: samples and locations are read as raw bytes
(`fields.ProfileFields`) and their varints decoded by the C kernels (kernels.py), else with
numpy (`wire`).

A profile that uses an encoding this decoder does not handle, or that is invalid, raises
wire.Unsupported or InvalidProfile, and `parse_profile` decodes it message by message instead
(careful.py), which gives the same model or the exact error.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from oomforensics.pprof import kernels, wire
from oomforensics.pprof.arrays import (
    all_distinct,
    exact_values_and_bounds,
    expand_ranges,
    segment_ids,
    unique_inverse,
)
from oomforensics.pprof.fields import Messages, ProfileFields
from oomforensics.pprof.header import Header
from oomforensics.pprof.model import Index, Profile, Samples
from oomforensics.pprof.pruning import compile_pattern, prune_samples, prunes, unnamed

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


def build_vectorised(view: ProfileFields, original: bytes) -> Profile:
    """Decode all samples at once (the C kernels, else numpy); raises wire.Unsupported or
    InvalidProfile to hand over to the careful decoder."""
    width = len(view.sample_type)
    location_messages = _in_place_or_listed(view.location)
    lines = kernels.decode_locations(location_messages)
    locations = _Locations(*lines) if lines else _decode_locations(list(location_messages))
    header = Header(view, original)
    nodes, location_frames, pruned, pruned_beneath = _name_locations(view, header, locations)
    sample_messages = _in_place_or_listed(view.sample)
    at_once = _frames_at_once(sample_messages, width, locations, location_frames, pruned_beneath)
    if at_once is not None:
        frame_offsets, frames, values = at_once
    else:
        decoded = kernels.decode_samples(sample_messages, width)
        raw = _RawSamples(*decoded) if decoded else _decode_samples(list(sample_messages), width)
        frame_offsets, frames = _sample_frames(
            raw, locations, location_frames, pruned, pruned_beneath
        )
        values = raw.values
    exact, bounds = exact_values_and_bounds(values)
    return header.profile(view, Samples(nodes, frame_offsets, frames, exact, bounds))


def _in_place_or_listed(messages: Sequence[bytes]) -> Sequence[bytes]:
    """The C split's messages as they are (spans of the profile's bytes); upb's as a list,
    made once for every step that reads them."""
    return messages if isinstance(messages, Messages | list) else list(messages)


def _frames_at_once(
    messages: Sequence[bytes],
    width: int,
    locations: _Locations,
    location_frames: tuple[Index, NDArray[np.int32]],
    pruned_beneath: NDArray[np.bool_],
) -> kernels.SampleFrames | None:
    """Samples decoded straight to their frames by the C kernel, when no location is pruned
    and locations are found by id through a table (see `_sample_frames`); else None."""
    if not kernels.available() or pruned_beneath.any() or not locations.ids.size:
        return None
    table = _id_table(locations.ids)
    if table is None:
        return None
    frame_offsets, nodes = location_frames
    return kernels.decode_sample_frames(messages, width, table, frame_offsets, nodes)


def _decode_samples(messages: list[bytes], width: int) -> _RawSamples:
    """Location ids and values of every sample, decoded half a megabyte of samples at a time
    (small temporaries stay in cache and are reused instead of faulted in afresh)."""
    sizes = np.fromiter(map(len, messages), dtype=np.intp, count=len(messages))
    ids: list[NDArray[np.uint64] | NDArray[np.uint32]] = []
    values: list[NDArray[np.uint64] | NDArray[np.uint32]] = []
    id_counts: list[Index] = []
    for lo, hi in _batches(sizes, _BATCH_BYTES):
        batch_ids, batch_counts, batch_values = _decode_sample_batch(
            messages[lo:hi], sizes[lo:hi], width
        )
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
    messages: list[bytes], sizes: Index, width: int
) -> tuple[NDArray[np.uint64] | NDArray[np.uint32], Index, NDArray[np.uint64] | NDArray[np.uint32]]:
    """(location ids, their count per sample, values) of consecutive samples (`sizes`: the
    messages' lengths)."""
    data, ends = wire.padded(messages, sizes)
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
    table = _id_table(keys)
    if table is not None:
        return np.take(table, _within(wanted, table))
    order = np.argsort(keys, kind="stable")
    ranks = np.minimum(np.searchsorted(keys[order], wanted.astype(np.uint64)), keys.size - 1)
    found = order[ranks]
    return np.where(keys[found] == wanted, found, -1).astype(np.int32)


def _id_table(keys: NDArray[np.uint64]) -> NDArray[np.int32] | None:
    """Position by value of the (distinct, non-empty) `keys` when they are small (Go numbers
    ids from 1), with -1 for the values between and one past the largest; else None."""
    top = int(keys.max())
    if top > 4 * keys.size + 4096:
        return None
    table = np.full(top + 2, -1, dtype=np.int32)
    table[keys.astype(np.intp)] = np.arange(keys.size, dtype=np.int32)
    return table


def _within(
    wanted: NDArray[np.uint64] | NDArray[np.uint32], table: NDArray[np.int32]
) -> NDArray[np.uint64] | NDArray[np.uint32]:
    """`wanted` with every value past the table's end moved to its last entry (absent)."""
    top = table.size - 2
    if wanted.size and int(wanted.max()) > top:
        clipped: NDArray[np.uint64] | NDArray[np.uint32] = np.minimum(wanted, top + 1)
        return clipped
    return wanted


def _name_locations(
    view: ProfileFields, header: Header, locations: _Locations
) -> tuple[list[str], tuple[Index, NDArray[np.int32]], NDArray[np.bool_], NDArray[np.bool_]]:
    """Node names, each location's frames (CSR of node ids, leaf first) after drop_frames
    trimming, and which locations pprof's Prune marks as pruned / pruned beneath."""
    text = header.text
    objfiles = {m.id: text(m.filename, "mapping") for m in view.mapping}
    drop = compile_pattern(text(view.drop_frames, "drop_frames"))
    keep = compile_pattern(text(view.keep_frames, "keep_frames")) if drop is not None else None
    count = locations.ids.size
    if not all_distinct(locations.ids) or (locations.ids == 0).any():
        raise wire.Unsupported("duplicate or zero location ids")  # the careful decoder says
    function_ids = np.fromiter((fn.id for fn in view.function), np.uint64, len(view.function))
    # Each function's name, as an index into `shown` (names as pprof prints them).
    shown = header.function_names(view.function)
    function_names = np.arange(len(shown), dtype=np.int64)
    if not all_distinct(function_ids):
        raise wire.Unsupported("duplicate function ids")
    mapping_ids = locations.mapping_ids
    if any(int(m) not in objfiles for m in set(mapping_ids.tolist()) if m):
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
    used, string_slot = unique_inverse(line_strings[named])
    string_names = [shown[s] for s in used.tolist()]
    string_nodes = np.array(
        [node_of.setdefault(name, len(node_of)) if name else -1 for name in string_names],
        dtype=np.int32,
    )
    line_nodes = np.full(line_functions.size, -1, dtype=np.int32)
    line_nodes[named] = string_nodes[string_slot]
    mapping_list, mapping_slot = unique_inverse(mapping_ids)
    placeholders = np.array(
        [node_of.setdefault(unnamed(objfiles.get(int(m), "")), len(node_of)) for m in mapping_list],
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
            [bool(name) and prunes(name, drop, keep) for name in string_names], dtype=bool
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
    return offsets, nodes[expand_ranges(start, size)]


def _sample_frames(
    raw: _RawSamples,
    locations: _Locations,
    location_frames: tuple[Index, NDArray[np.int32]],
    pruned: NDArray[np.bool_],
    pruned_beneath: NDArray[np.bool_],
) -> tuple[Index, NDArray[np.int32]]:
    """Each sample's frames: its locations (after pruning) expanded to their frames."""
    frame_offsets, nodes = location_frames
    size = np.diff(frame_offsets).astype(np.int32)
    leaf_node = nodes[frame_offsets[:-1]]
    ids = raw.location_ids
    offsets = raw.offsets
    table = _id_table(locations.ids) if locations.ids.size and ids.size else None
    if table is not None and not pruned_beneath.any():
        # Usually: from each location id straight to its leaf and its frame count, through
        # tables by id (one pass over the samples' ids fewer than through positions).
        ids = _within(ids, table)
        known = table >= 0
        leaves = np.take(np.where(known, leaf_node[table], -1), ids)
        if leaves.min() < 0:
            raise wire.Unsupported("a sample refers to a missing location")
        if (size == 1).all():
            return offsets, leaves
        counts = np.take(np.where(known, size[table], 0), ids)

        def located(index: Index) -> NDArray[np.int32]:
            return np.take(table, ids[index])
    else:
        where = _lookup(locations.ids, ids)
        if where.size and where.min() < 0:
            raise wire.Unsupported("a sample refers to a missing location")
        if pruned_beneath.any():
            where, offsets = prune_samples(where, offsets, pruned, pruned_beneath)
        leaves = np.take(leaf_node, where)
        if (size == 1).all():
            return offsets, leaves
        counts = np.take(size, where)

        def located(index: Index) -> NDArray[np.int32]:
            return where[index]

    # Most locations have one frame: place those, then the inlined frames of the others.
    cumulative = np.zeros(counts.size + 1, dtype=np.intp)
    np.cumsum(counts, out=cumulative[1:])
    placed = cumulative[:-1]
    frames = np.empty(int(cumulative[-1]), dtype=np.int32)
    frames[placed] = leaves
    inlined = np.flatnonzero(counts > 1)
    if inlined.size:
        extras = counts[inlined].astype(np.intp) - 1
        target = expand_ranges(placed[inlined] + 1, extras)
        frames[target] = nodes[expand_ranges(frame_offsets[located(inlined)] + 1, extras)]
    return cumulative[offsets], frames
