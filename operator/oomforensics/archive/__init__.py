"""The archive: snapshots in object storage (obstore), their manifests, a spool, retention.

An edge package: it does I/O. Layout and manifest are pure and importable on their own.
"""

from oomforensics.archive.layout import InvalidSnapshotKey, SnapshotKey, run_path
from oomforensics.archive.manifest import (
    ALLOCS_PROFILE,
    GOROUTINE_TEXT,
    HEAP_PROFILE,
    HEAP_TEXT,
    MANIFEST_NAME,
    FileDigest,
    InvalidManifest,
    Manifest,
    build_manifest,
)
from oomforensics.archive.retention import RetentionPolicy, apply_retention, plan_retention
from oomforensics.archive.spool import Spool, SpoolFull
from oomforensics.archive.store import (
    Archive,
    ArchiveError,
    ChecksumMismatch,
    SnapshotConflict,
    SnapshotIncomplete,
    SnapshotNotFound,
    StorageUnavailable,
)

__all__ = [
    "ALLOCS_PROFILE",
    "GOROUTINE_TEXT",
    "HEAP_PROFILE",
    "HEAP_TEXT",
    "MANIFEST_NAME",
    "Archive",
    "ArchiveError",
    "ChecksumMismatch",
    "FileDigest",
    "InvalidManifest",
    "InvalidSnapshotKey",
    "Manifest",
    "RetentionPolicy",
    "SnapshotConflict",
    "SnapshotIncomplete",
    "SnapshotKey",
    "SnapshotNotFound",
    "Spool",
    "SpoolFull",
    "StorageUnavailable",
    "apply_retention",
    "build_manifest",
    "plan_retention",
    "run_path",
]
