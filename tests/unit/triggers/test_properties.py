"""Properties that hold for any memory series: no capture floods, thresholds fire once until
re-armed, sampling stays in bounds, the state stays small and survives a JSON round trip."""

import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from oomforensics.triggers import (
    MemorySample,
    TriggerSettings,
    TriggerState,
    new_state,
    observe,
    reason_threshold,
    record_capture,
)
from oomforensics.triggers.engine import MAX_SAMPLES, MIN_FIT_SAMPLES
from tests.unit.triggers.drive import LIMIT, RUN, T0

SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")

trigger_settings = st.builds(
    TriggerSettings,
    interval=st.sampled_from([0.0, 20.0, 60.0, 600.0]),
    thresholds=st.one_of(
        st.just((80, 90, 95)), st.lists(st.integers(1, 100), max_size=4).map(tuple)
    ),
    hysteresis=st.floats(0, 20),
    horizon=st.sampled_from([0.0, 30.0, 120.0]),
    fit_window=st.sampled_from([10.0, 60.0, 120.0]),
    growth_ratio=st.sampled_from([0.0, 0.2, 0.5]),
    cooldown=st.floats(0, 120),
    baseline=st.booleans(),
    average_window=st.sampled_from([30.0, 600.0]),
)

# (seconds since the previous sample, percent of the limit, whether a capture would succeed)
steps = st.lists(
    st.tuples(
        # 0 repeats the previous timestamp: a stale sample
        st.one_of(st.floats(0.0, 90.0), st.sampled_from([0.0, 1.0, 2.0, 5.0, 15.0])),
        st.one_of(
            st.floats(0, 110),
            # around the default thresholds and their re-arm points
            st.sampled_from([50.0, 74.0, 76.0, 79.9, 80.0, 84.0, 86.0, 90.0, 91.0, 95.0, 96.0]),
        ),
        st.booleans(),
    ),
    max_size=120,
)


def run_series(series, trigger, limit):
    """Feed the series; return the samples seen, the captures taken and every state."""
    state = new_state(RUN)
    t = T0
    seen: list[tuple[float, float]] = []  # (time, percent) of every fresh sample
    captures: list[tuple[float, str]] = []
    states: list[TriggerState] = [state]
    for gap, percent, succeed in series:
        t += gap
        sample = MemorySample(t, int(LIMIT * percent / 100))
        fresh = not state.samples or t > state.samples[-1].at
        state, decision = observe(state, sample, limit, trigger)
        assert trigger.min_sample_interval <= decision.next_sample_in <= trigger.sample_interval
        if fresh:
            seen.append((t, 100 * sample.working_set / LIMIT))
        else:
            assert not decision.capture
        if decision.capture:
            assert decision.reason is not None and SLUG.match(decision.reason)
            if succeed:
                state = record_capture(state, t, decision.reason)
                captures.append((t, decision.reason))
        states.append(state)
    return seen, captures, states


@settings(max_examples=300, deadline=None)
@given(steps, trigger_settings, st.booleans())
def test_captures_are_a_cooldown_apart_except_escalating_thresholds(series, trigger, limited):
    _, captures, _ = run_series(series, trigger, LIMIT if limited else None)
    last_threshold: int | None = None
    previous: float | None = None
    for at, reason in captures:
        threshold = reason_threshold(reason)
        if previous is not None and at - previous < trigger.cooldown:
            assert threshold is not None, (previous, at, reason)
            assert last_threshold is None or threshold > last_threshold, (reason, last_threshold)
        if threshold is not None:
            last_threshold = threshold
        previous = at
    # so any cooldown-long stretch holds at most one capture plus one per threshold
    for at, _ in captures:
        burst = [c for c in captures if at <= c[0] < at + trigger.cooldown]
        assert len(burst) <= 1 + len(trigger.thresholds)


@settings(max_examples=300, deadline=None)
@given(steps, trigger_settings)
def test_a_threshold_fires_again_only_after_falling_below_threshold_minus_hysteresis(
    series, trigger
):
    seen, captures, _ = run_series(series, trigger, LIMIT)
    fired_at: dict[int, float] = {}
    for at, reason in captures:
        threshold = reason_threshold(reason)
        if threshold is None:
            continue
        percent = next(p for t, p in seen if t == at)
        assert percent >= threshold
        if threshold in fired_at:
            between = [p for t, p in seen if fired_at[threshold] < t <= at]
            assert min(between) < threshold - trigger.hysteresis
        # a threshold capture also stands for the lower thresholds it crossed
        for lower in trigger.thresholds:
            if lower <= threshold and percent >= lower:
                fired_at[lower] = at


@settings(max_examples=300, deadline=None)
@given(steps, trigger_settings, st.booleans())
def test_the_state_is_bounded_and_survives_a_json_round_trip(series, trigger, limited):
    _, _, states = run_series(series, trigger, LIMIT if limited else None)
    for state in states:
        assert len(state.samples) <= MAX_SAMPLES
        if state.samples:
            newest = state.samples[-1].at
            old = state.samples[:-MIN_FIT_SAMPLES]
            assert all(s.at >= newest - trigger.fit_window for s in old)
        stored = json.loads(json.dumps(state.to_json(), allow_nan=False))
        assert TriggerState.from_json(stored) == state


@settings(max_examples=200, deadline=None)
@given(steps, trigger_settings)
def test_the_first_fresh_sample_of_a_run_is_captured_when_baselines_are_on(series, trigger):
    seen, captures, _ = run_series(series, trigger, LIMIT)
    if trigger.baseline and seen and series[0][2]:
        assert captures and captures[0][0] == seen[0][0]
