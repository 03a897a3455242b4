"""What the HTML report shows, computed from snapshots and run records: pure, data in, data out.

A report has a section per container run (one life of one container: a restart starts a new
run). Each section has the memory timeline (working set against the limit, the capture
thresholds, every snapshot with its reason, how the run ended), the comparison of the baseline
with the latest snapshot (accounting, suspects, findings, verdict) and its diff flame graph.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from oomforensics.analysis.comparison import Comparison, compare
from oomforensics.analysis.snapshot import Snapshot
from oomforensics.analysis.trend import snapshot_time
from oomforensics.pprof.errors import ProfileError
from oomforensics.report.flame import DEFAULT_MIN_SHARE, FlameGraph, diff_flame_graph
from oomforensics.triggers.attribution import Attribution
from oomforensics.triggers.end_of_run import RUN_RECORDS, EndOfRun, InvalidEndOfRun

DEFAULT_THRESHOLDS = (80, 90, 95)
_THRESHOLD_REASON = re.compile(r"threshold-(\d{1,3})")
# `{UTC timestamp}-{reason}`, the archive's snapshot folder name.
_FOLDER_NAME = re.compile(r"\d{8}T\d{6}\.\d{3}Z-([a-z0-9]+(?:-[a-z0-9]+)*)")


@dataclass(frozen=True, slots=True, order=True)
class RunIdentity:
    """Which container run a snapshot belongs to (empty strings where nothing says)."""

    namespace: str = ""
    investigation: str = ""
    pod: str = ""
    container: str = ""
    run: int = -1  # -1: unknown
    pod_uid: str = ""  # tells apart pods recreated under the same name

    @property
    def title(self) -> str:
        parts = [p for p in (self.namespace, self.pod) if p]
        where = "/".join(parts) or "snapshots"
        if self.pod_uid:
            where += f" (uid {self.pod_uid.split('-', 1)[0][:8]})"
        if self.container:
            where += f" · {self.container}"
        if self.run >= 0:
            where += f" · run {self.run}"
        return where

    @property
    def container_key(self) -> tuple[str, str, str, str, str]:
        return (self.namespace, self.investigation, self.pod, self.pod_uid, self.container)


@dataclass(frozen=True, slots=True)
class RunEvidence:
    """One container run as found: its snapshots and the records stored next to them.

    `run_files` holds the run folder's records by name (`oom.json` after an OOM kill,
    `exit.json` after another exit); `folder` says where they were found, for messages.
    """

    identity: RunIdentity
    snapshots: Sequence[Snapshot]
    run_files: Mapping[str, bytes] = field(default_factory=dict)
    folder: str = ""


@dataclass(frozen=True, slots=True)
class TimelinePoint:
    time: float  # POSIX seconds
    snapshot: str  # the snapshot's name (its folder)
    reason: str
    working_set: int | None
    rss: int | None
    heap_inuse: int | None
    limit: int | None
    files: tuple[str, ...]
    heap_profile: int = 0  # the heap profile's inuse_space (live objects at the last GC)
    pre_oom: bool = False  # the last snapshot before the OOM kill

    @property
    def memory(self) -> int:
        """What the marker sits on: the working set, else the RSS, else the heap in use, else
        the heap profile's total (a bare heap profile has nothing else)."""
        for value in (self.working_set, self.rss, self.heap_inuse):
            if value is not None:
                return value
        return self.heap_profile

    @property
    def percent_of_limit(self) -> float | None:
        if self.working_set is None or not self.limit:
            return None
        return 100 * self.working_set / self.limit


@dataclass(frozen=True, slots=True)
class RunEnd:
    """How the run ended, when something recorded it."""

    kind: str  # "oom-kill", "exit" or "restart" (a later run exists, no record says why)
    time: float | None
    message: str
    exit_code: int | None = None
    working_set: int | None = None  # the last working set seen before the end
    pre_oom_snapshot: str | None = None
    limit: int | None = None  # the container's memory limit, as the run's record has it
    attribution: Attribution | None = None  # how the operator told this end apart


@dataclass(frozen=True, slots=True)
class Timeline:
    points: tuple[TimelinePoint, ...]  # by capture time
    limit: int | None
    thresholds: tuple[int, ...]  # % of the limit
    end: RunEnd | None

    @property
    def start(self) -> float:
        return self.points[0].time

    @property
    def stop(self) -> float:
        last = self.points[-1].time
        if self.end is not None and self.end.time is not None:
            return max(last, self.end.time)
        return last

    @property
    def peak(self) -> TimelinePoint | None:
        return max(self.points, key=lambda p: p.memory) if self.points else None


@dataclass(frozen=True, slots=True)
class RunReport:
    anchor: str  # the section's id in the page
    identity: RunIdentity
    folder: str
    timeline: Timeline
    comparison: Comparison | None
    flame: FlameGraph | None
    facts: tuple[tuple[str, str], ...]  # (label, value): pod uid, node, image, ...
    notes: tuple[str, ...]  # what could not be shown, and why

    @property
    def title(self) -> str:
        return self.identity.title


@dataclass(frozen=True, slots=True)
class Report:
    runs: tuple[RunReport, ...]
    generated_at: datetime
    tool_version: str
    min_share: float

    @property
    def snapshot_count(self) -> int:
        return sum(len(run.timeline.points) for run in self.runs)


def run_identity(snapshot: Snapshot, folder: str = "") -> RunIdentity:
    """From the manifest when it names the run; else from an archive-shaped folder path."""
    manifest = snapshot.manifest or {}
    run = manifest.get("run")
    if isinstance(manifest.get("pod"), str) and isinstance(run, int):
        return RunIdentity(
            namespace=_text(manifest, "namespace"),
            investigation=_text(manifest, "investigation"),
            pod=_text(manifest, "pod"),
            container=_text(manifest, "container"),
            run=run,
            pod_uid=_text(manifest, "podUid"),
        )
    parts = [p for p in folder.replace("\\", "/").split("/") if p]
    if len(parts) >= 6 and re.fullmatch(r"run-\d+", parts[-1]):
        namespace, investigation, pod, uid, container = parts[-6:-1]
        return RunIdentity(namespace, investigation, pod, container, int(parts[-1][4:]), uid)
    return RunIdentity(pod=parts[-1] if parts else "")


def build_report(
    runs: Sequence[RunEvidence],
    thresholds: Sequence[int] = DEFAULT_THRESHOLDS,
    min_share: float = DEFAULT_MIN_SHARE,
    generated_at: datetime | None = None,
    tool_version: str = "",
) -> Report:
    """Every run's section, runs ordered by pod and container, then run number."""
    ordered = sorted(runs, key=lambda r: (r.identity, r.folder))
    later = {r.identity.container_key: r.identity.run for r in ordered}
    sections = []
    for index, evidence in enumerate(ordered):
        restarted = later[evidence.identity.container_key] > evidence.identity.run >= 0
        sections.append(
            build_run(evidence, f"run-{index + 1}", thresholds, min_share, restarted=restarted)
        )
    return Report(
        runs=tuple(sections),
        generated_at=generated_at or datetime.now(UTC),
        tool_version=tool_version,
        min_share=min_share,
    )


def build_run(
    evidence: RunEvidence,
    anchor: str,
    thresholds: Sequence[int] = DEFAULT_THRESHOLDS,
    min_share: float = DEFAULT_MIN_SHARE,
    restarted: bool = False,
) -> RunReport:
    notes: list[str] = []
    timed: list[tuple[float, Snapshot]] = []
    for snapshot in evidence.snapshots:
        try:
            timed.append((snapshot_time(snapshot), snapshot))
        except ValueError as exc:
            notes.append(f"left out of the timeline: {exc}")
    timed.sort(key=lambda pair: (pair[0], pair[1].source))
    end = _run_end(evidence, notes, restarted)
    points = tuple(_point(t, s, end) for t, s in timed)
    if not points:
        raise ValueError(f"{evidence.folder or evidence.identity.title}: no snapshot to report")
    limit = next((p.limit for p in reversed(points) if p.limit), None)
    if limit is None and end is not None:
        limit = end.limit
    fired = {int(m.group(1)) for p in points if (m := _THRESHOLD_REASON.fullmatch(p.reason))} & set(
        range(1, 101)
    )
    timeline = Timeline(
        points=points,
        limit=limit,
        thresholds=tuple(sorted(set(thresholds) | fired)),
        end=end,
    )
    comparison, flame = _compare([s for _, s in timed], notes, min_share)
    return RunReport(
        anchor=anchor,
        identity=evidence.identity,
        folder=evidence.folder,
        timeline=timeline,
        comparison=comparison,
        flame=flame,
        facts=_facts(evidence, [s for _, s in timed]),
        notes=tuple(notes),
    )


def snapshot_name(snapshot: Snapshot) -> str:
    return snapshot.source.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def snapshot_reason(snapshot: Snapshot) -> str:
    reason = (snapshot.manifest or {}).get("reason")
    if isinstance(reason, str) and reason:
        return reason
    match = _FOLDER_NAME.fullmatch(snapshot_name(snapshot))
    return match.group(1) if match else "snapshot"


def snapshot_files(snapshot: Snapshot) -> tuple[str, ...]:
    files = ["heap.pb.gz"]
    if snapshot.heap_text is not None:
        files.append("heap.txt")
    if snapshot.goroutines is not None:
        files.append("goroutine.txt")
    return tuple(files)


def _point(time: float, snapshot: Snapshot, end: RunEnd | None) -> TimelinePoint:
    manifest = snapshot.manifest or {}
    heap_inuse = snapshot.heap_text.memstats.integer("HeapInuse") if snapshot.heap_text else None
    memstats = manifest.get("memstats")
    if heap_inuse is None and isinstance(memstats, Mapping):
        heap_inuse = _int(memstats, "HeapInuse")
    name = snapshot_name(snapshot)
    pre = end is not None and end.pre_oom_snapshot is not None
    return TimelinePoint(
        time=time,
        snapshot=name,
        reason=snapshot_reason(snapshot),
        working_set=_int(manifest, "workingSetBytes"),
        rss=snapshot.rss_bytes,
        heap_inuse=heap_inuse,
        limit=_int(manifest, "limitBytes"),
        files=snapshot_files(snapshot),
        heap_profile=snapshot.profile.total(snapshot.profile.sample_index("inuse_space")),
        pre_oom=pre and end is not None and end.pre_oom_snapshot == name,
    )


def _compare(
    snapshots: Sequence[Snapshot], notes: list[str], min_share: float
) -> tuple[Comparison | None, FlameGraph | None]:
    """Baseline against the latest snapshot holding every file the baseline has.

    The pre-OOM snapshot may hold only the heap profile (the process died while it was being
    taken); comparing it would lose the MemStats and goroutine evidence, so the latest complete
    one is compared, as `oomforensics watch` does.
    """
    if len(snapshots) < 2:
        notes.append("only one snapshot: nothing to compare it with")
        return None, None
    base = snapshots[0]
    wanted = set(snapshot_files(base))
    complete = [s for s in snapshots[1:] if wanted <= set(snapshot_files(s))]
    latest = complete[-1] if complete else snapshots[-1]
    if latest is not snapshots[-1]:
        notes.append(
            f"compared with {snapshot_name(latest)}, the latest snapshot with all of "
            f"{', '.join(sorted(wanted))}; later ones hold fewer files"
        )
    series = list(snapshots[: snapshots.index(latest) + 1])
    try:
        try:
            comparison = compare(base, latest, series=series if len(series) >= 3 else ())
        except ValueError as exc:  # duplicate capture times make the trend meaningless
            notes.append(f"no trend: {exc}")
            comparison = compare(base, latest)
        flame = diff_flame_graph(base.profile, latest.profile, min_share=min_share)
    except ProfileError as exc:
        notes.append(f"no comparison: {exc}")
        return None, None
    return comparison, flame


def _run_end(evidence: RunEvidence, notes: list[str], restarted: bool) -> RunEnd | None:
    for name in RUN_RECORDS:
        record = _record(evidence, name, notes)
        if record is None:
            continue
        kind = "oom-kill" if record.oom_killed else "exit"
        code = record.exit_code
        what = "OOM-killed" if record.oom_killed else "exited"
        pre = record.pre_oom_snapshot
        return RunEnd(
            kind=kind,
            time=record.time.timestamp(),
            message=record.evidence
            or f"the container {what}" + (f", exit code {code}" if code is not None else ""),
            exit_code=code,
            working_set=record.last_working_set_bytes,
            pre_oom_snapshot=pre.rstrip("/").rsplit("/", 1)[-1] if pre else None,
            limit=record.limit_bytes,
            attribution=record.attribution,
        )
    if restarted:
        return RunEnd(
            "restart",
            None,
            "the container restarted (a later run exists); no record of this run says why",
        )
    return None


def _record(evidence: RunEvidence, name: str, notes: list[str]) -> EndOfRun | None:
    data = evidence.run_files.get(name)
    if data is None:
        return None
    try:
        return EndOfRun.from_bytes(data)
    except InvalidEndOfRun as exc:
        notes.append(f"{name}: {exc}; ignored")
        return None


def _facts(evidence: RunEvidence, snapshots: Sequence[Snapshot]) -> tuple[tuple[str, str], ...]:
    manifest = next((s.manifest for s in reversed(snapshots) if s.manifest), None) or {}
    facts = [("investigation", _text(manifest, "investigation"))]
    facts += [
        (label, _text(manifest, key))
        for label, key in (("pod uid", "podUid"), ("node", "node"), ("image", "image"))
    ]
    if evidence.folder:
        facts.append(("folder", evidence.folder))
    return tuple((label, value) for label, value in facts if value)


def _text(doc: Mapping[str, Any], key: str) -> str:
    value = doc.get(key)
    return value if isinstance(value, str) else ""


def _int(doc: Mapping[str, Any] | None, key: str) -> int | None:
    value = doc.get(key) if doc is not None else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _instant(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
