"""Read snapshots from local disk: a profile file or a snapshot directory.

A file is read as `go tool pprof` reads it: profile.proto (gzipped or raw), or a Go heap
profile in debug=1 text, which alone gives the table, the memory accounting (its MemStats)
and the verdict.
"""

from __future__ import annotations

from pathlib import Path

from oomforensics.analysis.snapshot import (
    HEAP_PROFILE,
    SNAPSHOT_FILES,
    Snapshot,
    snapshot_from_files,
)
from oomforensics.cli import prefetch
from oomforensics.cli.errors import UsageError
from oomforensics.pprof.compression import DEFAULT_MAX_DECOMPRESSED
from oomforensics.pprof.errors import ProfileError
from oomforensics.pprof.legacy import read_profile


def load_snapshot(path: Path) -> Snapshot:
    """A directory is read as a snapshot; any other file as a bare profile."""
    if path.is_dir():
        files = {name: _read(path / name) for name in SNAPSHOT_FILES if (path / name).is_file()}
        if HEAP_PROFILE not in files:
            raise UsageError(f"{path}: not a snapshot directory (no {HEAP_PROFILE} in it)")
        return snapshot_from_files(str(path), files)
    if not path.exists():
        raise UsageError(f"{path}: no such file or directory")
    try:
        profile, heap_text = read_profile(_read(path))
    except ProfileError as exc:
        raise type(exc)(f"{path}: {exc}") from None
    return Snapshot(source=str(path), profile=profile, heap_text=heap_text)


def _read(path: Path) -> bytes:
    """The file's bytes; inflated already when `oomforensics diff` did that during its
    imports (prefetch.py)."""
    inflated = prefetch.take(path, DEFAULT_MAX_DECOMPRESSED)
    if inflated is not None:
        return inflated
    # Refuse before reading: a profile file larger than the decompression cap is not a profile.
    size = path.stat().st_size
    if size > DEFAULT_MAX_DECOMPRESSED:
        raise UsageError(f"{path}: {size} bytes is too large for a profile")
    return path.read_bytes()
