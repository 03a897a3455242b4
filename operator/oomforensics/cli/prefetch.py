"""Inflate a diff's gzipped profiles while the interpreter is still importing.

`oomforensics diff` spends its first 0.15 s importing numpy and the analysis, on one core.
ISA-L's inflate (as zlib's) lets go of the GIL, so a thread started before those imports
reads and inflates the profile files on the other core meanwhile (40 ms each for a
100,000-sample profile), and decoding starts from the inflated bytes.

Only what inflates cleanly is kept: anything else (a missing file, corrupt gzip, a gzip bomb
past the cap) is read again the ordinary way, which reports it as it always did. Nothing
here imports numpy, and the thread is joined before the diff forks its decoding child.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

# Imported here, not in the thread: an import in a thread beside the main thread's imports
# could meet it in a module lock. (4 ms; isal's inflate and no numpy.)
from oomforensics.pprof import compression

# The profile files a diff reads from a snapshot directory (analysis.snapshot.HEAP_PROFILE;
# not imported: that module imports numpy).
_HEAP_PROFILE = "heap.pb.gz"

# One stat key (device, inode, size, mtime) per file -> its inflated bytes.
_Key = tuple[int, int, int, int]
_inflated: dict[Path, tuple[_Key, bytes]] = {}
_thread: threading.Thread | None = None


def start(words: Sequence[str]) -> None:
    """Begin inflating, in a thread, the gzipped files the words of a command line name (a
    profile file, or a snapshot directory's heap profile). Words that name no file (option
    values, say) are passed over."""
    global _thread
    paths = [path for path in _candidates(words) if path.is_file()]
    if paths and _thread is None:
        _thread = threading.Thread(target=_inflate_all, args=(paths,), daemon=True)
        _thread.start()


def finish() -> None:
    """Wait for the thread (a no-op when none was started)."""
    global _thread
    if _thread is not None:
        _thread.join()
        _thread = None


def take(path: Path, max_bytes: int) -> bytes | None:
    """The inflated bytes of the file at `path` if the thread inflated it, within `max_bytes`,
    and the file is unchanged since; None otherwise (read it the ordinary way)."""
    finish()
    kept = _inflated.pop(path.absolute(), None)
    if kept is None:
        return None
    key, data = kept
    try:
        unchanged = _key(path) == key
    except OSError:
        return None
    return data if unchanged and len(data) <= max_bytes else None


def _candidates(words: Iterable[str]) -> list[Path]:
    paths = []
    for word in words:
        if word.startswith("-") or not word:
            continue
        path = Path(word)
        paths.append(path / _HEAP_PROFILE if path.is_dir() else path)
    return paths


def _key(path: Path) -> _Key:
    stat = path.stat()
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _inflate_all(paths: list[Path]) -> None:
    cap = compression.DEFAULT_MAX_DECOMPRESSED
    for path in paths:
        try:
            key = _key(path)
            if key[2] > cap:
                continue
            data = path.read_bytes()
            if not compression.is_gzip(data):
                continue
            inflated = compression.gunzip_bounded(data, cap)
            if not compression.is_gzip(inflated):  # gzip twice over: read the ordinary way
                _inflated[path.absolute()] = (key, inflated)
        except Exception:
            continue
