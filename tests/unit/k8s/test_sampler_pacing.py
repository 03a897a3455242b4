"""How often the sampler reads a run: a run never read yet is retried at the fastest interval
(the kubelet says a container runs a moment before its process listens, and a leak that
reaches the limit in 5 s is dead after one 15 s interval), and a PodMetrics window the run
was already judged on is replaced by the target's own fresher /metrics reading."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import pytest

from oomforensics.capture.errors import CaptureError
from oomforensics.k8s import sampler as sampler_module
from oomforensics.k8s.api import ApiFailure
from oomforensics.k8s.sampler import READING_GRACE, Sampler
from oomforensics.k8s.spec import InvestigationSpec, parse_spec
from oomforensics.k8s.targets import Target
from oomforensics.triggers import MemorySample

MiB = 2**20
SPEC = parse_spec({"selector": {"matchLabels": {"app": "db"}}, "endpoint": {"port": 6060}})
TARGET = Target(
    pod="db-0",
    uid="6f1c2a9e-0d7b-4a51-9c1e-3b8e2f0a7d44",
    container="app",
    restart_count=0,
    limit=100 * MiB,
    ip="127.0.0.1",
    port=6060,
    running=True,
    namespace="shop",
)


@dataclass
class Readings:
    """PodMetrics and the target's /metrics page, as a test sets them."""

    window: tuple[str, int] | None = None  # (timestamp, working set) of the PodMetrics list
    rss: int | None = None  # process_resident_memory_bytes on /metrics; None: not answering
    metrics_api: bool = True  # False: PodMetrics cannot be listed (no metrics-server)
    fetched: list[str] = field(default_factory=list)

    async def pod_metrics(self, namespace: str, max_age: float | None = None) -> list[Any]:
        if not self.metrics_api:
            raise ApiFailure.of(404, "404 page not found")
        if self.window is None:
            return []
        stamp, working_set = self.window
        usage = {"memory": f"{working_set // 1024}Ki"}
        return [
            {
                "metadata": {"name": "db-0"},
                "timestamp": stamp,
                "containers": [{"name": "app", "usage": usage}],
            }
        ]

    async def fetch(self, spec: InvestigationSpec, url: str, what: str) -> bytes:
        self.fetched.append(what)
        if self.rss is None:
            raise CaptureError("connection refused", url, what)
        return f"process_resident_memory_bytes {self.rss}\n".encode()


@dataclass
class NoCaptures:
    errors: dict[Any, str] = field(default_factory=dict)


def sampler(readings: Readings) -> Sampler:
    # No archive is given: the ledger, capturer and events are never asked to do anything.
    unused = cast(Any, None)
    return Sampler(cast(Any, readings), "shop", unused, cast(Any, NoCaptures()), unused)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The sampler's time.time(), set by the test (now[0])."""
    now = [1000.0]
    monkeypatch.setattr(sampler_module, "time", SimpleNamespace(time=lambda: now[0]))
    return now


async def test_a_run_never_read_is_retried_at_the_fastest_interval_for_a_while(
    clock: list[float],
) -> None:
    readings = Readings(metrics_api=False)  # no PodMetrics, and the target not listening yet
    reader = sampler(readings)
    fastest = SPEC.trigger_settings().min_sample_interval
    told = []
    for _ in range(int(READING_GRACE / fastest) + 2):
        (sampled,) = await reader.sample_all([TARGET], SPEC, None, fresh=0)
        told.append((sampled.next_in, sampled.error))
        clock[0] += sampled.next_in
    assert told[0] == (fastest, None)  # a start-up, not a fault: again in a second
    # Not for ever: an endpoint that never answers is told, and read at the spec's interval.
    assert told[-1][0] == SPEC.sampling_interval
    assert told[-1][1] is not None and "connection refused" in told[-1][1]
    # Once read, the run is paced by its trigger state again.
    readings.rss = 10 * MiB
    await reader.sample_all([TARGET], SPEC, None, fresh=0)
    assert reader.working_sets[TARGET.run] == 10 * MiB


async def test_a_run_that_stops_answering_is_told_after_the_grace(clock: list[float]) -> None:
    """The kubelet says the killed container still runs for a moment: no flapping condition."""
    readings = Readings(rss=10 * MiB, metrics_api=False)
    reader = sampler(readings)
    await reader.sample_all([TARGET], SPEC, None, fresh=0)
    readings.rss = None
    clock[0] += 1
    (sampled,) = await reader.sample_all([TARGET], SPEC, None, fresh=0)
    assert (sampled.next_in, sampled.error) == (SPEC.trigger_settings().min_sample_interval, None)
    clock[0] += READING_GRACE
    (sampled,) = await reader.sample_all([TARGET], SPEC, None, fresh=0)
    assert sampled.next_in == SPEC.sampling_interval
    assert sampled.error is not None and "connection refused" in sampled.error


async def test_the_same_podmetrics_window_again_gives_way_to_the_targets_own_reading() -> None:
    readings = Readings(window=("2026-12-02T06:00:00Z", 40 * MiB), rss=60 * MiB)
    reader = sampler(readings)
    await reader.sample_all([TARGET], SPEC, None, fresh=0)
    assert reader.working_sets[TARGET.run] == 40 * MiB and readings.fetched == []
    # A second later metrics-server still has the same window: the target is read instead.
    await reader.sample_all([TARGET], SPEC, None, fresh=0)
    assert readings.fetched == ["metrics"]
    assert reader.working_sets[TARGET.run] == 60 * MiB
    # A new window is used as it comes, without asking the target.
    readings.window = ("2026-12-02T06:00:10Z", 70 * MiB)
    await reader.sample_all([TARGET], SPEC, None, fresh=0)
    assert readings.fetched == ["metrics"]
    assert reader.working_sets[TARGET.run] == 70 * MiB


async def test_a_stale_window_stays_the_reading_when_the_target_does_not_answer() -> None:
    readings = Readings(window=("2026-12-02T06:00:00Z", 40 * MiB), rss=None)
    reader = sampler(readings)
    await reader.sample_all([TARGET], SPEC, None, fresh=0)
    (sampled,) = await reader.sample_all([TARGET], SPEC, None, fresh=0)
    assert reader.working_sets[TARGET.run] == 40 * MiB
    assert sampled.error is None or "connection refused" not in sampled.error


async def test_the_reading_before_an_end_is_not_its_successors(clock: list[float]) -> None:
    """The kubelet reports a restart a moment after the new process shows in the readings:
    the run may be fed its successor's first reading, which must not stand for its end."""
    readings = Readings(rss=95 * MiB)
    reader = sampler(readings)
    await reader.sample_all([TARGET], SPEC, None, fresh=0)  # the run near its limit
    clock[0] = 1003.0
    readings.rss = 2 * MiB  # the next process, still reported as this run
    await reader.sample_all([TARGET], SPEC, None, fresh=0)
    killed_at = 1001.5
    last = reader.last_sample(TARGET.run, before=killed_at)
    assert last is not None and (last.at, last.working_set) == (1000.0, 95 * MiB)
    assert reader.last_sample(TARGET.run) == MemorySample(1003.0, 2 * MiB)  # no end: the latest
