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
import re
from collections.abc import Iterator, Mapping, Set
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urlsplit

import obstore
from obstore.exceptions import (
    BaseError,
    GenericError,
    PermissionDeniedError,
    UnauthenticatedError,
)
from obstore.store import AzureStore, GCSStore, LocalStore, MemoryStore, S3Store

from oomforensics.archive.layout import (
    ContainerRun,
    InvalidSnapshotKey,
    SnapshotKey,
    check_segment,
    normalize_prefix,
)
from oomforensics.archive.manifest import (
    MANIFEST_NAME,
    FileDigest,
    InvalidManifest,
    Manifest,
    check_file_name,
)

if TYPE_CHECKING:
    from obstore.store import (
        AzureConfig,
        ClientConfig,
        GCSConfig,
        ObjectStore,
        RetryConfig,
        S3Config,
    )

log = logging.getLogger(__name__)


class ArchiveError(Exception):
    """The archive could not do what was asked; the message says what and where."""


class StorageUnavailable(ArchiveError):
    """The store cannot be reached (refused, timed out, 5xx after retries): try again later."""


class ChecksumMismatch(ArchiveError):
    """A file's content does not match the sha256/size its manifest records."""

    def __init__(self, snapshot: str, name: str, expected: FileDigest, actual: FileDigest) -> None:
        self.snapshot = snapshot
        self.name = name
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{snapshot}{name}: checksum mismatch: manifest says sha256 {expected.sha256} "
            f"({expected.size} bytes), the file has sha256 {actual.sha256} ({actual.size} bytes)"
        )


class SnapshotIncomplete(ArchiveError):
    """Files without a manifest, or a manifest naming a file that is not there."""


class SnapshotNotFound(ArchiveError):
    """Nothing is stored under that snapshot key (or no such file in it)."""


class SnapshotConflict(ArchiveError):
    """A different snapshot is already stored under the same key: evidence is never replaced."""


# Fast outage detection: a refused connection fails in well under a second and a silent one
# within a few seconds, so the spool takes over instead of a capture waiting for minutes
# (obstore's defaults: 10 retries over up to 3 minutes). A healthy but slow upload of a large
# profile is still allowed `timeout` in total, and a stall is caught by `read_timeout`.
DEFAULT_CONNECT_TIMEOUT = timedelta(seconds=2)
DEFAULT_READ_TIMEOUT = timedelta(seconds=5)
DEFAULT_TIMEOUT = timedelta(seconds=60)
DEFAULT_MAX_RETRIES = 3
DEFAULT_RETRY_TIMEOUT = timedelta(seconds=5)
DEFAULT_INIT_BACKOFF = timedelta(milliseconds=100)
DEFAULT_MAX_BACKOFF = timedelta(seconds=1)

_CLIENT_OPTIONS = {"allow_http", "allow_invalid_certificates", "proxy_url"}
_DURATION_OPTIONS = {"connect_timeout", "read_timeout", "timeout"}
_RETRY_OPTIONS = {"max_retries", "retry_timeout"}
_BOOL_OPTIONS = {
    "allow_http",
    "allow_invalid_certificates",
    "virtual_hosted_style_request",
    "skip_signature",
    "use_emulator",
}
# "endpoint" is the common spelling; GCS calls it base_url.
_STORE_OPTIONS: dict[str, dict[str, str]] = {
    "s3": {
        "endpoint": "endpoint",
        "region": "region",
        "virtual_hosted_style_request": "virtual_hosted_style_request",
        "skip_signature": "skip_signature",
    },
    "gs": {"endpoint": "base_url", "skip_signature": "skip_signature"},
    "az": {
        "endpoint": "endpoint",
        "account_name": "account_name",
        "use_emulator": "use_emulator",
        "skip_signature": "skip_signature",
    },
}
_CREDENTIALS: dict[str, set[str]] = {
    "s3": {"access_key_id", "secret_access_key", "session_token"},
    "gs": {"service_account", "service_account_key", "application_credentials", "bearer_token"},
    "az": {"account_name", "account_key", "sas_key", "token", "client_id", "client_secret",
           "tenant_id"},
}  # fmt: skip
_SCHEMES = {"s3": "s3", "s3a": "s3", "gs": "gs", "gcs": "gs", "az": "az", "abfs": "az",
            "abfss": "az", "adl": "az", "azure": "az"}  # fmt: skip

# What obstore reports for an unreachable store: its retry loop gave up on connection errors,
# timeouts or 5xx answers. Client errors (4xx: no such bucket, access denied) are not here:
# waiting does not fix them.
# Matched against the first line of the message only: the debug part that follows quotes
# settings such as `retry_timeout` and the server's error body.
_UNAVAILABLE = re.compile(
    r"HTTP error|error sending request|connection (?:refused|reset|closed)|timed out"
    r"|non-2xx status code: 5\d\d|dns error|broken pipe",
    re.IGNORECASE,
)
# Requests in flight per archive: bounds sockets, threads and buffers (an operator started
# with 1,000 targets read their run folders at once, over 1,000 connections).
MAX_REQUESTS = 16
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*")


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
        """An archive at `url`.

        - `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`: credentials come
          from the environment (obstore's default chain) unless given here: S3
          access_key_id/secret_access_key/session_token; GCS service_account_key,
          application_credentials, ...; Azure account_name/account_key/sas_key, ...
        - `file:///abs/path` or `file://./relative/path`: a local folder (created if missing).
        - `memory://` (or `memory:///prefix`): in this process only, for tests.

        `options` (strings, as a custom resource gives them): `endpoint` and `region` (S3-
        compatible stores such as MinIO or moto), `allow_http` (implied by an http://
        endpoint), `allow_invalid_certificates`, `virtual_hosted_style_request`,
        `skip_signature`, `proxy_url`, `connect_timeout`/`read_timeout`/`timeout` and
        `retry_timeout` (`"2s"`, `"500ms"`), `max_retries`.
        """
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme == "memory":
            _reject_unused(url, credentials, options)
            return cls(MemoryStore(), root=unquote(parts.path), url=url)
        if scheme == "file":
            _reject_unused(url, credentials, options)
            if parts.netloc not in ("", "localhost", "."):
                raise ArchiveError(
                    f"archive URL {url!r}: use file:///absolute/path or file://./relative/path"
                )
            raw = unquote(parts.path)
            directory = Path("." + raw) if parts.netloc == "." else Path(raw)
            directory = directory.resolve()
            try:
                store = LocalStore(directory, mkdir=True, automatic_cleanup=True)
            except (BaseError, OSError) as exc:
                raise ArchiveError(f"archive {url!r}: cannot use {directory}: {exc}") from exc
            return cls(store, url=url)
        kind = _SCHEMES.get(scheme)
        if kind is None:
            raise ArchiveError(
                f"archive URL {url!r}: unsupported scheme {scheme!r}; use s3://, gs://, az://, "
                "file:// or memory://"
            )
        if not parts.netloc:
            raise ArchiveError(f"archive URL {url!r} names no bucket or container")
        config, client, retry = _split_options(url, kind, credentials or {}, options or {})
        try:
            remote: ObjectStore
            if kind == "s3":
                remote = S3Store.from_url(
                    url, config=cast("S3Config", config), client_options=client, retry_config=retry
                )
            elif kind == "gs":
                remote = GCSStore.from_url(
                    url, config=cast("GCSConfig", config), client_options=client, retry_config=retry
                )
            else:
                remote = AzureStore.from_url(
                    url,
                    config=cast("AzureConfig", config),
                    client_options=client,
                    retry_config=retry,
                )
        except (BaseError, ValueError) as exc:
            raise ArchiveError(f"archive {url!r}: {_first_line(exc)}") from exc
        return cls(remote, url=url)

    # --- writing ------------------------------------------------------------------------

    def path_of(self, key: SnapshotKey) -> str:
        """The snapshot's folder relative to the archive URL, ending in `/`."""
        return key.path()

    def _run_folder(self, run: ContainerRun | SnapshotKey) -> str:
        if isinstance(run, SnapshotKey):
            run = run.container_run
        try:
            return run.path(self._root)
        except InvalidSnapshotKey as exc:
            raise ArchiveError(str(exc)) from exc

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

    async def put_run_file(self, run: ContainerRun | SnapshotKey, name: str, data: bytes) -> str:
        """A record about a whole container run (e.g. `oom.json` after the kill), stored next to
        its snapshot folders; return its path. Snapshot listings ignore it."""
        path = self._run_folder(run) + _run_file_name(name)
        await self._put(path, data)
        return path[len(self._root) + 1 :] if self._root else path

    async def read_run_file(self, run: ContainerRun | SnapshotKey, name: str) -> bytes:
        path = self._run_folder(run) + _run_file_name(name)
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
    ) -> list[SnapshotKey]:
        """Complete snapshots (manifest present) matching the filters, oldest first."""
        listing = await self._scan(namespace, investigation, pod, container, run)
        complete = [key for key, names in listing.items() if MANIFEST_NAME in names]
        return sorted(complete, key=SnapshotKey.sort_key)

    async def list_incomplete(
        self,
        namespace: str | None = None,
        investigation: str | None = None,
        pod: str | None = None,
        container: str | None = None,
        run: int | None = None,
    ) -> list[str]:
        """Folders holding files but no manifest (an upload cut short): retry or delete them."""
        listing = await self._scan(namespace, investigation, pod, container, run)
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
        listing = await self._scan(namespace, investigation, None, None, None)
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

    async def _scan(
        self,
        namespace: str | None,
        investigation: str | None,
        pod: str | None,
        container: str | None,
        run: int | None,
    ) -> dict[SnapshotKey, set[str]]:
        """The files of each snapshot folder under the filters (complete or not)."""
        filters: list[str | None] = [
            namespace,
            investigation,
            pod,
            container,
            None if run is None else f"run-{run}",
        ]
        names = ("namespace", "investigation", "pod", "container", "run")
        try:
            for value, what in zip(filters, names, strict=True):
                if value is not None:
                    check_segment(value, what)
        except InvalidSnapshotKey as exc:
            raise ArchiveError(str(exc)) from exc
        # The leading filters narrow the listing; the rest are applied to the parsed keys.
        leading: list[str] = []
        for value in filters:
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
            if (
                (namespace is not None and key.namespace != namespace)
                or (investigation is not None and key.investigation != investigation)
                or (pod is not None and key.pod != pod)
                or (container is not None and key.container != container)
                or (run is not None and key.run != run)
            ):
                continue
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
                f"{_first_line(exc)}"
            ) from exc

    async def _delete(self, paths: list[str]) -> None:
        for path in paths:  # one by one: a local store fails a whole batch on a missing file
            async with self._request_slot():
                with contextlib.suppress(FileNotFoundError), self._errors("delete", path):
                    await obstore.delete_async(self._store, path)

    @contextlib.contextmanager
    def _errors(self, action: str, path: str) -> Iterator[None]:
        try:
            yield
        except (FileNotFoundError, ArchiveError):
            raise
        except Exception as exc:
            raise _translate(exc, f"{action} {path} in {self._url}") from exc


def _run_file_name(name: str) -> str:
    try:
        return check_file_name(name)
    except InvalidManifest as exc:
        raise ArchiveError(str(exc)) from exc


def _translate(exc: Exception, what: str) -> ArchiveError:
    message = _first_line(exc)
    if isinstance(exc, PermissionDeniedError | UnauthenticatedError):
        return ArchiveError(f"{what}: access denied; check the storage credentials: {message}")
    if isinstance(exc, ConnectionError | TimeoutError) or (
        isinstance(exc, GenericError | BaseError) and _UNAVAILABLE.search(message)
    ):
        return StorageUnavailable(f"{what}: storage unavailable: {message}")
    return ArchiveError(f"{what}: {message}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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


def _reject_unused(
    url: str, credentials: Mapping[str, str] | None, options: Mapping[str, str] | None
) -> None:
    if credentials or options:
        raise ArchiveError(f"archive {url!r}: credentials and options apply to s3, gs and az only")


def _split_options(
    url: str, kind: str, credentials: Mapping[str, str], options: Mapping[str, str]
) -> tuple[dict[str, Any], ClientConfig, RetryConfig]:
    """Store config, HTTP client options and retry policy from the user's strings."""
    unknown_credentials = set(credentials) - _CREDENTIALS[kind]
    if unknown_credentials:
        raise ArchiveError(
            f"archive {url!r}: unknown credential(s) {sorted(unknown_credentials)} for {kind}; "
            f"known: {sorted(_CREDENTIALS[kind])}"
        )
    store_names = _STORE_OPTIONS[kind]
    known = set(store_names) | _CLIENT_OPTIONS | _DURATION_OPTIONS | _RETRY_OPTIONS
    unknown = set(options) - known
    if unknown:
        raise ArchiveError(
            f"archive {url!r}: unknown option(s) {sorted(unknown)} for {kind}; known: "
            f"{sorted(known)}"
        )
    config: dict[str, Any] = dict(credentials)
    client: dict[str, Any] = {
        "connect_timeout": DEFAULT_CONNECT_TIMEOUT,
        "read_timeout": DEFAULT_READ_TIMEOUT,
        "timeout": DEFAULT_TIMEOUT,
    }
    max_retries = DEFAULT_MAX_RETRIES
    retry_timeout = DEFAULT_RETRY_TIMEOUT
    for name, raw in options.items():
        value: Any = _parse_bool(url, name, raw) if name in _BOOL_OPTIONS else raw
        if name in store_names:
            config[store_names[name]] = value
        elif name in _CLIENT_OPTIONS:
            client[name] = value
        elif name in _DURATION_OPTIONS:
            client[name] = _parse_duration(url, name, raw)
        elif name == "max_retries":
            try:
                max_retries = int(raw)
            except ValueError:
                raise ArchiveError(
                    f"archive {url!r}: max_retries {raw!r} is not an integer"
                ) from None
        else:
            retry_timeout = _parse_duration(url, name, raw)
    endpoint = str(options.get("endpoint", ""))
    if endpoint.startswith("http://") and "allow_http" not in options:
        client["allow_http"] = True  # an http:// endpoint (moto, MinIO in a cluster) says so
    retry: RetryConfig = {
        "max_retries": max_retries,
        "retry_timeout": retry_timeout,
        "backoff": {
            "init_backoff": DEFAULT_INIT_BACKOFF,
            "max_backoff": DEFAULT_MAX_BACKOFF,
            "base": 2,
        },
    }
    return config, cast("ClientConfig", client), retry


def _parse_bool(url: str, name: str, raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in {"true", "1", "yes"}:
        return True
    if text in {"false", "0", "no"}:
        return False
    raise ArchiveError(f"archive {url!r}: option {name}={raw!r} must be true or false")


def _parse_duration(url: str, name: str, raw: object) -> timedelta:
    match = _DURATION.fullmatch(str(raw))
    if not match:
        raise ArchiveError(
            f"archive {url!r}: option {name}={raw!r} must be a duration like 500ms, 5s or 1m"
        )
    number = float(match.group(1))
    unit = match.group(2) or "s"
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
    return timedelta(seconds=number * scale)
