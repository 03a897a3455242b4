"""Fuzzing the parsers a hostile or broken endpoint feeds: whatever the bytes, the outcome is
a parsed result or a ProfileError (the typed errors the capture path turns into conditions),
never another exception, and memory stays within a bound set by the caps.

The seeds are real: the Go runtime's heap (debug=1) and goroutine texts, and profiles in the
wire layout Go writes; hypothesis mutates them (cut, splice, flip, repeat lines) and also
throws raw bytes and raw gzip at each parser.
"""

from __future__ import annotations

import gzip
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oomforensics.pprof.compression import gunzip_bounded
from oomforensics.pprof.errors import ProfileError
from oomforensics.pprof.goroutines import check_goroutine_text, parse_goroutine_text
from oomforensics.pprof.heaptext import check_heap_text, parse_heap_text
from oomforensics.pprof.profile import parse_profile
from tests.support.profiles import ProfileBuilder

TEXT = Path(__file__).resolve().parents[2] / "fixtures" / "text"
HEAP_TEXT = (TEXT / "heap-go1.19.txt").read_bytes()
GOROUTINE_TEXT = (TEXT / "goroutine-go1.19.txt").read_bytes()
CAP = 256 * 1024  # small caps, so that "too large" is reached by generated inputs too
MEMORY_BOUND = 48 * 2**20  # far above what any input here needs, far below a runaway
RUNS = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def profile_seed() -> bytes:
    builder = ProfileBuilder()
    builder.sample(
        [["bytes.growSlice"], ["bytes.(*Buffer).grow"], ["main.appendAudit"]], 1, 64, 1, 64
    )
    builder.sample([["sync.NewCond", "main.newPool"], ["main.main"]], 2, 128, 2, 128)
    builder.sample([["runtime.malg"], ["runtime.newproc1"]], 3, 8192, 3, 8192)
    return bytes(builder.serialize())


PROFILE = profile_seed()


def outcome(parse: Callable[[bytes], Any], data: bytes) -> None:
    """Parse `data` under tracemalloc: a result or a ProfileError, within the memory bound."""
    tracemalloc.start()
    try:
        parse(data)
    except ProfileError:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, f"{peak} bytes traced for a {len(data)}-byte input"


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """A seed cut, spliced, bit-flipped, or with lines dropped and repeated."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "lines", "repeat"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif kind == "lines":
            lines = bytes(data).split(b"\n")
            keep = draw(st.lists(st.booleans(), min_size=len(lines), max_size=len(lines)))
            data = bytearray(b"\n".join(line for line, k in zip(lines, keep, strict=True) if k))
        else:
            chunk = bytes(data[at : at + draw(st.integers(1, 200))])
            data[at:at] = chunk * draw(st.integers(1, 50))
    return bytes(data)


def gzipped(strategy: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return strategy.map(lambda raw: gzip.compress(raw, compresslevel=1))


def rejection(parse: Callable[[bytes], Any], data: bytes) -> tuple[type, str] | None:
    try:
        parse(data)
    except ProfileError as exc:
        return type(exc), str(exc)
    return None


def heap(data: bytes) -> Any:
    return parse_heap_text(data, max_bytes=CAP)


def goroutines(data: bytes) -> Any:
    return parse_goroutine_text(data, max_bytes=CAP)


def profile(data: bytes) -> Any:
    return parse_profile(data, max_bytes=CAP)


def inflate(data: bytes) -> Any:
    return gunzip_bounded(data, max_bytes=CAP)


@RUNS
@given(
    st.one_of(mutated(HEAP_TEXT), st.binary(max_size=4096), st.text(max_size=2048).map(str.encode))
)
def test_heap_text_parser(data: bytes) -> None:
    outcome(heap, data)
    # Captures validate with the header check alone: it must judge every body as the parser does.
    assert rejection(lambda d: check_heap_text(d, CAP), data) == rejection(heap, data)


@RUNS
@given(st.one_of(mutated(GOROUTINE_TEXT), st.binary(max_size=4096)))
def test_goroutine_text_parser(data: bytes) -> None:
    outcome(goroutines, data)
    assert rejection(lambda d: check_goroutine_text(d, CAP), data) == rejection(goroutines, data)


@RUNS
@given(
    st.one_of(
        mutated(PROFILE),
        gzipped(mutated(PROFILE)),
        mutated(gzip.compress(PROFILE)),
        st.binary(max_size=4096),
        gzipped(st.binary(max_size=4096)),
    )
)
def test_profile_parser(data: bytes) -> None:
    outcome(profile, data)


@RUNS
@given(st.one_of(mutated(gzip.compress(HEAP_TEXT)), st.binary(max_size=1024)))
def test_gzip_framing(data: bytes) -> None:
    outcome(inflate, data)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 64), st.sampled_from([b"\0", b"A", b"goroutine 1 [running]:\n"]))
def test_bombs_in_every_format_stop_at_the_cap(megabytes: int, unit: bytes) -> None:
    """Highly compressible payloads far beyond the cap: refused within the bound."""
    bomb = gzip.compress(unit * (megabytes * 2**20 // len(unit)), compresslevel=9)
    for parse in (profile, inflate, heap, goroutines):
        outcome(parse, bomb)
