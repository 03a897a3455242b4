"""Wire a local watch: sources, probes, archive and spool, then the evidence after the end."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from oomforensics.analysis.comparison import Comparison, compare
from oomforensics.analysis.snapshot import Snapshot, snapshot_from_files
from oomforensics.archive.layout import SnapshotKey
from oomforensics.archive.store import Archive
from oomforensics.local.watcher import Capture, WatchResult


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


async def next_run(
    archive: Archive, namespace: str, investigation: str, pod: str, container: str
) -> int:
    """Each local watch of the same target is a new container run, numbered after the last."""
    keys = await archive.list_snapshots(namespace, investigation, pod, container)
    return max((k.run for k in keys), default=-1) + 1


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


def oom_record(result: WatchResult, limit: int | None) -> bytes:
    """`oom.json` for the run: when it died, how we know, and its pre-OOM snapshot."""
    assert result.exit is not None
    pre = result.pre_oom
    doc = {
        "observedAt": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "reason": "OOMKilled" if result.exit.oom_killed else "Exited",
        "exitCode": result.exit.exit_code,
        "evidence": result.exit.evidence,
        "limitBytes": limit,
        "lastWorkingSetBytes": result.last_sample.working_set if result.last_sample else None,
        "preOomSnapshot": pre.key.name if pre else None,
        "preOomPercentOfLimit": pre.percent_of_limit if pre else None,
    }
    return (json.dumps(doc, indent=2) + "\n").encode()
