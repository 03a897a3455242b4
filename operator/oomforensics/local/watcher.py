"""Local mode: the operator's engine (triggers, capture, archive) against one process.

One loop: read the working set, let the triggers decide, capture and store when told, sleep
as long as the triggers say (shorter as the limit nears), and stop as soon as the process is
gone. Then tell whether the kernel OOM-killed it and which snapshot was the last before.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from oomforensics.archive.layout import SnapshotKey
from oomforensics.archive.recorder import Reading, record_snapshot
from oomforensics.archive.spool import Spool
from oomforensics.archive.store import Archive, ArchiveError
from oomforensics.capture.client import PprofClient
from oomforensics.local.memory import MemorySource
from oomforensics.triggers.engine import new_state, observe, record_capture
from oomforensics.triggers.model import (
    CaptureReason,
    ContainerRun,
    Decision,
    MemorySample,
    TriggerSettings,
)


@dataclass(frozen=True, slots=True)
class Capture:
    key: SnapshotKey
    path: str
    percent_of_limit: float | None
    working_set: int
    decided_at: float  # the sample that triggered it (POSIX seconds)
    durable_at: float  # when the store (or the local spool) had every file and the manifest
    spooled: bool  # waiting in the local spool for the store to come back

    @property
    def latency(self) -> float:
        """Seconds from the triggering sample to a durable snapshot."""
        return self.durable_at - self.decided_at


@dataclass(frozen=True, slots=True)
class Exit:
    """How the process ended, as far as this machine can tell."""

    exit_code: int | None  # 137 for SIGKILL; None when not our child
    oom_killed: bool  # the kernel's OOM counter moved (or SIGKILL at the limit, when no cgroup)
    evidence: str  # what the conclusion rests on, in words


@dataclass
class WatchResult:
    captures: list[Capture] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    exit: Exit | None = None
    last_sample: MemorySample | None = None

    @property
    def pre_oom(self) -> Capture | None:
        return self.captures[-1] if self.exit and self.exit.oom_killed and self.captures else None


class Reporter:
    """Progress lines; the CLI prints them, tests collect them."""

    def sample(self, sample: MemorySample, decision: Decision, limit: int | None) -> None: ...

    def captured(self, capture: Capture, reason: str) -> None: ...

    def failed(self, message: str) -> None: ...


ExitProbe = Callable[[], Awaitable[Exit | None]]
"""Returns how the process ended once it has, None while it runs."""


@dataclass
class Watcher:
    pprof_url: str
    memory: MemorySource
    limit: int | None
    investigation: str  # the archive folder the runs go under (namespace `local` by default)
    container_run: ContainerRun
    archive: Archive
    spool: Spool
    client: PprofClient
    exit_probe: ExitProbe
    settings: TriggerSettings = field(default_factory=TriggerSettings)
    reporter: Reporter = field(default_factory=Reporter)
    exited: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> WatchResult:
        result = WatchResult()
        state = new_state(self.container_run)
        while True:
            reading = await self.memory.read()
            if reading is None:
                break
            sample = MemorySample(time.time(), reading.working_set)
            result.last_sample = sample
            state, decision = observe(state, sample, self.limit, self.settings)
            self.reporter.sample(sample, decision, self.limit)
            if decision.capture and decision.reason is not None:
                capture = await self._capture(decision, sample, reading.rss, result)
                if capture is not None:
                    state = record_capture(state, sample.at, decision.reason)
            if await self._wait_for_exit(decision.next_sample_in):
                break
            if await self.exit_probe() is not None:
                break
        result.exit = await self._exit_status()
        return result

    async def _wait_for_exit(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.exited.wait(), timeout=seconds)
        return self.exited.is_set()

    async def _exit_status(self) -> Exit:
        # The kernel's verdict can lag the process's disappearance by a moment.
        deadline = time.monotonic() + 5.0
        while True:
            status = await self.exit_probe()
            if status is not None or time.monotonic() > deadline:
                return status or Exit(
                    None, False, "the process is gone; its exit status is unknown"
                )
            await asyncio.sleep(0.1)

    async def _capture(
        self, decision: Decision, sample: MemorySample, rss: int | None, result: WatchResult
    ) -> Capture | None:
        reason = decision.reason or CaptureReason.MANUAL
        captured = await self.client.capture(self.pprof_url)
        if not captured.ok:
            message = "; ".join(str(e) for e in captured.errors.values()) or "capture failed"
            result.failures.append(message)
            self.reporter.failed(message)
            return None
        try:
            recorded = await record_snapshot(
                self.archive,
                self.spool,
                self.investigation,
                self.container_run,
                captured.started_at,
                reason,
                captured.files,
                Reading(sample.working_set, self.limit, rss),
            )
        except ArchiveError as exc:
            result.failures.append(str(exc))
            self.reporter.failed(str(exc))
            return None
        capture = Capture(
            recorded.key,
            recorded.path,
            decision.percent_of_limit,
            sample.working_set,
            sample.at,
            time.time(),
            recorded.spooled,
        )
        result.captures.append(capture)
        self.reporter.captured(capture, reason)
        return capture
