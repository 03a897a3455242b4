"""pprof's Prune: a profile's drop_frames/keep_frames regular expressions, and the names of
frames without a function (both decoders name and prune frames the same way)."""

from __future__ import annotations

import posixpath
import re

import numpy as np
from numpy.typing import NDArray

from oomforensics.pprof.arrays import positions, segment_ids
from oomforensics.pprof.model import Index


def unnamed(objfile: str) -> str:
    # pprof's NodeInfo.NameComponents for a frame without a function name.
    return f"[{posixpath.basename(objfile)}]" if objfile else "<unknown>"


def compile_pattern(pattern: str) -> re.Pattern[str] | None:
    if not pattern:
        return None
    try:
        return re.compile(f"^(?:{pattern})$")
    except re.error:
        return None  # pprof ignores a profile's bad prune regexp, and so do we


_BRACKET = re.compile(r"\(anonymous namespace\)|operator\(\)|\(")


def simplify(name: str) -> str:
    """pprof's simplifyFunc: drop a C++-style argument list (which also cuts Go method names)."""
    name = name.removeprefix(".")
    for match in _BRACKET.finditer(name):
        if match.group(0) == "(":
            return name[: match.start()]
    return name


def prunes(name: str, drop: re.Pattern[str], keep: re.Pattern[str] | None) -> bool:
    simple = simplify(name)
    return bool(drop.match(simple)) and (keep is None or not keep.match(simple))


def prune_point(
    raw_names: list[str], drop: re.Pattern[str], keep: re.Pattern[str] | None
) -> int | None:
    """Index of the outermost line whose function pprof's Prune drops, if any."""
    for i in range(len(raw_names) - 1, -1, -1):
        name = raw_names[i]
        if not name:
            continue
        if prunes(name, drop, keep):
            return i
    return None


def prune_sample(
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


def prune_samples(
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
