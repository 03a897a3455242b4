"""Legacy (pre-protobuf) profile formats: Go heap text read as pprof reads it, others named."""

import gzip
import struct

import pytest

from oomforensics.pprof.errors import InvalidProfile
from oomforensics.pprof.legacy import legacy_format, read_profile, scale_heap_sample

# A Go heap profile in debug=1 text, as net/http/pprof serves it (rate 2 * 512 KiB).
GO_HEAP = b"""heap profile: 2: 1536 [5: 4097] @ heap/1048576
1: 1024 [3: 3072] @ 0x4a1b2d 0x4a0001 0x44cdb5
#\t0x4a1b2c\tmain.(*cache).put+0x2c\t/src/main.go:42
#\t0x4a0000\tmain.main+0x10\t/src/main.go:10
#\t0x44cdb4\truntime.main+0x2d4\t/usr/local/go/src/runtime/proc.go:290

1: 512 [2: 1025] @ 0x4a2000
#\t0x4a1fff\tslices.Grow[go.shape.[]uint8,go.shape.uint8]+0x1f\t/go/slices.go:9

# runtime.MemStats
# Alloc = 123456
# HeapInuse = 2097152
# Stack = 65536 / 65536
"""


def test_go_heap_text_is_unsampled_at_half_the_header_rate() -> None:
    profile, text = read_profile(GO_HEAP)
    assert text is not None and text.memstats.integer("HeapInuse") == 2097152
    assert [st.type for st in profile.sample_types] == [
        "alloc_objects",
        "alloc_space",
        "inuse_objects",
        "inuse_space",
    ]
    assert profile.period == 524288 and profile.default_sample_type == ""
    rate = 524288
    first = profile.samples.values[0].tolist()
    assert first == [*scale_heap_sample(3, 3072, rate), *scale_heap_sample(1, 1024, rate)]
    assert profile.samples.stack(0) == ("main.(*cache).put", "main.main", "runtime.main")
    assert profile.samples.stack(1) == ("slices.Grow[go.shape.[]uint8,go.shape.uint8]",)


def test_scale_heap_sample_is_pprofs() -> None:
    # 1 / (1 - exp(-1024/524288)) = 512.5..., truncated as int64(float64 * scale) truncates.
    assert scale_heap_sample(1, 1024, 524288) == (512, 524800)
    assert scale_heap_sample(0, 0, 524288) == (0, 0)
    assert scale_heap_sample(3, 30, 1) == (3, 30)  # rate 1: every allocation was recorded


def test_gzipped_text_and_addresses_only_text() -> None:
    bare = b"heap profile: 1: 64 [1: 65] @ heap/2\n1: 64 [1: 65] @ 0x1 0x2\n"
    profile, _ = read_profile(gzip.compress(bare))
    # No symbol lines: pprof names every frame <unknown> (rate 1: nothing to unsample).
    assert profile.samples.stack(0) == ("<unknown>", "<unknown>")
    assert profile.samples.values[0].tolist() == [1, 65, 1, 64]


def test_inuse_only_text_has_pprofs_two_types() -> None:
    # Header alloc figures equal to the inuse ones: pprof reads objects and space only.
    profile, _ = read_profile(b"heap profile: 1: 64 [1: 64] @ heap/2\n1: 64 [1: 64] @ 0x1\n")
    assert [st.type for st in profile.sample_types] == ["objects", "space"]


def test_a_count_without_objects_is_refused_as_pprof_refuses_it() -> None:
    with pytest.raises(InvalidProfile, match="inuse count was 0 but inuse bytes was 64"):
        read_profile(b"heap profile: 1: 64 [1: 65] @ heap/2\n0: 64 [1: 65] @ 0x1\n")


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"heap profile:   1:   9 [   1:  9] @ heapz_v2/524288\n", "tcmalloc (C++) heap"),
        (b"heap profile: 1: 9 [1: 9] @ growthz\n", "growth or fragmentation"),
        (b"--- heapz 1 ---\nformat = java\n", "Java heap profile"),
        (b"goroutine profile: total 6\n2 @ 0x1 0x2\n", "Go goroutine profile in debug=1"),
        (b"threadcreate profile: total 3\n", "Go threadcreate profile"),
        (b"goroutine 1 [running]:\nmain.main()\n", "goroutine dump (debug=2 text)"),
        (b"--- mutex:\ncycles/second=1\n", "Go mutex profile"),
        (struct.pack("<5Q", 0, 3, 0, 10000, 0), "legacy binary format"),
    ],
)
def test_other_legacy_formats_are_refused_by_name(data: bytes, named: str) -> None:
    assert named in (legacy_format(data) or "")
    with pytest.raises(InvalidProfile, match=r"oomforensics reads profile\.proto profiles") as exc:
        read_profile(data)
    assert named in str(exc.value) and "\n" not in str(exc.value)
