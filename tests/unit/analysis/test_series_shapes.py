"""Shapes of synthetic series, the sampling error of heap figures, and the judgement they
lead to: a leak is growth that continues beyond its error; a plateau, a spike or jitter is not."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oomforensics.analysis.comparison import compare_series, judge_series
from oomforensics.analysis.connections import ConnectionState, blocked_on, connection_state
from oomforensics.analysis.sampling import sample_variance, z_score
from oomforensics.analysis.series import Point as SeriesPoint
from oomforensics.analysis.series import _tracks, bytes_shape, with_scatter
from oomforensics.analysis.series import median as series_median
from oomforensics.analysis.shape import Point, Shape, classify
from oomforensics.analysis.snapshot import Snapshot
from oomforensics.pprof.goroutines import GoroutineDump, GoroutineGroup, parse_goroutine_text
from oomforensics.pprof.profile import parse_profile
from tests.support.profiles import ProfileBuilder

MiB = 2**20
START = 1_764_000_000


def series(values, sigma=1.0, every=5.0):
    return [Point(i * every, float(v), sigma * sigma) for i, v in enumerate(values)]


@pytest.mark.parametrize(
    ("values", "shape", "steady"),
    [
        ([0, 10, 20, 30, 40], Shape.GROWING, True),  # a steady leak
        ([0, 30, 40, 45, 48], Shape.GROWING, False),  # still rising, but slowing: warm-up?
        ([0, 40, 50, 50, 50], Shape.PLATEAU, False),  # a cache filled to its bound
        ([0, 0, 60, 1, 0], Shape.SPIKE, False),  # a batch given back
        ([5, 6, 4, 5, 6], Shape.FLAT, False),  # jitter within 3 sigma
        ([50, 40, 30, 20, 10], Shape.SHRANK, False),
        ([0, 0, 1, 0, 40], Shape.STEP, False),  # only the last snapshot: too recent to tell
    ],
)
def test_shapes(values, shape, steady):
    report = classify(series(values))
    assert report.shape is shape
    assert report.steady is steady
    assert report.leaking is (shape is Shape.GROWING)


def test_two_points_grew_but_have_no_shape():
    assert classify(series([0, 10])).shape is Shape.GREW
    assert classify(series([0, 2])).shape is Shape.FLAT  # 2 sigma-and-a-bit: noise
    assert classify(series([10, 0])).shape is Shape.SHRANK


def test_growth_within_three_sigma_is_noise_and_beyond_it_is_not():
    # The same values: with a large error a plateau of noise, with a small one a leak.
    values = [0, 1, 2, 3, 4]
    assert classify(series(values, sigma=2.0)).shape is Shape.FLAT
    assert classify(series(values, sigma=0.3)).shape is Shape.GROWING


def test_the_plateau_knee_says_when_growth_stopped():
    report = classify(series([0, 40, 50, 50, 50, 50]))
    assert report.shape is Shape.PLATEAU
    assert report.points[report.knee].seconds == 10.0  # flat from the third snapshot on


def test_jitter_is_measured_on_the_series_itself():
    steady = with_scatter([SeriesPoint(i, 10.0 * i) for i in range(5)], 1.0)
    assert {p.variance for p in steady} == {1.0}  # the floor: a steady leak has no jitter
    noisy = with_scatter([SeriesPoint(i, v) for i, v in enumerate([5, 15, 4, 16, 5])], 1.0)
    assert noisy[0].variance > 30  # the changes scatter by ~11 either way
    ramp = with_scatter([SeriesPoint(i, v) for i, v in enumerate([76, 323, 400, 400, 400])], 1.0)
    assert classify(ramp).shape is Shape.PLATEAU  # one step is not jitter (a median ignores it)


def test_z_score_of_exact_figures():
    assert z_score(0, 0) == 0 and z_score(5, 0) == math.inf and z_score(-5, 0) == -math.inf
    assert z_score(6, 4) == 3


def profile_of(objects: int, size: int, period: int = 512 * 1024, at: float = 0.0) -> Snapshot:
    """A heap profile of `objects` live objects of `size` bytes under main.keep, as Go writes
    it: the figures already scaled up by 1 / (1 - exp(-size / period))."""
    builder = ProfileBuilder()
    builder._message.period = period
    builder._message.time_nanos = int((START + at) * 1e9)
    if objects:
        builder.sample(
            [["main.keep"], ["main.main"]], objects, objects * size, objects, objects * size
        )
    builder.sample([["main.boot"], ["main.main"]], 1, 4096, 1, 4096)
    return Snapshot(source=f"t{at:g}", profile=parse_profile(builder.serialize()))


def test_sampling_error_follows_the_sampled_count():
    # 1000 objects of 4 KiB at the default 512 KiB period: q = 1 - exp(-1/128), so about
    # 7.8 were sampled; the relative error is sqrt((1 - q) / n), about 36 %.
    snap = profile_of(1000, 4096)
    variance = sample_variance(snap.profile)
    q = -math.expm1(-4096 / (512 * 1024))
    sampled = 1000 * q
    expected_relative = math.sqrt((1 - q) / sampled)
    assert math.sqrt(variance[0]) / (1000 * 4096) == pytest.approx(expected_relative)
    # Objects far larger than the period are all recorded: no error.
    big = profile_of(10, 64 * MiB)
    assert sample_variance(big.profile)[0] == pytest.approx(0.0, abs=1e-3)
    # An unsampled profile (period 1) is exact.
    assert np.all(sample_variance(profile_of(1000, 4096, period=1).profile) < 1e-6)


def test_a_slow_leak_beyond_its_error_is_found_under_a_heap_bar_it_never_clears():
    # 64 KiB objects at a 32 KiB period: +100 per snapshot, 6.4 MiB each time, steadily. No
    # heap.txt, so the pair bar is the sampling floor; the series sees continuing growth.
    run = [profile_of(200 + 100 * i, 64 * 1024, 32 * 1024, at=10.0 * i) for i in range(5)]
    judged = judge_series(run)
    assert judged.shape is Shape.GROWING and judged.leak_suspected is True
    assert judged.confidence == "high" and judged.reason == "SteadyGrowth"
    assert judged.verdict.startswith("Likely leak in main.keep (+25MB ± ")


def test_a_cache_that_filled_is_no_leak_and_says_so():
    run = [
        profile_of(n, 64 * 1024, 32 * 1024, at=10.0 * i)
        for i, n in enumerate([0, 600, 800, 800, 800])
    ]
    comparison = compare_series(run)
    assert comparison.judgement is not None
    assert not comparison.leak_suspected and comparison.judgement.leak_suspected is False
    assert comparison.judgement.reason == "GrowthStopped"
    assert "main.keep grew" in comparison.verdict and "then flat for 20s" in comparison.verdict


def test_two_snapshots_are_unknown_with_what_would_settle_it():
    run = [profile_of(0, 64 * 1024, 32 * 1024), profile_of(600, 64 * 1024, 32 * 1024, at=60)]
    judged = judge_series(run)
    assert judged.leak_suspected is None and judged.confidence == "low"
    assert (
        judged.reason == "InsufficientEvidence"
        and "two more snapshots, 60s apart" in judged.message
    )
    assert judged.verdict.startswith("Possible leak in main.keep")


def test_a_big_shrink_is_reported_as_a_shrink():
    # Issue 16: 1.74 GB given back read "Nothing grew beyond noise".
    run = [profile_of(1800, MiB, at=0), profile_of(10, MiB, at=60)]
    comparison = compare_series(run)
    assert comparison.verdict.startswith("No leak suspected. The live heap shrank by 1.75GB")
    assert comparison.judgement is not None and comparison.judgement.reason == "Shrank"


def test_goroutine_leak_profile_proves_a_leak_even_with_two_snapshots():
    def snap(count: int, at: float, leaked: int | None) -> Snapshot:
        group = GoroutineGroup(count, ("main.wait",))
        base = profile_of(0, 1, at=at)
        leaks = (
            GoroutineDump(leaked, (GoroutineGroup(leaked, ("main.wait",)),), "goroutineleak")
            if leaked
            else None
        )
        return replace(
            base,
            goroutines=GoroutineDump(count + 4, (group, GoroutineGroup(4, ("main.main",)))),
            goroutine_leaks=leaks,
        )

    judged = judge_series([snap(2, 0, None), snap(60, 30, 58)])
    assert judged.leak_suspected is True and judged.reason == "GoroutineLeakProven"
    assert "proves 58 goroutines leaked" in judged.message


LEAK_PROFILE = b"""goroutineleak profile: total 3
3 @ 0x48abee 0x41a72e 0x41a252 0x70261e 0x492541
#\t0x70261d\tmain.waitForWarehouse+0x3d\texample.com/storefront/main.go:563

"""


def test_the_goroutine_leak_profile_parses_as_its_own_kind():
    dump = parse_goroutine_text(LEAK_PROFILE)
    assert dump.profile == "goroutineleak" and dump.total == 3
    assert dump.groups[0].functions == ("main.waitForWarehouse",)


READ_LOOP_BODY = GoroutineGroup(5, ("net/http.(*persistConn).readLoop",))
READ_LOOP_IDLE = GoroutineGroup(
    5,
    (
        "internal/poll.runtime_pollWait",
        "net.(*conn).Read",
        "net/http.(*persistConn).Read",
        "bufio.(*Reader).fill",
        "bufio.(*Reader).Peek",
        "net/http.(*persistConn).readLoop",
    ),
)
SERVER_IDLE = GoroutineGroup(
    5, ("net/http.(*connReader).Read", "bufio.(*Reader).Peek", "net/http.(*conn).serve")
)
SERVER_HANDLER = GoroutineGroup(
    1, ("main.(*store).handleCheckout", "net/http.HandlerFunc.ServeHTTP", "net/http.(*conn).serve")
)


def test_connection_states_from_the_goroutine_stacks():
    assert connection_state(READ_LOOP_BODY) is ConnectionState.CLIENT_AWAITING_BODY
    assert connection_state(READ_LOOP_IDLE) is ConnectionState.CLIENT_IDLE
    assert connection_state(SERVER_IDLE) is ConnectionState.SERVER_IDLE
    assert connection_state(SERVER_HANDLER) is ConnectionState.SERVER_HANDLER
    writer = GoroutineGroup(5, ("net/http.(*persistConn).writeLoop",))
    assert connection_state(writer) is ConnectionState.CLIENT_WRITER
    assert connection_state(GoroutineGroup(1, ("main.worker",))) is None


def test_what_goroutines_block_on():
    mutex = GoroutineGroup(
        3,
        (
            "internal/sync.runtime_SemacquireMutex",
            "internal/sync.(*Mutex).lockSlow",
            "sync.(*Mutex).Lock",
            "main.reserve",
        ),
    )
    assert blocked_on(mutex) == "a sync.Mutex that is never unlocked"
    assert (
        blocked_on(GoroutineGroup(1, ("main.wait",)))
        == "a channel operation or select in main.wait"
    )


def test_a_live_set_that_swings_is_not_growing_on_one_high_point():
    # Churn caught live at each GC: 3.2 MB, 0.6, 3.2, 0, 6.5. Sampling alone would call the
    # last point growth beyond 3 sigma; the series' own jitter says it is not.
    counts = [400, 80, 400, 0, 800]
    run = [profile_of(n, 8192, 32 * 1024, at=5.0 * i) for i, n in enumerate(counts)]
    judged = judge_series(run)
    assert judged.leak_suspected is False and judged.shape is not Shape.GROWING


def test_growth_that_slows_down_is_unknown_while_warming_up():
    counts = [0, 100, 180, 240, 280, 300]  # still rising, each step smaller
    run = [profile_of(n, 64 * 1024, 32 * 1024, at=5.0 * i) for i, n in enumerate(counts)]
    judged = judge_series(run)
    assert judged.shape is Shape.GROWING
    assert judged.leak_suspected is None and judged.reason == "WarmingUp"
    assert judged.confidence == "low" and "will tell a leak from a warm-up" in judged.message
    assert judged.verdict.startswith("Possible leak in main.keep")


_figures = st.tuples(
    st.sampled_from([0, 1, 2, 3, 5, 8, 100, 10**6, 2**40]),
    st.sampled_from([0.0, 0.25, 1.0, 4.0, 9.0, 1e6, 1e12]),
)


@settings(max_examples=300, deadline=None)
@given(
    tables=st.integers(2, 6).flatmap(
        lambda n: st.lists(
            st.dictionaries(st.sampled_from("abcdefghijkl"), _figures, max_size=12),
            min_size=n,
            max_size=n,
        )
    )
)
def test_tracks_leave_out_only_what_classify_calls_flat(tables):
    # _tracks skips, on arrays, the names that never moved beyond noise: exactly the ones
    # classify would call flat, boundaries (z of 3, exact figures) included.
    times = [60.0 * i for i in range(len(tables))]
    names = set().union(*tables)
    expected = set()
    for name in names:
        points = [
            SeriesPoint(t, float(table.get(name, (0, 0.0))[0]), table.get(name, (0, 0.0))[1])
            for t, table in zip(times, tables, strict=True)
        ]
        if bytes_shape(points).shape is not Shape.FLAT:
            expected.add(name)
    assert {track.name for track in _tracks(times, tables, "bytes")} == expected


@given(values=st.lists(st.floats(-1e12, 1e12), min_size=1, max_size=9))
def test_the_median_is_the_statistics_modules(values):
    import statistics

    assert series_median(values) == statistics.median(values)
