"""Memory readings and trigger decisions for each container run an investigation watches.

Readings come from one PodMetrics list per namespace; a container missing from it (or every
container, without a metrics API) is read from its own /metrics page. Each reading goes to
the pure trigger engine with the run's state; a capture it asks for goes to the Capturer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from oomforensics.archive.store import Archive
from oomforensics.capture.errors import CaptureError
from oomforensics.capture.prometheus import RSS_METRIC, resident_bytes
from oomforensics.k8s.api import ApiFailure
from oomforensics.k8s.capturer import Capturer
from oomforensics.k8s.events import EventReason, Events, EventType
from oomforensics.k8s.runs import RunLedger
from oomforensics.k8s.services import Services
from oomforensics.k8s.spec import InvestigationSpec
from oomforensics.k8s.targets import Target, measured_at, metrics_url, working_sets
from oomforensics.triggers import (
    ContainerRun,
    MemorySample,
    TriggerState,
    observe,
    reason_threshold,
    record_capture,
    state_for_run,
)

# Seconds a run's readings may fail before it is told (retried every min_sample_interval
# meanwhile): the kubelet reports a container running a moment before its process listens,
# and still running a moment after the kernel killed it.
READING_GRACE = 30.0


@dataclass(frozen=True, slots=True)
class Sampled:
    """One target's pass: when to sample it next, and what is wrong with it (if anything)."""

    next_in: float
    error: str | None = None


class Sampler:
    """Readings, trigger states and the captures they call for, per container run."""

    def __init__(
        self,
        services: Services,
        namespace: str,
        ledger: RunLedger,
        capturer: Capturer,
        events: Events,
    ) -> None:
        self._services = services
        self._namespace = namespace
        self._ledger = ledger
        self._capturer = capturer
        self._events = events
        self._states: dict[ContainerRun, TriggerState] = {}
        self.working_sets: dict[ContainerRun, int] = {}  # the latest reading of each run
        # When PodMetrics measured each run's latest reading (metrics-server's timestamp, up
        # to its resolution before the operator read it): how old it was at a kill.
        self._measured: dict[ContainerRun, float] = {}
        self._measured_at: dict[tuple[str, str], float] = {}  # of the last PodMetrics list
        self._metrics_problem: str | None = None  # why PodMetrics cannot be listed
        self._fed: dict[ContainerRun, float] = {}  # the PodMetrics window each run was fed
        self._unread: dict[ContainerRun, float] = {}  # first failed try of a run never read

    def _unreadable(
        self, run: ContainerRun, spec: InvestigationSpec, problem: str | None
    ) -> Sampled:
        """A failed reading: retried at the fastest interval, and told only once it has
        lasted READING_GRACE since the run's last reading (or its first try). A fast leak can
        reach the limit within one full interval of a new run, and a restart is no fault."""
        now = time.time()
        state = self._states.get(run)
        if state is not None and state.samples:
            since = state.samples[-1].at
        else:
            since = self._unread.setdefault(run, now)
        if now - since < READING_GRACE:
            return Sampled(spec.trigger_settings().min_sample_interval)
        return Sampled(spec.sampling_interval, problem)

    def last_sample(self, run: ContainerRun, before: float | None = None) -> MemorySample | None:
        """The run's latest reading taken at `before` or earlier (the end's finishedAt), while
        the run's state is kept (the kill recorder asks when it notices the run's end, before
        the next run's first sample replaces it). A reading after the end is of the next
        process: the kubelet reports the restart a moment after PodMetrics and /metrics show
        the new process, so the run may have been fed its successor's first reading."""
        state = self._states.get(run)
        if state is None or not state.samples:
            return None
        latest = state.samples[-1]
        measured = MemorySample(
            min(latest.at, self._measured.get(run, latest.at)), latest.working_set
        )
        candidates = [*state.samples[:-1], measured]
        if before is not None:
            # finishedAt has whole seconds: a reading within that second may precede the end.
            candidates = [c for c in candidates if c.at <= before + 1.0]
        return candidates[-1] if candidates else None

    async def sample_all(
        self,
        targets: Sequence[Target],
        spec: InvestigationSpec,
        archive: Archive | None,
        fresh: float,
    ) -> list[Sampled]:
        """Every running target once; PodMetrics at most `fresh` seconds old."""
        # Pods gone (deleted, recreated under a new uid) leave nothing behind.
        live = {t.uid for t in targets}
        self._states = {r: v for r, v in self._states.items() if r.pod_uid in live}
        self._fed = {r: t for r, t in self._fed.items() if r.pod_uid in live}
        self._unread = {r: t for r, t in self._unread.items() if r.pod_uid in live}
        self.working_sets = {r: w for r, w in self.working_sets.items() if r.pod_uid in live}
        watched = [t for t in targets if t.problem is None and t.running]
        if not watched:
            return []
        try:
            items = await self._services.pod_metrics(self._namespace, fresh)
            metrics, self._measured_at = working_sets(items), measured_at(items)
            self._metrics_problem = None
        except ApiFailure as exc:  # no metrics-server: each target's /metrics instead
            metrics = {}
            self._metrics_problem = f"metrics.k8s.io: {exc}"
        # Together: one slow endpoint must not delay another target's pre-OOM capture.
        return list(
            await asyncio.gather(
                *(self.sample(t, spec, metrics.get((t.pod, t.container)), archive) for t in watched)
            )
        )

    async def sample(
        self,
        target: Target,
        spec: InvestigationSpec,
        working_set: int | None,
        archive: Archive | None,
    ) -> Sampled:
        run = target.run
        measured = self._measured_at.get((target.pod, target.container))
        if working_set is not None and measured is not None and self._fed.get(run) == measured:
            # The PodMetrics window this run was already judged on (metrics-server measures
            # every 10 s or so; the run may be sampled every second near its limit): the
            # target's own /metrics is fresher, and the same window again is no new sample.
            fresh, _ = await self._resident_set(target, spec)
            if fresh is not None:
                working_set, measured = fresh, None
        if working_set is None:  # not in PodMetrics (yet, or no metrics API at all)
            working_set, problem = await self._resident_set(target, spec)
            measured = None  # read from the target just now
            if working_set is None:
                return self._unreadable(run, spec, problem)
        self._unread.pop(run, None)
        self._fed = {r: t for r, t in self._fed.items() if r.pod_uid != run.pod_uid}
        if measured is not None:
            self._fed[run] = measured
        # One run per pod: a restart (or a recreated pod's new uid) replaces the old one.
        self.working_sets = {r: w for r, w in self.working_sets.items() if r.pod_uid != run.pod_uid}
        self.working_sets[run] = working_set
        state = self._states.get(run)
        if state is None and archive is not None:
            state = await self._ledger.restored_state(archive, run)
        state = state_for_run(state, run)
        sample = MemorySample(time.time(), working_set)
        self._measured = {r: t for r, t in self._measured.items() if r.pod_uid != run.pod_uid}
        self._measured[run] = measured if measured is not None else sample.at
        state, decision = observe(state, sample, target.limit, spec.trigger_settings())
        self._states = {r: s for r, s in self._states.items() if r.pod_uid != run.pod_uid}
        self._states[run] = state
        errors = self._capturer.errors
        if not (decision.capture and decision.reason):
            return Sampled(decision.next_sample_in, errors.get(run))
        if archive is None:
            return Sampled(decision.next_sample_in, "no archive to store snapshots in")
        if not self._capturer.due(run, decision.reason, sample.at):
            return Sampled(decision.next_sample_in, errors.get(run))
        key = await self._capturer.capture(target, spec, archive, decision.reason, working_set)
        if key is not None:
            self._states[run] = record_capture(state, sample.at, decision.reason)
            percent = (
                f" at {decision.percent_of_limit:.1f}% of the limit"
                if decision.percent_of_limit is not None
                else ""
            )
            await self._events.post(
                EventReason.SNAPSHOT_CAPTURED, f"{decision.reason}{percent}: {key.path()}"
            )
            threshold = reason_threshold(decision.reason)
            if threshold is not None:
                await self._events.post(
                    EventReason.THRESHOLD_CROSSED,
                    f"pod {target.pod} container {target.container} passed {threshold}% of "
                    f"its memory limit{percent}",
                    EventType.WARNING,
                )
        return Sampled(decision.next_sample_in, errors.get(run))

    async def _resident_set(
        self, target: Target, spec: InvestigationSpec
    ) -> tuple[int | None, str | None]:
        """The fallback memory reading: process_resident_memory_bytes from the target."""
        url = metrics_url(target, spec.endpoint, self._namespace)
        try:
            page = await self._services.fetch(spec, url, "metrics")
        except CaptureError as exc:
            text, rss = str(exc), None
        else:
            rss = resident_bytes(page.decode("utf-8", errors="replace"))
            text = f"{url}: no {RSS_METRIC}"
        if rss is not None:
            return rss, None
        if self._metrics_problem is None:
            return None, None  # PodMetrics lag a new pod by a scrape; they will come
        return None, (
            f"{target.pod}/{target.container}: no memory reading: {self._metrics_problem}; {text}"
        )
