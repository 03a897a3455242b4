"""A local spool so that no snapshot is lost while the object store is down.

`submit` tries the store; when it is unavailable the snapshot is written durably to a folder
(temp folder, fsync, atomic rename) that a restarted operator picks up again, and `drain`
uploads what is spooled, oldest first, removing each entry only once its manifest is stored.
Uploads are idempotent per key, so a crash between "stored" and "removed" costs a repeat
upload, never a duplicate.

The spool is bounded. When full it keeps the evidence that matters for an OOM post-mortem
(baselines, threshold and predicted captures, the newest snapshot of each container run, which
is the pre-OOM candidate) and evicts periodic ones, oldest first; every eviction is logged.
One process owns a spool folder at a time.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
import re
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from oomforensics.archive.layout import SnapshotKey
from oomforensics.archive.manifest import MANIFEST_NAME, InvalidManifest, Manifest
from oomforensics.archive.store import Archive, ArchiveError, StorageUnavailable, check_snapshot
from oomforensics.triggers.model import THRESHOLD_PATTERN, CaptureReason

log = logging.getLogger(__name__)

# Captured because something happened (or the run began): kept over routine periodic ones.
VALUABLE_REASONS = (
    CaptureReason.BASELINE,
    THRESHOLD_PATTERN,
    CaptureReason.PREDICTED,
    CaptureReason.MANUAL,
)
_ENTRY = re.compile(r"(\d{10})-[^/]+")
_TEMP_PREFIX = ".tmp-"
_TRASH_PREFIX = ".del-"

# Eviction tiers, lowest evicted first.
_ROUTINE = 0
_PRE_OOM_CANDIDATE = 1
_VALUABLE = 2


class SpoolFull(ArchiveError):
    """The spool could not make room for a snapshot without dropping more valuable ones."""


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """One spooled snapshot: a folder `{seq}-{timestamp}-{reason}` with files and manifest."""

    name: str
    seq: int
    manifest: Manifest
    size: int

    @property
    def key(self) -> SnapshotKey:
        return self.manifest.key


def is_valuable_reason(reason: str, patterns: Iterable[str] = VALUABLE_REASONS) -> bool:
    return any(fnmatch.fnmatchcase(reason, pattern) for pattern in patterns)


def eviction_order(entries: Sequence[SpoolEntry]) -> list[SpoolEntry]:
    """Who goes first when the spool is full: routine snapshots oldest first, then pre-OOM
    candidates (the newest snapshot of each run), then valuable ones, each oldest first."""
    newest: dict[str, SpoolEntry] = {}  # by run folder: the investigation's container run
    for entry in entries:
        run = entry.key.run_path()
        if run not in newest or entry.key.sort_key() > newest[run].key.sort_key():
            newest[run] = entry

    def tier(entry: SpoolEntry) -> int:
        if is_valuable_reason(entry.key.reason):
            return _VALUABLE
        if newest[entry.key.run_path()] is entry:
            return _PRE_OOM_CANDIDATE
        return _ROUTINE

    return sorted(entries, key=lambda e: (tier(e), e.seq))


class Spool:
    """Durable store-and-forward of snapshots in `directory`, at most `max_bytes` in total.

    `probe_interval`: after the store was found unavailable, submissions go straight to the
    spool for this many seconds instead of each waiting for the outage to be detected again.
    """

    def __init__(self, directory: Path, max_bytes: int, *, probe_interval: float = 5.0) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0, got {max_bytes}")
        self._dir = Path(directory)
        self._max_bytes = max_bytes
        self._probe_interval = probe_interval
        self._store_down_until = 0.0
        self._lock = asyncio.Lock()
        self._drain_lock = asyncio.Lock()
        self._dir.mkdir(parents=True, exist_ok=True)
        self._entries: dict[str, SpoolEntry] = self._load()

    @property
    def directory(self) -> Path:
        return self._dir

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    @property
    def size_bytes(self) -> int:
        return sum(entry.size for entry in self._entries.values())

    def pending(self) -> list[SnapshotKey]:
        """Spooled snapshots, in the order `drain` uploads them."""
        return [entry.key for entry in self._ordered()]

    async def submit(
        self,
        archive: Archive,
        key: SnapshotKey,
        files: Mapping[str, bytes],
        manifest: Manifest,
    ) -> str:
        """Store the snapshot, or spool it when the store is unavailable; return its path.

        Raises SpoolFull (after logging) when the store is down and the snapshot is less
        valuable than everything already spooled; other errors (a conflict, bad input)
        propagate unchanged.
        """
        folder = archive.path_of(key)
        check_snapshot(folder, key, files, manifest)
        if time.monotonic() >= self._store_down_until:
            try:
                return await archive.put_snapshot(key, files, manifest)
            except StorageUnavailable as exc:
                self._store_down_until = time.monotonic() + self._probe_interval
                log.warning("storage unavailable, spooling %s to %s: %s", folder, self._dir, exc)
        await self._spool(key, files, manifest)
        return folder

    async def drain(
        self,
        archive: Archive,
        *,
        attempts: int = 5,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
    ) -> int:
        """Upload spooled snapshots oldest first; return how many were stored.

        Each upload is retried with exponential backoff while the store is unavailable; after
        `attempts` the drain stops and the rest stays spooled. A snapshot the store rejects
        for another reason (a conflict, a corrupt spool file) is logged and left in place.
        """
        async with self._drain_lock:
            stored = 0
            for entry in self._ordered():
                if entry.name not in self._entries:
                    continue  # evicted while we were uploading another
                try:
                    files = await asyncio.to_thread(self._read_files, entry)
                except FileNotFoundError:
                    continue  # evicted just now
                except OSError as exc:
                    log.error("spooled %s cannot be read, left in place: %s", entry.name, exc)
                    continue
                delay = initial_backoff
                for attempt in range(1, attempts + 1):
                    try:
                        await archive.put_snapshot(entry.key, files, entry.manifest)
                    except StorageUnavailable as exc:
                        if attempt == attempts:
                            self._store_down_until = time.monotonic() + self._probe_interval
                            log.warning(
                                "storage still unavailable after %d attempts; %d snapshot(s) "
                                "(%d bytes) stay spooled in %s: %s",
                                attempts,
                                len(self._entries),
                                self.size_bytes,
                                self._dir,
                                exc,
                            )
                            return stored
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, max_backoff)
                    except ArchiveError as exc:
                        log.error("spooled %s cannot be stored, left in place: %s", entry.name, exc)
                        break
                    else:
                        await self._remove(entry)
                        stored += 1
                        break
            self._store_down_until = 0.0
            if stored:
                log.info("drained %d spooled snapshot(s) to %s", stored, archive.url)
            return stored

    # --- the spool folder -------------------------------------------------------------

    def _ordered(self) -> list[SpoolEntry]:
        return sorted(self._entries.values(), key=lambda entry: entry.seq)

    async def _spool(
        self, key: SnapshotKey, files: Mapping[str, bytes], manifest: Manifest
    ) -> None:
        manifest_bytes = manifest.to_json()
        size = sum(len(data) for data in files.values()) + len(manifest_bytes)
        async with self._lock:
            for entry in self._entries.values():
                if entry.key == key and entry.manifest == manifest:
                    return  # already spooled: idempotent like the store
            seq = max((entry.seq for entry in self._entries.values()), default=0) + 1
            incoming = SpoolEntry(f"{seq:010d}-{key.name}", seq, manifest, size)
            victims = self._victims(incoming)
            if incoming in victims:
                self._warn_full([incoming], incoming, dropped_incoming=True)
                raise SpoolFull(
                    f"spool {self._dir} is full ({self.size_bytes} of {self._max_bytes} bytes) "
                    f"with more valuable snapshots: {key.path()} ({size} bytes) was not kept"
                )
            if victims:
                self._warn_full(victims, incoming, dropped_incoming=False)
                for victim in victims:
                    await self._remove_locked(victim)
            try:
                await asyncio.to_thread(self._write_entry, incoming.name, files, manifest_bytes)
            except OSError as exc:
                raise ArchiveError(f"could not spool {key.path()} to {self._dir}: {exc}") from exc
            self._entries[incoming.name] = incoming

    def _victims(self, incoming: SpoolEntry) -> list[SpoolEntry]:
        """The fewest, least valuable entries to drop so that `incoming` fits (may be itself)."""
        excess = self.size_bytes + incoming.size - self._max_bytes
        if excess <= 0:
            return []
        victims: list[SpoolEntry] = []
        for candidate in eviction_order([*self._entries.values(), incoming]):
            if candidate is incoming:
                return [incoming]  # everything left is worth more; what is spooled already fits
            victims.append(candidate)
            excess -= candidate.size
            if excess <= 0:
                return victims
        return [incoming]

    def _warn_full(
        self, dropped: Sequence[SpoolEntry], incoming: SpoolEntry, *, dropped_incoming: bool
    ) -> None:
        reasons = Counter(entry.key.reason for entry in dropped)
        log.warning(
            "spool %s is full: %d snapshot(s) of %d bytes plus a new %s (%d bytes) exceed %d "
            "bytes: %s %d snapshot(s) [%s] of %d bytes: %s",
            self._dir,
            len(self._entries),
            self.size_bytes,
            incoming.key.reason,
            incoming.size,
            self._max_bytes,
            "not keeping the new" if dropped_incoming else "evicting",
            len(dropped),
            ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items())),
            sum(entry.size for entry in dropped),
            ", ".join(entry.key.path() for entry in dropped),
        )

    async def _remove(self, entry: SpoolEntry) -> None:
        async with self._lock:
            await self._remove_locked(entry)

    async def _remove_locked(self, entry: SpoolEntry) -> None:
        if self._entries.pop(entry.name, None) is None:
            return
        await asyncio.to_thread(self._delete_entry, entry.name)

    def _write_entry(self, name: str, files: Mapping[str, bytes], manifest_bytes: bytes) -> None:
        temp = self._dir / f"{_TEMP_PREFIX}{uuid.uuid4().hex}"
        temp.mkdir()
        try:
            for file_name, data in [*files.items(), (MANIFEST_NAME, manifest_bytes)]:
                _write_durably(temp / file_name, data)
            _fsync_dir(temp)
            temp.rename(self._dir / name)  # the commit: an entry is whole or absent
            _fsync_dir(self._dir)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise

    def _delete_entry(self, name: str) -> None:
        trash = self._dir / f"{_TRASH_PREFIX}{name}"
        try:
            (self._dir / name).rename(trash)  # atomic: never a half-deleted entry
        except FileNotFoundError:
            return
        _fsync_dir(self._dir)
        shutil.rmtree(trash, ignore_errors=True)

    def _read_files(self, entry: SpoolEntry) -> dict[str, bytes]:
        folder = self._dir / entry.name
        return {name: (folder / name).read_bytes() for name in entry.manifest.files}

    def _load(self) -> dict[str, SpoolEntry]:
        entries: dict[str, SpoolEntry] = {}
        for child in sorted(self._dir.iterdir()):
            if child.name.startswith((_TEMP_PREFIX, _TRASH_PREFIX)):
                # A write or delete that a crash interrupted: never committed, or already gone.
                shutil.rmtree(child, ignore_errors=True)
                continue
            match = _ENTRY.fullmatch(child.name)
            if not child.is_dir() or not match:
                continue
            try:
                manifest = Manifest.from_json((child / MANIFEST_NAME).read_bytes())
                size = sum((child / name).stat().st_size for name in manifest.files)
                size += (child / MANIFEST_NAME).stat().st_size
            except (OSError, InvalidManifest) as exc:
                log.error("spool entry %s is unreadable, left in place: %s", child, exc)
                continue
            entries[child.name] = SpoolEntry(child.name, int(match.group(1)), manifest, size)
        if entries:
            total = sum(entry.size for entry in entries.values())
            log.info("spool %s holds %d snapshot(s), %d bytes", self._dir, len(entries), total)
        return entries


def _write_durably(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
