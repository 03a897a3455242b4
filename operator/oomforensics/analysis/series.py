"""The evidence of a whole series: every figure that matters, as a shape over time.

For one container run's snapshots in time order, this follows
- the live heap bytes each suspect owner holds (the first application frame of its stacks,
  as `find_suspects` attributes them), with the sampling error of each figure (sampling.py);
- the goroutines of each owner (first application frame, else what started them);
- the HTTP connections in each state their goroutines show (connections.py);
- the resident memory outside the Go runtime (accounting.not_go);
and gives each its shape (shape.py). The findings are judged on these tracks.

Heap figures carry their sampling error, and also move with what is in flight (request
buffers, churn caught live at the GC): with four or more snapshots each point's variance is
the larger of its sampling variance and the series' jitter (below) when growth is judged, so
a function whose live set swings by megabytes from one snapshot to the next is not "growing"
on one high point.

Noise models where no sampling error exists. Counts of goroutines and figures of resident
memory are exact when read, but move with what is in flight (requests, buffers, pages the
allocator has yet to return), so their noise is measured on the series itself: with four or
more snapshots, the jitter of the changes from one snapshot to the next (see `with_scatter`),
never below a floor. A steady leak changes by the same amount each time and keeps the floor;
jitter raises its own bar. With two
or three snapshots there is no scatter to measure: a goroutine count is then taken to vary
like a Poisson count (variance = the count). Floors: 1 goroutine; for resident memory outside
Go a standard error of a third of max(5 % of the RSS, 1 MiB, the memory Go holds unused), 3
sigma being the bar findings always used: that memory (GC metadata and other runtime memory)
becomes resident as Go touches it, which reads as growth outside Go.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from oomforensics.analysis.accounting import account
from oomforensics.analysis.connections import ConnectionState, connection_counts
from oomforensics.analysis.frames import first_application_frame, is_application
from oomforensics.analysis.sampling import SIGNIFICANCE, sampling_period
from oomforensics.analysis.shape import Point, Shape, ShapeReport, classify
from oomforensics.analysis.snapshot import Snapshot
from oomforensics.analysis.suspects import held_estimates
from oomforensics.analysis.trend import snapshot_time
from oomforensics.pprof.goroutines import GoroutineDump, GoroutineGroup

MiB = 1024 * 1024
MAX_TRACKS = 50  # per kind: bounded work and output, whatever the profile's size


@dataclass(frozen=True, slots=True)
class Track:
    name: str
    unit: str  # "bytes" or "goroutines"
    report: ShapeReport

    @property
    def shape(self) -> Shape:
        return self.report.shape

    @property
    def leaking(self) -> bool:
        return self.report.leaking

    @property
    def first(self) -> int:
        return round(self.report.points[0].value)

    @property
    def last(self) -> int:
        return round(self.report.points[-1].value)

    @property
    def growth(self) -> int:
        return round(self.report.growth)

    @property
    def error(self) -> int:
        return round(self.report.error)


@dataclass(frozen=True, slots=True)
class SeriesEvidence:
    sources: tuple[str, ...]
    seconds: tuple[float, ...]  # since the first snapshot
    timed: bool  # False when capture times were unknown and the order was taken as given
    period: int  # the heap profiles' sampling period (MemProfileRate), bytes
    heap: tuple[Track, ...]  # owners that moved beyond noise: leaking first, then by size
    heap_total: Track
    goroutines: tuple[Track, ...]  # goroutine owners that moved beyond noise
    connections: Mapping[ConnectionState, Track]
    native: Track | None  # resident memory outside the Go runtime, when RSS and MemStats known
    # Owners of the goroutines Go's GC proved leaked, in the last snapshot (None: not captured).
    proven_leaks: tuple[tuple[str, int], ...] | None

    @property
    def count(self) -> int:
        return len(self.sources)

    @property
    def span(self) -> float:
        return self.seconds[-1] - self.seconds[0]

    def stopped(self) -> list[Track]:
        """Heap owners and goroutine owners that grew and stopped (plateau) or gave it back
        (spike), the most significant rise first, the application's own before the rest."""
        tracks = [
            t
            for t in (*self.heap[:10], *self.goroutines[:10])
            if t.shape in (Shape.PLATEAU, Shape.SPIKE) and _rise(t) >= _WORTH_NAMING[t.unit]
        ]
        return sorted(tracks, key=lambda t: (not is_application(t.name), -t.report.rise_z))

    def heap_track(self, name: str) -> Track | None:
        return next((t for t in self.heap if t.name == name), None)

    def goroutine_track(self, name: str) -> Track | None:
        return next((t for t in self.goroutines if t.name == name), None)


# A plateau or spike is named as what explains the growth only from this size: below it, a
# function's live set moving is the in-flight churn of a busy service (request buffers caught
# live at a GC), which is sampled exactly enough to look like a shape, and means nothing.
_WORTH_NAMING = {"bytes": 1.0 * MiB, "goroutines": 10.0}


def _rise(track: Track) -> float:
    points = track.report.points
    return max(p.value for p in points) - points[0].value


def goroutine_owner(group: GoroutineGroup) -> str:
    """Name a goroutine stack: its first application frame, else what started it."""
    return first_application_frame(group.functions) or group.entry


def in_time_order(snapshots: Sequence[Snapshot]) -> tuple[list[tuple[float, Snapshot]], bool]:
    """(seconds since the first, snapshot) by capture time; as given when a time is unknown."""
    try:
        timed = sorted(((snapshot_time(s), s) for s in snapshots), key=lambda pair: pair[0])
    except ValueError:
        return [(float(i), s) for i, s in enumerate(snapshots)], False
    start = timed[0][0]
    return [(t - start, s) for t, s in timed], True


def gather_series(snapshots: Sequence[Snapshot]) -> SeriesEvidence:
    if len(snapshots) < 2:
        raise ValueError("a series needs at least two snapshots")
    ordered, timed = in_time_order(snapshots)
    times = [t for t, _ in ordered]
    shots = [s for _, s in ordered]
    fresh = new_heap_profiles(shots)
    heap_times = [times[i] for i in fresh]
    estimates = [held_estimates(shots[i].profile) for i in fresh]
    heap = _tracks(heap_times, estimates, "bytes")
    total = Track(
        "total",
        "bytes",
        bytes_shape(
            [
                Point(t, float(sum(b for b, _ in e.values())), sum(v for _, v in e.values()))
                for t, e in zip(heap_times, estimates, strict=True)
            ]
        ),
    )
    goroutines: tuple[Track, ...] = ()
    connections: dict[ConnectionState, Track] = {}
    dumps = [s.goroutines for s in shots]
    if all(d is not None for d in dumps):
        present = [d for d in dumps if d is not None]
        goroutines = _tracks(
            times, [_count_map(d.counts(goroutine_owner)) for d in present], "goroutines"
        )
        states = [connection_counts(d) for d in present]
        for state in ConnectionState:
            values = [c.get(state, 0) for c in states]
            if any(values):
                connections[state] = Track(state.value, "goroutines", _count_shape(times, values))
    leaks = shots[-1].goroutine_leaks
    return SeriesEvidence(
        sources=tuple(s.source for s in shots),
        seconds=tuple(times),
        timed=timed,
        period=sampling_period(shots[-1].profile),
        heap=heap,
        heap_total=total,
        goroutines=goroutines,
        connections=connections,
        native=_native(times, shots),
        proven_leaks=_proven(leaks) if leaks is not None else None,
    )


SCATTER_POINTS = 4  # from this many snapshots on, noise is measured on the series itself


def new_heap_profiles(shots: Sequence[Snapshot]) -> list[int]:
    """Indexes of the snapshots whose heap profile holds news: Go publishes the heap profile
    at the end of a GC cycle, and a leaking heap doubles between cycles (GOGC=100), so cycles
    come further and further apart; snapshots taken before the next cycle (the same NumGC in
    the debug=1 text) repeat the same figures, which would read as growth that stopped. The
    first of each cycle stands for it. Without the text (or fewer than two cycles), all."""
    keep: list[int] = []
    last: int | None = None
    for i, shot in enumerate(shots):
        cycles = shot.heap_text.memstats.integer("NumGC") if shot.heap_text is not None else None
        if cycles is None or cycles != last or not keep:
            keep.append(i)
        last = cycles
    return keep if len(keep) >= 2 else list(range(len(shots)))


def _count_map(counts: Counter[str]) -> dict[str, tuple[int, float]]:
    return {name: (count, float(max(count, 1))) for name, count in counts.items()}


def _count_shape(times: Sequence[float], values: Sequence[int]) -> ShapeReport:
    points = [Point(t, float(v), float(max(v, 1))) for t, v in zip(times, values, strict=True)]
    return classify(with_scatter(points, 1.0))


def with_scatter(points: Sequence[Point], floor: float, keep: bool = False) -> list[Point]:
    """Points whose variance is the series' own jitter (at least `floor`); unchanged below
    SCATTER_POINTS points. With `keep`, a point keeps its own variance where that is larger
    (heap figures: their sampling error, or the jitter of what is in flight, whichever is
    larger).

    The jitter is measured on the changes from one snapshot to the next, robustly: each
    change less what the median rate (per second) predicts over its interval, and 1.4826
    times the median absolute value of that estimates the standard deviation of a change,
    half its square the variance of a point. A steady leak changes at the same rate however
    the snapshots are spaced (no jitter: the operator captures every few seconds near the
    limit and every few minutes before); a ramp that stopped changes once, which a median
    ignores; noise changes every time, both ways. With equal intervals this is the median
    absolute deviation of the changes from their median.
    """
    n = len(points)
    if n < SCATTER_POINTS:
        return list(points)
    changes = [b.value - a.value for a, b in pairwise(points)]
    gaps = [b.seconds - a.seconds for a, b in pairwise(points)]
    if all(g > 0 for g in gaps):
        rate = median(c / g for c, g in zip(changes, gaps, strict=True))
        deviations = [c - rate * g for c, g in zip(changes, gaps, strict=True)]
    else:  # times unknown (the order as given) or equal: the changes alone
        centre = median(changes)
        deviations = [c - centre for c in changes]
    spread = 1.4826 * median(abs(d) for d in deviations)
    variance = max(spread * spread / 2, floor)
    return [
        Point(p.seconds, p.value, max(p.variance, variance) if keep else variance) for p in points
    ]


def median(values: Iterable[float]) -> float:
    """statistics.median (the same arithmetic), without importing statistics (6 ms: fractions,
    decimal and random come with it) for one function."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no median of no values")
    half = len(ordered) // 2
    return ordered[half] if len(ordered) % 2 else (ordered[half - 1] + ordered[half]) / 2


def bytes_shape(points: Sequence[Point]) -> ShapeReport:
    """The shape of heap figures: growth is claimed only beyond the in-flight jitter too; a
    spike or a plateau is read on the sampling error alone (a single big step would otherwise
    raise the jitter it is measured against)."""
    report = classify(points)
    if report.leaking and len(points) >= SCATTER_POINTS:
        report = classify(with_scatter(points, 0.0, keep=True))
    return report


def _tracks(
    times: Sequence[float], tables: Sequence[Mapping[str, tuple[int, float]]], unit: str
) -> tuple[Track, ...]:
    """A track per name whose figure moved beyond noise, leaking ones first."""
    names = list(set().union(*tables))
    if unit == "bytes" or len(times) < SCATTER_POINTS:  # their points keep their variances
        names = _moved(names, tables)
    tracks = []
    for name in names:
        points = [
            Point(t, float(table.get(name, _NONE)[0]), table.get(name, _NONE)[1])
            for t, table in zip(times, tables, strict=True)
        ]
        if all(p.value == points[0].value for p in points):
            continue
        report = (
            classify(with_scatter(points, 1.0)) if unit == "goroutines" else bytes_shape(points)
        )
        if report.shape is not Shape.FLAT:
            tracks.append(Track(name, unit, report))
    tracks.sort(key=_rank)
    return tuple(tracks[:MAX_TRACKS])


_NONE = (0, 0.0)


def _moved(names: list[str], tables: Sequence[Mapping[str, tuple[int, float]]]) -> list[str]:
    """The names whose figure moved beyond noise from the first point at some point: the
    others are FLAT whatever their shape (shape.classify), and a profile has thousands of
    them. The test is classify's own arithmetic (shape.z_between), on arrays."""
    count = len(names)
    values = [
        np.fromiter((table.get(n, _NONE)[0] for n in names), np.float64, count) for table in tables
    ]
    variances = [
        np.fromiter((table.get(n, _NONE)[1] for n in names), np.float64, count) for table in tables
    ]
    moved = np.zeros(count, dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        for value, variance in zip(values[1:], variances[1:], strict=True):
            delta = value - values[0]
            spread = variances[0] + variance
            z = np.where(spread > 0, delta / np.sqrt(spread), np.sign(delta) * np.inf)
            moved |= np.abs(np.nan_to_num(z, nan=0.0)) >= SIGNIFICANCE
    return [names[i] for i in np.flatnonzero(moved).tolist()]


def _rank(track: Track) -> tuple[bool, bool, float, float, str]:
    # Growth that continues first, the application's own code before the standard library's,
    # then the fastest; the rest by how far they moved (a spike given back moved far).
    report = track.report
    moved = max(abs(p.value - report.points[0].value) for p in report.points)
    return (
        not report.leaking,
        not is_application(track.name),
        -(report.late_rate_per_second if report.leaking else moved),
        -abs(report.growth),
        track.name,
    )


def _native(times: Sequence[float], shots: Sequence[Snapshot]) -> Track | None:
    accounts = [account(s) for s in shots]
    if any(a.not_go is None or a.rss is None for a in accounts):
        return None
    points = []
    floor = 0.0
    for t, a in zip(times, accounts, strict=True):
        assert a.not_go is not None and a.rss is not None
        # RSS and MemStats are read moments apart, and memory Go holds unused may become
        # resident in between or later with nothing allocated outside Go.
        sigma = max(0.05 * a.rss, 1 * MiB, a.go_unused or 0) / 3
        floor = max(floor, sigma * sigma)
        points.append(Point(t, float(max(a.not_go, 0)), sigma * sigma))
    return Track("outside the Go runtime", "bytes", classify(with_scatter(points, floor)))


def _proven(dump: GoroutineDump) -> tuple[tuple[str, int], ...]:
    counts = dump.counts(goroutine_owner)
    return tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
