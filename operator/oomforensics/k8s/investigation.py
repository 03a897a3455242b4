"""One MemoryInvestigation at work: each pass gathers what its parts observe, then writes once.

`InvestigationRunner.step()` is one pass, level-based: it reads the spec and the selected
pods (from kopf's index), lets the parts do their one job each, and writes the whole status
with one merge patch:

- `KillRecorder` (kills.py): OOM kills seen in pod versions, recorded once per run;
- `Sampler` (sampler.py): memory readings and trigger decisions per container run;
- `Capturer` (capturer.py): captures with backoff, recorded through the spool;
- `RunLedger` (runs.py): the snapshots of each run, rebuilt from the archive after a restart;
- `Summariser` (summary.py): the run's series (baseline and latest snapshots) judged off the loop;
- `StorageHealth` (storage.py), retention here; `StatusWriter` (status_writer.py);
- `Notifier` (notifier.py): the kills and suspected leaks told to spec.notify's sinks, in a
  task of its own (a sink never delays a pass).

They talk to the world through `Services` (services.py), which tests fake. Nothing a user can
get wrong raises: it ends up as a condition reason and message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from oomforensics.archive.retention import RetentionPolicy, apply_retention
from oomforensics.archive.store import Archive, ArchiveError
from oomforensics.k8s.api import GROUP, KIND, VERSION, ObjectRef
from oomforensics.k8s.capturer import Capturer
from oomforensics.k8s.conditions import Observation
from oomforensics.k8s.events import Events
from oomforensics.k8s.kills import KillRecorder
from oomforensics.k8s.notifier import Notifier
from oomforensics.k8s.runs import RunLedger
from oomforensics.k8s.sampler import Sampler
from oomforensics.k8s.services import Services, StorageProblem
from oomforensics.k8s.spec import InvalidSpec, InvestigationSpec, NotifySpec, parse_spec
from oomforensics.k8s.status import TargetStatus
from oomforensics.k8s.status_writer import Seen, StatusWriter
from oomforensics.k8s.storage import StorageFailure, StorageHealth
from oomforensics.k8s.summary import Summariser
from oomforensics.k8s.targets import Target, select_targets

log = logging.getLogger(__name__)

INCOMPLETE_GRACE = 3600.0  # seconds before an uncommitted snapshot folder is cleaned up
RETENTION_EVERY = 300.0  # seconds between two retention passes
INVALID_SPEC_RETRY = 15.0  # seconds until a spec that cannot be read is read again


class InvestigationRunner:
    """The work for one MemoryInvestigation; `step()` is one level-based pass."""

    def __init__(
        self,
        services: Services,
        namespace: str,
        name: str,
        uid: str,
        created_at: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,  # for the status writer's pacing
        default_notify: NotifySpec | None = None,  # the operator's sinks (OOMF_NOTIFY)
    ) -> None:
        self.services = services
        self.namespace = namespace
        self.name = name
        self.uid = uid
        self.spec: InvestigationSpec | None = None  # the last spec read (the pod handler's)
        events = Events(services, self.ref)
        self.runs = RunLedger(name)
        self.storage = StorageHealth(services, events)
        self.capturer = Capturer(services, namespace, self.runs, self.storage, events)
        self.sampler = Sampler(services, namespace, self.runs, self.capturer, events)
        self.summariser = Summariser(self.runs, events)
        # OOM kills since the investigation exists are its own, those while the operator was
        # down included (a restart must not lose them); older ones are not.
        since = created_at if created_at is not None else time.time()
        self.kills = KillRecorder(
            namespace, since, self.runs, self.summariser, events, self.sampler.last_sample
        )
        self.status = StatusWriter(services, namespace, name, clock)
        self.notifier = Notifier(services, namespace, name, uid, events)
        self.default_notify = default_notify
        self._last_retention = 0.0
        self._last_delay = 1.0  # seconds to this pass from the previous one, as it asked

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(f"{GROUP}/{VERSION}", KIND, self.namespace, self.name, self.uid)

    @property
    def wake(self) -> asyncio.Event:
        """Set when a pass is due now (a kill, or a container that started)."""
        return self.kills.wake

    def pod_changed(self, pod: Mapping[str, Any], spec: InvestigationSpec | None = None) -> bool:
        """A pod version from the pod event handler; True when it shows a new OOM kill."""
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if spec is not None and not spec.selector.matches(labels):
            return False
        return self.kills.pod_changed(pod)

    async def step(self, body: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> float:
        """One pass over the investigation; returns the seconds until the next one."""
        previous = self.status.previous(body)
        generation = int((body.get("metadata") or {}).get("generation") or 0)
        self.kills.load(previous)
        self.notifier.load(previous)
        notifications = self.notifier.status()
        try:
            spec = parse_spec(body.get("spec") or {})
        except InvalidSpec as exc:
            idle = Seen(generation, self._idle(previous, str(exc)), notifications=notifications)
            await self.status.write(idle, previous)
            return INVALID_SPEC_RETRY
        if spec.suspend:  # paused: the evidence (summary, kills, counts) stays in the status
            idle = Seen(generation, self._idle(previous, None), notifications=notifications)
            await self.status.write(idle, previous)
            return spec.sampling_interval
        self.spec = spec
        seen, delay = await self._observe(spec, pods, generation)
        await self.status.write(seen, previous)
        self._last_delay = delay
        return delay

    async def _observe(
        self, spec: InvestigationSpec, pods: Sequence[Mapping[str, Any]], generation: int
    ) -> tuple[Seen, float]:
        """Every part's one job for this pass, and what they saw."""
        targets = select_targets(pods, spec, self.namespace)
        for pod in pods:
            self.pod_changed(pod, spec)
        self.kills.forget_pods_except({str((p.get("metadata") or {}).get("uid")) for p in pods})
        archive, storage_error = await self._archive(spec)
        if archive is not None:
            await self.kills.record_pending(archive, spec)
            await self._drain_spool(archive)
        # A reading at most a third of this investigation's own interval old.
        sampled = await self.sampler.sample_all(targets, spec, archive, self._last_delay / 3)
        delay = min([spec.sampling_interval, *(s.next_in for s in sampled)])
        summary, summary_error, snapshots = None, None, self.runs.count or 0  # no archive
        if archive is not None:
            if storage_error is None and self.storage.failure is not None:
                storage_error = self.storage.failure
            summary, summary_error = await self._summary(archive, spec)
            await self._retention(archive, spec)
            snapshots = await self.runs.counted(archive, self.namespace)
        # Cheap, no I/O: the due events are delivered by the notifier's own task.
        self.notifier.observe(
            spec.notify if spec.notify is not None else self.default_notify,
            self.kills.recorded(),
            summary,
            self.storage.archive_url,
        )
        observation = Observation(
            storage_error=storage_error.pair() if storage_error else None,
            storage_used=self.storage.used,
            targets=len(targets),
            target_problems=tuple(t.problem for t in targets if t.problem),
            capture_errors=tuple(s.error for s in sampled if s.error),
            no_limit=tuple(f"{t.pod}/{t.container}" for t in targets if t.limit is None),
            snapshots=snapshots,
            summary=summary,
            summary_error=summary_error,
            oom_kills=self.kills.recorded(),
            other_terminations=self.kills.others(),
            notifications=self.notifier.condition(),
        )
        seen = Seen(
            generation,
            observation,
            targets=[self._target_status(t) for t in targets],
            last_capture=self.capturer.last,
            archive_url=self.storage.archive_url,
            notifications=self.notifier.status(),
        )
        return seen, delay

    async def _archive(
        self, spec: InvestigationSpec
    ) -> tuple[Archive | None, StorageFailure | None]:
        try:
            archive = await self.services.archive(spec.storage, self.namespace)
        except StorageProblem as exc:
            return None, StorageFailure(exc.reason, str(exc))
        self.storage.archive_url = archive.url
        return archive, None

    async def _summary(
        self, archive: Archive, spec: InvestigationSpec
    ) -> tuple[Mapping[str, Any] | None, str | None]:
        """The summary, or why there is none. A failing analysis must not stop the pass: the
        status (the kills, the snapshots taken) is still written, with the failure in it."""
        try:
            summarised = await self.summariser.latest(archive, spec.top_n)
        except Exception as exc:
            log.exception("summary of %s/%s", self.namespace, self.name)
            return None, f"the summary failed: {type(exc).__name__}: {exc}"
        return summarised.summary, summarised.error

    async def _drain_spool(self, archive: Archive) -> None:
        with contextlib.suppress(ArchiveError):
            spool = self.services.spool(archive)
            if spool.pending() and await spool.drain(archive, attempts=1):
                self.runs.recount()
            await self.storage.note_spool(archive)

    def _target_status(self, target: Target) -> TargetStatus:
        keys = self.runs.keys(target.run)
        return TargetStatus(
            pod=target.pod,
            uid=target.uid,
            container=target.container,
            restart_count=target.restart_count,
            limit_bytes=target.limit,
            working_set_bytes=self.sampler.working_sets.get(target.run),
            snapshots=len(keys),
            last_snapshot=keys[-1].path() if keys else None,
            last_error=target.problem or self.capturer.errors.get(target.run),
        )

    def _idle(self, previous: Mapping[str, Any], spec_error: str | None) -> Observation:
        """Not watching (suspended, or a spec to fix): what was found stays in the status."""
        count = (previous.get("snapshots") or {}).get("count")
        return Observation(
            spec_error=spec_error,
            suspended=spec_error is None,
            storage_used=self.storage.used,
            snapshots=self.runs.count or (count if isinstance(count, int) else 0),
            summary=previous.get("summary"),
            oom_kills=self.kills.recorded(),
            other_terminations=self.kills.others(),
            notifications=self.notifier.condition(),
        )

    async def aclose(self) -> None:
        """The daemon stops: delivery stops too (what waits is in the status's ledger)."""
        await self.notifier.aclose()

    async def _retention(self, archive: Archive, spec: InvestigationSpec) -> None:
        """Apply spec.retention; baselines, latest and pre-OOM snapshots are never deleted."""
        if time.time() - self._last_retention <= RETENTION_EVERY:
            return
        self._last_retention = time.time()
        self.runs.recount()  # whatever changed the archive meanwhile, the count follows
        try:
            deleted = await apply_retention(
                archive,
                RetentionPolicy(spec.keep_newest, spec.max_bytes_per_run),
                protected=self.runs.protected(),
                namespace=self.namespace,
                investigation=self.name,
            )
            # Uploads cut short (the operator died between files and manifest): never
            # announced, so nothing is lost; what a spool will upload again stays.
            cutoff = datetime.now(UTC) - timedelta(seconds=INCOMPLETE_GRACE)
            pending = frozenset(self.services.spool(archive).pending())
            await archive.delete_incomplete(cutoff, self.namespace, self.name, keep=pending)
        except ArchiveError as exc:
            log.warning("retention of %s/%s: %s", self.namespace, self.name, exc)
            return
        if deleted:
            self.runs.forget(deleted)
