"""A leak that starts after a long plateau, sampled at the operator's default 15 s with real
timing jitter: the quick fit must see it, so that a predicted capture comes before 80 % and
the 80 % threshold is still caught on the way up (the quick fit once held only two samples)."""

from __future__ import annotations

import pytest

from oomforensics.triggers import ContainerRun, MemorySample, observe, record_capture, state_for_run
from oomforensics.triggers.engine import recent_fit_window
from oomforensics.triggers.model import PREDICTED, TriggerSettings, reason_threshold

LIMIT = 1_000_000_000
JITTER = 0.05  # seconds each sample comes later than asked, as timers and requests do


def captures_after(leak_start: float, percent_per_second: float) -> list[tuple[str, float]]:
    """(reason, % of limit) of each capture once the leak has started, up to the limit."""
    settings = TriggerSettings()
    state = state_for_run(None, ContainerRun("shop", "app-0", "uid", "app", 0))

    def working_set(at: float) -> int:
        return int(LIMIT * (0.2 + max(0.0, at - leak_start) * percent_per_second / 100))

    at, taken = 0.0, []
    while working_set(at) < LIMIT:
        state, decision = observe(state, MemorySample(at, working_set(at)), LIMIT, settings)
        if decision.capture and decision.reason:
            state = record_capture(state, at, decision.reason)
            if at > leak_start:
                taken.append((decision.reason, 100 * working_set(at) / LIMIT))
        at += decision.next_sample_in + JITTER
    return taken


def test_the_quick_fit_holds_the_last_three_samples_when_sampling_is_sparse() -> None:
    settings = TriggerSettings()  # 15 s sampling, a 120 s fit: a quarter is 30 s
    sparse = [MemorySample(at, 1) for at in (0.0, 15.2, 30.4)]
    assert recent_fit_window(sparse, 30.4, settings) == pytest.approx(30.4)
    dense = [MemorySample(at, 1) for at in range(0, 40)]
    assert recent_fit_window(dense, 39.0, settings) == 30.0
    spread = [MemorySample(at, 1) for at in (0.0, 200.0, 400.0)]
    assert recent_fit_window(spread, 400.0, settings) == settings.fit_window


@pytest.mark.parametrize("rate", [0.5, 1.0, 2.0, 3.0])  # % of the limit per second
@pytest.mark.parametrize("phase", [0.0, 5.0, 10.0])  # where in a sampling interval it starts
def test_a_leak_after_a_plateau_is_predicted_and_caught_at_80(rate: float, phase: float) -> None:
    taken = captures_after(300.0 + phase, rate)
    predicted = [p for reason, p in taken if reason == PREDICTED]
    assert predicted and predicted[0] < 80, taken
    thresholds = [reason_threshold(reason) for reason, _ in taken]
    assert 80 in thresholds or any(80 <= p < 90 for _, p in taken), taken
