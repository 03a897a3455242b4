"""Trends over several snapshots: a steady leak outranks a one-off allocation."""

import random

import pytest

from oomforensics.analysis.snapshot import Snapshot
from oomforensics.analysis.trend import function_trends, snapshot_time
from oomforensics.pprof.profile import parse_profile
from tests.support.profiles import ProfileBuilder

MB = 1 << 20
START = 1_700_000_000  # POSIX seconds of the first snapshot
TEN_MINUTES = 600


def snapshot(
    at: float, inuse: dict[str, int], source: str = "", manifest: dict | None = None
) -> Snapshot:
    """A heap snapshot taken `at` seconds after START: each function retains `inuse` bytes.

    Every allocation goes through bytes.growSlice, so a function's own memory shows in its cum
    value, not its flat: the trend must follow cum.
    """
    builder = ProfileBuilder()
    builder._message.time_nanos = int((START + at) * 1e9)
    for function, size in inuse.items():
        builder.sample([["bytes.growSlice"], [function], ["main.main"]], 1, size, 1, size)
    return Snapshot(
        source=source or f"snap-{at:g}",
        profile=parse_profile(builder.serialize()),
        manifest=manifest,
    )


def leaking_run() -> list[Snapshot]:
    """Five snapshots ten minutes apart: a cache leaks 1 MB each time, a config load takes
    8 MB once, a pool drains, and the handler holds a constant 4 MB."""
    return [
        snapshot(
            i * TEN_MINUTES,
            {
                "main.cacheResponse": (1 + i) * MB,
                "main.loadConfig": (0 if i == 0 else 8) * MB,
                "main.drainPool": (6 - i) * MB,
                "main.handler": 4 * MB,
            },
        )
        for i in range(5)
    ]


def by_name(report):
    return {f.name: f for f in report.functions}


def test_steady_grower_outranks_a_larger_one_off_spike():
    report = function_trends(leaking_run())
    names = [f.name for f in report.functions]
    assert names.index("main.cacheResponse") < names.index("main.loadConfig")

    trends = by_name(report)
    cache, config = trends["main.cacheResponse"], trends["main.loadConfig"]
    # The spike grew twice as much in total, and even fits a steeper line...
    assert config.last - config.first > cache.last - cache.first
    assert config.slope > cache.slope
    # ...but it is a jump then flat, and the cache climbs every time.
    assert cache.steadiness == pytest.approx(1.0)
    assert config.steadiness < 0.2
    assert report.functions[0].name == "main.cacheResponse"


def test_a_jump_among_small_wobbles_is_still_not_steady():
    # Sampling noise makes a one-off allocation "grow" a little in every interval; counting
    # the intervals that grew would call it steady, weighing how much grew when does not.
    run = [
        snapshot(i * TEN_MINUTES, {"main.loadConfig": mb * MB + i * 4096})
        for i, mb in enumerate([0, 0, 8, 8, 8])
    ]
    assert by_name(function_trends(run))["main.loadConfig"].steadiness < 0.3


def test_slope_is_in_units_per_hour_of_the_cum_value():
    # 0, 1, 2 MB at 0, 30 and 60 minutes: 2 MB/hour, although flat (growSlice's) holds it all.
    run = [snapshot(s, {"main.cacheResponse": mb * MB}) for s, mb in [(0, 0), (1800, 1), (3600, 2)]]
    report = function_trends(run)
    assert (report.sample_index, report.unit) == ("inuse_space", "bytes")
    assert report.duration_seconds == 3600
    cache = by_name(report)["main.cacheResponse"]
    assert cache.slope == pytest.approx(2 * MB)
    assert (cache.first, cache.last) == (0, 2 * MB)
    assert cache.points == ((0.0, 0), (1800.0, MB), (3600.0, 2 * MB))


def test_irregular_capture_times_are_weighed_by_time():
    # A constant 1 MB per 10 minutes, captured at uneven times (a snapshot missed, and a
    # trigger that fired 30 seconds after an interval snapshot), is still a steady leak.
    seconds = [0, 600, 1800, 1830, 2400]
    run = [snapshot(s, {"main.cacheResponse": s * MB // TEN_MINUTES}) for s in seconds]
    cache = by_name(function_trends(run))["main.cacheResponse"]
    assert cache.slope == pytest.approx(6 * MB)
    assert cache.steadiness == pytest.approx(1.0)


def test_the_order_of_the_snapshots_given_does_not_matter():
    run = leaking_run()
    shuffled = run[:]
    random.Random(7).shuffle(shuffled)
    assert function_trends(shuffled) == function_trends(run)
    assert function_trends(run[::-1]) == function_trends(run)


def test_a_shrinking_function_ranks_last_with_a_negative_slope():
    report = function_trends(leaking_run())
    pool = report.functions[-1]
    assert pool.name == "main.drainPool"
    assert pool.slope == pytest.approx(-6 * MB)
    assert (pool.first, pool.last) == (6 * MB, 2 * MB)


def test_only_functions_whose_cum_changed_are_reported():
    names = {f.name for f in function_trends(leaking_run()).functions}
    assert "main.handler" not in names  # a constant 4 MB is no trend
    assert {"main.cacheResponse", "main.loadConfig", "main.drainPool"} <= names


def test_limit_keeps_the_top_of_the_ranking():
    full = function_trends(leaking_run())
    assert function_trends(leaking_run(), limit=2).functions == full.functions[:2]


def test_fewer_than_three_snapshots_is_an_error():
    with pytest.raises(ValueError, match="at least 3 snapshots"):
        function_trends(leaking_run()[:2])


def test_snapshots_taken_at_the_same_time_are_named():
    run = [
        snapshot(0, {"main.a": MB}, source="run-0/a"),
        snapshot(600, {"main.a": 2 * MB}, source="run-0/b"),
        snapshot(600, {"main.a": 3 * MB}, source="run-0/c"),
    ]
    with pytest.raises(ValueError, match=r"share the capture time.*run-0/b, run-0/c"):
        function_trends(run)


def test_capture_time_prefers_the_manifest_over_the_profile():
    snap = snapshot(0, {"main.a": MB}, manifest={"capturedAt": "2024-05-01T12:00:00Z"})
    assert snapshot_time(snap) == 1714564800.0


def test_capture_time_falls_back_to_the_profile_time():
    snap = snapshot(90.5, {"main.a": MB}, manifest={"capturedAt": "yesterday"})
    assert snapshot_time(snap) == pytest.approx(START + 90.5)


def test_capture_time_unknown_is_an_error_naming_the_snapshot():
    builder = ProfileBuilder().sample([["main.a"]], 1, 1, 1, 1)
    builder._message.time_nanos = 0
    snap = Snapshot(source="run-0/x", profile=parse_profile(builder.serialize()))
    with pytest.raises(ValueError, match="run-0/x: capture time unknown"):
        snapshot_time(snap)


def served(at: float, stacks: dict[tuple[str, ...], int]) -> Snapshot:
    """A snapshot of an HTTP service: each stack (leaf first) retains its bytes."""
    builder = ProfileBuilder()
    builder._message.time_nanos = int((START + at) * 1e9)
    for stack, size in stacks.items():
        builder.sample([[f] for f in stack], 1, size, 1, size)
    return Snapshot(source=f"snap-{at:g}", profile=parse_profile(builder.serialize()))


CONN_BUFFER = ("bufio.NewReaderSize", "net/http.(*conn).serve")
PROFILER = ("runtime/pprof.writeHeapInternal", "net/http/pprof.Index", "net/http.(*conn).serve")
NATIVE = ("syscall.(*mmapper).Mmap", "main.mapNative", "main.leakLoop")


def test_owners_follow_what_each_suspect_holds_not_its_cum():
    # The profiler writing the snapshot sits under net/http.(*conn).serve, so that frame's cum
    # climbs steadily; the connection buffers it owns barely move.
    run = [
        served(0, {CONN_BUFFER: 4096, PROFILER: 10}),
        served(TEN_MINUTES, {CONN_BUFFER: 8192, PROFILER: 90_000}),
        served(2 * TEN_MINUTES, {CONN_BUFFER: 12288, PROFILER: 180_000, NATIVE: 131_072}),
    ]
    report = function_trends(run)
    assert report.functions[0].name == "net/http.(*conn).serve"
    owners = {f.name: f for f in report.owners}
    assert "<profiler>" not in owners and "net/http/pprof.Index" not in owners
    assert owners["net/http.(*conn).serve"].points[-1][1] == 12288
    assert owners["main.mapNative"].last == 131_072
    assert report.owners[0].name == "main.mapNative"
