"""Download snapshots into a local folder in the archive's layout, verified and resumable.

Each file is checked against the sha256 and size its manifest records before it is saved
(written to `NAME.part`, then renamed), and the snapshot's `manifest.json` is written last, as
in the archive: a local folder with a manifest holds verified files. A file already there with
the recorded digest is kept, so running `fetch` again downloads only what is missing.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import sys
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

from oomforensics.analysis.units import format_bytes
from oomforensics.archive.layout import SnapshotKey
from oomforensics.archive.manifest import MANIFEST_NAME, FileDigest, Manifest
from oomforensics.archive.store import Archive, ArchiveError, ChecksumMismatch, SnapshotNotFound
from oomforensics.triggers.end_of_run import RUN_RECORDS

CONCURRENCY = 8
_CHUNK = 1 << 20
T = TypeVar("T")


def run_in_one_line(work: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, with what the object store raises unwrapped (its messages run over many
    lines of debug detail) turned into one line.

    The store's objects are collected here, before the interpreter exits: a failed request
    leaves them in reference cycles (through the traceback), and obstore 0.12 dropping them
    during interpreter shutdown sometimes aborts the process (SIGABRT instead of exit 1).
    """
    failure: Exception
    try:
        result = asyncio.run(work)
    except FileNotFoundError as exc:  # S3 answers 404 for a missing bucket
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        failure = ArchiveError(f"not found in the store (does the bucket exist?): {first}")
    except Exception as exc:
        failure = exc.with_traceback(None)
        failure.__cause__ = failure.__context__ = None
    else:
        gc.collect()
        return result
    gc.collect()
    raise failure


@dataclass
class FetchStats:
    """What a fetch did: files and bytes downloaded, and those already present and verified."""

    snapshots: int = 0
    files_total: int = 0
    bytes_total: int = 0
    files_downloaded: int = 0
    bytes_downloaded: int = 0
    files_present: int = 0
    bytes_present: int = 0
    failures: list[ChecksumMismatch] = field(default_factory=list)

    @property
    def files_done(self) -> int:
        return self.files_downloaded + self.files_present

    @property
    def bytes_done(self) -> int:
        return self.bytes_downloaded + self.bytes_present

    def summary(self, out: Path) -> str:
        return (
            f"fetched {self.snapshots} snapshot(s) into {out}: "
            f"{self.files_downloaded} file(s) downloaded ({format_bytes(self.bytes_downloaded)}), "
            f"{self.files_present} already present and verified "
            f"({format_bytes(self.bytes_present)})"
            + (f", {len(self.failures)} damaged, not saved" if self.failures else "")
        )


class Progress:
    """One self-rewriting line on a terminal (stderr); silent when it is not a terminal."""

    def __init__(self, out: TextIO | None = None, enabled: bool | None = None) -> None:
        self.out = out if out is not None else sys.stderr
        self.enabled = self.out.isatty() if enabled is None else enabled
        self._width = 0

    def update(self, stats: FetchStats) -> None:
        if not self.enabled:
            return
        line = (
            f"fetch: {stats.files_done}/{stats.files_total} files, "
            f"{format_bytes(stats.bytes_done)}/{format_bytes(stats.bytes_total)}"
        )
        if stats.bytes_present:
            line += f" ({format_bytes(stats.bytes_present)} already here)"
        self.out.write("\r" + line.ljust(self._width))
        self.out.flush()
        self._width = len(line)

    def done(self) -> None:
        if self.enabled and self._width:
            self.out.write("\n")
            self.out.flush()


def local_folder(out: Path, key: SnapshotKey) -> Path:
    return out.joinpath(*key.path().strip("/").split("/"))


def digest_of(path: Path) -> FileDigest | None:
    """The sha256 and size of a local file, None if there is none."""
    try:
        with path.open("rb") as handle:
            sha = hashlib.sha256()
            size = 0
            while chunk := handle.read(_CHUNK):
                sha.update(chunk)
                size += len(chunk)
    except (FileNotFoundError, IsADirectoryError):
        return None
    return FileDigest(sha.hexdigest(), size)


def is_present(path: Path, expected: FileDigest) -> bool:
    """A local copy that matches the manifest (size first: a cheap no)."""
    try:
        if path.stat().st_size != expected.size:
            return False
    except OSError:
        return False
    return digest_of(path) == expected


def save(path: Path, data: bytes) -> None:
    """Write beside, then rename: a cut-short write never looks like a finished file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(data)
    partial.replace(path)


async def read_manifests(archive: Archive, keys: Sequence[SnapshotKey]) -> list[Manifest]:
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(key: SnapshotKey) -> Manifest:
        async with limit:
            return await archive.read_manifest(key)

    return list(await asyncio.gather(*(one(k) for k in keys)))


async def fetch_snapshots(
    archive: Archive,
    manifests: Sequence[Manifest],
    out: Path,
    progress: Progress | None = None,
) -> FetchStats:
    """Every file of every snapshot into `out`, verified; mismatches in `stats.failures`.

    A file whose content does not match its manifest is never saved, and its snapshot gets no
    local manifest.json; the other snapshots are still fetched.
    """
    progress = progress or Progress(enabled=False)
    stats = FetchStats(
        snapshots=len(manifests),
        files_total=sum(len(m.files) for m in manifests),
        bytes_total=sum(m.total_bytes for m in manifests),
    )
    limit = asyncio.Semaphore(CONCURRENCY)
    progress.update(stats)

    async def one_file(manifest: Manifest, folder: Path, name: str) -> bool:
        expected = manifest.files[name]
        path = folder / name
        if await asyncio.to_thread(is_present, path, expected):
            stats.files_present += 1
            stats.bytes_present += expected.size
            progress.update(stats)
            return True
        async with limit:
            data = await archive.read_file(manifest.key, name)
        actual = FileDigest.of(data)
        if actual != expected:
            stats.failures.append(
                ChecksumMismatch(archive.path_of(manifest.key), name, expected, actual)
            )
            return False
        await asyncio.to_thread(save, path, data)
        stats.files_downloaded += 1
        stats.bytes_downloaded += expected.size
        progress.update(stats)
        return True

    async def one_snapshot(manifest: Manifest) -> None:
        folder = local_folder(out, manifest.key)
        results = await asyncio.gather(*(one_file(manifest, folder, n) for n in manifest.files))
        local_manifest = folder / MANIFEST_NAME
        if all(results):
            data = manifest.to_json()
            if not local_manifest.is_file() or local_manifest.read_bytes() != data:
                await asyncio.to_thread(save, local_manifest, data)
        else:  # not a verified snapshot any more, whatever was there before
            local_manifest.unlink(missing_ok=True)

    try:
        await asyncio.gather(*(one_snapshot(m) for m in manifests))
    except OSError as exc:
        raise ArchiveError(f"cannot write into {out}: {exc}") from exc
    finally:
        progress.done()
    return stats


async def fetch_run_records(archive: Archive, keys: Sequence[SnapshotKey], out: Path) -> int:
    """Copy each run's end record (oom.json, exit.json) beside its snapshots; return how many.

    They carry no digest (no manifest names them); the report reads them for its OOM marker.
    """
    runs = {key.run_path(): key for key in keys}

    async def one(key: SnapshotKey, name: str) -> bool:
        try:
            data = await archive.read_run_file(key.investigation, key.container_run, name)
        except SnapshotNotFound:
            return False
        save(local_folder(out, key).parent / name, data)
        return True

    copied = await asyncio.gather(*(one(k, n) for k in runs.values() for n in RUN_RECORDS))
    return sum(copied)
