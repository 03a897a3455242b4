"""The investigation's summary: a run judged on its series (the baseline and the latest
comparable snapshots, bounded), read back from the archive and analysed off the event loop;
an Event when a leak is first suspected. The last analyses are cached: a pass with no new
snapshot reads nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from oomforensics.analysis.comparison import compare_series
from oomforensics.analysis.snapshot import snapshot_from_files
from oomforensics.archive.layout import SnapshotKey
from oomforensics.archive.manifest import MANIFEST_NAME
from oomforensics.archive.store import Archive, ArchiveError
from oomforensics.k8s.events import EventReason, Events, EventType
from oomforensics.k8s.runs import RunLedger
from oomforensics.k8s.status import summary_json, summary_leak_status
from oomforensics.pprof.errors import ProfileError

Summary = Mapping[str, Any]  # the status's `summary` object


@dataclass(frozen=True, slots=True)
class Summarised:
    summary: Summary | None = None
    error: str | None = None  # why there is none although there could be


class Summariser:
    """Judges the snapshot series of one investigation, the latest analyses kept."""

    def __init__(self, ledger: RunLedger, events: Events) -> None:
        self._ledger = ledger
        self._events = events
        self._cache: dict[tuple[str, ...], Summary] = {}
        self._leak_told = False

    async def latest(self, archive: Archive, top_n: int) -> Summarised:
        """The judgement of the run with the newest snapshot among runs with two or more:
        its baseline and latest snapshots as one series (`RunLedger.series`)."""
        series = self._ledger.newest_series()
        if not series:
            return Summarised()
        summarised = await self.judge(archive, series, top_n)
        if summarised.summary is not None:
            await self._tell(summarised.summary)
        return summarised

    async def judge(self, archive: Archive, keys: Sequence[SnapshotKey], top_n: int) -> Summarised:
        """The series' analysis (oldest first), read back and analysed off the loop."""
        cache = tuple(key.path() for key in keys)
        if cache in self._cache:
            return Summarised(self._cache[cache])
        try:
            stored = await asyncio.gather(*(archive.read_snapshot(key) for key in keys))
        except ArchiveError as exc:
            return Summarised(error=f"cannot read the snapshots back: {exc}")

        def analyse() -> dict[str, Any]:
            snapshots = [
                snapshot_from_files(key.path(), {**files, MANIFEST_NAME: manifest.to_json()})
                for key, (manifest, files) in zip(keys, stored, strict=True)
            ]
            return summary_json(compare_series(snapshots), top_n, by_weight=True)

        try:
            summary = await asyncio.to_thread(analyse)
        except (ProfileError, ValueError) as exc:
            return Summarised(
                error=f"the profiles cannot be analysed (not Go pprof output?): {exc}"
            )
        self._cache[cache] = summary
        while len(self._cache) > 2:  # the latest series and the latest kill's
            del self._cache[next(iter(self._cache))]
        return Summarised(summary)

    async def _tell(self, summary: Summary) -> None:
        """One Event when the judgement turns to a suspected leak (at the confidence that
        sets LeakSuspected True), none while it stays there."""
        if summary_leak_status(summary) == "True":
            if not self._leak_told:
                self._leak_told = True
                await self._events.post(
                    EventReason.LEAK_SUSPECTED,
                    str(summary.get("verdict") or summary["classification"]),
                    EventType.WARNING,
                )
        else:
            self._leak_told = False
