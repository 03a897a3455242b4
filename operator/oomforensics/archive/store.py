"""The archive: snapshots in an object store (S3, GCS, Azure, a local folder, memory).

A snapshot is a folder of files plus `manifest.json`. Files go first and the manifest last,
so the manifest is the commit marker: a folder without one is an incomplete snapshot (an
upload cut short) that readers skip and `list_incomplete` reports. Deleting goes the other way
round, manifest first, so a half-deleted snapshot reads as incomplete, never as complete with
files missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Set
from datetime import datetime
from typing import TYPE_CHECKING

import obstore

from oomforensics.archive.connect import open_store
from oomforensics.archive.errors import (
    ArchiveError,
    ChecksumMismatch,
    SnapshotConflict,
    SnapshotIncomplete,
    SnapshotNotFound,
    StorageUnavailable,
    first_line,
    translated,
)
from oomforensics.archive.layout import (
    Filter,
    InvalidSnapshotKey,
    SnapshotKey,
    check_segment,
    normalize_prefix,
    run_path,
)
from oomforensics.archive.manifest import (
    MANIFEST_NAME,
    FileDigest,
    InvalidManifest,
    Manifest,
    check_file_name,
)
from oomforensics.triggers.model import ContainerRun

if TYPE_CHECKING:
    from obstore.store import ObjectStore

__all__ = [
    "Archive",
    "ArchiveError",
    "ChecksumMismatch",
    "SnapshotConflict",
    "SnapshotIncomplete",
    "SnapshotNotFound",
    "StorageUnavailable",
    "check_snapshot",
]

log = logging.getLogger(__name__)


# Requests in flight per archive: bounds sockets, threads and buffers (an operator started
# with 1,000 targets read their run folders at once, over 1,000 connections).
MAX_REQUESTS = 16


class Archive:
    """Snapshots in one object store, below an optional root prefix.

    Build one with `Archive.from_url`. Paths returned (`put_snapshot`, `list_incomplete`) are
    relative to the archive URL.
    """

    def __init__(
        self,
        store: ObjectStore,
        *,
        root: str = "",
        url: str | None = None,
        max_requests: int = MAX_REQUESTS,
    ) -> None:
        self._store = store
        self._root = normalize_prefix(root)
        self._url = url if url is not None else repr(store)
        self._max_requests = max_requests
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    def _request_slot(self) -> asyncio.Semaphore:
        """The bound on this archive's requests in flight, for the running event loop."""
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(self._max_requests))
        return self._slots[1]

    def __repr__(self) -> str:
        return f"Archive({self._url!r})"

    @property
    def url(self) -> str:
        return self._url

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        credentials: Mapping[str, str] | None = None,
        options: Mapping[str, str] | None = None,
    ) -> Archive:
        """An archive at `url` (s3://, gs://, az://, file://, memory://): see `open_store`."""
        store, root = open_store(url, credentials, options)
        return cls(store, root=root, url=url)

    # --- writing ------------------------------------------------------------------------

    def path_of(self, key: SnapshotKey) -> str:
        """The snapshot's folder relative to the archive URL, ending in `/`."""
        return key.path()

    def _folder(self, key: SnapshotKey) -> str:
        """The snapshot's folder in the object store (below the root of a memory:// URL)."""
        return key.path(self._root)

    async def put_snapshot(
        self, key: SnapshotKey, files: Mapping[str, bytes], manifest: Manifest
    ) -> str:
        """Store the files, then the manifest; return the snapshot's path.

        Idempotent: putting the same snapshot again (a retry after a lost answer, a spool
        drain) rewrites identical bytes, or does nothing once the manifest is there. A
        different manifest under the same key raises SnapshotConflict.
        """
        folder = self._folder(key)
        check_snapshot(folder, key, files, manifest)
        manifest_bytes = manifest.to_json()
        existing = await self._get_optional(folder + MANIFEST_NAME)
        if existing is not None:
            try:
                same = Manifest.from_json(existing) == manifest
            except InvalidManifest:
                same = False
            if same:
                return self.path_of(key)
            raise SnapshotConflict(
                f"{folder}: another snapshot with a different manifest is already stored there"
            )
        results = await asyncio.gather(
            *(self._put(folder + name, data) for name, data in files.items()),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        await self._put(folder + MANIFEST_NAME, manifest_bytes)
        return self.path_of(key)

    async def put_run_file(
        self, investigation: str, run: ContainerRun, name: str, data: bytes
    ) -> str:
        """A record about a whole container run (`oom.json` after the kill), stored next to
        its snapshot folders; return its path. Snapshot listings ignore it."""
        path = _run_file(investigation, run, name, self._root)
        await self._put(path, data)
        return path[len(self._root) + 1 :] if self._root else path

    async def read_run_file(self, investigation: str, run: ContainerRun, name: str) -> bytes:
        path = _run_file(investigation, run, name, self._root)
        data = await self._get_optional(path)
        if data is None:
            raise SnapshotNotFound(f"{path}: no such run file in {self._url}")
        return data

    async def delete_snapshot(self, key: SnapshotKey) -> None:
        """Manifest first (the snapshot turns incomplete), then every file in the folder."""
        folder = self._folder(key)
        await self._delete([folder + MANIFEST_NAME])
        rest = await self._list(folder)
        if rest:
            await self._delete(rest)

    # --- reading ------------------------------------------------------------------------

    async def list_snapshots(
        self,
        namespace: str | None = None,
        investigation: str | None = None,
        pod: str | None = None,
        container: str | None = None,
        run: int | None = None,
        *,
        pod_uid: str | None = None,
    ) -> list[SnapshotKey]:
        """Complete snapshots (manifest present) matching the filters, oldest first.

        `pod` matches every incarnation of that name; `pod_uid` one of them."""
        listing = await self._scan(Filter(namespace, investigation, pod, pod_uid, container, run))
        complete = [key for key, names in listing.items() if MANIFEST_NAME in names]
        return sorted(complete, key=SnapshotKey.sort_key)

    async def list_run(self, investigation: str, run: ContainerRun) -> list[SnapshotKey]:
        """The complete snapshots of one container run of an investigation, oldest first."""
        return await self.list_snapshots(
            run.namespace,
            investigation,
            run.pod,
            run.container,
            run.restart_count,
            pod_uid=run.pod_uid,
        )

    async def list_incomplete(
        self,
        namespace: str | None = None,
        investigation: str | None = None,
        pod: str | None = None,
        container: str | None = None,
        run: int | None = None,
        *,
        pod_uid: str | None = None,
    ) -> list[str]:
        """Folders holding files but no manifest (an upload cut short): retry or delete them."""
        listing = await self._scan(Filter(namespace, investigation, pod, pod_uid, container, run))
        incomplete = [key for key, names in listing.items() if MANIFEST_NAME not in names]
        return [self.path_of(key) for key in sorted(incomplete, key=SnapshotKey.sort_key)]

    async def delete_incomplete(
        self,
        older_than: datetime,
        namespace: str | None = None,
        investigation: str | None = None,
        *,
        keep: Set[SnapshotKey] = frozenset(),
    ) -> list[SnapshotKey]:
        """Delete folders an upload left without a manifest, captured before `older_than`.

        Such a snapshot was never committed (nor announced); an upload still under way is
        younger, and `keep` names those a spool will upload again. Returns what was deleted.
        """
        listing = await self._scan(Filter(namespace, investigation))
        stale = sorted(
            (
                key
                for key, names in listing.items()
                if MANIFEST_NAME not in names and key.captured_at < older_than and key not in keep
            ),
            key=SnapshotKey.sort_key,
        )
        for key in stale:
            await self._delete([self._folder(key) + name for name in sorted(listing[key])])
        return stale

    async def read_manifest(self, key: SnapshotKey) -> Manifest:
        folder = self._folder(key)
        data = await self._get_optional(folder + MANIFEST_NAME)
        if data is None:
            if await self._list(folder):
                raise SnapshotIncomplete(f"{folder}: files but no {MANIFEST_NAME} (not committed)")
            raise SnapshotNotFound(f"{folder}: no such snapshot in {self._url}")
        try:
            manifest = Manifest.from_json(data)
        except InvalidManifest as exc:
            raise ArchiveError(f"{folder}{MANIFEST_NAME}: {exc}") from exc
        if manifest.key != key:
            raise ArchiveError(
                f"{folder}{MANIFEST_NAME} describes another snapshot ({manifest.key.path()})"
            )
        return manifest

    async def read_file(self, key: SnapshotKey, name: str) -> bytes:
        """One file as stored (not verified: `read_snapshot` and `verify` check digests)."""
        try:
            check_file_name(name)
        except InvalidManifest as exc:
            raise ArchiveError(str(exc)) from exc
        folder = self._folder(key)
        data = await self._get_optional(folder + name)
        if data is None:
            raise SnapshotNotFound(f"{folder}{name}: no such file in {self._url}")
        return data

    async def read_snapshot(self, key: SnapshotKey) -> tuple[Manifest, dict[str, bytes]]:
        """The manifest and every file it names, each checked against its digest."""
        manifest = await self.read_manifest(key)
        folder = self._folder(key)
        names = list(manifest.files)
        contents = await asyncio.gather(*(self._get_optional(folder + n) for n in names))
        files: dict[str, bytes] = {}
        for name, data in zip(names, contents, strict=True):
            if data is None:
                raise SnapshotIncomplete(f"{folder}{name}: named in the manifest but missing")
            actual = FileDigest.of(data)
            if actual != manifest.files[name]:
                raise ChecksumMismatch(folder, name, manifest.files[name], actual)
            files[name] = data
        return manifest, files

    async def verify(self, key: SnapshotKey) -> None:
        """Raise SnapshotIncomplete or ChecksumMismatch (naming the file) unless intact."""
        await self.read_snapshot(key)

    # --- object store access, with errors translated --------------------------------------

    async def _scan(self, wanted: Filter) -> dict[SnapshotKey, set[str]]:
        """The files of each snapshot folder under the filters (complete or not)."""
        segments = wanted.segments()
        try:
            for value, what in segments:
                if value is not None:
                    check_segment(value, what)
        except InvalidSnapshotKey as exc:
            raise ArchiveError(str(exc)) from exc
        # The leading filters narrow the listing; the rest are applied to the parsed keys.
        leading: list[str] = []
        for value, _ in segments:
            if value is None:
                break
            leading.append(value)
        prefix = "/".join([self._root, *leading] if self._root else leading)
        snapshots: dict[SnapshotKey, set[str]] = {}
        for path in await self._list(prefix):
            folder, _, name = path.rpartition("/")
            try:
                key = SnapshotKey.parse(folder, self._root)
            except InvalidSnapshotKey:
                continue  # not ours (a foreign object, or nested deeper than a snapshot file)
            if wanted.matches(key):
                snapshots.setdefault(key, set()).add(name)
        return snapshots

    async def _list(self, prefix: str) -> list[str]:
        async with self._request_slot():
            with self._errors("list", prefix or "/"):
                metas = await obstore.list(self._store, prefix or None).collect_async()
        return [meta["path"] for meta in metas]

    async def _get_optional(self, path: str) -> bytes | None:
        try:
            async with self._request_slot():
                with self._errors("read", path):
                    result = await obstore.get_async(self._store, path)
                    return bytes(await result.bytes_async())
        except FileNotFoundError:
            return None

    async def _put(self, path: str, data: bytes) -> None:
        try:
            async with self._request_slot():
                with self._errors("write", path):
                    await obstore.put_async(self._store, path, data)
        except FileNotFoundError as exc:  # S3 answers 404 for a missing bucket
            raise ArchiveError(
                f"write {path} in {self._url}: not found (does the bucket exist?): "
                f"{first_line(exc)}"
            ) from exc

    async def _delete(self, paths: list[str]) -> None:
        for path in paths:  # one by one: a local store fails a whole batch on a missing file
            async with self._request_slot():
                with contextlib.suppress(FileNotFoundError), self._errors("delete", path):
                    await obstore.delete_async(self._store, path)

    def _errors(self, action: str, path: str) -> contextlib.AbstractContextManager[None]:
        return translated(f"{action} {path} in {self._url}")


def _run_file(investigation: str, run: ContainerRun, name: str, root: str) -> str:
    """Where a run record goes: beside the run's snapshot folders, below `root`."""
    try:
        return run_path(investigation, run, root) + check_file_name(name)
    except (InvalidSnapshotKey, InvalidManifest) as exc:
        raise ArchiveError(str(exc)) from exc


def check_snapshot(
    folder: str, key: SnapshotKey, files: Mapping[str, bytes], manifest: Manifest
) -> None:
    """Never store a manifest that lies about its key or its files (`folder` for messages)."""
    if manifest.key != key:
        raise ArchiveError(
            f"{folder}: the manifest describes another snapshot ({manifest.key.path()})"
        )
    if set(files) != set(manifest.files):
        raise ArchiveError(
            f"{folder}: files {sorted(files)} differ from the manifest's {sorted(manifest.files)}"
        )
    for name, data in files.items():
        actual = FileDigest.of(data)
        if actual != manifest.files[name]:
            raise ChecksumMismatch(folder, name, manifest.files[name], actual)
