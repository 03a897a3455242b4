"""Decode profile.proto into a compact, function-level model.

The model keeps what every later step needs (sample types and, per distinct call stack of
function names, the summed values) and nothing pprof's `-granularity=functions` view would
discard: frames are named exactly as `go tool pprof` names its nodes, inlined frames are
expanded, and the profile's own drop_frames/keep_frames pruning is applied as pprof applies it.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from oomforensics.pprof import profile_pb2
from oomforensics.pprof.compression import DEFAULT_MAX_DECOMPRESSED, gunzip_bounded, is_gzip
from oomforensics.pprof.errors import InvalidProfile, ProfileTooLarge, UnknownSampleIndex

Stack = tuple[str, ...]
"""Function names of one call stack, leaf first (index 0 is where the sample was taken)."""

_Text = Callable[[int, str], str]


@dataclass(frozen=True, slots=True)
class SampleType:
    type: str
    unit: str


@dataclass(frozen=True, slots=True)
class Profile:
    """A pprof profile reduced to function-level stacks.

    `stacks` maps each distinct stack to the element-wise sum of the values of its samples,
    in the order of `sample_types`.
    """

    sample_types: tuple[SampleType, ...]
    stacks: Mapping[Stack, tuple[int, ...]]
    default_sample_type: str = ""
    time_nanos: int = 0
    duration_nanos: int = 0
    period: int = 0
    period_type: SampleType | None = None
    comments: tuple[str, ...] = ()

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
        raise UnknownSampleIndex(
            f"sample index {wanted!r} is not in this profile (it has: {', '.join(names)})"
        )

    def total(self, index: int) -> int:
        """Sum of one sample type over all samples."""
        return sum(values[index] for values in self.stacks.values())


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
    message = profile_pb2.Profile()
    try:
        message.ParseFromString(raw)
    except DecodeError:
        raise InvalidProfile(f"not a pprof profile ({_describe(data)})") from None
    return _build(message, data)


def _describe(data: bytes) -> str:
    head = data[:64].lstrip().lower()
    if head.startswith((b"<!doctype", b"<html")):
        return "got an HTML page"
    if head[:1].isascii() and head[:1].isalpha():
        return "got text starting with " + repr(data[:32].decode("utf-8", "replace"))
    return "protobuf decoding failed"


def _build(msg: profile_pb2.Profile, original: bytes) -> Profile:
    strings: Sequence[str] = msg.string_table
    if not strings or strings[0] != "":
        raise InvalidProfile(f"not a pprof profile ({_describe(original)}: bad string table)")

    def text(index: int, what: str) -> str:
        if not 0 <= index < len(strings):
            raise InvalidProfile(f"{what} refers to string {index}, beyond the string table")
        return strings[index]

    sample_types = tuple(
        SampleType(text(vt.type, "sample_type"), text(vt.unit, "sample_type"))
        for vt in msg.sample_type
    )
    if not sample_types:
        raise InvalidProfile(f"not a pprof profile ({_describe(original)}: no sample types)")

    frames, pruned, pruned_beneath = _location_frames(msg, text)
    stacks: dict[Stack, tuple[int, ...]] = {}
    width = len(sample_types)
    stack_cache: dict[tuple[int, ...], Stack] = {}
    for sample in msg.sample:
        values = tuple(sample.value)
        if len(values) != width:
            raise InvalidProfile(f"a sample has {len(values)} values for {width} sample types")
        ids = tuple(sample.location_id)
        stack = stack_cache.get(ids)
        if stack is None:
            stack = _stack(ids, frames, pruned, pruned_beneath)
            stack_cache[ids] = stack
        previous = stacks.get(stack)
        stacks[stack] = (
            values
            if previous is None
            else tuple(a + b for a, b in zip(previous, values, strict=True))
        )

    period_type = (
        SampleType(
            text(msg.period_type.type, "period_type"), text(msg.period_type.unit, "period_type")
        )
        if msg.HasField("period_type")
        else None
    )
    return Profile(
        sample_types=sample_types,
        stacks=stacks,
        default_sample_type=text(msg.default_sample_type, "default_sample_type"),
        time_nanos=msg.time_nanos,
        duration_nanos=msg.duration_nanos,
        period=msg.period,
        period_type=period_type,
        comments=tuple(text(c, "comment") for c in msg.comment),
    )


def _location_frames(
    msg: profile_pb2.Profile, text: _Text
) -> tuple[dict[int, Stack], set[int], set[int]]:
    """Name every location's frames (leaf first) and apply drop_frames/keep_frames line trimming."""
    functions = {fn.id: fn for fn in msg.function}
    objfiles = {m.id: text(m.filename, "mapping") for m in msg.mapping}
    drop = _compile(text(msg.drop_frames, "drop_frames"))
    keep = _compile(text(msg.keep_frames, "keep_frames")) if drop is not None else None

    frames: dict[int, Stack] = {}
    pruned: set[int] = set()
    pruned_beneath: set[int] = set()
    for loc in msg.location:
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
            name = text(fn.name, "function")
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
        simple = _simplify(name)
        if drop.match(simple) and (keep is None or not keep.match(simple)):
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
