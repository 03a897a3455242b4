"""Helpers that drive the trigger engine the way the operator and `watch` do."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from oomforensics.triggers import (
    ContainerRun,
    Decision,
    MemorySample,
    TriggerSettings,
    TriggerState,
    new_state,
    observe,
    record_capture,
)

MB = 1 << 20
LIMIT = 1024 * MB
T0 = 1_700_000_000.0  # POSIX seconds of the first sample
RUN = ContainerRun(
    namespace="shop",
    pod="checkout-0",
    pod_uid="0c6b1a52-3f1e-4a7e-9a51-2f3c1d9e8b70",
    container="app",
    restart_count=0,
)


def at_percent(percent: float, limit: int = LIMIT) -> int:
    return round(limit * percent / 100)


@dataclass
class Capture:
    at: float  # seconds after T0
    working_set: int
    percent: float | None
    reason: str


@dataclass
class Driver:
    """One container run fed sample by sample; captures succeed unless told otherwise."""

    settings: TriggerSettings = field(default_factory=TriggerSettings)
    limit: int | None = LIMIT
    state: TriggerState = field(default_factory=lambda: new_state(RUN))
    captures: list[Capture] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)

    def sample(self, seconds: float, working_set: int, *, succeed: bool = True) -> Decision:
        sample = MemorySample(at=T0 + seconds, working_set=working_set)
        self.state, decision = observe(self.state, sample, self.limit, self.settings)
        self.decisions.append(decision)
        if decision.capture and succeed:
            assert decision.reason is not None
            self.state = record_capture(self.state, sample.at, decision.reason)
            self.captures.append(
                Capture(seconds, working_set, decision.percent_of_limit, decision.reason)
            )
        return decision

    def percent(self, seconds: float, percent: float, *, succeed: bool = True) -> Decision:
        assert self.limit is not None
        return self.sample(seconds, at_percent(percent, self.limit), succeed=succeed)

    def series(self, points: Iterable[tuple[float, float]]) -> list[Decision]:
        """(seconds, percent of limit) pairs."""
        return [self.percent(t, p) for t, p in points]

    def reasons(self) -> list[str]:
        return [c.reason for c in self.captures]


def follow(
    level: Callable[[float], float],
    *,
    until: float,
    settings: TriggerSettings | None = None,
    limit: int = LIMIT,
) -> Driver:
    """Sample `level(t)` (a fraction of the limit) at the times the engine asks for, as the
    operator does, until the limit is reached (the OOM kill) or `until` seconds pass."""
    driver = Driver(settings=settings or TriggerSettings(), limit=limit)
    t = 0.0
    while t < until:
        fraction = level(t)
        if fraction >= 1.0:
            break
        decision = driver.sample(t, int(fraction * limit))
        t += decision.next_sample_in
    return driver
