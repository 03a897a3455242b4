"""Per-function growth trends over three or more snapshots of one container run.

A diff of two snapshots cannot tell a leak from a one-off allocation: a config reload that
takes 8 MB once looks bigger than a cache that leaks 1 MB every ten minutes. Over several
snapshots the difference shows, so each function whose cum value changed gets a growth rate
(least-squares slope, per hour) and a steadiness in [0, 1], and the ranking is by their product:
the rate at which memory grows steadily.

Steadiness is `evenness * r_squared`, both measured in the direction of the slope:

- r_squared: the coefficient of determination of the least-squares line through
  (time, cum). It says how well a constant rate explains the points, but alone it forgives a
  single step (0, 8, 8, 8, 8 still scores 0.5), so it is not enough.
- evenness: the share of the net change (last minus first) that arrived no faster than the
  average rate, interval by interval: sum over intervals of
  min(change in the interval / net change, duration of the interval / whole duration).
  A constant rate scores 1; one jump between k+1 snapshots scores 1/k, however the other
  intervals wobble; growth that is later given back counts against it; a net change against
  the slope scores 0. Weighing by time rather than counting intervals keeps an irregular
  capture schedule (a trigger firing seconds after an interval snapshot, a missed snapshot)
  from reading as unsteadiness.

A steady climb scores close to 1, a jump then flat scores about r_squared / k. A shrinking
function gets a negative slope, a steadiness that describes how steadily it shrinks, and so a
negative score; it always ranks after every function whose slope is not negative.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise

from oomforensics.analysis.snapshot import Snapshot
from oomforensics.analysis.suspects import owner_bytes
from oomforensics.pprof.diff import check_compatible, function_table
from oomforensics.pprof.errors import IncompatibleProfiles

MIN_SNAPSHOTS = 3
_SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class FunctionTrend:
    name: str
    slope: float  # units per hour (bytes/hour for inuse_space): least-squares fit of cum
    steadiness: float  # 0..1, see the module docstring
    first: int  # cum in the first snapshot
    last: int  # cum in the last snapshot
    points: tuple[tuple[float, int], ...]  # (seconds since the first snapshot, cum)

    @property
    def score(self) -> float:
        """The ranking key: growth per hour that is steady (negative for shrinking functions)."""
        return self.slope * self.steadiness


@dataclass(frozen=True, slots=True)
class TrendReport:
    sample_index: str
    unit: str
    duration_seconds: float
    # Ranked by score, descending (steady growers first); negative slopes always last.
    functions: tuple[FunctionTrend, ...]
    # The same fit of the inuse bytes each suspect owner holds (see suspects.owner_bytes),
    # ranked alike: what suspects are ordered by.
    owners: tuple[FunctionTrend, ...] = ()


def snapshot_time(snapshot: Snapshot) -> float:
    """When the snapshot was taken, in POSIX seconds.

    The manifest's capturedAt (written by the capturer from its own clock) wins over the
    profile's time_nanos (the target's clock, which may be skewed); an ISO-8601 time without
    an offset is taken as UTC, as the archive writes UTC throughout.
    """
    captured = snapshot.manifest.get("capturedAt") if snapshot.manifest is not None else None
    if isinstance(captured, str):
        try:
            moment = datetime.fromisoformat(captured)
        except ValueError:
            pass  # an unreadable manifest time is no worse than a missing one
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return moment.timestamp()
    if snapshot.profile.time_nanos:
        return snapshot.profile.time_nanos / 1e9
    raise ValueError(
        f"{snapshot.source}: capture time unknown (no readable capturedAt in the manifest and "
        "no time in the profile)"
    )


def function_trends(
    snapshots: Sequence[Snapshot],
    sample_index: str | int | None = "inuse_space",
    limit: int | None = None,
) -> TrendReport:
    """Fit every function's cum value over time and rank steady growers first.

    Snapshots may come in any order; they are sorted by capture time. Only functions whose
    cum changed at some point are reported; `limit` keeps the top of the ranking.
    """
    if len(snapshots) < MIN_SNAPSHOTS:
        raise ValueError(
            f"a trend needs at least {MIN_SNAPSHOTS} snapshots of the run, got {len(snapshots)}"
        )
    if limit is not None and limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")
    timed = sorted(((snapshot_time(s), s) for s in snapshots), key=lambda pair: pair[0])
    _reject_duplicate_times(timed)
    first = timed[0][1]
    for _, other in timed[1:]:
        try:
            check_compatible(first.profile, other.profile)
        except IncompatibleProfiles as exc:
            raise IncompatibleProfiles(f"{first.source} and {other.source}: {exc}") from None

    index = first.profile.sample_index(sample_index)
    sample_type = first.profile.sample_types[index]
    start = timed[0][0]
    offsets = tuple(t - start for t, _ in timed)
    tables = [function_table(s.profile, index) for _, s in timed]
    line = _TimeAxis(offsets)

    trends = _fit_all(line, [{k: cum for k, (_, cum) in table.items()} for table in tables])
    held = [owner_bytes(s.profile) for _, s in timed]
    return TrendReport(
        sample_index=sample_type.type,
        unit=sample_type.unit,
        duration_seconds=offsets[-1],
        functions=tuple(trends if limit is None else trends[:limit]),
        owners=tuple(_fit_all(line, held)),
    )


def _fit_all(line: _TimeAxis, tables: Sequence[Mapping[str, int]]) -> list[FunctionTrend]:
    """Fit every name whose value changed across `tables` (one per snapshot), ranked."""
    trends = []
    for name in set().union(*tables):
        values = tuple(table.get(name, 0) for table in tables)
        if min(values) == max(values):
            continue  # never changed: no trend to report
        trends.append(line.fit(name, values))
    # Shrinkers last regardless of score; ties broken by rate, then name, for a stable order.
    trends.sort(key=lambda f: (f.slope < 0, -f.score, -f.slope, f.name))
    return trends


def _reject_duplicate_times(timed: Sequence[tuple[float, Snapshot]]) -> None:
    # Two snapshots at one instant make the fit meaningless (and usually mean the same
    # snapshot was passed twice): name them all so the user can drop the extra.
    times = [t for t, _ in timed]
    for t, u in pairwise(times):
        if t == u:
            same = ", ".join(s.source for v, s in timed if v == t)
            when = datetime.fromtimestamp(t, UTC).isoformat()
            raise ValueError(f"snapshots share the capture time {when}: {same}")


class _TimeAxis:
    """The time side of the least-squares fit, computed once and shared by every function."""

    __slots__ = ("durations", "offsets", "span", "t_dev", "t_var")

    def __init__(self, offsets: tuple[float, ...]) -> None:
        self.offsets = offsets
        mean = math.fsum(offsets) / len(offsets)
        self.t_dev = tuple(t - mean for t in offsets)
        self.t_var = math.fsum(d * d for d in self.t_dev)  # > 0: times are distinct
        self.durations = tuple(b - a for a, b in pairwise(offsets))
        self.span = offsets[-1]

    def fit(self, name: str, values: tuple[int, ...]) -> FunctionTrend:
        mean = math.fsum(values) / len(values)
        v_dev = [v - mean for v in values]
        covariance = math.fsum(t * v for t, v in zip(self.t_dev, v_dev, strict=True))
        v_var = math.fsum(v * v for v in v_dev)  # > 0: the caller skips constant series
        slope = covariance / self.t_var  # units per second
        r_squared = min(1.0, covariance * covariance / (self.t_var * v_var))
        return FunctionTrend(
            name=name,
            slope=slope * _SECONDS_PER_HOUR,
            steadiness=r_squared * self._evenness(values, slope),
            first=values[0],
            last=values[-1],
            points=tuple(zip(self.offsets, values, strict=True)),
        )

    def _evenness(self, values: tuple[int, ...], slope: float) -> float:
        direction = 1 if slope > 0 else -1 if slope < 0 else 0
        net = direction * (values[-1] - values[0])
        if net <= 0:
            return 0.0  # no net change, or the endpoints disagree with the fit: not steady
        on_schedule = math.fsum(
            min(direction * (b - a) / net, duration / self.span)
            for (a, b), duration in zip(pairwise(values), self.durations, strict=True)
        )
        return min(1.0, max(0.0, on_schedule))  # clamp float rounding and given-back growth
