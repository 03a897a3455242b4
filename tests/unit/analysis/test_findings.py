"""Findings judged on synthetic snapshots whose numbers we choose."""

from dataclasses import replace

from oomforensics.analysis.findings import analyse
from oomforensics.analysis.series import gather_series
from oomforensics.analysis.snapshot import Snapshot
from oomforensics.analysis.thresholds import Thresholds
from oomforensics.analysis.trend import function_trends
from oomforensics.analysis.verdict import write_verdict
from oomforensics.pprof.goroutines import GoroutineDump, GoroutineGroup
from oomforensics.pprof.heaptext import HeapText, MemStats
from oomforensics.pprof.profile import parse_profile
from tests.support.profiles import ProfileBuilder
from tests.unit.analysis.test_trend import CONN_BUFFER, NATIVE, PROFILER, TEN_MINUTES, served

MiB = 2**20
CACHE = [["main.cacheResponse"], ["main.handle"], ["net/http.(*conn).serve"]]
BASELINE = [["main.loadConfig"], ["main.main"]]


def snapshot(
    cache_bytes: int,
    *,
    heap_inuse: int = 20 * MiB,
    num_gc: int = 10,
    rss: int = 60 * MiB,
    sys: int = 40 * MiB,
    workers: int = 0,
    at: str = "2026-11-26T10:00:00+00:00",
) -> Snapshot:
    builder = ProfileBuilder().sample(BASELINE, 1, 10 * MiB, 1, 10 * MiB)
    if cache_bytes:
        builder.sample(CACHE, 100, cache_bytes, 100, cache_bytes)
    stats = {
        "HeapInuse": heap_inuse,
        "HeapAlloc": 10 * MiB + cache_bytes,
        "Sys": sys,
        "HeapIdle": 4 * MiB,
        "HeapReleased": 2 * MiB,
        "StackSys": MiB,
        "NumGC": num_gc,
    }
    groups = (GoroutineGroup(8, ("runtime.gopark", "net/http.(*conn).serve")),)
    if workers:
        groups += (GoroutineGroup(workers, ("runtime.gopark", "runtime.chansend1", "main.worker")),)
    return Snapshot(
        source=at,
        profile=parse_profile(builder.serialize()),
        heap_text=HeapText(0, 0, 0, 0, 1024 * 1024, (), MemStats(stats)),
        goroutines=GoroutineDump(sum(g.count for g in groups), groups),
        manifest={"capturedAt": at, "rssBytes": rss},
    )


LATER = "2026-11-26T11:00:00+00:00"


def later(cache_bytes: int, **kwargs) -> Snapshot:
    """An hour and ten GC cycles after `snapshot()`."""
    return snapshot(cache_bytes, at=LATER, num_gc=kwargs.pop("num_gc", 20), **kwargs)


def test_heap_growth_is_judged_against_the_heap_size():
    # 5 MiB on a 20 MiB heap is 25 %: a finding; the same 5 MiB on a 200 MiB heap is not.
    small = analyse(snapshot(0), later(5 * MiB))
    assert [f.kind for f in small.findings] == ["heap-growth"]
    assert small.suspects[0].function == "main.cacheResponse"
    assert small.findings[0].evidence["bytesPerHour"] == 5 * MiB
    big = analyse(snapshot(0, heap_inuse=200 * MiB), later(5 * MiB))
    assert [f.kind for f in big.findings] == ["no-growth"] and big.suspects == ()
    assert not big.leak_suspected


def test_few_gc_cycles_raise_the_bar():
    # Between snapshots only one GC completed: the profile barely moved, so 25 % is not enough.
    result = analyse(snapshot(0, num_gc=10), later(5 * MiB, num_gc=11))
    assert [f.kind for f in result.findings] == ["no-growth"]


def test_growth_below_the_sampling_resolution_is_noise():
    tiny = analyse(snapshot(0, heap_inuse=1 * MiB), later(MiB, heap_inuse=1 * MiB))
    # 1 MiB on a 1 MiB heap is 100 %, but under 4 x MemProfileRate (2 MiB): noise.
    assert [f.kind for f in tiny.findings] == ["no-growth"]


def test_goroutine_leak_names_the_application_frame():
    result = analyse(snapshot(0), later(0, workers=40))
    leak = next(f for f in result.findings if f.kind == "goroutine-leak")
    assert [(g["function"], g["count"]) for g in leak.evidence["growth"]] == [("main.worker", 40)]
    assert "main.worker" in write_verdict(result)


def test_native_growth_is_not_heap_growth():
    result = analyse(snapshot(0), later(0, rss=120 * MiB))
    assert [f.kind for f in result.findings] == ["non-heap-growth"]
    assert result.findings[0].evidence["bytes"] == 60 * MiB
    assert "outside the Go heap" in write_verdict(result)


def test_rss_growth_explained_by_go_is_not_native():
    # RSS +30 MiB, and the Go runtime's own memory +30 MiB: nothing unaccounted.
    result = analyse(snapshot(0), later(0, rss=90 * MiB, sys=70 * MiB))
    assert "non-heap-growth" not in {f.kind for f in result.findings}


def test_thresholds_are_tunable():
    strict = Thresholds(heap_growth_ratio=0.5)
    result = analyse(snapshot(0), later(5 * MiB), thresholds=strict)
    assert [f.kind for f in result.findings] == ["no-growth"]


def test_verdict_is_one_paragraph_with_what_where_and_how_fast():
    verdict = write_verdict(analyse(snapshot(0), later(8 * MiB)))
    assert "\n" not in verdict
    # Two snapshots show growth but no shape: a possible leak, said to be low confidence.
    assert verdict.startswith("Possible leak in main.cacheResponse (+8MB ± ")
    assert "per hour" in verdict and "Check what main.cacheResponse keeps" in verdict
    assert "Confidence: low" in verdict and "take at least two more snapshots" in verdict


def test_suspects_over_a_series_rank_by_what_they_hold():
    # Seen on the real mmap fixture: the profiler's own allocations under
    # net/http.(*conn).serve made that frame's cum trend outrank the mapping function.
    stats = {"HeapInuse": 8 * MiB, "HeapIdle": MiB, "HeapReleased": 0, "Sys": 20 * MiB}

    def native(snapshot: Snapshot, rss: int) -> Snapshot:
        # RSS climbs far past what Go holds: the mmap fixture's native growth. The profile is
        # unsampled (period 1: every allocation recorded), so its figures carry no error.
        text = HeapText(0, 0, 0, 0, 1024 * 1024, (), MemStats({**stats, "NumGC": 10}))
        profile = replace(snapshot.profile, period=1)
        return replace(snapshot, profile=profile, heap_text=text, manifest={"rssBytes": rss})

    run = [
        native(served(0, {CONN_BUFFER: 4096, PROFILER: 10}), 30 * MiB),
        native(served(TEN_MINUTES, {CONN_BUFFER: 8192, PROFILER: 90_000}), 80 * MiB),
        native(
            served(2 * TEN_MINUTES, {CONN_BUFFER: 12288, PROFILER: 180_000, NATIVE: 131_072}),
            130 * MiB,
        ),
    ]
    analysis = analyse(run[0], run[-1], function_trends(run), series=gather_series(run))
    assert "non-heap-growth" in {f.kind for f in analysis.findings}
    assert [s.function for s in analysis.suspects[:2]] == [
        "main.mapNative",
        "net/http.(*conn).serve",
    ]


def test_go_memory_becoming_resident_is_not_native_growth():
    # Seen on the storefront's worker pool under load: RSS rose 1.9 MB in one interval, the
    # Go runtime's Sys - HeapReleased barely moved, because Go touched memory it already held
    # unused (GC metadata, other runtime memory). With that much held unused, a step of that
    # size is no native leak; the same series without the in-use figures (an older snapshot)
    # keeps the 1 MiB floor and reads as steady native growth.
    held = {"HeapIdle": 2 * MiB, "HeapReleased": 2 * MiB, "Sys": 14 * MiB, "NumGC": 10}
    # 14 MiB obtained, 8 MiB of it heap, 1.25 MiB stacks and spans in use: 4.75 MiB unused.
    in_use = {"HeapSys": 8 * MiB, "StackInuse": MiB, "MSpanInuse": MiB // 4, "MCacheInuse": 0}
    rss = [16 * MiB, 16 * MiB + 150_000, 16 * MiB + 220_000, 18 * MiB, 18 * MiB + 200_000]

    def shot(index: int, stats: dict[str, int]) -> Snapshot:
        at = f"2026-11-26T10:00:{5 * index:02d}+00:00"
        base = snapshot(0, at=at)
        text = HeapText(0, 0, 0, 0, 1024 * 1024, (), MemStats({**stats, "NumGC": 10 + index}))
        return replace(base, heap_text=text, manifest={"capturedAt": at, "rssBytes": rss[index]})

    def native_kinds(stats: dict[str, int]) -> set[str]:
        run = [shot(i, stats) for i in range(len(rss))]
        result = analyse(run[0], run[-1], function_trends(run), series=gather_series(run))
        return {f.kind for f in result.findings}

    assert "non-heap-growth" not in native_kinds({**held, **in_use})
    assert "non-heap-growth" in native_kinds(held)
