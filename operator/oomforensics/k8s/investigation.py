"""One MemoryInvestigation at work: sample, decide, capture, archive, tell (the service layer).

`InvestigationRunner.step()` is one pass, level-based: it reads the spec, the selected pods
(from kopf's index), one PodMetrics list for the namespace (a container missing from it, or
every container when no metrics API is served, is read from its own /metrics), decides per
container run with the pure triggers, captures and stores what they ask for, and writes the
whole status with a merge patch. The pure pieces (targets.py, conditions.py, status.py) are
tested without a cluster. Nothing a user can get wrong raises: it ends up as a condition
reason and message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from oomforensics.analysis.comparison import compare
from oomforensics.analysis.snapshot import snapshot_from_files
from oomforensics.archive.layout import SnapshotKey
from oomforensics.archive.manifest import MANIFEST_NAME, build_manifest
from oomforensics.archive.retention import RetentionPolicy, apply_retention
from oomforensics.archive.store import Archive, ArchiveError
from oomforensics.capture.errors import CaptureError
from oomforensics.capture.prometheus import RSS_METRIC, resident_bytes
from oomforensics.k8s.api import GROUP, KIND, VERSION, ApiFailure, ObjectRef
from oomforensics.k8s.conditions import (
    Observation,
    decide_conditions,
    oom_kill_from_json,
    replacing_patch,
)
from oomforensics.k8s.services import Services, StorageProblem
from oomforensics.k8s.spec import InvalidSpec, InvestigationSpec, parse_spec
from oomforensics.k8s.status import (
    OomKillStatus,
    TargetStatus,
    build_status,
    oom_summary_json,
    summary_json,
)
from oomforensics.k8s.targets import (
    Target,
    metrics_url,
    pprof_base,
    select_targets,
    working_sets,
)
from oomforensics.pprof.errors import ProfileError
from oomforensics.pprof.heaptext import parse_memstats
from oomforensics.triggers import (
    ContainerRun,
    MemorySample,
    TriggerState,
    detect_oom_kills,
    observe,
    reason_threshold,
    record_capture,
    state_for_run,
)
from oomforensics.triggers.end_of_run import Ending, EndOfRun

log = logging.getLogger(__name__)
JSON = dict[str, Any]


INCOMPLETE_GRACE = 3600.0  # seconds before an uncommitted snapshot folder is cleaned up
MAX_RETRY_DELAY = 300.0  # seconds between capture attempts at an endpoint that keeps failing
# A status whose only news is the targets' memory readings (new with every metrics scrape) is
# written at most this often; anything else is written at once. At 100 investigations that
# is 100 patches a minute instead of 400 (benchmarks/bench_scale.py).
READINGS_REFRESH = 60.0


@dataclass
class _Failing:
    """A container run whose captures fail: when to try again, and what was already said."""

    attempts: int = 0
    retry_at: float = 0.0
    failing_files: frozenset[str] = frozenset()  # the files the last attempt could not get
    reasons: set[str] = field(default_factory=set)  # capture reasons already attempted

    def due(self, reason: str, now: float) -> bool:
        """Back off, except for a reason not tried yet (a threshold is worth one attempt)."""
        return now >= self.retry_at or reason not in self.reasons


@dataclass
class _RunRecord:
    """Snapshots of one container run, oldest first (rebuilt from the archive after a restart)."""

    keys: list[SnapshotKey] = field(default_factory=list)
    loaded: bool = False


class InvestigationRunner:
    """The work for one MemoryInvestigation; `step()` is one level-based pass."""

    def __init__(
        self,
        services: Services,
        namespace: str,
        name: str,
        uid: str,
        created_at: float | None = None,
    ) -> None:
        self.services = services
        self.namespace = namespace
        self.name = name
        self.uid = uid
        # OOM kills since the investigation exists are its own, those while the operator was
        # down included (a restart must not lose them); older ones are not.
        self.started_at = created_at if created_at is not None else time.time()
        self.wake = asyncio.Event()
        self._states: dict[ContainerRun, TriggerState] = {}
        self._pods: dict[str, Mapping[str, Any]] = {}  # uid -> last pod seen (OOM detection)
        self._runs: dict[ContainerRun, _RunRecord] = {}
        self._oom: dict[ContainerRun, OomKillStatus] = {}
        self._oom_loaded = False
        self._pending_kills: list[tuple[Mapping[str, Any], Any]] = []
        self._errors: dict[ContainerRun, str] = {}
        self._failing: dict[ContainerRun, _Failing] = {}
        self._last_working_set: dict[ContainerRun, int] = {}
        self._summaries: dict[tuple[str, str], JSON] = {}
        # Files of the snapshots taken by this process: one taken as the container died may
        # lack goroutine.txt, and a diff without it cannot see leaked connections.
        self._files: dict[SnapshotKey, frozenset[str]] = {}
        self._snapshot_count: int | None = None
        self._last_capture: tuple[SnapshotKey, str] | None = None
        self._storage_used = False
        self._last_retention = 0.0
        self._written: Mapping[str, Any] | None = None  # the status as last written
        self._written_at = 0.0  # time.monotonic() of that write
        self.spec: InvestigationSpec | None = None
        self._storage_failure: tuple[str, str] | None = None  # the last store write failed
        self._metrics_problem: str | None = None  # why PodMetrics cannot be listed
        self._last_delay = 1.0  # seconds to this pass from the previous one, as it asked
        self._archive_url: str | None = None  # status.archive: where the snapshots go

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(f"{GROUP}/{VERSION}", KIND, self.namespace, self.name, self.uid)

    # -- pods (from the pod event handler and from each pass) --

    def pod_changed(self, pod: Mapping[str, Any], spec: InvestigationSpec | None = None) -> bool:
        """Note a pod version; queue the OOM kills it shows that were not seen before.

        A container that starts (a new pod, or a restart: a new run) wakes the pass too: its
        baseline is taken now, not up to a sampling interval later, since a fast leak may not
        live that long."""
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        if not uid:
            return False
        if spec is not None and not spec.selector.matches(meta.get("labels") or {}):
            return False
        previous = self._pods.get(uid)
        kills = detect_oom_kills(previous, pod, since=self.started_at)
        self._pods[uid] = pod
        for kill in kills:
            self._pending_kills.append((pod, kill))
        if kills or _running_runs(pod) - _running_runs(previous or {}):
            self.wake.set()
        return bool(kills)

    # -- one pass --

    async def step(self, body: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> float:
        """One pass over the investigation; returns the seconds until the next one."""
        status_before: Mapping[str, Any] = (
            self._written if self._written is not None else body.get("status") or {}
        )
        generation = int((body.get("metadata") or {}).get("generation") or 0)
        self._load_oom_kills(status_before)
        try:
            spec = parse_spec(body.get("spec") or {})
        except InvalidSpec as exc:
            await self._publish(generation, status_before, self._idle(status_before, str(exc)), [])
            return 15.0
        if spec.suspend:  # paused: the evidence (summary, kills, counts) stays in the status
            await self._publish(generation, status_before, self._idle(status_before, None), [])
            return spec.sampling_interval
        self.spec = spec
        targets = select_targets(pods, spec)
        for pod in pods:
            self.pod_changed(pod, spec)
        try:
            archive: Archive | None = await self.services.archive(spec.storage, self.namespace)
            storage_error: tuple[str, str] | None = None
        except StorageProblem as exc:
            archive, storage_error = None, (exc.reason, str(exc))
        if archive is not None:
            self._archive_url = archive.url
            await self._handle_kills(archive, spec)
            with contextlib.suppress(ArchiveError):
                spool = self.services.spool(archive)
                if spool.pending():
                    await spool.drain(archive, attempts=1)
                await self._note_spool(archive)

        delay = spec.sampling_interval
        capture_errors: list[str] = []
        if targets:
            try:
                # A reading at most a third of this investigation's own interval old.
                fresh = self._last_delay / 3
                metrics = working_sets(await self.services.pod_metrics(self.namespace, fresh))
                self._metrics_problem = None
            except ApiFailure as exc:  # no metrics-server: each target's /metrics instead
                metrics = {}
                self._metrics_problem = f"metrics.k8s.io: {exc}"
            work = [
                self._sample(t, spec, metrics.get((t.pod, t.container)), archive)
                for t in targets
                if t.problem is None and t.running
            ]
            results = await asyncio.gather(*work)
            for next_in, error in results:
                delay = min(delay, next_in)
                if error:
                    capture_errors.append(error)
        if archive is not None and storage_error is None:
            storage_error = self._storage_failure
        summary, summary_error = await self._summary(archive, spec) if archive else (None, None)
        if archive is not None and time.time() - self._last_retention > 300:
            self._last_retention = time.time()
            await self._retention(archive, spec)
        if self._snapshot_count is None and archive is not None:
            with contextlib.suppress(ArchiveError):
                self._snapshot_count = len(await archive.list_snapshots(self.namespace, self.name))
        observation = Observation(
            storage_error=storage_error,
            storage_used=self._storage_used,
            targets=len(targets),
            target_problems=tuple(t.problem for t in targets if t.problem),
            capture_errors=tuple(capture_errors),
            no_limit=tuple(f"{t.pod}/{t.container}" for t in targets if t.limit is None),
            snapshots=self._snapshot_count or 0,
            summary=summary,
            summary_error=summary_error,
            oom_kills=tuple(self._oom_list()),
        )
        await self._publish(generation, status_before, observation, targets)
        self._last_delay = delay
        return delay

    def _idle(self, previous: Mapping[str, Any], spec_error: str | None) -> Observation:
        """Not watching (suspended, or a spec to fix): what was found stays in the status."""
        count = (previous.get("snapshots") or {}).get("count")
        return Observation(
            spec_error=spec_error,
            suspended=spec_error is None,
            storage_used=self._storage_used,
            snapshots=self._snapshot_count or (count if isinstance(count, int) else 0),
            summary=previous.get("summary"),
            oom_kills=tuple(self._oom_list()),
        )

    async def _retention(self, archive: Archive, spec: InvestigationSpec) -> None:
        """Apply spec.retention; baselines, latest and pre-OOM snapshots are never deleted."""
        protected = {k for r in self._runs.values() if r.keys for k in (r.keys[0], r.keys[-1])}
        try:
            deleted = await apply_retention(
                archive,
                RetentionPolicy(spec.keep_newest, spec.max_bytes_per_run),
                protected=protected,
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
            gone = set(deleted)
            for record in self._runs.values():
                record.keys = [k for k in record.keys if k not in gone]
            self._snapshot_count = max(0, (self._snapshot_count or 0) - len(gone))

    async def _sample(
        self,
        target: Target,
        spec: InvestigationSpec,
        working_set: int | None,
        archive: Archive | None,
    ) -> tuple[float, str | None]:
        run = target.run
        if working_set is None:  # not in PodMetrics (yet, or no metrics API at all)
            working_set, problem = await self._resident_set(target, spec)
            if working_set is None:
                return spec.sampling_interval, problem
        self._last_working_set = {
            r: w for r, w in self._last_working_set.items() if r.pod_uid != run.pod_uid
        }
        self._last_working_set[run] = working_set
        state = self._states.get(run)
        if state is None and archive is not None:
            state = await self._restored_state(archive, target)
        state = state_for_run(state, run)
        sample = MemorySample(time.time(), working_set)
        state, decision = observe(state, sample, target.limit, spec.trigger_settings())
        self._states = {r: s for r, s in self._states.items() if r.pod_uid != run.pod_uid}
        self._states[run] = state
        if not (decision.capture and decision.reason):
            return decision.next_sample_in, self._errors.get(run)
        if archive is None:
            return decision.next_sample_in, "no archive to store snapshots in"
        failing = self._failing.get(run)
        if failing is not None and not failing.due(decision.reason, sample.at):
            return decision.next_sample_in, self._errors.get(run)
        key = await self._capture(target, spec, archive, decision.reason, working_set)
        if key is not None:
            self._states[run] = record_capture(state, sample.at, decision.reason)
            percent = (
                f" at {decision.percent_of_limit:.1f}% of the limit"
                if decision.percent_of_limit is not None
                else ""
            )
            await self._event("SnapshotCaptured", f"{decision.reason}{percent}: {key.path()}")
            threshold = reason_threshold(decision.reason)
            if threshold is not None:
                await self._event(
                    "ThresholdCrossed",
                    f"pod {target.pod} container {target.container} passed {threshold}% of its "
                    f"memory limit{percent}",
                    "Warning",
                )
        return decision.next_sample_in, self._errors.get(run)

    async def _resident_set(
        self, target: Target, spec: InvestigationSpec
    ) -> tuple[int | None, str | None]:
        """The fallback memory reading: process_resident_memory_bytes from the target."""
        proxy = spec.endpoint.access == "apiserver-proxy"
        client = self.services.client(self.services.capture_settings(spec), proxy)
        url = metrics_url(target, spec.endpoint, self.namespace)
        try:
            page = await client.fetch(url, "metrics")
        except CaptureError as exc:
            text, rss = str(exc), None
        else:
            rss = resident_bytes(page.decode("utf-8", errors="replace"))
            text = f"{url}: no {RSS_METRIC}"
        finally:
            if proxy:
                await client.aclose()
        if rss is not None:
            return rss, None
        if self._metrics_problem is None:
            return None, None  # PodMetrics lag a new pod by a scrape; they will come
        return None, (
            f"{target.pod}/{target.container}: no memory reading: {self._metrics_problem}; {text}"
        )

    async def _restored_state(self, archive: Archive, target: Target) -> TriggerState:
        """After an operator restart: the run's stored captures count (no second baseline)."""
        state = state_for_run(None, target.run)
        record = await self._run_record(archive, target.run)
        for key in record.keys:
            with contextlib.suppress(ValueError):
                state = record_capture(state, key.captured_at.timestamp(), key.reason)
        return state

    async def _run_record(self, archive: Archive, run: ContainerRun) -> _RunRecord:
        record = self._runs.setdefault(run, _RunRecord())
        if not record.loaded:
            try:
                stored = await archive.list_run(self.name, run)
            except ArchiveError:
                return record
            record.keys = sorted(set(record.keys) | set(stored), key=SnapshotKey.sort_key)
            record.loaded = True
        return record

    async def _capture(
        self,
        target: Target,
        spec: InvestigationSpec,
        archive: Archive,
        reason: str,
        working_set: int,
    ) -> SnapshotKey | None:
        where = target.run
        settings = self.services.capture_settings(spec)
        proxy = spec.endpoint.access == "apiserver-proxy"
        client = self.services.client(settings, proxy)
        base = pprof_base(target, spec.endpoint, self.namespace)
        try:
            async with self.services.capture_slots:
                captured = await client.capture(base)
        finally:
            if proxy:
                await client.aclose()
        if not captured.ok:
            message = "; ".join(f"{n}: {e}" for n, e in captured.errors.items())
            self._errors[where] = f"{target.pod}/{target.container}: capture failed: {message}"
            if self._failed(where, reason, captured.errors, spec.sampling_interval):
                await self._event("CaptureFailed", self._errors[where], "Warning")
            return None
        self._errors.pop(where, None)
        self._failing.pop(where, None)
        key = SnapshotKey(
            investigation=self.name,
            container_run=target.run,
            captured_at=captured.started_at,
            reason=reason,
        )
        memstats = None
        if "heap.txt" in captured.files:
            with contextlib.suppress(ProfileError):
                text = captured.files["heap.txt"]
                memstats = parse_memstats(text).integers()
        manifest = build_manifest(
            key,
            captured.files,
            working_set_bytes=working_set,
            limit_bytes=target.limit,
            node=target.node,
            image=target.image,
            memstats=memstats,
        )
        try:
            await self.services.spool(archive).submit(archive, key, captured.files, manifest)
        except (ArchiveError, OSError) as exc:
            self._storage_failure = ("StorageUnavailable", f"{archive.url}: {exc}")
            await self._event("StorageUnavailable", str(self._storage_failure[1]), "Warning")
            return None
        await self._note_spool(archive)
        self._storage_used = True
        record = self._runs.setdefault(key.container_run, _RunRecord())
        record.keys.append(key)
        self._files[key] = frozenset(captured.files)
        self._snapshot_count = (self._snapshot_count or 0) + 1
        self._last_capture = (key, reason)
        return key

    async def _note_spool(self, archive: Archive) -> None:
        """Snapshots waiting in the spool mean the store is down: say so (they are safe)."""
        pending = len(self.services.spool(archive).pending())
        if pending:
            message = (
                f"{archive.url} does not answer: {pending} snapshot(s) kept in the local spool, "
                "uploaded as soon as it does"
            )
            if self._storage_failure is None:
                await self._event("StorageUnavailable", message, "Warning")
            self._storage_failure = ("StorageUnavailable", message)
        elif self._storage_failure is not None:
            self._storage_failure = None

    def _failed(
        self,
        where: ContainerRun,
        reason: str,
        errors: Mapping[str, Exception],
        interval: float,
    ) -> bool:
        """Back off exponentially; True when this failure is news (an Event is worth it).

        The same files failing again is not: the details (byte counts, a timeout instead of
        a size cap on a loaded machine) vary between attempts, and an Event per attempt would
        be a storm; the condition's message always has the latest.
        """
        failing = self._failing.setdefault(where, _Failing())
        failing.attempts += 1
        failing.retry_at = time.time() + min(MAX_RETRY_DELAY, interval * 2**failing.attempts)
        failing.reasons.add(reason)
        files = frozenset(errors)
        news = files != failing.failing_files
        failing.failing_files = files
        return news

    # -- OOM kills --

    def _load_oom_kills(self, status: Mapping[str, Any]) -> None:
        if self._oom_loaded:
            return
        self._oom_loaded = True
        for doc in status.get("oomKills") or []:
            kill = oom_kill_from_json(doc)
            if kill is not None:
                run = ContainerRun(self.namespace, kill.pod, kill.uid, kill.container, kill.run)
                self._oom[run] = kill

    def _oom_list(self) -> list[OomKillStatus]:
        return sorted(self._oom.values(), key=lambda k: k.time)

    async def _handle_kills(self, archive: Archive, spec: InvestigationSpec) -> None:
        pending, self._pending_kills = self._pending_kills, []
        for pod, kill in pending:
            run = kill.run
            if run in self._oom:
                continue
            meta = pod.get("metadata") or {}
            pod_name = run.pod
            record = await self._run_record(archive, run)
            pre = record.keys[-1] if record.keys else None
            percent = None
            summary = None
            manifest = None
            if pre is not None:
                with contextlib.suppress(ArchiveError):
                    manifest = await archive.read_manifest(pre)
                    if manifest.limit_bytes:
                        percent = 100 * manifest.working_set_bytes / manifest.limit_bytes
                latest = self._comparable(record.keys)
                if latest is not None:
                    full, _ = await self._compare(archive, record.keys[0], latest, spec.top_n)
                    summary = oom_summary_json(full) if full else None
            finished = kill.termination.finished_at_seconds()
            moment = datetime.fromtimestamp(finished, UTC) if finished else datetime.now(UTC)
            status = OomKillStatus(
                pod=pod_name,
                uid=run.pod_uid,
                container=run.container,
                run=run.restart_count,
                time=moment,
                exit_code=kill.termination.exit_code,
                pre_oom_snapshot=pre.path() if pre else None,
                percent_of_limit=percent,
                summary=summary,
            )
            self._oom[run] = status
            evidence = (
                f"; last snapshot before the kill: {pre.path()}"
                + (f" at {percent:.1f}% of the limit" if percent is not None else "")
                if pre
                else "; no snapshot of that run was taken"
            )
            message = (
                f"container {run.container} of pod {pod_name} (run {run.restart_count}) was "
                f"OOM-killed, exit code {kill.termination.exit_code}{evidence}"
            )
            record_of_end = EndOfRun(
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
                    self.name, run, record_of_end.file_name, record_of_end.to_bytes()
                )
            await self._event("OOMKilled", message, "Warning")
            await self._event(
                "OOMKilled",
                message,
                "Warning",
                about=ObjectRef.of({"apiVersion": "v1", "kind": "Pod", "metadata": meta}),
            )

    # -- the summary --

    async def _summary(
        self, archive: Archive, spec: InvestigationSpec
    ) -> tuple[JSON | None, str | None]:
        """Baseline -> latest of the run with the newest snapshot among runs with two or more."""
        best: tuple[SnapshotKey, SnapshotKey] | None = None
        for record in self._runs.values():
            latest = self._comparable(record.keys)
            if latest is not None and (best is None or latest.sort_key() > best[1].sort_key()):
                best = (record.keys[0], latest)
        if best is None:
            return None, None
        return await self._compare(archive, best[0], best[1], spec.top_n)

    def _comparable(self, keys: Sequence[SnapshotKey]) -> SnapshotKey | None:
        """The latest snapshot after the baseline holding every file the baseline holds."""
        if len(keys) < 2:
            return None
        base = self._files.get(keys[0])
        for key in reversed(keys[1:]):
            files = self._files.get(key)
            if base is None or files is None or base <= files:
                return key
        return keys[-1]

    async def _compare(
        self, archive: Archive, base: SnapshotKey, new: SnapshotKey, top_n: int
    ) -> tuple[JSON | None, str | None]:
        cache = (base.path(), new.path())
        if cache in self._summaries:
            return self._summaries[cache], None
        try:
            (base_manifest, base_files), (new_manifest, new_files) = await asyncio.gather(
                archive.read_snapshot(base), archive.read_snapshot(new)
            )
        except ArchiveError as exc:
            return None, f"cannot read the snapshots back: {exc}"

        def analyse() -> JSON:
            first = snapshot_from_files(
                base.path(), {**base_files, MANIFEST_NAME: base_manifest.to_json()}
            )
            second = snapshot_from_files(
                new.path(), {**new_files, MANIFEST_NAME: new_manifest.to_json()}
            )
            return summary_json(compare(first, second), top_n, by_weight=True)

        try:
            summary = await asyncio.to_thread(analyse)
        except ProfileError as exc:
            return None, f"the profiles cannot be analysed (not Go pprof output?): {exc}"
        was_leak = any(s.get("leakSuspected") for s in self._summaries.values())
        self._summaries = {cache: summary}
        if summary.get("leakSuspected") and not was_leak:
            await self._event(
                "LeakSuspected",
                str(summary.get("verdict") or summary["classification"]),
                "Warning",
            )
        return summary, None

    # -- writing --

    async def _publish(
        self,
        generation: int,
        previous: Mapping[str, Any],
        observation: Observation,
        targets: Sequence[Target],
    ) -> None:
        target_status = []
        for t in targets:
            record = self._runs.get(t.run)
            folder_keys = record.keys if record else []
            target_status.append(
                TargetStatus(
                    pod=t.pod,
                    uid=t.uid,
                    container=t.container,
                    restart_count=t.restart_count,
                    limit_bytes=t.limit,
                    working_set_bytes=self._last_working_set.get(t.run),
                    snapshots=len(folder_keys),
                    last_snapshot=folder_keys[-1].path() if folder_keys else None,
                    last_error=t.problem or self._errors.get(t.run),
                )
            )
        last = self._last_capture
        status = build_status(
            generation=generation,
            previous=previous,
            conditions=decide_conditions(observation),
            targets=target_status,
            snapshot_count=observation.snapshots,
            last_snapshot=last[0].path() if last else previous.get("snapshots", {}).get("last"),
            last_snapshot_time=last[0].captured_at if last else None,
            last_snapshot_reason=last[1] if last else None,
            summary=observation.summary,
            oom_kills=observation.oom_kills,
            now=datetime.now(UTC),
            archive=self._archive_url or previous.get("archive"),
        )
        if dict(previous) == status:
            return
        if (
            self._written is not None
            and time.monotonic() - self._written_at < READINGS_REFRESH
            and _without_readings(previous) == _without_readings(status)
        ):
            return
        try:
            written = await self.services.api.patch_status(
                self.namespace, self.name, replacing_patch(previous, status)
            )
            self._written = written.get("status") or status
            self._written_at = time.monotonic()
        except ApiFailure as exc:
            log.warning("cannot write the status of %s/%s: %s", self.namespace, self.name, exc)

    async def _event(
        self, reason: str, message: str, type_: str = "Normal", about: ObjectRef | None = None
    ) -> None:
        try:
            await self.services.api.post_event(about or self.ref, reason, message, type_)
        except ApiFailure as exc:
            log.warning("cannot post event %s: %s", reason, exc)


def _running_runs(pod: Mapping[str, Any]) -> set[tuple[str, int]]:
    """(container, restartCount) of the containers running in a pod version."""
    return {
        (str(c.get("name")), int(c.get("restartCount") or 0))
        for c in (pod.get("status") or {}).get("containerStatuses") or []
        if "running" in (c.get("state") or {})
    }


def _without_readings(status: Mapping[str, Any]) -> JSON:
    """The status without the targets' memory readings."""
    return {
        **status,
        "targets": [
            {k: v for k, v in t.items() if k not in ("workingSetBytes", "percentOfLimit")}
            for t in status.get("targets") or []
        ],
    }
