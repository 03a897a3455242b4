"""The investigation's summary: the baseline of a run against its latest comparable snapshot,
read back from the archive and analysed off the event loop; an Event when a leak is first
suspected. The last comparison is cached: a pass with no new snapshot reads nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from oomforensics.analysis.comparison import compare
from oomforensics.analysis.snapshot import snapshot_from_files
from oomforensics.archive.layout import SnapshotKey
from oomforensics.archive.manifest import MANIFEST_NAME
from oomforensics.archive.store import Archive, ArchiveError
from oomforensics.k8s.events import EventReason, Events, EventType
from oomforensics.k8s.runs import RunLedger
from oomforensics.k8s.status import summary_json
from oomforensics.pprof.errors import ProfileError

Summary = Mapping[str, Any]  # the status's `summary` object


@dataclass(frozen=True, slots=True)
class Summarised:
    summary: Summary | None = None
    error: str | None = None  # why there is none although there could be


class Summariser:
    """Compares snapshot pairs of one investigation, the latest comparison kept."""

    def __init__(self, ledger: RunLedger, events: Events) -> None:
        self._ledger = ledger
        self._events = events
        self._cache: dict[tuple[str, str], Summary] = {}
        self._leak_told = False

    async def latest(self, archive: Archive, top_n: int) -> Summarised:
        """Baseline -> latest of the run with the newest snapshot among runs with two or more."""
        pair = self._ledger.newest_pair()
        if pair is None:
            return Summarised()
        return await self.compare(archive, *pair, top_n)

    async def compare(
        self, archive: Archive, base: SnapshotKey, new: SnapshotKey, top_n: int
    ) -> Summarised:
        cache = (base.path(), new.path())
        if cache in self._cache:
            return Summarised(self._cache[cache])
        try:
            (base_manifest, base_files), (new_manifest, new_files) = await asyncio.gather(
                archive.read_snapshot(base), archive.read_snapshot(new)
            )
        except ArchiveError as exc:
            return Summarised(error=f"cannot read the snapshots back: {exc}")

        def analyse() -> dict[str, Any]:
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
            return Summarised(
                error=f"the profiles cannot be analysed (not Go pprof output?): {exc}"
            )
        self._cache = {cache: summary}
        if summary.get("leakSuspected") and not self._leak_told:
            self._leak_told = True
            await self._events.post(
                EventReason.LEAK_SUSPECTED,
                str(summary.get("verdict") or summary["classification"]),
                EventType.WARNING,
            )
        elif not summary.get("leakSuspected"):
            self._leak_told = False
        return Summarised(summary)
