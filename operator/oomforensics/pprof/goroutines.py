"""Parse `/debug/pprof/goroutine?debug=1`: the total and each distinct stack with its count.

The same text form serves Go 1.26's goroutine leak profile (`/debug/pprof/goroutineleak?debug=1`,
header `goroutineleak profile: total N`): the goroutines the GC proved leaked, blocked on a
concurrency primitive no running goroutine can reach. It is present only in binaries built
with GOEXPERIMENT=goroutineleakprofile (runtime/pprof registers it under
goexperiment.GoroutineLeakProfile; net/http/pprof then serves it, and answers 404 otherwise).

debug=1 stacks leave out runtime frames (runtime.gopark, runtime.selectgo, ...): a goroutine
parked on a channel or select shows its own function as the leaf.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from oomforensics.pprof.errors import InvalidProfile
from oomforensics.pprof.textformat import (
    DEFAULT_MAX_TEXT,
    decode_text,
    first_line,
    frame_function,
    snippet,
)

_HEADER = re.compile(r"^(goroutine|goroutineleak) profile: total (\d+)$")
_WHAT = "goroutine profile in debug=1 text form"
_GROUP = re.compile(r"^(\d+) @((?: 0x[0-9a-fA-F]+)*)\s*$")


@dataclass(frozen=True, slots=True)
class GoroutineGroup:
    count: int
    functions: tuple[str, ...]  # leaf first

    @property
    def entry(self) -> str:
        """What started these goroutines: the outermost frame outside the runtime.

        The leaf is nearly always a runtime wait (runtime.gopark); the outermost frame names
        the goroutine (net/http.(*persistConn).readLoop, main.worker).
        """
        for name in reversed(self.functions):
            if not name.startswith("runtime."):
                return name
        return self.functions[-1] if self.functions else "<unknown>"


@dataclass(frozen=True, slots=True)
class GoroutineDump:
    total: int
    groups: tuple[GoroutineGroup, ...]
    profile: str = "goroutine"  # or "goroutineleak": only goroutines proven leaked

    def by_entry(self) -> Counter[str]:
        return self.counts(lambda group: group.entry)

    def counts(self, key: Callable[[GoroutineGroup], str]) -> Counter[str]:
        """Goroutine counts grouped by `key` (e.g. the group's first application frame)."""
        counts: Counter[str] = Counter()
        for group in self.groups:
            counts[key(group)] += group.count
        return counts


def check_goroutine_text(data: bytes, max_bytes: int = DEFAULT_MAX_TEXT) -> None:
    """Raise what `parse_goroutine_text` would raise, without reading the groups.

    The parser accepts whatever follows a valid header, so the header decides: this is how
    a capture validates the body it received, at a fraction of the cost.
    """
    _header(decode_text(data, _WHAT, max_bytes))


def parse_goroutine_text(data: bytes, max_bytes: int = DEFAULT_MAX_TEXT) -> GoroutineDump:
    lines = decode_text(data, _WHAT, max_bytes)
    start, header = _header(lines)
    groups: list[GoroutineGroup] = []
    count: int | None = None
    functions: list[str] = []
    for line in lines[start + 1 :]:
        group = _GROUP.match(line)
        if group:
            if count is not None:
                groups.append(GoroutineGroup(count, tuple(functions)))
            count, functions = int(group.group(1)), []
            continue
        function = frame_function(line)
        if function is not None and count is not None:
            functions.append(function)
    if count is not None:
        groups.append(GoroutineGroup(count, tuple(functions)))
    return GoroutineDump(int(header.group(2)), tuple(groups), header.group(1))


def goroutine_growth(
    base: GoroutineDump,
    new: GoroutineDump,
    key: Callable[[GoroutineGroup], str] = lambda group: group.entry,
) -> list[tuple[str, int]]:
    """Change in goroutine count per `key` (default: entry function), largest growth first.

    Zero changes are omitted.
    """
    before, after = base.counts(key), new.counts(key)
    changes = [(name, after[name] - before[name]) for name in before.keys() | after.keys()]
    return sorted(((name, delta) for name, delta in changes if delta), key=lambda c: (-c[1], c[0]))


def _header(lines: list[str]) -> tuple[int, re.Match[str]]:
    start, head = first_line(lines)
    header = _HEADER.match(head)
    if header is None:
        hint = " (this looks like debug=2 output)" if head.startswith("goroutine ") else ""
        raise InvalidProfile(
            "not a goroutine profile in debug=1 text form: expected "
            f"'goroutine profile: total N' (or goroutineleak), got {snippet(head)}{hint}"
        )
    return start, header
