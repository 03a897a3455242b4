"""The shape of one figure over a container run's snapshots: is it still growing?

A leak is growth that continues. Everything else a live service does grows and then stops
(a cache filling to its bound, a pool reaching its size, warm-up after a start) or comes and
goes (a batch, a burst of requests). Each point carries a standard error (the heap profile's
sampling error, see sampling.py, or a noise model for counts), and a change counts only when
it exceeds `SIGNIFICANCE` (3) standard errors.

Given points v_0..v_n at times t_0..t_n, with z(a, b) the change from a to b in standard errors:

- FLAT: it never rose significantly above its first value, and did not fall either.
- SHRANK: it fell significantly and never rose.
- SPIKE: it rose significantly, then gave back at least half of the rise, significantly.
- PLATEAU: it rose significantly, but not in the later half of the run: from the snapshot
  nearest the run's midpoint to the last, z < 3. Reported as "grew X in the first T, then
  flat for U", the knee being the first snapshot after which nothing rose significantly.
- GROWING: it rose significantly, and is still rising over the later half (z >= 3). It is
  STEADY when the later half's rate is at least half of the earlier half's, else slowing
  (a warm-up still in progress looks like that; so does a leak under a falling load).
- GREW: two snapshots only: a significant rise whose shape two points cannot tell.
- STEP: four or more snapshots, the rise seen only at the last one (nothing significant up to
  the one before): too recent to call growth that continues; the next snapshot will tell.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise

from oomforensics.analysis.sampling import SIGNIFICANCE, z_score


class Shape(StrEnum):
    FLAT = "flat"
    SHRANK = "shrank"
    SPIKE = "spike"
    PLATEAU = "plateau"
    GROWING = "growing"
    GREW = "grew"  # two points: grew, shape unknown
    STEP = "step"  # four or more points: rose in the last interval only


@dataclass(frozen=True, slots=True)
class Point:
    seconds: float  # since the first snapshot
    value: float
    variance: float = 0.0


@dataclass(frozen=True, slots=True)
class ShapeReport:
    shape: Shape
    steady: bool  # GROWING at a rate that is not falling off
    growth: float  # last minus first
    growth_z: float  # that, in standard errors
    late_growth: float  # over the later half (0 with two points)
    late_z: float
    rate_per_second: float  # least-squares slope over all points
    late_rate_per_second: float
    knee: int  # PLATEAU: the snapshot from which it stayed flat; SPIKE: the peak
    points: tuple[Point, ...]
    rise_z: float = 0.0  # the rise from the first point to the highest, in standard errors

    @property
    def leaking(self) -> bool:
        """Growth that continues (or, with two points, growth that may)."""
        return self.shape in (Shape.GROWING, Shape.GREW)

    @property
    def span(self) -> float:
        return self.points[-1].seconds - self.points[0].seconds

    @property
    def error(self) -> float:
        """The standard error of `growth`."""
        return math.sqrt(self.points[0].variance + self.points[-1].variance)


def z_between(a: Point, b: Point) -> float:
    return z_score(b.value - a.value, a.variance + b.variance)


def classify(points: Sequence[Point], significance: float = SIGNIFICANCE) -> ShapeReport:
    """The shape of `points` (time order, at least two), as the module docstring defines."""
    if len(points) < 2:
        raise ValueError("a shape needs at least two points")
    pts = tuple(points)
    first, last = pts[0], pts[-1]
    growth = last.value - first.value
    net = z_between(first, last)
    slope = _slope(pts)
    peak = max(range(len(pts)), key=lambda i: (pts[i].value, -i))
    rise = z_between(first, pts[peak])

    def report(
        shape: Shape,
        knee: int = 0,
        late: float = 0.0,
        late_z: float = 0.0,
        late_rate: float = 0.0,
        steady: bool = False,
    ) -> ShapeReport:
        return ShapeReport(
            shape, steady, growth, net, late, late_z, slope, late_rate, knee, pts, rise
        )

    if len(pts) == 2:
        if net >= significance:
            return report(Shape.GREW, late=growth, late_z=net, late_rate=slope)
        if net <= -significance:
            return report(Shape.SHRANK)
        return report(Shape.FLAT)
    if rise < significance:
        return report(Shape.SHRANK if net <= -significance else Shape.FLAT)
    given_back = pts[peak].value - last.value
    if (
        peak < len(pts) - 1
        and z_between(pts[peak], last) <= -significance
        and given_back >= 0.5 * (pts[peak].value - first.value)
    ):
        return report(Shape.SPIKE, knee=peak)
    middle = _middle(pts)
    late = last.value - pts[middle].value
    late_z = z_between(pts[middle], last)
    late_span = last.seconds - pts[middle].seconds
    late_rate = late / late_span if late_span > 0 else 0.0
    if late_z >= significance and len(pts) >= 4 and z_between(first, pts[-2]) < significance:
        # All of it in the last interval: a jump too recent to call a trend (in-flight churn
        # caught live at one GC looks like this; so does a leak that just began).
        return report(Shape.STEP, late=late, late_z=late_z, late_rate=late_rate)
    if late_z >= significance:
        early_span = pts[middle].seconds - first.seconds
        early_rate = (pts[middle].value - first.value) / early_span if early_span > 0 else 0.0
        steady = late_rate >= 0.5 * early_rate and not _drops(pts, significance)
        return report(Shape.GROWING, late=late, late_z=late_z, late_rate=late_rate, steady=steady)
    return report(
        Shape.PLATEAU, knee=_knee(pts, significance), late=late, late_z=late_z, late_rate=late_rate
    )


def _middle(pts: tuple[Point, ...]) -> int:
    """The snapshot nearest the run's midpoint (the earlier on a tie), so that with evenly
    spaced snapshots the later half holds half the intervals, and at least one."""
    half = pts[0].seconds + (pts[-1].seconds - pts[0].seconds) / 2
    index = min(range(len(pts)), key=lambda i: (abs(pts[i].seconds - half), i))
    return min(max(index, 1), len(pts) - 2)


def _knee(pts: tuple[Point, ...], significance: float) -> int:
    """The first snapshot after which nothing rose significantly above it."""
    for k in range(len(pts)):
        if all(z_between(pts[k], p) < significance for p in pts[k + 1 :]):
            return k
    return len(pts) - 1


def _drops(pts: tuple[Point, ...], significance: float) -> bool:
    return any(z_between(a, b) <= -significance for a, b in pairwise(pts))


def _slope(pts: tuple[Point, ...]) -> float:
    """Least-squares slope, per second."""
    n = len(pts)
    mean_t = math.fsum(p.seconds for p in pts) / n
    mean_v = math.fsum(p.value for p in pts) / n
    var_t = math.fsum((p.seconds - mean_t) ** 2 for p in pts)
    if var_t == 0:
        return 0.0
    return math.fsum((p.seconds - mean_t) * (p.value - mean_v) for p in pts) / var_t
