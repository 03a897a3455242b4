"""The capture rules, one story each: what an SRE watching the pod would want snapshotted."""

import pytest

from oomforensics.triggers import (
    MemorySample,
    TriggerSettings,
    new_state,
    observe,
    project,
    record_capture,
    state_for_run,
)
from oomforensics.triggers.engine import MAX_SAMPLES
from tests.unit.triggers.drive import MB, RUN, T0, Driver, at_percent

FAST = TriggerSettings(interval=0)  # no periodic captures to get in the way
# Stepped series climb fast enough for the projection to fire too: isolate the thresholds.
THRESHOLDS_ONLY = TriggerSettings(interval=0, horizon=0)


# --- baseline ---------------------------------------------------------------------------------


def test_the_first_sample_of_a_run_is_the_baseline_and_only_the_first():
    driver = Driver()
    assert driver.percent(0, 30).reason == "baseline"
    assert not driver.percent(15, 31).capture
    assert driver.reasons() == ["baseline"]


def test_a_failed_baseline_is_retried_on_the_next_sample():
    driver = Driver()
    assert driver.percent(0, 30, succeed=False).reason == "baseline"
    assert driver.percent(1, 30).reason == "baseline"
    assert driver.state.captures == 1


def test_no_baseline_when_disabled():
    driver = Driver(settings=TriggerSettings(baseline=False))
    assert not driver.percent(0, 30).capture


def test_a_restart_starts_a_new_run_with_fresh_triggers():
    driver = Driver(settings=THRESHOLDS_ONLY)
    driver.series([(0, 50), (40, 85), (80, 96)])
    assert driver.reasons() == ["baseline", "threshold-80", "threshold-95"]

    restarted = RUN.restarted(RUN.restart_count + 1)
    assert state_for_run(driver.state, RUN) is driver.state  # same run: keep going
    driver.state = state_for_run(driver.state, restarted)
    assert driver.state == new_state(restarted)
    driver.series([(200, 30), (240, 85)])
    assert driver.reasons()[3:] == ["baseline", "threshold-80"]


# --- periodic ---------------------------------------------------------------------------------


def test_periodic_snapshots_every_interval_counting_from_the_last_capture():
    driver = Driver()
    t = 0.0
    while t <= 1300:
        t += driver.percent(t, 30).next_sample_in
    assert [(c.at, c.reason) for c in driver.captures] == [
        (0, "baseline"),
        (600, "periodic"),  # the engine wakes the caller up exactly when it is due
        (1200, "periodic"),
    ]


def test_any_capture_restarts_the_periodic_interval():
    driver = Driver()
    driver.series([(0, 30), (300, 85)])  # baseline, threshold-80
    assert not driver.percent(600, 85).capture
    assert driver.percent(900, 85).reason == "periodic"


def test_without_a_baseline_the_interval_counts_from_the_first_sample():
    driver = Driver(settings=TriggerSettings(baseline=False))
    driver.series([(0, 30), (300, 30)])
    assert driver.percent(600, 30).reason == "periodic"


def test_interval_zero_disables_periodic_snapshots():
    driver = Driver(settings=FAST)
    driver.series([(t, 30) for t in range(0, 7200, 15)])
    assert driver.reasons() == ["baseline"]


# --- thresholds -------------------------------------------------------------------------------


def test_each_threshold_fires_once_per_run_as_memory_climbs():
    driver = Driver(settings=THRESHOLDS_ONLY)
    driver.series([(0, 50), (60, 70), (120, 81), (180, 85), (240, 91), (300, 93), (360, 96)])
    driver.series([(420, 97), (480, 96)])
    assert driver.reasons() == ["baseline", "threshold-80", "threshold-90", "threshold-95"]
    assert driver.state.fired_thresholds == {80, 90, 95}


def test_a_gc_sawtooth_around_a_threshold_does_not_refire_it():
    driver = Driver(settings=THRESHOLDS_ONLY)  # hysteresis 5: 80 re-arms below 75
    driver.series([(0, 50)] + [(60 * i, 79 if i % 2 else 82) for i in range(1, 30)])
    assert driver.reasons() == ["baseline", "threshold-80"]


def test_a_threshold_rearms_after_falling_below_threshold_minus_hysteresis():
    driver = Driver(settings=THRESHOLDS_ONLY)
    driver.series([(0, 50), (60, 82), (120, 76), (180, 82)])
    assert driver.reasons() == ["baseline", "threshold-80"]  # 76 is not below 75
    driver.series([(240, 74.9), (300, 82)])
    assert driver.reasons() == ["baseline", "threshold-80", "threshold-80"]


def test_a_jump_past_several_thresholds_fires_the_highest_once_and_marks_the_rest():
    driver = Driver(settings=THRESHOLDS_ONLY)
    driver.series([(0, 50), (60, 96)])
    assert driver.reasons() == ["baseline", "threshold-95"]
    assert driver.state.fired_thresholds == {80, 90, 95}
    driver.series([(120, 92), (180, 90.5), (240, 96)])  # 95 stays fired down to 90
    assert driver.reasons() == ["baseline", "threshold-95"]
    driver.series([(300, 89), (360, 96)])  # below 90 re-arms 95 only
    assert driver.reasons() == ["baseline", "threshold-95", "threshold-95"]


def test_a_failed_threshold_capture_leaves_the_thresholds_armed():
    driver = Driver(settings=THRESHOLDS_ONLY)
    driver.percent(0, 50)
    assert driver.percent(60, 96, succeed=False).reason == "threshold-95"
    assert driver.state.fired_thresholds == frozenset()
    # Memory dropped a little before the retry: the best evidence now is threshold-90.
    assert driver.percent(61, 92).reason == "threshold-90"
    assert driver.state.fired_thresholds == {80, 90}
    assert driver.percent(62, 96).reason == "threshold-95"  # escalation: no cooldown


def test_no_thresholds_without_a_limit():
    driver = Driver(settings=FAST, limit=None)
    decision = driver.sample(0, 900 * MB)
    assert decision.percent_of_limit is None
    assert decision.seconds_to_limit is None
    assert driver.reasons() == ["baseline"]


# --- cooldown ---------------------------------------------------------------------------------


def test_escalating_thresholds_bypass_the_cooldown_in_a_fast_leak():
    driver = Driver(settings=THRESHOLDS_ONLY)
    driver.series([(0, 50), (3, 81), (5, 91), (7, 96)])
    assert driver.reasons() == ["baseline", "threshold-80", "threshold-90", "threshold-95"]


def test_the_cooldown_holds_back_a_threshold_that_is_not_higher_than_the_last_one():
    settings = TriggerSettings(interval=0, horizon=0, thresholds=(40, 60), sample_interval=60)
    driver = Driver(settings=settings)
    driver.series([(0, 10), (40, 61)])  # threshold-60 (also marks 40)
    driver.series([(45, 30), (50, 41)])  # 40 re-armed and crossed again, 10 s later
    assert driver.reasons() == ["baseline", "threshold-60"]
    assert driver.decisions[-1].next_sample_in == pytest.approx(20.0)  # wake at the cooldown end
    assert driver.percent(70, 41).reason == "threshold-40"


def test_the_cooldown_holds_back_periodic_and_predicted_captures():
    settings = TriggerSettings(interval=20, cooldown=30)
    driver = Driver(settings=settings)
    driver.series([(0, 10), (10, 10), (20, 10)])
    assert driver.reasons() == ["baseline"]
    assert driver.percent(30, 10).reason == "periodic"


def test_a_manual_capture_counts_for_the_cooldown_and_the_interval():
    driver = Driver()
    driver.percent(0, 30)
    driver.state = record_capture(driver.state, T0 + 100, "manual")
    assert driver.state.last_capture_reason == "manual"
    assert not driver.percent(110, 30).capture
    assert not driver.percent(600, 30).capture
    assert driver.percent(700, 30).reason == "periodic"


def test_record_capture_rejects_reasons_that_are_not_slugs_and_time_going_back():
    state = record_capture(new_state(RUN), T0, "baseline")
    with pytest.raises(ValueError, match="slug"):
        record_capture(state, T0 + 1, "Threshold 80")
    with pytest.raises(ValueError, match="earlier"):
        record_capture(state, T0 - 1, "periodic")


# --- prediction -------------------------------------------------------------------------------


def test_a_steady_fast_leak_is_captured_as_predicted_before_80_percent():
    driver = Driver(settings=FAST)
    t = 0.0
    while t < 600:  # ten quiet minutes at 40%
        t += driver.percent(t, 40).next_sample_in
    start = t
    while driver.state.samples[-1].working_set < at_percent(80):
        percent = 40 + 0.5 * (t - start)  # +0.5% of the limit per second: 120 s to the limit
        decision = driver.percent(t, percent)
        t += decision.next_sample_in
    predicted = [c for c in driver.captures if c.reason == "predicted"]
    assert len(predicted) == 1
    assert predicted[0].percent is not None and predicted[0].percent < 80
    last = driver.decisions[-1]
    assert last.seconds_to_limit is not None and last.seconds_to_limit < 60
    assert last.growth_per_second is not None and last.growth_per_second > 0


def test_a_slow_leak_is_left_to_the_thresholds():
    driver = Driver(settings=FAST)
    # 1% of the limit per minute: at 80% the limit is still 20 minutes away.
    driver.series([(t, 50 + t / 60) for t in range(0, 60 * 45, 15)])
    assert "predicted" not in driver.reasons()
    assert driver.reasons() == ["baseline", "threshold-80", "threshold-90"]


def test_prediction_fires_once_per_approach_and_rearms_when_growth_stops():
    def level(t: float) -> float:
        if t < 300:
            return 30
        if t < 360:
            return 30 + (t - 300) * 0.6  # to 66%: the limit under a minute away
        if t < 900:
            return 66  # growth stops: the projection goes away
        return min(78, 66 + (t - 900) * 0.6)  # and starts again after a long plateau

    driver = Driver(settings=FAST)
    t = 0.0
    while t < 1200:
        t += driver.percent(t, level(t)).next_sample_in
        if 600 < t < 900:
            assert not driver.state.predicted_fired
    assert driver.reasons() == ["baseline", "predicted", "predicted"]
    # the second approach is seen a few seconds in, though the plateau fills the fit window
    assert 900 < driver.captures[2].at < 915


def test_horizon_zero_disables_prediction():
    driver = Driver(settings=TriggerSettings(interval=0, horizon=0))
    driver.series([(t, 10 + 0.5 * t) for t in range(0, 130, 2)])
    assert "predicted" not in driver.reasons()


def test_project_fits_a_line_and_says_when_it_meets_the_limit():
    samples = [MemorySample(T0 + t, 100 * MB + t * MB) for t in (0, 10, 20, 30)]
    seconds, growth = project(samples, 200 * MB, T0 + 30, window=120)
    assert growth == pytest.approx(MB)
    assert seconds == pytest.approx(70)


def test_project_needs_three_samples_in_the_window_and_growth():
    rising = [MemorySample(T0 + t, 100 * MB + t * MB) for t in (0, 10, 20, 30)]
    assert project(rising[:2], 200 * MB, T0 + 10, window=120) == (None, None)
    assert project(rising, 200 * MB, T0 + 300, window=120) == (None, None)  # all too old
    flat = [MemorySample(T0 + t, 100 * MB) for t in (0, 10, 20)]
    assert project(flat, 200 * MB, T0 + 20, window=120) == (None, 0.0)
    falling = [MemorySample(T0 + t, 100 * MB - t * MB) for t in (0, 10, 20)]
    seconds, growth = project(falling, 200 * MB, T0 + 20, window=120)
    assert seconds is None and growth is not None and growth < 0


def test_project_starts_from_the_latest_sample_when_it_is_above_the_line():
    samples = [
        MemorySample(T0 + t, ws) for t, ws in ((0, 100 * MB), (10, 100 * MB), (20, 130 * MB))
    ]
    seconds, growth = project(samples, 200 * MB, T0 + 20, window=120)
    assert growth == pytest.approx(1.5 * MB)
    assert seconds == pytest.approx(70 * MB / (1.5 * MB))  # from 130 MB, not the line's 125 MB
    over = [MemorySample(T0 + t, 190 * MB + t * MB) for t in (0, 10, 20)]
    assert project(over, 200 * MB, T0 + 20, window=120)[0] == 0.0


# --- sampling rate ----------------------------------------------------------------------------


def test_sampling_is_fastest_for_a_new_run_then_normal_with_headroom():
    driver = Driver()
    assert [driver.percent(t, 30).next_sample_in for t in (0, 1, 2, 3)] == [1.0, 1.0, 15.0, 15.0]


def test_sampling_speeds_up_as_headroom_shrinks():
    waits = []
    for percent in (30, 50, 70, 90, 99):
        driver = Driver(settings=FAST)
        driver.series([(t, percent) for t in (0, 1, 2)])
        waits.append(driver.decisions[-1].next_sample_in)
    assert waits == [15.0, 15.0, pytest.approx(9.0), pytest.approx(3.0), 1.0]


def test_sampling_speeds_up_as_the_projection_nears_the_limit():
    driver = Driver(settings=FAST)
    driver.series([(0, 20), (15, 21), (30, 22)])
    assert driver.decisions[-1].next_sample_in == 15.0  # limit ~19 minutes away
    driver = Driver(settings=FAST)
    driver.series([(0, 20), (1, 22), (2, 24)])  # 2%/s: the limit is 38 s away
    assert driver.decisions[-1].next_sample_in == pytest.approx(38 / 4)


# --- no limit: growth -------------------------------------------------------------------------


def steady_then(driver: Driver, level: int, minutes: int = 15) -> float:
    t = 0.0
    while t < minutes * 60:
        t += driver.sample(t, level).next_sample_in
    return t


def test_without_a_limit_a_jump_above_the_moving_average_is_captured_as_growth():
    driver = Driver(limit=None)
    t = steady_then(driver, 100 * MB)
    assert not driver.sample(t, 140 * MB).capture  # 1.4x: not enough
    assert driver.sample(t + 15, 160 * MB).reason == "growth"
    assert driver.decisions[-1].percent_of_limit is None


def test_growth_is_not_judged_while_the_run_warms_up():
    driver = Driver(limit=None)
    driver.sample(0, 20 * MB)
    driver.sample(1, 20 * MB)
    driver.sample(60, 200 * MB)  # caches filling at start-up
    assert driver.reasons() == ["baseline"]


def test_a_slow_rise_follows_the_moving_average_and_is_left_to_periodic_snapshots():
    driver = Driver(limit=None, settings=FAST)
    for t in range(0, 7200, 15):  # +36 MB an hour
        driver.sample(t, 100 * MB + t * 10_000)
    assert driver.reasons() == ["baseline"]


def test_a_sustained_surge_is_captured_once_per_growth_step():
    driver = Driver(limit=None, settings=FAST)
    t = steady_then(driver, 100 * MB)
    for level in (160, 170, 200, 230, 250):
        driver.sample(t, level * MB)
        t += 60
    # 160 fires; then only a level above 1.5 x 160 = 240 does, though the average lags behind
    assert driver.reasons() == ["baseline", "growth", "growth"]
    assert [c.working_set for c in driver.captures[1:]] == [160 * MB, 250 * MB]


def test_growth_applies_only_without_a_limit():
    driver = Driver(settings=FAST)
    driver.series([(t, 10) for t in range(0, 900, 15)])
    driver.series([(900, 20), (915, 20)])
    assert driver.reasons() == ["baseline"]


# --- samples ----------------------------------------------------------------------------------


def test_a_repeated_or_older_sample_is_ignored():
    driver = Driver()
    driver.series([(0, 30), (15, 40)])
    before = driver.state
    decision = driver.percent(15, 96)  # the metrics source repeated its timestamp
    assert driver.state is before
    assert not decision.capture
    assert decision.percent_of_limit == pytest.approx(40)


def test_samples_are_bounded_to_the_fit_window():
    driver = Driver(settings=FAST)
    driver.series([(t, 30) for t in range(0, 3600, 15)])
    assert len(driver.state.samples) == 120 // 15 + 1
    driver.series([(3600 + t / 10, 30) for t in range(5000)])  # absurdly fast sampling
    assert len(driver.state.samples) == MAX_SAMPLES
    driver.series([(10_000 + t * 500, 30) for t in range(5)])  # slow sampling keeps three
    assert len(driver.state.samples) == 3


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match="limit"):
        observe(new_state(RUN), MemorySample(T0, 1), 0, TriggerSettings())
    with pytest.raises(ValueError, match="limit"):
        project([], -1, T0, 120)


# --- settings ---------------------------------------------------------------------------------


def test_settings_sort_thresholds_and_reject_nonsense():
    assert TriggerSettings(thresholds=(95, 80, 90, 80)).thresholds == (80, 90, 95)
    for bad in (
        {"thresholds": (0,)},
        {"thresholds": (101,)},
        {"thresholds": (True,)},
        {"cooldown": -1},
        {"min_sample_interval": 0},
        {"min_sample_interval": 20, "sample_interval": 15},
        {"fit_window": float("nan")},
    ):
        with pytest.raises(ValueError):
            TriggerSettings(**bad)  # type: ignore[arg-type]


def test_samples_reject_nonsense():
    with pytest.raises(ValueError):
        MemorySample(float("inf"), 1)
    with pytest.raises(ValueError):
        MemorySample(T0, -1)
