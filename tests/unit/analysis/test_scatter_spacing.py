"""The series' own jitter is measured per second: the operator captures minutes apart while
there is headroom and seconds apart near the limit, and a steady leak sampled so must read as
steady growth, not as jitter (seen on the real cluster: leaked connections 2, 156, 1057,
1736, 1844 at 0, 5, 35, 58 and 61 s read as a plateau, and the unclosed response bodies
went unnamed)."""

from __future__ import annotations

import pytest

from oomforensics.analysis.series import Point, with_scatter
from oomforensics.analysis.shape import Shape, classify

SECONDS = (0.0, 5.1, 35.1, 57.8, 61.4)  # a baseline, a prediction, a periodic, two thresholds


def counts(values: list[float], seconds: tuple[float, ...] = SECONDS) -> list[Point]:
    return [Point(t, v, max(v, 1.0)) for t, v in zip(seconds, values, strict=True)]


def test_a_steady_rise_at_uneven_intervals_is_growth_without_jitter() -> None:
    steady = counts([2 + 30 * t for t in SECONDS])
    scattered = with_scatter(steady, 1.0)
    assert all(p.variance == 1.0 for p in scattered)  # the floor: no jitter
    report = classify(scattered)
    assert report.shape is Shape.GROWING and report.steady


def test_noise_at_uneven_intervals_is_still_noise() -> None:
    noisy = counts([100, 140, 95, 150, 90])
    assert classify(with_scatter(noisy, 1.0)).shape in (Shape.FLAT, Shape.SPIKE)


def test_equal_intervals_give_the_median_absolute_deviation_of_the_changes() -> None:
    even = (0.0, 10.0, 20.0, 30.0, 40.0)
    values = [10.0, 14.0, 16.0, 22.0, 24.0]  # changes 4, 2, 6, 2: median 3, deviations 1,1,3,1
    scattered = with_scatter(counts(values, even), 0.0)
    spread = 1.4826 * 1.0
    assert scattered[0].variance == pytest.approx(spread * spread / 2)
