"""Recording a captured snapshot: key, manifest (with the parsed MemStats), spool, archive.

The one sequence both the operator and local mode follow after a capture; the capture
itself (capture/) stays with the caller, so this layer needs no HTTP client.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from oomforensics.archive.layout import SnapshotKey
from oomforensics.archive.manifest import HEAP_TEXT, build_manifest
from oomforensics.archive.spool import Spool
from oomforensics.archive.store import Archive
from oomforensics.pprof.errors import ProfileError
from oomforensics.pprof.heaptext import parse_memstats
from oomforensics.triggers.model import ContainerRun


@dataclass(frozen=True, slots=True)
class Recorded:
    key: SnapshotKey
    path: str  # relative to the archive URL
    spooled: bool  # waiting in the local spool for the store to come back


@dataclass(frozen=True, slots=True)
class Reading:
    """What the container used when the capture was decided (the manifest records it)."""

    working_set: int
    limit: int | None
    rss: int | None = None


async def record_snapshot(
    archive: Archive,
    spool: Spool,
    investigation: str,
    run: ContainerRun,
    captured_at: datetime,
    reason: str,
    files: Mapping[str, bytes],
    reading: Reading,
    *,
    node: str = "",
    image: str = "",
) -> Recorded:
    """Store one snapshot through the spool (durable before it returns).

    Raises ArchiveError (or OSError from the spool's disk) when it cannot be kept at all.
    """
    key = SnapshotKey(investigation, run, captured_at, reason)
    manifest = build_manifest(
        key,
        files,
        working_set_bytes=reading.working_set,
        limit_bytes=reading.limit,
        rss_bytes=reading.rss,
        node=node,
        image=image,
        memstats=memstats_of(files.get(HEAP_TEXT)),
    )
    path = await spool.submit(archive, key, files, manifest)
    return Recorded(key, path, key in spool.pending())


def memstats_of(heap_text: bytes | None) -> dict[str, int] | None:
    """The `# runtime.MemStats` block of heap?debug=1, None when absent or unreadable."""
    if heap_text is None:
        return None
    with contextlib.suppress(ProfileError):
        return parse_memstats(heap_text).integers()
    return None
