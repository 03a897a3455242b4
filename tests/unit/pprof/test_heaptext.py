from pathlib import Path

import pytest

from oomforensics.pprof.errors import InvalidProfile, ProfileTooLarge
from oomforensics.pprof.heaptext import parse_heap_text, parse_memstats

REAL = (Path(__file__).parents[2] / "fixtures/text/heap-go1.19.txt").read_bytes()


def test_reads_header_totals_and_sampling_period():
    heap = parse_heap_text(REAL)
    assert (heap.inuse_objects, heap.inuse_bytes) == (843, 1536752)
    assert (heap.alloc_objects, heap.alloc_bytes) == (4418, 4573312)
    assert heap.sampling_period == 8192  # twice runtime.MemProfileRate (4096)


def test_reads_records_with_their_functions_leaf_first():
    first = parse_heap_text(REAL).records[0]
    assert (first.inuse_objects, first.inuse_bytes) == (80, 327680)
    assert first.functions == (
        "bufio.NewReaderSize",
        "bufio.NewReader",
        "net/http.newBufioReader",
        "net/http.(*conn).serve",
    )


def test_memstats_block_is_read_generically():
    stats = parse_heap_text(REAL).memstats
    assert stats.integer("HeapInuse") == 9191424
    assert stats.integer("MaxRSS") == 23269376
    # "# Stack = a / b" pairs get runtime.MemStats field names.
    assert (stats.integer("StackInuse"), stats.integer("StackSys")) == (2686976, 2686976)
    assert (stats.integer("MSpanInuse"), stats.integer("MSpanSys")) == (163728, 178992)
    assert stats.values["PauseNs"] == (22123, 58667, 31828, 0, 0)
    assert stats.values["GCCPUFraction"] == pytest.approx(0.0038724523261798017)
    assert stats.values["DebugGC"] is False
    # Arrays, flags and ratios are not memory figures.
    assert "PauseNs" not in stats.integers() and "DebugGC" not in stats.integers()


def test_fields_from_newer_go_releases_come_through():
    text = REAL + b"# SomeFutureField = 42\n"
    assert parse_heap_text(text).memstats.integer("SomeFutureField") == 42


def test_goroutine_text_is_not_a_heap_profile():
    with pytest.raises(InvalidProfile, match=r"expected 'heap profile: \.\.\.'"):
        parse_heap_text(b"goroutine profile: total 4\n")


def test_binary_data_is_rejected():
    with pytest.raises(InvalidProfile, match="binary"):
        parse_heap_text(b"\x1f\x8b\x08\x00\x00\x00")


def test_size_cap():
    with pytest.raises(ProfileTooLarge):
        parse_heap_text(REAL, max_bytes=100)


def test_memstats_alone_equal_those_of_the_whole_parse():
    alone = parse_memstats(REAL)
    assert alone == parse_heap_text(REAL).memstats
    assert alone.integer("MaxRSS") == 23269376 and alone.integer("StackSys") is not None


def test_memstats_alone_of_a_text_without_the_block_are_empty():
    head = REAL[: REAL.index(b"\n# runtime.MemStats")]
    assert parse_memstats(head).values == {}
    with pytest.raises(ProfileTooLarge):
        parse_memstats(REAL, max_bytes=100)
