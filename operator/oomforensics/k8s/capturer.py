"""Taking a snapshot of a container run when the triggers ask: capture, record, back off.

A run whose captures fail waits before the next attempt (exponentially, up to
MAX_RETRY_DELAY), except for a capture reason not tried yet: a threshold is worth one
attempt. Only news is an Event (the same files failing again is not); the condition's
message always has the latest.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from oomforensics.archive.layout import SnapshotKey
from oomforensics.archive.recorder import Reading, record_snapshot
from oomforensics.archive.store import Archive, ArchiveError
from oomforensics.capture.client import CaptureResult
from oomforensics.k8s import metrics
from oomforensics.k8s.events import EventReason, Events, EventType
from oomforensics.k8s.metrics import CaptureOutcome
from oomforensics.k8s.runs import RunLedger
from oomforensics.k8s.services import Services
from oomforensics.k8s.spec import InvestigationSpec
from oomforensics.k8s.storage import StorageHealth
from oomforensics.k8s.targets import Target, pprof_base
from oomforensics.triggers import ContainerRun

MAX_RETRY_DELAY = 300.0  # seconds between capture attempts at an endpoint that keeps failing


@dataclass
class Backoff:
    """A container run whose captures fail: when to try again, and what was already said."""

    attempts: int = 0
    retry_at: float = 0.0
    failing_files: frozenset[str] = frozenset()  # the files the last attempt could not get
    reasons: set[str] = field(default_factory=set)  # capture reasons already attempted

    def due(self, reason: str, now: float) -> bool:
        """Back off, except for a reason not tried yet (a threshold is worth one attempt)."""
        return now >= self.retry_at or reason not in self.reasons

    def failed(self, reason: str, errors: Mapping[str, Exception], interval: float) -> bool:
        """Note one more failure; True when it is news (an Event is worth it).

        The same files failing again is not: the details (byte counts, a timeout instead of
        a size cap on a loaded machine) vary between attempts, and an Event per attempt would
        be a storm.
        """
        self.attempts += 1
        self.retry_at = time.time() + min(MAX_RETRY_DELAY, interval * 2**self.attempts)
        self.reasons.add(reason)
        files = frozenset(errors)
        news = files != self.failing_files
        self.failing_files = files
        return news


@dataclass(frozen=True, slots=True)
class LastCapture:
    key: SnapshotKey
    reason: str


class Capturer:
    """Captures and records snapshots of one investigation's container runs."""

    def __init__(
        self,
        services: Services,
        namespace: str,
        ledger: RunLedger,
        storage: StorageHealth,
        events: Events,
    ) -> None:
        self._services = services
        self._namespace = namespace
        self._ledger = ledger
        self._storage = storage
        self._events = events
        self.errors: dict[ContainerRun, str] = {}  # the last capture error of each run
        self._backoff: dict[ContainerRun, Backoff] = {}
        self.last: LastCapture | None = None

    def due(self, run: ContainerRun, reason: str, now: float) -> bool:
        backoff = self._backoff.get(run)
        return backoff is None or backoff.due(reason, now)

    async def capture(
        self,
        target: Target,
        spec: InvestigationSpec,
        archive: Archive,
        reason: str,
        working_set: int,
    ) -> SnapshotKey | None:
        """Capture `target` now and record it; None when that failed (the error is kept).

        The trigger has just decided (the sampler calls this at once): the time from here to
        the snapshot being durable is the trigger-to-durable latency of the metrics."""
        decided = time.monotonic()
        run = target.run
        captured = await self._services.capture(
            spec, pprof_base(target, spec.endpoint, self._namespace)
        )
        counted, took = (self._namespace, self._ledger.investigation, reason), _took(captured)
        if not captured.ok:
            metrics.record_capture(*counted, CaptureOutcome.CAPTURE_FAILED, capture_seconds=took)
            message = "; ".join(f"{n}: {e}" for n, e in captured.errors.items())
            self.errors[run] = f"{target.pod}/{target.container}: capture failed: {message}"
            backoff = self._backoff.setdefault(run, Backoff())
            if backoff.failed(reason, captured.errors, spec.sampling_interval):
                await self._events.post(
                    EventReason.CAPTURE_FAILED, self.errors[run], EventType.WARNING
                )
            return None
        self.errors.pop(run, None)
        self._backoff.pop(run, None)
        try:
            recorded = await record_snapshot(
                archive,
                self._services.spool(archive),
                self._ledger.investigation,
                run,
                captured.started_at,
                reason,
                captured.files,
                Reading(working_set, target.limit),
                node=target.node,
                image=target.image,
            )
        except (ArchiveError, OSError) as exc:
            metrics.record_capture(*counted, CaptureOutcome.STORAGE_FAILED, capture_seconds=took)
            await self._storage.write_failed(archive, exc)
            return None
        metrics.record_capture(
            *counted,
            CaptureOutcome.SPOOLED if recorded.spooled else CaptureOutcome.STORED,
            capture_seconds=took,
            durable_seconds=time.monotonic() - decided,
            size=sum(len(data) for data in captured.files.values()),
        )
        await self._storage.note_spool(archive)
        self._storage.used = True
        self._ledger.add(recorded.key, captured.files)
        self.last = LastCapture(recorded.key, reason)
        return recorded.key


def _took(captured: CaptureResult) -> float:
    return (captured.finished_at - captured.started_at).total_seconds()
