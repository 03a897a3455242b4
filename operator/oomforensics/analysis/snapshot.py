"""A snapshot as the analysis sees it: the parsed profile and whatever else was captured."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from oomforensics.pprof.errors import InvalidProfile
from oomforensics.pprof.profile import Profile, parse_profile

if TYPE_CHECKING:  # their parsers are imported when a snapshot has their files (6 ms)
    from oomforensics.pprof.goroutines import GoroutineDump
    from oomforensics.pprof.heaptext import HeapText

HEAP_PROFILE = "heap.pb.gz"
HEAP_TEXT = "heap.txt"
GOROUTINE_TEXT = "goroutine.txt"
GOROUTINE_LEAK_TEXT = "goroutineleak.txt"  # Go 1.26+, GOEXPERIMENT=goroutineleakprofile only
MANIFEST = "manifest.json"
# Every file a snapshot directory may hold (only heap.pb.gz is required).
SNAPSHOT_FILES = (HEAP_PROFILE, HEAP_TEXT, GOROUTINE_TEXT, GOROUTINE_LEAK_TEXT, MANIFEST)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Snapshot:
    source: str  # where it came from, for messages: a path or an archive key
    profile: Profile
    heap_text: HeapText | None = None
    goroutines: GoroutineDump | None = None
    manifest: Mapping[str, Any] | None = None
    # The goroutines Go's GC proved leaked (/debug/pprof/goroutineleak), when it was served.
    goroutine_leaks: GoroutineDump | None = None

    @property
    def rss_bytes(self) -> int | None:
        """Resident set size at capture, when the capturer recorded it."""
        if self.manifest is None:
            return None
        value = self.manifest.get("rssBytes")
        return value if isinstance(value, int) and not isinstance(value, bool) else None


def snapshot_from_files(source: str, files: Mapping[str, bytes]) -> Snapshot:
    """Build a Snapshot from the files of a snapshot directory (only heap.pb.gz is required)."""
    if HEAP_PROFILE not in files:
        raise InvalidProfile(f"{source}: no {HEAP_PROFILE} in the snapshot")
    if HEAP_TEXT in files:
        from oomforensics.pprof.heaptext import parse_heap_text
    if GOROUTINE_TEXT in files or GOROUTINE_LEAK_TEXT in files:
        from oomforensics.pprof.goroutines import parse_goroutine_text
    return Snapshot(
        source=source,
        profile=_parse(source, HEAP_PROFILE, parse_profile, files[HEAP_PROFILE]),
        heap_text=(
            _parse(source, HEAP_TEXT, parse_heap_text, files[HEAP_TEXT])
            if HEAP_TEXT in files
            else None
        ),
        goroutines=(
            _parse(source, GOROUTINE_TEXT, parse_goroutine_text, files[GOROUTINE_TEXT])
            if GOROUTINE_TEXT in files
            else None
        ),
        manifest=_manifest(source, files[MANIFEST]) if MANIFEST in files else None,
        goroutine_leaks=(
            _parse(source, GOROUTINE_LEAK_TEXT, parse_goroutine_text, files[GOROUTINE_LEAK_TEXT])
            if GOROUTINE_LEAK_TEXT in files
            else None
        ),
    )


def _parse(source: str, name: str, parser: Callable[[bytes], T], data: bytes) -> T:
    try:
        return parser(data)
    except InvalidProfile as exc:
        raise InvalidProfile(f"{source}/{name}: {exc}") from None


def _manifest(source: str, data: bytes) -> Mapping[str, Any]:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidProfile(f"{source}/{MANIFEST}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise InvalidProfile(f"{source}/{MANIFEST}: expected a JSON object")
    return value
