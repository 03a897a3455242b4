"""OOM kills of the watched containers, told apart from other ends: noticed in pod versions,
recorded once per run.

Every pod version the operator sees (the pod event handler and each pass) is compared with
the previous version of the same pod (same uid) by the pure `detect_ends`. When an end is
noticed, its facts are gathered at once: the kubelet's reason and exit code, the pod's
eviction (status.reason and message), the container's memory limit, and the sampler's last
working set of the run (asked now: the next run's first sample replaces it). The pure
`attribute` (triggers/attribution.py) tells what it was. An end is recorded once per container
run: its `EndOfRun` beside the run's snapshots (`oom.json` for an OOM kill, `exit.json` for
any other end), an entry in status.oomKills (OOM kills) or status.otherTerminations (a
SIGKILL from outside, a SIGTERM, an eviction, an OOMKilled the exit code contradicts) with the
last snapshot before it and a comparison, and Events. Ends already in the status are not
recorded again after an operator restart; after one the last reading is the last snapshot's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from oomforensics.archive.manifest import Manifest
from oomforensics.archive.store import Archive, ArchiveError
from oomforensics.k8s import metrics
from oomforensics.k8s.api import ObjectRef
from oomforensics.k8s.events import EventReason, Events, EventType
from oomforensics.k8s.runs import RunLedger
from oomforensics.k8s.spec import InvestigationSpec
from oomforensics.k8s.status import OomKillStatus, oom_summary_json
from oomforensics.k8s.summary import Summariser
from oomforensics.k8s.targets import memory_limit
from oomforensics.triggers import ContainerRun, MemorySample, ObservedEnd, detect_ends
from oomforensics.triggers.attribution import (
    FRESH,
    Attribution,
    EndFacts,
    Reading,
    ReadingSource,
    attribute,
)
from oomforensics.triggers.end_of_run import EndOfRun

Pod = Mapping[str, Any]
RECORD_ATTEMPTS = 5  # passes that try to record one kill before it is given up (and logged)
FRESH_INTERVALS = 3  # a reading this many sampling intervals before an end is still fresh
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NoticedEnd:
    """An end as noticed: the pod version that showed it, the end, and the facts that do not
    wait (the container's limit, the sampler's last reading of the run)."""

    pod: Pod
    end: ObservedEnd
    limit: int | None
    reading: MemorySample | None

    @property
    def run(self) -> ContainerRun:
        return self.end.run


class KillRecorder:
    """The OOM kills of one investigation's pods, since `since` (POSIX seconds)."""

    def __init__(
        self,
        namespace: str,
        since: float,
        ledger: RunLedger,
        summariser: Summariser,
        events: Events,
        last_sample: Callable[[ContainerRun, float | None], MemorySample | None] = (
            lambda run, before: None
        ),
    ) -> None:
        self._namespace = namespace
        self._last_sample = last_sample
        self._since = since
        self._ledger = ledger
        self._summariser = summariser
        self._events = events
        self.wake = asyncio.Event()  # set when a kill or a new run wants a pass now
        self._pods: dict[str, Pod] = {}  # uid -> the last version seen
        self._pending: list[NoticedEnd] = []
        self._recorded: dict[ContainerRun, OomKillStatus] = {}  # OOM kills
        self._others: dict[ContainerRun, OomKillStatus] = {}  # the other ends told apart
        self._attempts: dict[ContainerRun, int] = {}  # failed attempts to record a kill
        self._loaded = False

    def pod_changed(self, pod: Pod) -> bool:
        """Note a pod version (already selected); queue the kills it shows for the first time.

        A container that starts (a new pod, or a restart: a new run) sets `wake` too: its
        baseline is taken now, not up to a sampling interval later, since a fast leak may
        not live that long."""
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        if not uid:
            return False
        previous = self._pods.get(uid)
        ends = detect_ends(previous, pod, since=self._since)
        self._pods[uid] = pod
        self._pending.extend(
            NoticedEnd(
                pod,
                end,
                _limit(pod, end.run.container),
                self._last_sample(end.run, end.termination.finished_at_seconds()),
            )
            for end in ends
        )
        if ends or _running_runs(pod) - _running_runs(previous or {}):
            self.wake.set()
        return bool(ends)

    def forget_pods_except(self, uids: set[str]) -> None:
        """Drop the versions of pods no longer there (their kills, if any, are queued)."""
        self._pods = {uid: pod for uid, pod in self._pods.items() if uid in uids}

    def load(self, status: Mapping[str, Any]) -> None:
        """The kills a previous status recorded (once: after that, this process knows more)."""
        if self._loaded:
            return
        self._loaded = True
        for field, into in (("oomKills", self._recorded), ("otherTerminations", self._others)):
            for doc in status.get(field) or []:
                kill = OomKillStatus.from_json(doc)
                if kill is not None:
                    run = ContainerRun(
                        self._namespace, kill.pod, kill.uid, kill.container, kill.run
                    )
                    into[run] = kill

    def recorded(self) -> tuple[OomKillStatus, ...]:
        """The OOM kills (status.oomKills), oldest first."""
        return tuple(sorted(self._recorded.values(), key=lambda k: k.time))

    def others(self) -> tuple[OomKillStatus, ...]:
        """The other ends told apart (status.otherTerminations), oldest first."""
        return tuple(sorted(self._others.values(), key=lambda k: k.time))

    async def record_pending(self, archive: Archive, spec: InvestigationSpec) -> None:
        """Record the kills noticed since the last pass.

        A kill leaves the queue once recorded: one whose recording fails is tried again next
        pass (its pod version, already seen, will not show it as new again), up to
        RECORD_ATTEMPTS times; meanwhile the pass goes on (sampling must not stop for it).
        """
        still: list[NoticedEnd] = []
        for noticed in self._pending:
            if noticed.run in self._recorded or noticed.run in self._others:
                continue
            try:
                await self._record(archive, spec, noticed)
            except Exception:
                attempts = self._attempts[noticed.run] = self._attempts.get(noticed.run, 0) + 1
                log.exception("recording the end of %s (attempt %d)", noticed.run, attempts)
                if attempts < RECORD_ATTEMPTS:
                    still.append(noticed)
        self._pending = still

    async def _record(self, archive: Archive, spec: InvestigationSpec, noticed: NoticedEnd) -> None:
        run, termination = noticed.run, noticed.end.termination
        keys = await self._ledger.load(archive, run)
        pre = keys[-1] if keys else None
        manifest: Manifest | None = None
        summary = None
        if pre is not None:
            with contextlib.suppress(ArchiveError):
                manifest = await archive.read_manifest(pre)
            series = self._ledger.series(keys)  # the run's series, as its summary judges it
            if series:
                full = await self._summariser.judge(archive, series, spec.top_n)
                summary = oom_summary_json(full.summary) if full.summary else None
        percent = (
            100 * manifest.working_set_bytes / manifest.limit_bytes
            if manifest is not None and manifest.limit_bytes
            else None
        )
        finished = termination.finished_at_seconds()
        moment = datetime.fromtimestamp(finished, UTC) if finished else datetime.now(UTC)
        limit = noticed.limit if noticed.limit is not None else _manifest_limit(manifest)
        facts = EndFacts(
            reason=termination.reason,
            exit_code=termination.exit_code,
            signal=termination.signal,
            finished_at=finished,
            pod_end=noticed.end.pod_end,
            limit=limit,
            reading=_reading(noticed.reading, manifest),
        )
        told = attribute(facts, fresh=max(FRESH, FRESH_INTERVALS * spec.sampling_interval))
        if told is None:  # detect_ends only passes ends attribute tells; kept for safety
            return
        entry = OomKillStatus(
            pod=run.pod,
            uid=run.pod_uid,
            container=run.container,
            run=run.restart_count,
            time=moment,
            exit_code=termination.exit_code,
            pre_oom_snapshot=pre.path() if pre else None,
            percent_of_limit=percent,
            summary=summary,
            attribution=told,
        )
        message = _message(run, told, pre.path() if pre else None, percent)
        record = EndOfRun(
            run=run,
            ending=told.ending,
            time=moment,
            exit_code=termination.exit_code,
            evidence=message,
            pre_oom_snapshot=pre.path() if pre else None,
            percent_of_limit=percent,
            limit_bytes=limit,
            last_working_set_bytes=told.last_reading.working_set if told.last_reading else None,
            summary=summary,
            attribution=told,
        )
        try:
            await archive.put_run_file(
                self._ledger.investigation, run, record.file_name, record.to_bytes()
            )
        except ArchiveError as exc:  # the status and the Events still tell it
            log.warning("cannot store %s of %s: %s", record.file_name, run, exc)
        # Listed once its record is written (or could not be): a failure before this line
        # leaves the end pending, tried again next pass.
        (self._recorded if told.oom_killed else self._others)[run] = entry
        if told.oom_killed:
            metrics.record_oom_kill(
                self._namespace, self._ledger.investigation, evidence=pre is not None
            )
        if not told.oom_killed:  # the kubelet's own Events tell the pod's side
            await self._events.post(EventReason.CONTAINER_ENDED, message, EventType.WARNING)
            return
        meta = noticed.pod.get("metadata") or {}
        await self._events.post(EventReason.OOM_KILLED, message, EventType.WARNING)
        await self._events.post(
            EventReason.OOM_KILLED,
            message,
            EventType.WARNING,
            about=ObjectRef.of({"apiVersion": "v1", "kind": "Pod", "metadata": meta}),
        )


def _message(run: ContainerRun, told: Attribution, pre: str | None, percent: float | None) -> str:
    """What the Events and the run record say: which run, what ended it, and the evidence."""
    what = "was OOM-killed" if told.oom_killed else f"ended: {told.ending.value}, not an OOM kill"
    snapshot = (
        f"; last snapshot before the kill: {pre}"
        + (f" at {percent:.1f}% of the limit" if percent is not None else "")
        if pre
        else "; no snapshot of that run was taken"
    )
    return (
        f"container {run.container} of pod {run.pod} (run {run.restart_count}) {what}, "
        f"exit code {told.exit_code}: {told.evidence}{snapshot}"
    )


def _limit(pod: Pod, container: str) -> int | None:
    """The container's memory limit in this pod version (the one the run ran with)."""
    for spec in (pod.get("spec") or {}).get("containers") or []:
        if spec.get("name") == container:
            return memory_limit(spec)
    return None


def _manifest_limit(manifest: Manifest | None) -> int | None:
    return manifest.limit_bytes if manifest is not None and manifest.limit_bytes else None


def _reading(sample: MemorySample | None, manifest: Manifest | None) -> Reading | None:
    """The last working set before the end: the sampler's, else (after an operator restart)
    the last snapshot's."""
    if sample is not None:
        return Reading(sample.working_set, sample.at, ReadingSource.SAMPLER)
    if manifest is not None:
        at = manifest.captured_at.timestamp()
        return Reading(manifest.working_set_bytes, at, ReadingSource.SNAPSHOT)
    return None


def _running_runs(pod: Mapping[str, Any]) -> set[tuple[str, int]]:
    """(container, restartCount) of the containers running in a pod version."""
    return {
        (str(c.get("name")), int(c.get("restartCount") or 0))
        for c in (pod.get("status") or {}).get("containerStatuses") or []
        if "running" in (c.get("state") or {})
    }
