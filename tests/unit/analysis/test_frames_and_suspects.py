import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from oomforensics.analysis.frames import (
    APPLICATION,
    PROFILER,
    RUNTIME,
    SYMBOL,
    entry_frame,
    first_application_frame,
    is_application,
    mechanism,
    name_kinds,
    package_of,
)
from oomforensics.analysis.suspects import StackGrowth, find_suspects, growth_paths


@pytest.mark.parametrize(
    ("function", "package", "application"),
    [
        ("main.appendAudit", "main", True),
        ("main.main.func1", "main", True),
        ("net/http.(*persistConn).readLoop", "net/http", False),
        ("bytes.growSlice", "bytes", False),
        ("github.com/acme/api/cache.(*LRU).Put", "github.com/acme/api/cache", True),
        ("runtime.malg", "runtime", False),
        ("[server]", "[server]", False),
        ("<unknown>", "<unknown>", False),
    ],
)
def test_application_frames_are_main_or_dotted_module_paths(function, package, application):
    assert package_of(function) == package
    assert is_application(function) is application


_PIECES = st.sampled_from(
    ["main", "runtime", "internal", "pprof", "net", "http", "github.com", "x", ".", "/", "[", "<"]
)


@given(function=st.lists(_PIECES, max_size=7).map("".join))
@example(function="runtime/pprof.writeHeap")
@example(function="net/http/pprof.Index")
@example(function="internal/poll.(*FD).Read")
@example(function="main")
@example(function="github.com/a/b.c")
@example(function="x.y/main.f")
def test_kinds_of_a_name_are_its_package_read_as_the_docstring_says(function):
    package = package_of(function)
    symbol = bool(function) and function[0] not in "[<"
    expected = (
        (SYMBOL if symbol else 0)
        | (APPLICATION if symbol and (package == "main" or "." in package.split("/")[0]) else 0)
        | (RUNTIME if package == "runtime" or package.startswith(("runtime/", "internal/")) else 0)
        | (PROFILER if package in ("runtime/pprof", "net/http/pprof") else 0)
    )
    assert name_kinds(function) == expected


def test_first_application_frame_and_entry():
    stack = ("bytes.growSlice", "fmt.Fprintf", "main.appendAudit", "main.main", "runtime.main")
    assert first_application_frame(stack) == "main.appendAudit"
    transport = (
        "bufio.NewWriterSize",
        "net/http.(*Transport).dialConn",
        "net/http.(*Transport).dialConnFor",
        "runtime.goexit",
    )
    assert first_application_frame(transport) is None
    assert entry_frame(transport) == "net/http.(*Transport).dialConnFor"
    assert "Transport" in mechanism("net/http.(*Transport).dialConnFor")


def test_dominant_path_follows_the_heaviest_callers_like_peek():
    buffer = ("bytes.growSlice", "bytes.(*Buffer).grow")
    table = StackGrowth.from_mapping(
        {
            (*buffer, "fmt.Fprintf", "main.appendAudit"): (900, 9),
            (*buffer, "fmt.Fprintf", "main.debugLog"): (100, 1),
            ("bytes.growSlice", "strings.(*Builder).grow", "main.render"): (300, 3),
            # Shrinking: ignored, though it alone outweighs the rest.
            (*buffer, "main.shrunk"): (-5000, -50),
        }
    )
    rows = np.arange(len(table))
    assert table.dominant_path(rows, table.bytes) == (
        "bytes.growSlice",
        "bytes.(*Buffer).grow",
        "fmt.Fprintf",
        "main.appendAudit",
    )
    assert table.dominant_path(rows, table.bytes, stop="bytes.(*Buffer).grow") == (
        "bytes.growSlice",
        "bytes.(*Buffer).grow",
    )


def test_suspects_are_application_frames_ranked_by_growth():
    growth = {
        (
            "bytes.growSlice",
            "bytes.(*Buffer).grow",
            "fmt.Fprintf",
            "main.appendAudit",
            "main.main",
        ): (6_000_000, 3),
        ("main.cacheResponse", "main.handle", "net/http.(*conn).serve"): (2_000_000, 30),
        (
            "bufio.NewReaderSize",
            "net/http.(*Transport).dialConn",
            "net/http.(*Transport).dialConnFor",
        ): (500_000, 10),
        ("main.cacheResponse", "main.evict"): (-100_000, -1),
        ("fmt.Sprintf", "main.noise"): (1_000, 1),  # under 2 % of the growth: noise
    }
    suspects = find_suspects(growth)
    assert [s.function for s in suspects] == [
        "main.appendAudit",
        "main.cacheResponse",
        "net/http.(*Transport).dialConnFor",
    ]
    assert suspects[0].path == (
        "bytes.growSlice",
        "bytes.(*Buffer).grow",
        "fmt.Fprintf",
        "main.appendAudit",
    )
    assert suspects[0].mechanism is None
    # Net growth: the eviction path's shrinkage is subtracted.
    assert (suspects[1].bytes, suspects[1].objects) == (1_900_000, 29)
    assert "Transport" in (suspects[2].mechanism or "")


def test_growth_paths_rank_leaves_by_flat_growth():
    growth = {
        ("bytes.growSlice", "fmt.Fprintf", "main.appendAudit"): (5, 1),
        ("main.cacheResponse", "main.handle"): (9, 1),
    }
    paths = growth_paths(growth)
    assert [(p.function, p.bytes) for p in paths] == [
        ("main.cacheResponse", 9),
        ("bytes.growSlice", 5),
    ]
    assert paths[1].path == ("bytes.growSlice", "fmt.Fprintf", "main.appendAudit")


def test_the_profilers_own_allocations_are_not_suspects():
    # Taking the snapshot allocates under runtime/pprof; that is the cost of looking.
    growth = {
        (
            "compress/flate.NewWriter",
            "runtime/pprof.(*profileBuilder).build",
            "net/http/pprof.handler.ServeHTTP",
            "net/http.(*conn).serve",
        ): (900_000, 5),
        ("syscall.(*mmapper).Mmap", "syscall.Mmap", "main.mapNative"): (100_000, 2),
    }
    suspects = find_suspects(growth)
    assert [s.function for s in suspects] == ["main.mapNative"]
