"""Which snapshots to keep: the decision is pure (`plan_retention`), `apply_retention` acts.

Per container run the evidence of a leak is kept: the first snapshot (the baseline every diff
starts from), every threshold and predicted capture, any snapshot marked pre-OOM (the last
one before a kill), the one with the largest heap, and the newest N. The rest goes, and when
what is kept still exceeds the run's byte budget, the oldest of the newest-N go first. The
protected ones are never deleted, even over budget.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from collections.abc import Sequence, Set
from dataclasses import dataclass

from oomforensics.archive.layout import SnapshotKey
from oomforensics.archive.manifest import Manifest
from oomforensics.archive.store import Archive, ArchiveError, StorageUnavailable
from oomforensics.triggers.model import THRESHOLD_PATTERN, CaptureReason

log = logging.getLogger(__name__)

DEFAULT_KEEP_NEWEST = 10
DEFAULT_MAX_BYTES_PER_RUN = 256 * 2**20
DEFAULT_PROTECTED_REASONS = (THRESHOLD_PATTERN, CaptureReason.PREDICTED)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    keep_newest: int = DEFAULT_KEEP_NEWEST
    max_bytes_per_run: int = DEFAULT_MAX_BYTES_PER_RUN
    # Shell-style patterns of capture reasons that are always kept.
    protected_reasons: tuple[str, ...] = DEFAULT_PROTECTED_REASONS

    def __post_init__(self) -> None:
        if self.keep_newest < 0:
            raise ValueError(f"keep_newest must be >= 0, got {self.keep_newest}")
        if self.max_bytes_per_run < 0:
            raise ValueError(f"max_bytes_per_run must be >= 0, got {self.max_bytes_per_run}")


def plan_retention(
    snapshots: Sequence[tuple[SnapshotKey, Manifest]],
    policy: RetentionPolicy,
    protected: Set[SnapshotKey] = frozenset(),
) -> list[SnapshotKey]:
    """The snapshots to delete, oldest first. `protected`: keys marked pre-OOM (or pinned)."""
    runs: dict[str, list[tuple[SnapshotKey, Manifest]]] = {}  # by run folder
    for key, manifest in snapshots:
        runs.setdefault(key.run_path(), []).append((key, manifest))
    doomed: list[SnapshotKey] = []
    for members in runs.values():
        doomed.extend(_plan_run(members, policy, protected))
    return sorted(doomed, key=SnapshotKey.sort_key)


def _plan_run(
    members: list[tuple[SnapshotKey, Manifest]],
    policy: RetentionPolicy,
    protected: Set[SnapshotKey],
) -> list[SnapshotKey]:
    ordered = sorted(members, key=lambda member: member[0].sort_key())
    always: set[SnapshotKey] = {ordered[0][0]}  # the baseline
    for key, _ in ordered:
        if key in protected or any(
            fnmatch.fnmatchcase(key.reason, pattern) for pattern in policy.protected_reasons
        ):
            always.add(key)
    with_heap = [(m.heap_bytes, k) for k, m in ordered if m.heap_bytes is not None]
    if with_heap:  # the largest heap; on a tie the later one (closer to the limit)
        always.add(max(with_heap, key=lambda hk: (hk[0], hk[1].sort_key()))[1])
    newest = [key for key, _ in ordered[max(0, len(ordered) - policy.keep_newest) :]]
    kept = always | set(newest)
    doomed = [key for key, _ in ordered if key not in kept]
    sizes = {key: manifest.total_bytes for key, manifest in ordered}
    total = sum(sizes[key] for key in kept)
    for key in newest:  # over budget: the oldest of the unprotected newest go first
        if total <= policy.max_bytes_per_run:
            break
        if key in always:
            continue
        doomed.append(key)
        total -= sizes[key]
    return doomed


async def apply_retention(
    archive: Archive,
    policy: RetentionPolicy | None = None,
    *,
    protected: Set[SnapshotKey] = frozenset(),
    namespace: str | None = None,
    investigation: str | None = None,
    pod: str | None = None,
    container: str | None = None,
    run: int | None = None,
    concurrency: int = 8,
) -> list[SnapshotKey]:
    """Delete what `plan_retention` says among the matching snapshots; return the deleted.

    A snapshot whose manifest cannot be read is left alone (never delete what cannot be
    judged); an unavailable store raises StorageUnavailable.
    """
    policy = policy or RetentionPolicy()
    keys = await archive.list_snapshots(namespace, investigation, pod, container, run)
    limit = asyncio.Semaphore(concurrency)

    async def read(key: SnapshotKey) -> tuple[SnapshotKey, Manifest] | None:
        async with limit:
            try:
                return key, await archive.read_manifest(key)
            except StorageUnavailable:
                raise
            except ArchiveError as exc:
                log.warning("retention: skipping %s: %s", archive.path_of(key), exc)
                return None

    read_back = await asyncio.gather(*(read(key) for key in keys))
    judged = [member for member in read_back if member is not None]
    doomed = plan_retention(judged, policy, protected)
    for key in doomed:
        await archive.delete_snapshot(key)
    if doomed:
        log.info("retention: deleted %d snapshot(s) from %s", len(doomed), archive.url)
    return doomed
