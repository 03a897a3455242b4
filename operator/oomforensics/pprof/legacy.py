"""Profiles in pprof's legacy formats: Go heap profiles in debug=1 text are read, the others
are named and refused.

A Go heap profile in text form (`/debug/pprof/heap?debug=1`, what people save with curl) is
read as pprof's legacy parser reads it (profile/legacy_profile.go: parseHeap): the header
`heap profile: ... @ heap/N` gives the sampling rate N/2 (Go prints twice MemProfileRate),
each record's counts are unsampled with scaleHeapSample, and sample types are alloc_objects,
alloc_space, inuse_objects, inuse_space (objects and space alone when the header's alloc
figures equal its inuse ones, as pprof does).

Frames are named from the `#` lines the runtime printed under each record (its own
symbolization, inlined frames expanded, leading runtime frames hidden), which are the frames
of the protobuf profile the same process serves at the same moment; a record without them
(an endpoint that printed addresses only) has `<unknown>` frames, as pprof shows them when it
has no binary to symbolize against.

Everything else pprof's legacy parsers accept (tcmalloc and Java heap, contention and CPU
profiles, count profiles, the old binary CPU format) is refused with a message naming it.
"""

from __future__ import annotations

import math
import re
import struct
from typing import TYPE_CHECKING

from oomforensics.pprof.compression import DEFAULT_MAX_DECOMPRESSED, gunzip_bounded, is_gzip
from oomforensics.pprof.errors import InvalidProfile
from oomforensics.pprof.names import pprof_name
from oomforensics.pprof.profile import Profile, Samples, SampleType, parse_profile

if TYPE_CHECKING:  # the text parser is imported for a text profile (3 ms)
    from oomforensics.pprof.heaptext import HeapRecord, HeapText

_HEAP_TYPES = (
    SampleType("alloc_objects", "count"),
    SampleType("alloc_space", "bytes"),
    SampleType("inuse_objects", "count"),
    SampleType("inuse_space", "bytes"),
)
_INUSE_ONLY_TYPES = (SampleType("objects", "count"), SampleType("space", "bytes"))
_UNKNOWN = "<unknown>"
GO_HEAP_TEXT = re.compile(rb"\A\s*heap profile: *\d+: *\d+ *\[ *\d+: *\d+ *\] *@ *heap/")

_REFUSED = "oomforensics reads profile.proto profiles and Go heap profiles in debug=1 text"


def is_go_heap_text(data: bytes) -> bool:
    return GO_HEAP_TEXT.match(data[:256]) is not None


def heap_text_profile(text: HeapText, symbols: bool = True) -> Profile:
    """The profile pprof reads from a Go heap profile in debug=1 text (see the module).

    With `symbols` False the `#` lines are ignored, as pprof ignores them: every frame is
    `<unknown>`, which is exactly what `go tool pprof` shows for the file without a binary.
    """
    rate = text.sampling_period // 2  # pprof: "heap" sampling is Go's, at half the header's N
    with_alloc = (text.alloc_objects not in (text.inuse_objects, 0)) or (
        text.alloc_bytes not in (text.inuse_bytes, 0)
    )
    rows = [(_stack(record, symbols), _values(record, rate, with_alloc)) for record in text.records]
    types = _HEAP_TYPES if with_alloc else _INUSE_ONLY_TYPES
    return Profile(
        sample_types=types,
        samples=Samples.from_rows(rows, len(types)),
        period=rate,
        period_type=SampleType("space", "bytes"),
    )


def _stack(record: HeapRecord, symbols: bool) -> tuple[str, ...]:
    if symbols and record.functions:
        return tuple(pprof_name(name, name) for name in record.functions)
    return (_UNKNOWN,) * record.addresses


def _values(record: HeapRecord, rate: int, with_alloc: bool) -> tuple[int, ...]:
    values: list[int] = []
    pairs = [("inuse", record.inuse_objects, record.inuse_bytes)]
    if with_alloc:
        pairs.insert(0, ("allocation", record.alloc_objects, record.alloc_bytes))
    for label, count, size in pairs:
        if count == 0 and size != 0:
            raise InvalidProfile(f"{label} count was 0 but {label} bytes was {size}")
        values.extend(scale_heap_sample(count, size, rate))
    return tuple(values)


def scale_heap_sample(count: int, size: int, rate: int) -> tuple[int, int]:
    """pprof's (and the Go runtime's) scaleHeapSample: a sample of average size S was taken
    with probability 1 - exp(-S/rate); divide by it (int64 conversion truncates)."""
    if count == 0 or size == 0:
        return 0, 0
    if rate <= 1:
        return count, size
    average = float(size) / float(count)
    scale = 1 / (1 - math.exp(-average / float(rate)))
    return int(float(count) * scale), int(float(size) * scale)


def parse_go_heap_text(data: bytes) -> tuple[Profile, HeapText]:
    from oomforensics.pprof.heaptext import parse_heap_text

    text = parse_heap_text(data)
    return heap_text_profile(text), text


def legacy_format(data: bytes) -> str | None:
    """The name of the legacy (non-protobuf) format `data` is in, if it is one we know."""
    head = data[:512]
    stripped = head.lstrip()
    if stripped.startswith(b"heap profile:"):
        if is_go_heap_text(head):
            return "a Go heap profile in debug=1 text form"
        if re.match(rb"heap profile:[^\n]*@ *(growthz?|fragmentationz?)", stripped):
            return "a tcmalloc heap growth or fragmentation profile in legacy text form"
        return "a tcmalloc (C++) heap profile in legacy text form"
    count = re.match(rb"(\S+) profile: total \d+\s", stripped)
    if count:
        kind = count.group(1).decode("ascii", "replace")
        return f"a Go {kind} profile in debug=1 text form (counts of stacks, not a heap profile)"
    if re.match(rb"goroutine \d+ \[", stripped):
        return "a goroutine dump (debug=2 text), which pprof does not read either"
    for prefix, name in (
        (b"--- heapz", "a Java heap profile in legacy text form"),
        (b"--- contentionz", "a Java or C++ contention profile in legacy text form"),
        (b"--- cpuz", "a Java CPU profile in legacy text form"),
        (b"--- contention:", "a Go contention profile in legacy text form"),
        (b"--- mutex:", "a Go mutex profile in legacy text form"),
        (b"--- threadz", "a threadz profile in legacy text form"),
    ):
        if stripped.startswith(prefix):
            return name
    if _legacy_binary_cpu(data):
        return "a CPU profile in the legacy binary format (gperftools, Go before 1.9)"
    return None


def _legacy_binary_cpu(data: bytes) -> bool:
    # Header words: 0, 3 (header words), 0 (version), period, 0 (padding), in 64- or 32-bit
    # words of either byte order, as pprof's parseCPU accepts them.
    for fmt in ("<3Q", ">3Q", "<3I", ">3I"):
        size = struct.calcsize(fmt)
        if len(data) >= size and struct.unpack(fmt, data[:size]) == (0, 3, 0):
            return True
    return False


def refuse_legacy(data: bytes) -> None:
    """Raise InvalidProfile naming the legacy format of `data`, if it is one we do not read."""
    name = legacy_format(data)
    if name is not None and not is_go_heap_text(data):
        raise InvalidProfile(f"{name}; {_REFUSED}")


def read_profile(
    data: bytes, max_bytes: int = DEFAULT_MAX_DECOMPRESSED
) -> tuple[Profile, HeapText | None]:
    """A profile file as `go tool pprof` takes it: profile.proto (gzipped or not), or a Go
    heap profile in debug=1 text (gzipped or not), which also gives its parsed text."""
    raw = gunzip_bounded(data, max_bytes) if is_gzip(data) else data
    if is_go_heap_text(raw):
        return parse_go_heap_text(raw)
    refuse_legacy(raw)
    return parse_profile(raw, max_bytes), None
