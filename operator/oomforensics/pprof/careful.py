"""Decode profile.proto message by message: any valid profile, and the exact error for others
(the vectorised decoder hands every profile it cannot prove it decodes right to this one)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from google.protobuf.message import DecodeError

from oomforensics.pprof import profile_pb2
from oomforensics.pprof.errors import InvalidProfile
from oomforensics.pprof.header import Header, check_ids, describe
from oomforensics.pprof.model import Profile, Samples, Stack
from oomforensics.pprof.pruning import compile_pattern, prune_point, prune_sample, unnamed


def build_careful(view: profile_pb2.ProfileView, original: bytes) -> Profile:
    header = Header(view, original)
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
        raise InvalidProfile(f"not a pprof profile ({describe(original)})") from None


def _location_frames(
    msg: profile_pb2.ProfileView, locations: Sequence[profile_pb2.Location], header: Header
) -> tuple[dict[int, Stack], set[int], set[int]]:
    """Name every location's frames (leaf first) and apply drop_frames/keep_frames line trimming."""
    text = header.text
    functions = {fn.id: fn for fn in msg.function}
    objfiles = {m.id: text(m.filename, "mapping") for m in msg.mapping}
    drop = compile_pattern(text(msg.drop_frames, "drop_frames"))
    keep = compile_pattern(text(msg.keep_frames, "keep_frames")) if drop is not None else None

    check_ids("location", [loc.id for loc in locations])
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
                names.append(unnamed(objfile))
                raw_names.append("")
                continue
            fn = functions.get(line.function_id)
            if fn is None:
                raise InvalidProfile(
                    f"location {loc.id} refers to missing function {line.function_id}"
                )
            name = header.function_name(fn)
            names.append(name or unnamed(objfile))
            raw_names.append(name)
        if not names:
            names.append(unnamed(objfile))  # pprof keeps unsymbolized locations as nodes
        if drop is not None and raw_names:
            cut = prune_point(raw_names, drop, keep)
            if cut is not None:
                pruned_beneath.add(loc.id)
                if cut == len(raw_names) - 1:
                    pruned.add(loc.id)
                else:
                    names = names[cut + 1 :]
        frames[loc.id] = tuple(names)
    return frames, pruned, pruned_beneath


def _stack(
    ids: tuple[int, ...], frames: dict[int, Stack], pruned: set[int], pruned_beneath: set[int]
) -> Stack:
    for loc_id in ids:
        if loc_id not in frames:
            raise InvalidProfile(f"a sample refers to missing location {loc_id}")
    if pruned_beneath:
        ids = prune_sample(ids, pruned, pruned_beneath)
    return tuple(name for loc_id in ids for name in frames[loc_id])
