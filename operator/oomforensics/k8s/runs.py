"""The snapshots of each container run an investigation took, oldest first.

Rebuilt from the archive after an operator restart (a run's folder is listed the first time
the run is seen), so a restart takes no second baseline. Keyed by `ContainerRun`: a pod
recreated under the same name is another pod, with runs (and a baseline) of its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from oomforensics.archive.layout import SnapshotKey
from oomforensics.archive.store import Archive, ArchiveError
from oomforensics.triggers import ContainerRun, TriggerState, record_capture, state_for_run

# Snapshots of a run judged together: the baseline and the latest ones. Enough for a shape
# (growth that continues against growth that stopped needs four or more; see
# analysis/judgement.py), bounded so that a long run costs a bounded amount of work.
SERIES_LIMIT = 6


@dataclass
class RunRecord:
    keys: list[SnapshotKey] = field(default_factory=list)
    loaded: bool = False  # the archive's copy has been listed


class RunLedger:
    """Which snapshots each container run has, and which files those taken here hold."""

    def __init__(self, investigation: str) -> None:
        self.investigation = investigation
        self._runs: dict[ContainerRun, RunRecord] = {}
        # Files of the snapshots taken by this process: one taken as the container died may
        # lack goroutine.txt, and a diff without it cannot see leaked connections.
        self._files: dict[SnapshotKey, frozenset[str]] = {}
        self.count: int | None = None  # snapshots in the archive, None until listed
        self._stale = False  # the archive may hold snapshots this process did not count
        self._early: set[SnapshotKey] = set()  # taken before the first listing

    def keys(self, run: ContainerRun) -> list[SnapshotKey]:
        """What is known of the run's snapshots, without asking the archive."""
        record = self._runs.get(run)
        return list(record.keys) if record else []

    async def load(self, archive: Archive, run: ContainerRun) -> list[SnapshotKey]:
        """The run's snapshots, its folder listed the first time (or until that works)."""
        record = self._runs.setdefault(run, RunRecord())
        if not record.loaded:
            try:
                stored = await archive.list_run(self.investigation, run)
            except ArchiveError:
                return list(record.keys)
            record.keys = sorted(set(record.keys) | set(stored), key=SnapshotKey.sort_key)
            record.loaded = True
        return list(record.keys)

    async def restored_state(self, archive: Archive, run: ContainerRun) -> TriggerState:
        """The run's trigger state as its stored captures leave it (no second baseline)."""
        state = state_for_run(None, run)
        for key in await self.load(archive, run):
            with contextlib.suppress(ValueError):
                state = record_capture(state, key.captured_at.timestamp(), key.reason)
        return state

    def add(self, key: SnapshotKey, files: Iterable[str]) -> None:
        """A snapshot taken here (stored, or safe in the spool)."""
        self._runs.setdefault(key.container_run, RunRecord()).keys.append(key)
        self._files[key] = frozenset(files)
        if self.count is None:
            self._early.add(key)  # counted with the listing, which may or may not hold it
        else:
            self.count += 1

    def forget(self, deleted: Iterable[SnapshotKey]) -> None:
        gone = set(deleted)
        for record in self._runs.values():
            record.keys = [k for k in record.keys if k not in gone]
        self._early -= gone
        if self.count is not None:
            self.count = max(0, self.count - len(gone))

    def recount(self) -> None:
        """The archive gained snapshots this process did not take (a spool drained: those of
        a previous process too): list it again at the next `counted`."""
        self._stale = True

    async def counted(self, archive: Archive, namespace: str) -> int:
        """The snapshot count: listed from the archive when unknown or stale, kept up to date
        here in between. Level-based: after an operator restart (snapshots taken before the
        listing, spools drained later) the count converges on what the archive holds."""
        if self.count is None or self._stale:
            with contextlib.suppress(ArchiveError):
                listed = set(await archive.list_snapshots(namespace, self.investigation))
                self.count = len(listed | self._early)
                self._early.clear()
                self._stale = False
        return self.count if self.count is not None else len(self._early)

    def protected(self) -> set[SnapshotKey]:
        """Each run's baseline and latest: retention never deletes them."""
        return {k for r in self._runs.values() if r.keys for k in (r.keys[0], r.keys[-1])}

    def series(self, keys: Sequence[SnapshotKey], limit: int = SERIES_LIMIT) -> list[SnapshotKey]:
        """The baseline and the latest snapshots (up to `limit` in all) holding every file
        the baseline holds, oldest first: what a run's judgement reads."""
        if len(keys) < 2:
            return []
        base = self._files.get(keys[0])
        later = [
            k
            for k in keys[1:]
            if base is None or (files := self._files.get(k)) is None or base <= files
        ]
        chosen = later[-(limit - 1) :] if later else [keys[-1]]
        return [keys[0], *chosen]

    def newest_series(self, limit: int = SERIES_LIMIT) -> list[SnapshotKey]:
        """The series of the run with the newest comparable snapshot."""
        best: list[SnapshotKey] = []
        for record in self._runs.values():
            series = self.series(record.keys, limit)
            if series and (not best or series[-1].sort_key() > best[-1].sort_key()):
                best = series
        return best
