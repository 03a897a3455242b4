"""OOM kills of the watched containers: noticed in pod versions, recorded once per run.

Every pod version the operator sees (the pod event handler and each pass) is compared with
the previous version of the same pod (same uid) by the pure `detect_oom_kills`. A kill is
recorded once per container run: its `EndOfRun` (`oom.json`) beside the run's snapshots,
an entry in status.oomKills with the pre-OOM snapshot and a comparison, and Events on the
investigation and the pod. Kills already in the status are not recorded again after an
operator restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from oomforensics.archive.manifest import Manifest
from oomforensics.archive.store import Archive, ArchiveError
from oomforensics.k8s import metrics
from oomforensics.k8s.api import ObjectRef
from oomforensics.k8s.conditions import oom_kill_from_json
from oomforensics.k8s.events import EventReason, Events, EventType
from oomforensics.k8s.runs import RunLedger
from oomforensics.k8s.spec import InvestigationSpec
from oomforensics.k8s.status import OomKillStatus, oom_summary_json
from oomforensics.k8s.summary import Summariser
from oomforensics.triggers import ContainerRun, OomKill, detect_oom_kills
from oomforensics.triggers.end_of_run import Ending, EndOfRun

Pod = Mapping[str, Any]
RECORD_ATTEMPTS = 5  # passes that try to record one kill before it is given up (and logged)
log = logging.getLogger(__name__)


class KillRecorder:
    """The OOM kills of one investigation's pods, since `since` (POSIX seconds)."""

    def __init__(
        self,
        namespace: str,
        since: float,
        ledger: RunLedger,
        summariser: Summariser,
        events: Events,
    ) -> None:
        self._namespace = namespace
        self._since = since
        self._ledger = ledger
        self._summariser = summariser
        self._events = events
        self.wake = asyncio.Event()  # set when a kill or a new run wants a pass now
        self._pods: dict[str, Pod] = {}  # uid -> the last version seen
        self._pending: list[tuple[Pod, OomKill]] = []
        self._recorded: dict[ContainerRun, OomKillStatus] = {}
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
        kills = detect_oom_kills(previous, pod, since=self._since)
        self._pods[uid] = pod
        self._pending.extend((pod, kill) for kill in kills)
        if kills or _running_runs(pod) - _running_runs(previous or {}):
            self.wake.set()
        return bool(kills)

    def forget_pods_except(self, uids: set[str]) -> None:
        """Drop the versions of pods no longer there (their kills, if any, are queued)."""
        self._pods = {uid: pod for uid, pod in self._pods.items() if uid in uids}

    def load(self, status: Mapping[str, Any]) -> None:
        """The kills a previous status recorded (once: after that, this process knows more)."""
        if self._loaded:
            return
        self._loaded = True
        for doc in status.get("oomKills") or []:
            kill = oom_kill_from_json(doc)
            if kill is not None:
                run = ContainerRun(self._namespace, kill.pod, kill.uid, kill.container, kill.run)
                self._recorded[run] = kill

    def recorded(self) -> tuple[OomKillStatus, ...]:
        return tuple(sorted(self._recorded.values(), key=lambda k: k.time))

    async def record_pending(self, archive: Archive, spec: InvestigationSpec) -> None:
        """Record the kills noticed since the last pass.

        A kill leaves the queue once recorded: one whose recording fails is tried again next
        pass (its pod version, already seen, will not show it as new again), up to
        RECORD_ATTEMPTS times; meanwhile the pass goes on (sampling must not stop for it).
        """
        still: list[tuple[Pod, OomKill]] = []
        for pod, kill in self._pending:
            if kill.run in self._recorded:
                continue
            try:
                await self._record(archive, spec, pod, kill)
            except Exception:
                attempts = self._attempts[kill.run] = self._attempts.get(kill.run, 0) + 1
                log.exception("recording the OOM kill of %s (attempt %d)", kill.run, attempts)
                if attempts < RECORD_ATTEMPTS:
                    still.append((pod, kill))
        self._pending = still

    async def _record(
        self, archive: Archive, spec: InvestigationSpec, pod: Pod, kill: OomKill
    ) -> None:
        run = kill.run
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
        finished = kill.termination.finished_at_seconds()
        moment = datetime.fromtimestamp(finished, UTC) if finished else datetime.now(UTC)
        self._recorded[run] = OomKillStatus(
            pod=run.pod,
            uid=run.pod_uid,
            container=run.container,
            run=run.restart_count,
            time=moment,
            exit_code=kill.termination.exit_code,
            pre_oom_snapshot=pre.path() if pre else None,
            percent_of_limit=percent,
            summary=summary,
        )
        metrics.record_oom_kill(
            self._namespace, self._ledger.investigation, evidence=pre is not None
        )
        evidence = (
            f"; last snapshot before the kill: {pre.path()}"
            + (f" at {percent:.1f}% of the limit" if percent is not None else "")
            if pre
            else "; no snapshot of that run was taken"
        )
        message = (
            f"container {run.container} of pod {run.pod} (run {run.restart_count}) was "
            f"OOM-killed, exit code {kill.termination.exit_code}{evidence}"
        )
        record = EndOfRun(
            run=run,
            ending=Ending.OOM_KILLED,
            time=moment,
            exit_code=kill.termination.exit_code,
            evidence=message,
            pre_oom_snapshot=pre.path() if pre else None,
            percent_of_limit=percent,
            limit_bytes=manifest.limit_bytes if manifest else None,
            last_working_set_bytes=manifest.working_set_bytes if manifest else None,
            summary=summary,
        )
        with contextlib.suppress(ArchiveError):
            await archive.put_run_file(
                self._ledger.investigation, run, record.file_name, record.to_bytes()
            )
        meta = pod.get("metadata") or {}
        await self._events.post(EventReason.OOM_KILLED, message, EventType.WARNING)
        await self._events.post(
            EventReason.OOM_KILLED,
            message,
            EventType.WARNING,
            about=ObjectRef.of({"apiVersion": "v1", "kind": "Pod", "metadata": meta}),
        )


def _running_runs(pod: Mapping[str, Any]) -> set[tuple[str, int]]:
    """(container, restartCount) of the containers running in a pod version."""
    return {
        (str(c.get("name")), int(c.get("restartCount") or 0))
        for c in (pod.get("status") or {}).get("containerStatuses") or []
        if "running" in (c.get("state") or {})
    }
