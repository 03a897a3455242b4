"""Synthetic leaks sampled the way the operator samples: each next sample exactly
`next_sample_in` after the last. The question an SRE asks: was there a heap snapshot at 80% or
more of the limit before the OOM kill?"""

import pytest

from oomforensics.triggers import TriggerSettings
from tests.unit.triggers.drive import T0, follow


def linear_leak(start: float, half_limit_in: float, begins_at: float = 0.0):
    """The working set as a fraction of the limit: `start` until `begins_at`, then growing by
    half the limit every `half_limit_in` seconds."""
    rate = 0.5 / half_limit_in

    def level(t: float) -> float:
        return start + rate * max(0.0, t - begins_at)

    return level


def first_capture_at_or_above(driver, percent: float) -> float | None:
    return next((c.percent for c in driver.captures if c.percent and c.percent >= percent), None)


@pytest.mark.parametrize("half_limit_in", [60, 20, 5])
@pytest.mark.parametrize("start", [0.0, 0.25, 0.5])
def test_a_leak_observed_from_its_start_is_captured_at_80_percent_or_more_before_the_limit(
    half_limit_in, start
):
    driver = follow(linear_leak(start, half_limit_in), until=3600)
    assert driver.state.samples[-1].at - T0 < 3600  # stopped by the OOM, not by the clock
    captured = first_capture_at_or_above(driver, 80)
    assert captured is not None, driver.captures
    assert 80 <= captured < 100


@pytest.mark.parametrize("half_limit_in", [60, 20])
@pytest.mark.parametrize("steady", [0.2, 0.5])
@pytest.mark.parametrize("phase", [0.0, 3.7, 7.5, 11.2])
def test_a_leak_that_starts_after_a_calm_hour_is_captured_at_80_percent_or_more(
    half_limit_in, steady, phase
):
    """From a calm level the sampler runs at its normal 15 s period, so the leak may run up to
    15 s before it is seen; leaks at least this slow are still caught at 80% or more."""
    driver = follow(linear_leak(steady, half_limit_in, begins_at=3600 + phase), until=7200)
    captured = first_capture_at_or_above(driver, 80)
    assert captured is not None, driver.captures
    assert 80 <= captured < 100


def test_a_fast_leak_after_a_plateau_is_predicted_before_80_percent():
    driver = follow(linear_leak(0.4, 60, begins_at=1800), until=3600)
    predicted = [c for c in driver.captures if c.reason == "predicted"]
    assert len(predicted) == 1
    assert predicted[0].percent is not None and predicted[0].percent < 80


def test_every_threshold_is_caught_on_the_way_up_of_a_20s_leak():
    driver = follow(linear_leak(0.1, 20), until=3600, settings=TriggerSettings(horizon=0))
    assert [c.reason for c in driver.captures] == [
        "baseline",
        "threshold-80",
        "threshold-90",
        "threshold-95",
    ]
