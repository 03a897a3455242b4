"""Wire a local watch: sources, probes, archive and spool, then the evidence after the end."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from oomforensics.analysis.comparison import Comparison, compare
from oomforensics.analysis.snapshot import Snapshot, snapshot_from_files
from oomforensics.archive.layout import SnapshotKey
from oomforensics.archive.store import Archive
from oomforensics.local.watcher import Capture, WatchResult
from oomforensics.triggers.end_of_run import Ending, EndOfRun
from oomforensics.triggers.model import ContainerRun


@dataclass(frozen=True, slots=True)
class Evidence:
    baseline: Capture
    last: Capture  # the snapshot compared with the baseline
    pre_oom: Capture | None  # the last snapshot before an OOM kill
    comparison: Comparison

    @property
    def partial_pre_oom(self) -> bool:
        """The pre-OOM snapshot lacks files (the process died mid-capture): compared `last`."""
        return self.pre_oom is not None and self.pre_oom != self.last


LOCAL_NAMESPACE = "local"
LOCAL_CONTAINER = "main"


async def next_run(archive: Archive, investigation: str, pod: str) -> ContainerRun:
    """A local watch of a process: a new incarnation of its pod (a uid of its own), numbered
    after the runs of earlier watches of the same target so they read in order."""
    keys = await archive.list_snapshots(LOCAL_NAMESPACE, investigation, pod, LOCAL_CONTAINER)
    return ContainerRun(
        namespace=LOCAL_NAMESPACE,
        pod=pod,
        pod_uid=str(uuid.uuid4()),
        container=LOCAL_CONTAINER,
        restart_count=max((k.run for k in keys), default=-1) + 1,
    )


async def evidence(archive: Archive, result: WatchResult) -> Evidence | None:
    """Baseline against the last complete snapshot, read back from the archive.

    The pre-OOM snapshot is used when it is complete; a process killed mid-capture leaves a
    heap profile without its text forms (the heap is fetched first), and then the newest
    snapshot holding every file the baseline holds is compared instead.
    """
    if len(result.captures) < 2:
        return None
    first = result.captures[0]
    base = await _load(archive, first.key)
    wanted = set(_files_of(base))
    for capture in reversed(result.captures[1:]):
        new = await _load(archive, capture.key)
        if wanted <= set(_files_of(new)):
            return Evidence(first, capture, result.pre_oom, compare(base, new))
    return None


def _files_of(snapshot: Snapshot) -> list[str]:
    present = ["heap.pb.gz"]
    if snapshot.heap_text is not None:
        present.append("heap.txt")
    if snapshot.goroutines is not None:
        present.append("goroutine.txt")
    return present


async def _load(archive: Archive, key: SnapshotKey) -> Snapshot:
    manifest, files = await archive.read_snapshot(key)
    return snapshot_from_files(archive.path_of(key), {**files, "manifest.json": manifest.to_json()})


def end_of_run(result: WatchResult, run: ContainerRun, limit: int | None) -> EndOfRun:
    """How the watched process ended, in the archive's one shape for it (`EndOfRun`)."""
    assert result.exit is not None
    pre = result.pre_oom
    return EndOfRun(
        run=run,
        ending=Ending.OOM_KILLED if result.exit.oom_killed else Ending.EXITED,
        time=datetime.now(UTC),
        exit_code=result.exit.exit_code,
        evidence=result.exit.evidence,
        pre_oom_snapshot=pre.key.path() if pre else None,
        percent_of_limit=pre.percent_of_limit if pre else None,
        limit_bytes=limit,
        last_working_set_bytes=result.last_sample.working_set if result.last_sample else None,
    )
