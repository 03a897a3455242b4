"""`manifest.json`: what a snapshot is and how to check it, pure (no I/O).

The manifest is written last and read first: its presence marks a snapshot as complete, and
its digests let anyone verify the files from the archive alone, after the pod, the custom
resource and the operator are gone.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from oomforensics import __version__
from oomforensics.archive.layout import SnapshotKey, to_utc_millis
from oomforensics.errors import OomForensicsError
from oomforensics.triggers.model import ContainerRun

MANIFEST_NAME = "manifest.json"
HEAP_PROFILE = "heap.pb.gz"
HEAP_TEXT = "heap.txt"
GOROUTINE_TEXT = "goroutine.txt"
ALLOCS_PROFILE = "allocs.pb.gz"
TOOL_NAME = "oomforensics"
SCHEMA_VERSION = 1

_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class InvalidManifest(OomForensicsError, ValueError):
    """A manifest that cannot be read or does not describe a valid snapshot."""


def check_file_name(name: object) -> str:
    """A snapshot file name: one plain segment, never `manifest.json` itself."""
    if not isinstance(name, str) or not _FILE_NAME.fullmatch(name) or ".." in name:
        raise InvalidManifest(
            f"file name {name!r} must be a plain name of letters, digits, '.', '_' or '-'"
        )
    if name == MANIFEST_NAME:
        raise InvalidManifest(f"{MANIFEST_NAME} is the manifest itself, not a snapshot file")
    return name


@dataclass(frozen=True, slots=True)
class FileDigest:
    sha256: str
    size: int

    def __post_init__(self) -> None:
        if not isinstance(self.sha256, str) or not _SHA256.fullmatch(self.sha256):
            raise InvalidManifest(f"sha256 {self.sha256!r} must be 64 lowercase hex digits")
        if not _is_int(self.size) or self.size < 0:
            raise InvalidManifest(f"size {self.size!r} must be an integer >= 0")

    @classmethod
    def of(cls, data: bytes) -> FileDigest:
        return cls(sha256=hashlib.sha256(data).hexdigest(), size=len(data))


@dataclass(frozen=True, slots=True)
class Manifest:
    """One snapshot's `manifest.json`. Field names are snake_case here, camelCase on disk."""

    namespace: str
    investigation: str
    pod: str
    container: str
    run: int
    captured_at: datetime
    reason: str
    pod_uid: str
    node: str
    image: str
    working_set_bytes: int
    # None: the container has no memory limit.
    limit_bytes: int | None
    files: Mapping[str, FileDigest]
    rss_bytes: int | None = None
    # Parsed `# runtime.MemStats` (HeapInuse, HeapSys, ...), when the heap text was captured.
    memstats: Mapping[str, int] | None = None
    tool_name: str = TOOL_NAME
    tool_version: str = __version__

    def __post_init__(self) -> None:
        try:
            key = self.key  # validates the key fields and normalizes captured_at
        except ValueError as exc:  # InvalidSnapshotKey, or the run's own checks
            raise InvalidManifest(f"manifest key: {exc}") from exc
        object.__setattr__(self, "captured_at", key.captured_at)
        for name in ("node", "image", "tool_name", "tool_version"):
            if not isinstance(getattr(self, name), str):
                raise InvalidManifest(f"{name} must be a string, got {getattr(self, name)!r}")
        _check_bytes("working_set_bytes", self.working_set_bytes, optional=False)
        _check_bytes("limit_bytes", self.limit_bytes, optional=True)
        _check_bytes("rss_bytes", self.rss_bytes, optional=True)
        if not isinstance(self.files, Mapping) or not self.files:
            raise InvalidManifest("files must name at least one snapshot file")
        files: dict[str, FileDigest] = {}
        for name, digest in self.files.items():
            if not isinstance(digest, FileDigest):
                raise InvalidManifest(f"files[{name!r}] must be a FileDigest, got {digest!r}")
            files[check_file_name(name)] = digest
        object.__setattr__(self, "files", dict(sorted(files.items())))
        if self.memstats is not None:
            if not isinstance(self.memstats, Mapping):
                raise InvalidManifest(f"memstats must be a mapping, got {self.memstats!r}")
            for stat, value in self.memstats.items():
                if not isinstance(stat, str) or not _is_int(value):
                    raise InvalidManifest(f"memstats[{stat!r}] must be an integer, got {value!r}")
            object.__setattr__(self, "memstats", dict(sorted(self.memstats.items())))

    @property
    def key(self) -> SnapshotKey:
        return SnapshotKey(
            investigation=self.investigation,
            container_run=ContainerRun(
                namespace=self.namespace,
                pod=self.pod,
                pod_uid=self.pod_uid,
                container=self.container,
                restart_count=self.run,
            ),
            captured_at=self.captured_at,
            reason=self.reason,
        )

    @property
    def total_bytes(self) -> int:
        """The size of the snapshot's files (the manifest itself not counted)."""
        return sum(digest.size for digest in self.files.values())

    @property
    def heap_bytes(self) -> int | None:
        """In-use heap: MemStats HeapInuse when captured, else the heap profile's size."""
        if self.memstats is not None and "HeapInuse" in self.memstats:
            return self.memstats["HeapInuse"]
        digest = self.files.get(HEAP_PROFILE)
        return digest.size if digest is not None else None

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "schemaVersion": SCHEMA_VERSION,
            "namespace": self.namespace,
            "investigation": self.investigation,
            "pod": self.pod,
            "podUid": self.pod_uid,
            "node": self.node,
            "image": self.image,
            "container": self.container,
            "run": self.run,
            "capturedAt": _format_instant(self.captured_at),
            "reason": self.reason,
            "workingSetBytes": self.working_set_bytes,
            "limitBytes": self.limit_bytes,
        }
        if self.rss_bytes is not None:
            doc["rssBytes"] = self.rss_bytes
        if self.memstats is not None:
            doc["memstats"] = dict(self.memstats)
        doc["files"] = {
            name: {"sha256": digest.sha256, "size": digest.size}
            for name, digest in self.files.items()
        }
        doc["tool"] = {"name": self.tool_name, "version": self.tool_version}
        return doc

    def to_json(self) -> bytes:
        """Deterministic bytes: the same manifest always serializes the same way."""
        return (json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> Manifest:
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidManifest(f"{MANIFEST_NAME} is not valid JSON: {exc}") from exc
        return cls.from_dict(doc)

    @classmethod
    def from_dict(cls, doc: object) -> Manifest:
        if not isinstance(doc, dict):
            raise InvalidManifest(f"{MANIFEST_NAME} must hold a JSON object")
        version = doc.get("schemaVersion", SCHEMA_VERSION)
        if not _is_int(version) or version > SCHEMA_VERSION:
            raise InvalidManifest(
                f"{MANIFEST_NAME} has schemaVersion {version!r}; this oomforensics reads "
                f"up to {SCHEMA_VERSION}: upgrade it"
            )
        files_doc = _field(doc, "files", dict)
        files: dict[str, FileDigest] = {}
        for name, entry in files_doc.items():
            if not isinstance(entry, dict):
                raise InvalidManifest(f"files[{name!r}] must be an object with sha256 and size")
            files[name] = FileDigest(
                sha256=_field(entry, "sha256", str, where=f"files[{name!r}]."),
                size=_field(entry, "size", int, where=f"files[{name!r}]."),
            )
        tool = _field(doc, "tool", dict)
        memstats = _field(doc, "memstats", dict, optional=True)
        return cls(
            namespace=_field(doc, "namespace", str),
            investigation=_field(doc, "investigation", str),
            pod=_field(doc, "pod", str),
            container=_field(doc, "container", str),
            run=_field(doc, "run", int),
            captured_at=_parse_instant(_field(doc, "capturedAt", str)),
            reason=_field(doc, "reason", str),
            pod_uid=_field(doc, "podUid", str),
            node=_field(doc, "node", str),
            image=_field(doc, "image", str),
            working_set_bytes=_field(doc, "workingSetBytes", int),
            limit_bytes=_field(doc, "limitBytes", int, optional=True),
            rss_bytes=_field(doc, "rssBytes", int, optional=True),
            memstats=memstats,
            files=files,
            tool_name=_field(tool, "name", str, where="tool."),
            tool_version=_field(tool, "version", str, where="tool."),
        )


def build_manifest(
    key: SnapshotKey,
    files: Mapping[str, bytes],
    *,
    working_set_bytes: int,
    limit_bytes: int | None,
    node: str = "",
    image: str = "",
    rss_bytes: int | None = None,
    memstats: Mapping[str, int] | None = None,
    tool_version: str = __version__,
) -> Manifest:
    """The manifest of `files` captured under `key`, with their sha256 and size.

    The key names the container run (pod uid included) the manifest records.
    `node` and `image` are empty when unknown (local mode watches a process, not a pod).
    """
    return Manifest(
        namespace=key.namespace,
        investigation=key.investigation,
        pod=key.pod,
        container=key.container,
        run=key.run,
        captured_at=key.captured_at,
        reason=key.reason,
        pod_uid=key.pod_uid,
        node=node,
        image=image,
        working_set_bytes=working_set_bytes,
        limit_bytes=limit_bytes,
        rss_bytes=rss_bytes,
        memstats=memstats,
        files={name: FileDigest.of(data) for name, data in files.items()},
        tool_version=tool_version,
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_bytes(name: str, value: object, *, optional: bool) -> None:
    if value is None and optional:
        return
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        raise InvalidManifest(f"{name} must be an integer >= 0, got {value!r}")


def _field(
    doc: dict[str, Any], name: str, kind: type, *, optional: bool = False, where: str = ""
) -> Any:
    if name not in doc or (optional and doc[name] is None):
        if optional:
            return None
        raise InvalidManifest(f"{MANIFEST_NAME}: missing field {where}{name}")
    value = doc[name]
    if kind is int and not _is_int(value):
        raise InvalidManifest(f"{MANIFEST_NAME}: {where}{name} must be an integer, got {value!r}")
    if not isinstance(value, kind):
        raise InvalidManifest(
            f"{MANIFEST_NAME}: {where}{name} must be a {_JSON_KIND.get(kind, kind.__name__)}, "
            f"got {value!r}"
        )
    return value


_JSON_KIND = {str: "string", int: "integer", dict: "JSON object"}


def _format_instant(moment: datetime) -> str:
    utc = to_utc_millis(moment)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _parse_instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidManifest(f"{MANIFEST_NAME}: capturedAt {text!r} is not ISO 8601") from exc
    if moment.tzinfo is None:
        raise InvalidManifest(f"{MANIFEST_NAME}: capturedAt {text!r} has no time zone")
    return moment.astimezone(UTC)
